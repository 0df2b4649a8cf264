"""Safe YAML loading that remembers the line of every key.

``yaml.safe_load`` only (no Python object tags); :func:`load_with_lines`
returns the data and a ``{key path tuple: line}`` map for located errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["YamlError", "load_with_lines"]


class YamlError(ValueError):
    """The file is not valid, safe YAML; ``line`` is 1-based or 0 when unknown."""

    def __init__(self, source: str, line: int, message: str) -> None:
        self.source, self.line, self.message = source, line, message
        super().__init__(f"{source}:{line} {message}" if line else f"{source}: {message}")


def _walk(
    node: yaml.Node, path: tuple[str, ...], lines: dict[tuple[str, ...], int], source: str
) -> None:
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key_node, value_node in node.value:
            key = (*path, str(key_node.value))
            line = key_node.start_mark.line + 1
            if key in seen:  # PyYAML would silently keep the last one
                raise YamlError(source, line, f"{'/'.join(key)}: duplicate key")
            seen.add(key)
            lines.setdefault(key, line)
            _walk(value_node, key, lines, source)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            key = (*path, str(i))
            lines.setdefault(key, item.start_mark.line + 1)
            _walk(item, key, lines, source)


def load_with_lines(text: str, source: str) -> tuple[Any, dict[tuple[str, ...], int]]:
    """Parse ``text`` safely; return ``(data, lines)``.

    Example:
        >>> data, lines = load_with_lines("a:\\n  b: 1\\n", "x.yaml")
        >>> data, lines[("a", "b")]
        ({'a': {'b': 1}}, 2)
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else 0
        problem = err.problem or str(err)
        if err.context and err.context_mark is not None and err.context_mark.line + 1 != line:
            problem += f" ({err.context} on line {err.context_mark.line + 1})"
        if "python/" in str(err):
            problem = f"unsafe tag refused ({err.problem}); only plain YAML is allowed"
        raise YamlError(source, line, problem) from None
    except yaml.YAMLError as err:
        raise YamlError(source, 0, str(err)) from None
    lines: dict[tuple[str, ...], int] = {}
    if node is not None:
        _walk(node, (), lines, source)
    return data, lines


def read_text(path: str | Path) -> str:
    """Read a space file with an error that names it."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise YamlError(str(path), 0, "no such file") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as err:
        raise YamlError(str(path), 0, f"cannot read: {err}") from None
