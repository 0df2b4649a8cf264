"""The trial registries as data: names, options and metadata, readable without torch.

A trial validates its config against the live registries
(:func:`live`); ``sslsearch spaces check`` must validate exactly the same
without importing torch, timm or kornia, so it reads the same facts from
``trainables/catalogue.json`` (:func:`shipped`), a snapshot that
``python -m trainables.catalogue`` writes from the live registries. The
registries stay the one owner: ``tests/test_catalogue.py`` fails, naming
that command, whenever the snapshot differs from them (a new entry, a renamed
option, a changed default or metric).

Example:
    >>> cat = shipped()
    >>> cat.names("masking")[:2], cat.entry("probe", "knn").meta["metrics"]["knn_top1"]
    (['attention', 'block'], 'maximize')
"""

from __future__ import annotations

import functools
import importlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainables._registry import UnknownNameError, suggest

__all__ = [
    "CATALOGUE_FILE",
    "KINDS",
    "LOOP_METRICS",
    "Catalogue",
    "Entry",
    "live",
    "metric_direction",
    "shipped",
    "write",
]

#: What the training loop reports besides the probes and ``loss_<term>`` (minimised, as
#: ``loss``), with the direction in which each is better (None: not a score).
LOOP_METRICS: dict[str, str | None] = {
    "loss": "minimize",
    "epoch": None,
    "lr": None,
    "mask_ratio": None,
    "train_time_s": "minimize",
    "trial_time_s": "minimize",
}


def metric_direction(metric: str, probe_metrics: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The direction in which ``metric`` is better: the loop's own (``loss_<term>``
    minimised, as ``loss``), else the probe's in ``probe_metrics`` (as
    :meth:`Catalogue.metrics` or a run's ``metrics.json`` give them).

    Raises:
        KeyError: neither the loop nor a probe reports it.
    """
    if metric in LOOP_METRICS:
        return LOOP_METRICS[metric]
    if metric.startswith("loss_"):
        return "minimize"
    return probe_metrics[metric]["direction"]


CATALOGUE_FILE = Path(__file__).with_name("catalogue.json")

#: Each kind of trial extension -> the registry that holds it (``module:NAME``).
KINDS: dict[str, str] = {
    "data": "trainables.data:DATA_SOURCES",
    "encoder": "trainables.encoders:ENCODERS",
    "masking": "trainables.masking:MASKING",
    "ratio_schedule": "trainables.schedules:RATIO_SCHEDULES",
    "augment": "trainables.augment:AUGMENT_OPS",
    "loss_term": "trainables.objectives:LOSS_TERMS",
    "objective": "trainables.objectives:OBJECTIVES",
    "probe": "trainables.probes:PROBES",
}


@dataclass(frozen=True)
class Entry:
    """One registered entry.

    Attributes:
        name: its registered name.
        options: option -> default (:data:`~trainables._registry.REQUIRED` when none).
        types: option -> its annotation as written (``"int"``, ``"float | None"``).
        any_option: it takes ``**kwargs``.
        meta: what it was registered with (a probe's metrics, an objective's weights).
    """

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    types: Mapping[str, str] = field(default_factory=dict)
    any_option: bool = False
    meta: Mapping[str, Any] = field(default_factory=dict)


class Catalogue:
    """Kind -> name -> :class:`Entry`, with the registries' error messages."""

    def __init__(self, kinds: Mapping[str, tuple[str, Mapping[str, Entry]]]) -> None:
        self._kinds = dict(kinds)  # kind -> (what one is called, entries)

    def names(self, kind: str) -> list[str]:
        return sorted(self._kinds[kind][1])

    def entry(self, kind: str, name: str) -> Entry:
        """The entry, or :class:`UnknownNameError` as the registry itself raises it."""
        label, entries = self._kinds[kind]
        if isinstance(name, str) and name in entries:
            return entries[name]
        valid = sorted(entries)
        raise UnknownNameError(
            f"unknown {label} '{name}'{suggest(str(name), valid)}; valid: {', '.join(valid)}"
        )

    def direction(self, metric: str) -> str | None:
        """The direction in which ``metric`` of the built-in trainable is better.

        Raises:
            KeyError: no probe nor the loop reports it.
        """
        return metric_direction(metric, self.metrics())

    def metrics(self) -> dict[str, dict[str, Any]]:
        """Every probe metric: its probe, direction, whether it needs labels, headline,
        and its ceiling (the best value it can take; None where unbounded)."""
        out: dict[str, dict[str, Any]] = {}
        for name in self.names("probe"):
            meta = self.entry("probe", name).meta
            for i, (metric, direction) in enumerate(meta["metrics"].items()):
                out[metric] = {
                    "probe": name,
                    "direction": direction,
                    "labels": bool(meta["needs_labels"]),
                    "headline": i == 0,
                    "ceiling": meta.get("ceilings", {}).get(metric),
                }
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            kind: {
                "label": label,
                "entries": {
                    name: {
                        "options": dict(e.options),
                        "types": dict(e.types),
                        "any_option": e.any_option,
                        "meta": dict(e.meta),
                    }
                    for name, e in sorted(entries.items())
                },
            }
            for kind, (label, entries) in self._kinds.items()
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Catalogue:
        return cls(
            {
                kind: (
                    block["label"],
                    {name: Entry(name, **e) for name, e in block["entries"].items()},
                )
                for kind, block in data.items()
            }
        )


def _plain(value: Any) -> Any:
    """JSON's view of a default or a metadata value (tuples become lists)."""
    return json.loads(json.dumps(value, default=repr))


@functools.cache
def live() -> Catalogue:
    """The catalogue of the registries themselves (imports torch, timm and kornia)."""
    kinds = {}
    for kind, where in KINDS.items():
        module, _, attr = where.partition(":")
        registry = getattr(importlib.import_module(module), attr)
        entries = {
            name: Entry(
                name,
                options=_plain(registry.options(name)),
                types=registry.annotations(name),
                any_option=registry.accepts_any(name),
                meta=_plain(dict(registry.meta(name))),
            )
            for name in registry
        }
        kinds[kind] = (registry.kind, entries)
    return Catalogue(kinds)


@functools.cache
def shipped() -> Catalogue:
    """The snapshot in ``catalogue.json`` (no torch)."""
    return Catalogue.from_json(json.loads(CATALOGUE_FILE.read_text(encoding="utf-8")))


def write(path: Path = CATALOGUE_FILE) -> Path:
    """Write the live registries' catalogue to ``path``."""
    text = json.dumps(live().to_json(), indent=1, sort_keys=False) + "\n"
    path.write_text(text, encoding="utf-8")
    return path


if __name__ == "__main__":  # python -m trainables.catalogue
    print(f"wrote {write()}")
