"""Reading space files: safe YAML with the line of every key, ``include:``, overrides.

``yaml.safe_load`` semantics only (no Python object tags). :func:`load_file`
returns the data and a ``{key path: line}`` map for located errors; a file
with ``include: base.yaml`` is merged over its base (lines of keys from the
base point into the base); :func:`apply_overrides` sets ``--set a.b=value``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from spaces.errors import SpecError

__all__ = [
    "apply_overrides",
    "load_file",
    "load_with_lines",
    "override_lines",
    "read_text",
    "shipped_spaces",
]

Lines = dict[tuple[str, ...], Any]

#: The most values a space file may expand to once its aliases are followed. A file
#: of a few hundred bytes with nested anchors (an "alias bomb") expands to billions;
#: every later step (merging includes, checking, copying configs) would pay for them.
MAX_VALUES = 100_000


def _fail(source: str, line: int, message: str, key: str = "") -> SpecError:
    return SpecError([(source, line, key, message)])


def _expanded_size(root: yaml.Node) -> int:
    """How many values ``root`` holds with every alias followed (linear time: memoised)."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:  # iterative post-order: deep documents must not hit the recursion limit
        node, done = stack.pop()
        if id(node) in sizes:
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        if done:
            sizes[id(node)] = min(1 + sum(sizes[id(c)] for c in children), 10 * MAX_VALUES)
        else:
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


def _walk(
    node: yaml.Node, path: tuple[str, ...], lines: Lines, source: str, seen: set[int]
) -> None:
    if id(node) in seen:  # an alias of a node already walked: its keys' lines are known
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key_node, value_node in node.value:
            key = (*path, str(key_node.value))
            line = key_node.start_mark.line + 1
            if key in seen:  # PyYAML would silently keep the last one
                raise _fail(source, line, f"{'/'.join(key)}: duplicate key")
            seen.add(key)
            lines.setdefault(key, line)
            _walk(value_node, key, lines, source, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            key = (*path, str(i))
            lines.setdefault(key, item.start_mark.line + 1)
            _walk(item, key, lines, source, seen)


def load_with_lines(text: str, source: str) -> tuple[Any, Lines]:
    """Parse ``text`` safely; return ``(data, lines)``.

    Example:
        >>> data, lines = load_with_lines("a:\\n  b: 1\\n", "x.yaml")
        >>> data, lines[("a", "b")]
        ({'a': {'b': 1}}, 2)
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None and _expanded_size(node) > MAX_VALUES:
            raise _fail(
                source,
                _first_alias_line(text),
                f"expands to more than {MAX_VALUES:,} values once its aliases are followed "
                "(nested anchors, a YAML alias bomb?); refused",
            )
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else 0
        problem = err.problem or str(err)
        if err.context and err.context_mark is not None and err.context_mark.line + 1 != line:
            problem += f" ({err.context} on line {err.context_mark.line + 1})"
        if "python/" in str(err):
            problem = f"unsafe tag refused ({err.problem}); only plain YAML is allowed"
        raise _fail(source, line, problem) from None
    except yaml.YAMLError as err:
        raise _fail(source, 0, str(err)) from None
    lines: Lines = {}
    if node is not None:
        _walk(node, (), lines, source, set())
    return data, lines


def _first_alias_line(text: str) -> int:
    """The line of the first alias (``*name``), for the alias-bomb message."""
    for token in yaml.scan(text, Loader=yaml.SafeLoader):
        if isinstance(token, yaml.AliasToken):
            return token.start_mark.line + 1
    return 0


def read_text(path: str | Path) -> str:
    """Read a space file with an error that names it."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _fail(str(path), 0, "no such file") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as err:
        raise _fail(str(path), 0, f"cannot read: {err}") from None


def load_file(path: Path, source: str, *, seen: tuple[Path, ...] = ()) -> tuple[Any, Lines]:
    """Load ``path``; if it has ``include: base.yaml``, merge it over the base.

    Mappings merge key by key (``params`` entry by entry); ``null`` removes a
    key of the base. Lines of keys that come from the base point into the base.
    """
    data, lines = load_with_lines(read_text(path), source)
    if not isinstance(data, Mapping) or "include" not in data:
        return data, dict(lines)
    include = data["include"]
    line = lines.get(("include",), 0)
    if not isinstance(include, str):
        raise _fail(source, line, "expected the path of a base space file", "include")
    base_path = (path.parent / include).resolve()
    chain = (*seen, path.resolve())
    if base_path in chain:
        if base_path == path.resolve():
            raise _fail(source, line, f"{include} includes itself", "include")
        cycle = " -> ".join(p.name for p in (*chain[chain.index(base_path) :], base_path))
        raise _fail(source, line, f"include cycle: {cycle}", "include")
    if not base_path.exists():
        raise _fail(source, line, f"no such file: {base_path}", "include")
    base_source = str(path.parent / include)
    base, base_lines = load_file(base_path, base_source, seen=chain)
    if not isinstance(base, Mapping):
        raise _fail(source, line, f"{include} is not a mapping", "include")
    merged_lines: Lines = {
        k: v if isinstance(v, tuple) else (base_source, v) for k, v in base_lines.items()
    }
    merged_lines.update(lines)
    child = {k: v for k, v in data.items() if k != "include"}
    return _merge(base, child), merged_lines


def _merge(base: Mapping[str, Any], child: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in child.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            # params merge per parameter: a child's entry replaces the base's whole entry
            if key == "params":
                merged = dict(out[key])
                for name, entry in value.items():
                    if entry is None:
                        merged.pop(name, None)
                    else:
                        merged[name] = entry
                out[key] = merged
            else:
                out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def apply_overrides(data: Any, overrides: Mapping[str, Any]) -> Any:
    """Set ``a.b.c=value`` overrides (from ``--set``) into a copy of the parsed YAML.

    Example:
        >>> apply_overrides({"budget": {"trials": 4}}, {"budget.epochs": 2})
        {'budget': {'trials': 4, 'epochs': 2}}
    """
    data = copy.deepcopy(data) if isinstance(data, Mapping) else {}
    for dotted, value in overrides.items():
        keys = dotted.split(".")
        node = data
        for k in keys[:-1]:
            if not isinstance(node.get(k), Mapping):
                node[k] = {}
            node = node[k]
        node[keys[-1]] = value
    return data


def override_lines(lines: Lines, overrides: Mapping[str, Any], source: str) -> Lines:
    """The lines with each overridden key (and every key below it) located at
    ``<source> (override)`` (a ``--set``, or ``run``'s ``--trials`` ...), not at the
    file's line whose value it replaced; a section the file does not have is located
    at the override that made it.

    Example:
        >>> override_lines({("data",): 3, ("data", "seed"): 5}, {"data.seed": 1}, "s.yaml")
        {('data',): 3, ('data', 'seed'): ('s.yaml (override)', 0)}
        >>> override_lines({}, {"dat.seed": 1}, "s.yaml")[("dat",)]
        ('s.yaml (override)', 0)
    """
    out = dict(lines)
    where = (f"{source} (override)", 0)
    for dotted in overrides:
        path = tuple(dotted.split("."))
        for key in [k for k in out if k[: len(path)] == path]:
            del out[key]
        for i in range(1, len(path)):
            out.setdefault(path[:i], where)
        out[path] = where
    return out


def shipped_spaces() -> dict[str, Path]:
    """The YAML files shipped in this package, by stem."""
    here = Path(__file__).parent
    return {p.stem: p for p in sorted(here.glob("*.yaml"))}
