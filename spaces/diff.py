"""Is an edited space still the same study? (for resuming a run)

Optuna's sampler history is only meaningful if every parameter keeps its
distribution. :func:`incompatibilities` lists, as readable lines, what an edit
changed that a resume cannot accept; adding or changing a ``fixed`` value, the
budget or the description is allowed.
"""

from __future__ import annotations

from spaces.model import SearchSpec

__all__ = ["incompatibilities"]


def incompatibilities(old: SearchSpec, new: SearchSpec) -> list[str]:
    """What the edit from ``old`` to ``new`` changed that a resumed study cannot accept.

    Example:
        >>> from spaces import parse_spec
        >>> a = parse_spec({"params": {"x/y": {"type": "float", "low": 0, "high": 1}}},
        ...                source="a", builtin_trainable=False)
        >>> b = parse_spec({"params": {"x/y": {"type": "float", "low": 0, "high": 2}}},
        ...                source="b", builtin_trainable=False)
        >>> print(*incompatibilities(a, b))
        params/x/y: float low=0.0, high=1.0, log=False, step=None -> float low=0.0, high=2.0, ...
    """
    out = []
    before = {p.name: p for p in old.sampled}
    after = {p.name: p for p in new.sampled}
    for name, p in before.items():
        if name not in after:
            out.append(f"params/{name}: removed (was {p.describe()})")
        elif after[name] != p:
            out.append(f"params/{name}: {p.describe()} -> {after[name].describe()}")
    for name, p in after.items():
        if name not in before:
            out.append(f"params/{name}: added ({p.describe()})")
    old_obj = [(o.metric, o.direction) for o in old.study.objectives]
    new_obj = [(o.metric, o.direction) for o in new.study.objectives]
    if old_obj != new_obj:
        out.append(f"study/objective: {old_obj} -> {new_obj}")
    if old.study.name != new.study.name:
        out.append(f"study/name: {old.study.name!r} -> {new.study.name!r}")
    return out
