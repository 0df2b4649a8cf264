"""The training loop of one trial: pure PyTorch, no Ray.

:class:`Trainer` holds a trial's state (encoder, objective, optimiser, RNG)
and offers :meth:`Trainer.train_epoch`, :meth:`Trainer.evaluate` and
checkpoint save/load that resumes bit-for-bit on the CPU. :func:`run_epochs`
yields one metrics dict per epoch; the Tune entry point and the benchmarks
both drive it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from trainables.augment import build_pipeline
from trainables.config import ConfigError, TrialConfig
from trainables.data import Dataset
from trainables.encoders import attention_problem, build_encoder
from trainables.errors import SSLSearchError
from trainables.masking import MASKING, make_mask
from trainables.objectives import OBJECTIVES
from trainables.probes import PROBES
from trainables.schedules import ratio_at
from trainables.validate import attention_refusal, dataset_problems

__all__ = [
    "NonFiniteLossError",
    "Trainer",
    "baseline_metrics",
    "resolve_device",
    "run_epochs",
]

CHECKPOINT_FILE = "trainer.pt"

#: The raw-input baseline probes the pixels average-pooled to at most this many a side
#: (a 224 px RGB image would be 150,528 features; 32 px keeps 3,072).
RAW_SIDE = 32


class NonFiniteLossError(SSLSearchError, RuntimeError):
    """The training loss became NaN or infinite; the trial cannot continue."""

    def __init__(self, epoch: int, step: int, value: float) -> None:
        self.epoch, self.step, self.value = epoch, step, value
        super().__init__(f"non-finite loss {value} at epoch {epoch}, step {step}")

    def __reduce__(self) -> tuple:  # Ray pickles a trial's error to the driver
        return (type(self), (self.epoch, self.step, self.value))


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when visible, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train/device is 'cuda' but no CUDA device is visible")
    return torch.device(name)


class Trainer:
    """One trial's model, optimiser and RNG state.

    Example:
        >>> from trainables.data import load_dataset
        >>> cfg = TrialConfig.from_dict({"train": {"epochs": 1}})
        >>> trainer = Trainer(cfg, load_dataset(cfg.data))
        >>> sorted(trainer.train_epoch())
        ['epoch', 'loss', 'loss_reconstruction', 'lr', 'mask_ratio', 'train_time_s']
    """

    def __init__(
        self, cfg: TrialConfig, dataset: Dataset, *, device: torch.device | None = None
    ) -> None:
        self.cfg = cfg
        self.device = device or resolve_device(cfg.train.device)
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        torch.manual_seed(cfg.train.seed)
        for problem in dataset_problems(cfg, dataset):  # checked before any trial too
            raise problem
        self.train_x = dataset.train_x.to(self.device)
        self.val_x = dataset.val_x.to(self.device)
        self.train_y = None if dataset.train_y is None else dataset.train_y.to(self.device)
        self.val_y = None if dataset.val_y is None else dataset.val_y.to(self.device)
        mean, std = dataset.stats()
        self.mean = mean.view(1, -1, 1, 1).to(self.device)
        self.std = std.view(1, -1, 1, 1).to(self.device)
        size, channels = dataset.image_size, dataset.channels
        self.encoder = build_encoder(cfg.model, image_size=size, channels=channels)
        try:
            self.objective = OBJECTIVES[cfg.loss.name](
                self.encoder,
                channels=channels,
                model_cfg=cfg.model,
                weights=dict(cfg.loss.weights),
                **dict(cfg.loss.options.get(cfg.loss.name, {})),
            ).to(self.device)
        except TypeError as err:
            raise ConfigError(f"loss/{cfg.loss.name}", str(err)) from None
        self.bf16 = cfg.train.precision == "bf16" or (
            cfg.train.precision == "auto"
            and self.device.type == "cuda"
            and torch.cuda.is_bf16_supported()
        )
        self.channels_last = (
            cfg.train.channels_last and self.device.type == "cuda" and not self.encoder.is_vit
        )
        if self.channels_last:
            self.objective = self.objective.to(memory_format=torch.channels_last)
        # the compiled step shares parameters with self.objective (state_dict stays plain)
        self.step_fn = torch.compile(self.objective) if cfg.train.compile else self.objective
        self.augments = [build_pipeline(cfg.aug.ops, image_size=size, channels=channels)]
        if cfg.aug.view2 is not None:
            self.augments.append(build_pipeline(cfg.aug.view2, image_size=size, channels=channels))
        self.mask_options = dict(cfg.mask.options.get(cfg.mask.strategy, {}))
        self.mask_scores = MASKING.meta(cfg.mask.strategy).get("scores")  # model-derived
        if self.mask_scores == "attention" and self.objective.masks_tokens:
            problem = attention_problem(self.encoder.model, cfg.model.name)
            if problem:  # checked before any trial too; this guards a direct Trainer
                raise attention_refusal(cfg.mask.strategy, problem)
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.train.seed)
        opt = cfg.optim
        decay, no_decay = [], []
        for name, param in self.objective.named_parameters():
            (no_decay if param.ndim < 2 or "pos" in name or "token" in name else decay).append(
                param
            )
        self.optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": opt.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=opt.lr,
            betas=(opt.beta1, opt.beta2),
        )
        self.steps_per_epoch = max(1, len(self.train_x) // opt.batch_size)
        self.epoch = 0
        self.step = 0
        self.elapsed = 0.0  # training + probing seconds so far (kept in checkpoints)
        self.last_ratio: float | None = None  # the masking ratio of the last masked batch

    # -- schedule -----------------------------------------------------------
    def lr_at(self, step: int) -> float:
        """Linear warm-up then cosine decay to ``min_lr_ratio * lr``, per step, over
        ``train.horizon`` epochs (default: ``train.epochs``)."""
        opt = self.cfg.optim
        total = self.cfg.train.span * self.steps_per_epoch
        warmup = min(total, round(opt.warmup_epochs * self.steps_per_epoch))
        if step < warmup:
            return opt.lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        floor = opt.lr * opt.min_lr_ratio
        return floor + (opt.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    # -- training -----------------------------------------------------------
    def make_views(self, images_u8: torch.Tensor) -> list[torch.Tensor]:
        """The objective's augmented, normalised views of a uint8 batch."""
        x = images_u8.float().div_(255.0)
        last = len(self.augments) - 1
        views = [
            (self.augments[min(i, last)](x) - self.mean) / self.std
            for i in range(self.objective.num_views)
        ]
        if self.channels_last:
            views = [v.contiguous(memory_format=torch.channels_last) for v in views]
        return views

    def autocast(self) -> torch.autocast:
        """bf16 autocast when enabled (``train/precision``), a no-op context otherwise."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def mask_ratio_at(self, step: int) -> float:
        """The masking ratio of optimiser step ``step`` (``mask/schedule``, over
        ``train.horizon`` epochs)."""
        m = self.cfg.mask
        total = self.cfg.train.span * self.steps_per_epoch
        return ratio_at(m.schedule, step, total, m.ratio, m.ratio_end)

    def sample_mask(self, images: torch.Tensor) -> torch.Tensor:
        """Masks for the view ``images`` about to be encoded, at the schedule's ratio
        (recorded per epoch); the encoder's attention to it when the strategy asks."""
        self.last_ratio = self.mask_ratio_at(self.step)
        scores = self.encoder.cls_attention(images) if self.mask_scores == "attention" else None
        return make_mask(
            self.cfg.mask.strategy,
            images.shape[0],
            self.encoder.grid_hw,
            self.last_ratio,
            generator=self.generator,
            scores=scores,
            **self.mask_options,
        )

    def train_epoch(self) -> dict[str, float]:
        """One pass over the training images; raises :class:`NonFiniteLossError`."""
        start = time.perf_counter()
        self.objective.train()
        bs = self.cfg.optim.batch_size
        order = torch.randperm(len(self.train_x), generator=self.generator, device=self.device)
        totals: dict[str, float] = {}
        self.last_ratio = None
        for i in range(self.steps_per_epoch):
            lr = self.lr_at(self.step)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            batch = self.train_x[order[i * bs : (i + 1) * bs]]
            with self.autocast():
                out = self.step_fn(self.make_views(batch), self.sample_mask)
            loss = out["loss"]
            if not torch.isfinite(loss):
                raise NonFiniteLossError(self.epoch + 1, i, float(loss.detach()))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.cfg.optim.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(
                    self.objective.parameters(), self.cfg.optim.grad_clip
                )
            self.optimizer.step()
            self.step += 1
            for key, value in out.items():
                totals[key] = totals.get(key, 0.0) + float(value.detach())
        self.epoch += 1
        metrics = {k: v / self.steps_per_epoch for k, v in totals.items()}
        metrics.update(epoch=self.epoch, lr=lr, train_time_s=time.perf_counter() - start)
        if self.last_ratio is not None:  # an objective that masks: the ratio it last used
            metrics["mask_ratio"] = self.last_ratio
        return metrics

    # -- evaluation ---------------------------------------------------------
    def _embed(self, x: torch.Tensor, *, raw: bool) -> torch.Tensor:
        """Normalised images -> features: the encoder's, or (``raw``) the pixels
        themselves, average-pooled to at most ``RAW_SIDE`` a side and flattened."""
        if raw:
            if max(x.shape[-2:]) > RAW_SIDE:
                x = torch.nn.functional.adaptive_avg_pool2d(x, RAW_SIDE)
            return x.flatten(1).float()
        with self.autocast():
            return self.encoder.features(x, self.cfg.probe.feature).float()

    @torch.no_grad()
    def features(
        self, images_u8: torch.Tensor, *, batch_size: int = 512, raw: bool = False
    ) -> torch.Tensor:
        """Frozen features of un-augmented images, in batches (``raw``: the pixels)."""
        self.encoder.eval()
        out = []
        for start in range(0, len(images_u8), batch_size):
            x = (images_u8[start : start + batch_size].float() / 255.0 - self.mean) / self.std
            out.append(self._embed(x, raw=raw))
        return torch.cat(out)

    @torch.no_grad()
    def view_features(
        self, images_u8: torch.Tensor, *, raw: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Features of two independently augmented views (for alignment-type probes)."""
        self.encoder.eval()
        out_a, out_b = [], []
        for start in range(0, len(images_u8), 512):
            x = images_u8[start : start + 512].float() / 255.0
            for out, augment in ((out_a, self.augments[0]), (out_b, self.augments[-1])):
                out.append(self._embed((augment(x) - self.mean) / self.std, raw=raw))
        return torch.cat(out_a), torch.cat(out_b)

    def evaluate(self, *, raw: bool = False) -> dict[str, float]:
        """Run every configured probe on features extracted once and shared
        (``raw``: on the pixels themselves, the raw-input baseline)."""
        start = time.perf_counter()
        train_f = self.features(self.train_x, raw=raw)
        val_f = self.features(self.val_x, raw=raw)
        views = None
        metrics: dict[str, float] = {}
        for name in self.cfg.probe.names:
            options = dict(self.cfg.probe.options.get(name, {}))
            if PROBES.meta(name)["views"]:
                if views is None:
                    views = self.view_features(self.val_x, raw=raw)
                options["views"] = views
            result = PROBES[name](train_f, self.train_y, val_f, self.val_y, **options)
            metrics.update({k: float(v) for k, v in result.items()})
        metrics["probe_time_s"] = time.perf_counter() - start
        return metrics

    # -- checkpoints --------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "objective": self.objective.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "elapsed": self.elapsed,
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.objective.load_state_dict(state["objective"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch = int(state["epoch"])
        self.step = int(state["step"])
        self.elapsed = float(state.get("elapsed", 0.0))
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / CHECKPOINT_FILE
        torch.save(self.state_dict(), path)
        return path

    def load(self, directory: str | Path) -> None:
        path = Path(directory) / CHECKPOINT_FILE
        state = torch.load(path, weights_only=True, map_location=self.device)
        self.load_state_dict(state)


def baseline_metrics(cfg: TrialConfig, dataset: Dataset) -> dict[str, dict[str, float]]:
    """The probes on what every trained trial should beat: the encoder at
    initialisation (seed ``train.seed``) and the raw input (the pixels,
    average-pooled to at most ``RAW_SIDE`` a side).

    Returns:
        ``{"random_init": metrics, "raw_input": metrics}``.
    """
    trainer = Trainer(cfg, dataset)
    return {"random_init": trainer.evaluate(), "raw_input": trainer.evaluate(raw=True)}


def run_epochs(trainer: Trainer) -> Iterator[dict[str, float]]:
    """Train to ``train.epochs``; yield each epoch's metrics (probes every ``probe.every``)."""
    cfg = trainer.cfg
    while trainer.epoch < cfg.train.epochs:
        metrics = trainer.train_epoch()
        if trainer.epoch % cfg.probe.every == 0 or trainer.epoch == cfg.train.epochs:
            metrics.update(trainer.evaluate())
        trainer.elapsed += metrics["train_time_s"] + metrics.get("probe_time_s", 0.0)
        metrics["trial_time_s"] = trainer.elapsed  # cumulative: the cost objective
        yield metrics
