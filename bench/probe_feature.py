"""Which feature should the kNN probe read on an MAE ViT: the class token or the mean token?

The shipped ``default.yaml`` trains an MAE on digits; its search ranks
configurations by kNN top-1 after 30 epochs and ``confirm`` checks that
ranking at 60. A noisy score breaks that check: if one configuration's seeds
spread more than configurations differ, no short run can rank them. This
trains 4 configurations of the space (masking ratio, learning rate, weight
decay, per-patch normalisation) x 3 seeds for 60 epochs, 2 at a time, and
probes each after 30 and 60 epochs on the class token (``cls``) and on the
mean of the patch tokens (``mean``), on the same encoder. Printed: mean +- std
over seeds per configuration, feature and epoch. The last lines are
``RESULT name=value``: the mean over configurations of the seeds' std and of
the score, per feature at 60 epochs. About 8 minutes on 2 cores.

    python bench/probe_feature.py [--epochs 60] [--seeds 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing as mp
import statistics

import torch

CONFIGS = [
    {"mask/ratio": 0.25, "optim/lr": 1e-3, "optim/weight_decay": 0.05, "loss/mae/norm_pix": False},
    {"mask/ratio": 0.5, "optim/lr": 1e-3, "optim/weight_decay": 0.05, "loss/mae/norm_pix": False},
    {"mask/ratio": 0.75, "optim/lr": 1e-3, "optim/weight_decay": 0.05, "loss/mae/norm_pix": True},
    {"mask/ratio": 0.5, "optim/lr": 4e-3, "optim/weight_decay": 0.01, "loss/mae/norm_pix": False},
]
FEATURES = ("cls", "mean")


def _train(job: tuple[int, int, int]) -> tuple[int, int, dict[str, float]]:
    """One configuration and seed: kNN top-1 per feature at half and at all ``epochs``."""
    index, seed, epochs = job
    torch.set_num_threads(1)
    from spaces import load_spec, trial_config
    from trainables.data import load_dataset
    from trainables.loop import Trainer
    from trainables.validate import parse_trial_config

    spec = load_spec("spaces/default.yaml")
    cfg = parse_trial_config(trial_config(spec, {**CONFIGS[index], "train/seed": seed}))
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=epochs))
    trainer = Trainer(cfg, load_dataset(cfg.data))
    scores: dict[str, float] = {}
    while trainer.epoch < epochs:
        trainer.train_epoch()
        if trainer.epoch in (epochs // 2, epochs):
            for feature in FEATURES:
                probe = dataclasses.replace(cfg.probe, feature=feature)
                trainer.cfg = dataclasses.replace(cfg, probe=probe)
                scores[f"{feature}@{trainer.epoch}"] = trainer.evaluate()["knn_top1"]
            trainer.cfg = cfg
    return index, seed, scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    jobs = [(i, s, args.epochs) for i in range(len(CONFIGS)) for s in range(args.seeds)]
    with mp.get_context("spawn").Pool(2) as pool:
        runs = pool.map(_train, jobs, chunksize=1)
    summary: dict[str, tuple[float, float]] = {}
    for epoch in (args.epochs // 2, args.epochs):
        for feature in FEATURES:
            key = f"{feature}@{epoch}"
            cells, stds, means = [], [], []
            for i in range(len(CONFIGS)):
                values = [scores[key] for j, _, scores in runs if j == i]
                mean, std = statistics.mean(values), statistics.stdev(values)
                cells.append(f"{mean:.3f} +- {std:.3f}")
                stds.append(std)
                means.append(mean)
            summary[key] = (statistics.mean(stds), statistics.mean(means))
            print(f"{key:>8}: " + "   ".join(cells))
    for feature in FEATURES:
        std, mean = summary[f"{feature}@{args.epochs}"]
        print(f"RESULT seed_std_{feature}={std:.4f}")
        print(f"RESULT knn_top1_{feature}={mean:.4f}")


if __name__ == "__main__":
    main()
