"""MAE step time at 75 % masking vs 0 %, and what attention-guided masking costs.

The encoder only sees the visible tokens, so masking 75 % should cut the step's
FLOPs by the ratio that torch's FLOP counter reports for the two steps. The
benchmark times the steps side by side (interleaved rounds, medians) and prints
how much of that predicted speed-up is realised, then the step time of
attention-guided masking (AttMask ``high``: one extra gradient-free pass of the
whole image through the encoder for the class-token attention) over random
masking at the same 75 %; the last lines are ``RESULT name=value``.

``--learn`` instead trains MAE on digits (``vit_digits``, ratio 0.5, 24
epochs, seeds 0-2, two processes) with random masks and each attention mode,
and prints each one's kNN top-1: what the masks do to learning, not to speed.

    python bench/masking.py [--quick] [--device cpu|cuda] [--model vit_tiny_32] [--batch 64]
    python bench/masking.py --learn [--epochs 24]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from trainables.config import ModelConfig
from trainables.encoders import build_encoder
from trainables.masking import make_mask
from trainables.objectives import OBJECTIVES


def build(model: str, size: int, device: torch.device):
    torch.manual_seed(0)
    enc = build_encoder(ModelConfig(name=model), image_size=size, channels=3)
    cfg = ModelConfig(name=model, decoder_dim=128, decoder_depth=2, decoder_heads=4)
    objective = OBJECTIVES["mae"](enc, channels=3, model_cfg=cfg).to(device)
    opt = torch.optim.AdamW(objective.parameters(), lr=1e-4)
    return enc, objective, opt


def make_step(enc, objective, opt, x, ratio, device, strategy="random"):
    gen = torch.Generator(device=device).manual_seed(0)

    def sample_mask(images):
        scores = enc.cls_attention(images) if strategy == "attention" else None
        return make_mask(
            strategy, images.shape[0], enc.grid_hw, ratio, generator=gen, scores=scores
        )

    def step():
        out = objective([x], sample_mask)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()

    return step


def flops(step) -> int:
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def seconds(step, reps: int, device: torch.device) -> float:
    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(reps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / reps


#: (strategy, attention mode) pairs --learn compares
LEARN = (("random", None), ("attention", "high"), ("attention", "low"), ("attention", "hide_show"))


def learn_one(job: tuple[str, str | None, int, int]) -> tuple[str, int, float]:
    """Train one MAE trial on digits; its name, seed and final kNN top-1."""
    from trainables import Trainer, TrialConfig, load_dataset
    from trainables.data import DataConfig

    strategy, mode, seed, epochs = job
    mask: dict = {"strategy": strategy, "ratio": 0.5}
    if mode:
        mask["attention"] = {"mode": mode}
    cfg = TrialConfig.from_dict(
        {
            "train": {"epochs": epochs, "threads": 1, "seed": seed},
            "aug": {},
            "optim": {"lr": 1.5e-3, "weight_decay": 0.005},
            "loss": {"name": "mae", "mae": {"norm_pix": True}},
            "model": {"name": "vit_digits"},
            "mask": mask,
        }
    )
    trainer = Trainer(cfg, load_dataset(DataConfig(name="digits", val_fraction=0.25, seed=0)))
    for _ in range(epochs):
        trainer.train_epoch()
    return mode or strategy, seed, trainer.evaluate()["knn_top1"]


def learn(epochs: int) -> None:
    jobs = [(s, m, seed, epochs) for seed in (0, 1, 2) for s, m in LEARN]
    scores: dict[str, list[float]] = {}
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        for name, seed, value in pool.imap(learn_one, jobs):
            print(f"{name:<10} seed {seed}: knn_top1 {value:.4f}", flush=True)
            scores.setdefault(name, []).append(value)
    for name, values in scores.items():
        print(f"RESULT knn_{name}={statistics.mean(values):.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="vit_tiny_32")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--learn", action="store_true", help="compare learning, not speed")
    parser.add_argument("--epochs", type=int, default=24, help="--learn: epochs per trial")
    args = parser.parse_args()
    if args.learn:
        learn(args.epochs)
        return
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    enc, objective, opt = build(args.model, args.size, device)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    steps = {r: make_step(enc, objective, opt, x, r, device) for r in (0.0, 0.75)}
    steps["attention"] = make_step(enc, objective, opt, x, 0.75, device, "attention")
    flop = {r: flops(s) for r, s in steps.items()}
    reps, rounds = (2, 2) if args.quick else (5, 5)
    times: dict[float | str, list[float]] = {r: [] for r in steps}
    for _ in range(rounds):
        for r, s in steps.items():
            times[r].append(seconds(s, reps, device))
    t0, t75 = statistics.median(times[0.0]), statistics.median(times[0.75])
    t_att = statistics.median(times["attention"])
    predicted = flop[0.0] / flop[0.75]
    measured = t0 / t75
    print(
        f"{args.model}, {args.batch} x 3 x {args.size}^2 on {device}, "
        f"{enc.num_tokens} tokens, decoder 2 x 128"
    )
    print(f"mask 0 %:  {flop[0.0] / 1e9:7.2f} GFLOP/step  {t0 * 1e3:8.1f} ms/step")
    print(f"mask 75 %: {flop[0.75] / 1e9:7.2f} GFLOP/step  {t75 * 1e3:8.1f} ms/step")
    print(f"attention 75 %: {flop['attention'] / 1e9:7.2f} GFLOP/step  {t_att * 1e3:8.1f} ms/step")
    print(f"RESULT flop_speedup={predicted:.2f}")
    print(f"RESULT measured_speedup={measured:.2f}")
    print(f"RESULT masking_efficiency={measured / predicted:.2f}")
    print(f"RESULT attention_flop_cost={flop['attention'] / flop[0.75]:.2f}")
    print(f"RESULT attention_step_cost={t_att / t75:.2f}")


if __name__ == "__main__":
    main()
