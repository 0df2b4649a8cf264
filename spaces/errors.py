"""Located problems in a space file, and the one error that carries them.

A problem is ``(source, line, key, message)``; the key is derived from the
key path (``("params", "mask/ratio", "low")`` -> ``params/mask/ratio/low``,
an ``int`` in the path is a list index: ``study/objective[1]``), so that no
message writes its key by hand.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from trainables.errors import SSLSearchError

__all__ = ["Path", "Problems", "SpecError", "key_of", "located"]

Path = tuple[str | int, ...]
"""A key path into the YAML: mapping keys as ``str``, list indices as ``int``."""


class SpecError(SSLSearchError, ValueError):
    """One or more located problems in a space file.

    Attributes:
        problems: ``(source, line, key_path, message)`` tuples, in file order.
    """

    def __init__(self, problems: list[tuple[str, int, str, str]]) -> None:
        self.problems = sorted(problems, key=lambda p: (p[0], p[1]))
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        return [located(*problem) for problem in self.problems]


def located(source: str, line: int, key: str, message: str) -> str:
    """One problem or note as a line: ``file:line key: message``."""
    where = f"{source}:{line}" if line else source
    return f"{where} {key}: {message}" if key else f"{where} {message}"


def key_of(path: Path) -> str:
    """The key a message names for ``path``.

    Example:
        >>> key_of(("study", "objective", 1, "metric"))
        'study/objective[1]/metric'
    """
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f"/{part}" if out else str(part)
    return out


class Problems:
    """Collects located problems so that all are reported at once.

    ``lines`` maps a key path (as strings) to its line: an ``int`` in
    ``source``, or ``(file, line)`` for keys that came from an included file.
    """

    def __init__(self, source: str, lines: Mapping[tuple[str, ...], Any]) -> None:
        self.source, self.lines = source, lines
        self.items: list[tuple[str, int, str, str]] = []
        self.notes: list[str] = []  # advice that does not refuse the space

    def where(self, path: Path) -> tuple[str, int]:
        """The file and line of ``path``, or of its nearest located parent."""
        parts = tuple(str(p) for p in path)
        while parts:
            if parts in self.lines:
                found = self.lines[parts]
                return found if isinstance(found, tuple) else (self.source, found)
            parts = parts[:-1]
        return self.source, 0

    def add(self, path: Path, message: str, *, key: str | None = None) -> None:
        """Record ``message`` at ``path`` (``key`` overrides the derived key)."""
        self.items.append((*self.where(path), key_of(path) if key is None else key, message))

    def add_key(self, key: str, message: str) -> None:
        """Record ``message`` at a key written as a trial config names it
        (``probe/names[1]``: located at ``probe``, ``names``, ``1``).

        Example:
            >>> problems = Problems("s.yaml", {("probe", "names"): 4})
            >>> problems.add_key("probe/names[1]", "unknown probe")
            >>> problems.items
            [('s.yaml', 4, 'probe/names[1]', 'unknown probe')]
        """
        self.add(tuple(re.findall(r"[^/\[\]]+", key)), message, key=key)

    def note(self, path: Path, message: str) -> None:
        """Record advice at ``path``: the space runs, but perhaps not as meant."""
        self.notes.append(located(*self.where(path), key_of(path), message))

    def raise_if_any(self) -> None:
        if self.items:
            raise SpecError(self.items)
