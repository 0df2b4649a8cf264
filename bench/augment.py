"""Batched on-device augmentation (sslsearch's pipeline, one call per batch) vs the same
ops per sample with torchvision v2, on the same tensors.

Interleaved rounds, medians of images/s and their ratio; the last lines are
``RESULT name=value``.

    python bench/augment.py [--quick] [--device cpu|cuda] [--batch 256] [--size 32]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torchvision.transforms import v2

from trainables.augment import build_pipeline
from trainables.data import shapes

OPS = {
    "resized_crop": {"min_scale": 0.2},
    "hflip": {"p": 0.5},
    "color_jitter": {"strength": 0.5, "p": 0.8},
    "grayscale": {"p": 0.2},
    "gaussian_blur": {"p": 0.5, "sigma_min": 0.1, "sigma_max": 2.0},
    "solarize": {"p": 0.2},
}


def torchvision_pipeline(size: int) -> v2.Compose:
    """The same ops and strengths as ``OPS``, torchvision v2, one image at a time."""
    s = OPS["color_jitter"]["strength"]
    kernel = max(3, int(0.1 * size) // 2 * 2 + 1)
    return v2.Compose(
        [
            v2.RandomResizedCrop(size, scale=(0.2, 1.0), antialias=True),
            v2.RandomHorizontalFlip(p=0.5),
            v2.RandomApply([v2.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)], p=0.8),
            v2.RandomGrayscale(p=0.2),
            v2.RandomApply([v2.GaussianBlur(kernel, sigma=(0.1, 2.0))], p=0.5),
            v2.RandomSolarize(0.5, p=0.2),
        ]
    )


def images_per_second(fn, x: torch.Tensor, reps: int, device: torch.device) -> float:
    fn(x)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(reps):
        fn(x)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return reps * len(x) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (< 1 min)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (both sides)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    images, _ = shapes(count=args.batch, image_size=args.size)
    x = (images.float() / 255.0).to(device)
    batched = build_pipeline(OPS, image_size=args.size, channels=3).to(device)
    per_sample = torchvision_pipeline(args.size)

    def run_torchvision(batch: torch.Tensor) -> torch.Tensor:
        return torch.stack([per_sample(img) for img in batch])

    reps, rounds = (3, 2) if args.quick else (10, 5)
    kornia_runs, tv_runs = [], []
    for _ in range(rounds):  # interleaved, so that both sides see the same machine state
        kornia_runs.append(images_per_second(batched, x, reps, device))
        tv_runs.append(images_per_second(run_torchvision, x, max(1, reps // 2), device))
    kornia_ips = statistics.median(kornia_runs)
    tv_ips = statistics.median(tv_runs)
    print(f"device {device}, batch {args.batch} x 3 x {args.size} x {args.size}, ops: {list(OPS)}")
    print(f"sslsearch, batched (one call per batch): {kornia_ips:10.0f} images/s")
    print(f"torchvision v2, per sample:              {tv_ips:10.0f} images/s")
    print(f"RESULT batched_images_per_s={kornia_ips:.0f}")
    print(f"RESULT torchvision_images_per_s={tv_ips:.0f}")
    print(f"RESULT augment_speedup={kornia_ips / tv_ips:.2f}")


if __name__ == "__main__":
    main()
