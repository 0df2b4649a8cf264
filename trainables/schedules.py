"""Masking-ratio schedules: the masking ratio as a function of training progress.

Contract (every entry of :data:`RATIO_SCHEDULES`)::

    fn(progress, start, end) -> ratio

``progress`` is the share of the trial's optimiser steps done before this one
(0 at the first step, approaching 1 at the last); ``start`` is ``mask/ratio``,
``end`` is ``mask/ratio_end`` (the start when not given). The trainer asks for
the ratio of every batch from its step counter, which checkpoints keep, so a
resumed trial continues its schedule where it stopped. A space searches the
schedule like any parameter: ``mask/schedule`` (the shape), ``mask/ratio``
and ``mask/ratio_end``.

Example:
    >>> [round(RATIO_SCHEDULES["linear"](p, 0.5, 0.9), 2) for p in (0.0, 0.5, 1.0)]
    [0.5, 0.7, 0.9]
"""

from __future__ import annotations

import math
from collections.abc import Callable

from trainables._registry import Registry

__all__ = ["RATIO_SCHEDULES", "ratio_at", "register_ratio_schedule"]

ScheduleFn = Callable[[float, float, float], float]
RATIO_SCHEDULES: Registry[ScheduleFn] = Registry(
    "ratio schedule", reserved=("progress", "start", "end")
)
register_ratio_schedule = RATIO_SCHEDULES.register


@register_ratio_schedule("constant")
def constant(progress: float, start: float, end: float) -> float:
    """``start`` throughout (``end`` is not used)."""
    return start


@register_ratio_schedule("linear")
def linear(progress: float, start: float, end: float) -> float:
    """A straight ramp from ``start`` to ``end``."""
    return start + (end - start) * progress


@register_ratio_schedule("cosine")
def cosine(progress: float, start: float, end: float) -> float:
    """Half a cosine from ``start`` to ``end``: slow at both ends.

    Example:
        >>> round(cosine(0.5, 0.4, 0.8), 3), round(cosine(0.25, 0.4, 0.8), 3)
        (0.6, 0.459)
    """
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * progress))


@register_ratio_schedule("step")
def step(progress: float, start: float, end: float) -> float:
    """``start`` for the first half of training, ``end`` for the second."""
    return start if progress < 0.5 else end


def ratio_at(
    schedule: str, step_index: int, total_steps: int, start: float, end: float | None
) -> float:
    """The ratio of optimiser step ``step_index`` (0-based) of ``total_steps``.

    Example:
        >>> ratio_at("linear", 5, 10, 0.5, 0.9), ratio_at("linear", 5, 10, 0.5, None)
        (0.7, 0.5)
    """
    progress = min(1.0, max(0.0, step_index / max(1, total_steps)))
    fn = RATIO_SCHEDULES.lookup(schedule)
    return float(fn(progress, start, start if end is None else end))
