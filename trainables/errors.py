"""The one error base of sslsearch, and the errors every package shares.

Every error the project raises on purpose derives from :class:`SSLSearchError`.
Its ``exit_code`` says what the CLI exits with (2: bad input, the default);
anything else that escapes is a bug and shows as one (a traceback, exit 1).
This module imports nothing, so every package (and ``import spaces`` without
torch) can use it.

Example:
    >>> issubclass(InputError, SSLSearchError), InputError.exit_code
    (True, 2)
"""

from __future__ import annotations

import math
import reprlib

__all__ = ["InputError", "SSLSearchError", "shown"]


class SSLSearchError(Exception):
    """Base of every error sslsearch raises on purpose.

    Attributes:
        exit_code: the CLI's exit status for it (2: bad input).
    """

    exit_code: int = 2

    def lines(self) -> list[str]:
        """The message as one or more lines (the CLI prints each, prefixed)."""
        return str(self).splitlines() or [type(self).__name__]


class InputError(SSLSearchError, ValueError):
    """Bad input that is not a space file: a flag, a path, a run directory, a trainable."""


#: how a message shows a value: a long string or a deep or long collection cut short
_SHORT = reprlib.Repr()  # (Python 3.11's takes no keyword arguments)
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother = 3, 80, 80
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = _SHORT.maxset = 8


def shown(value: object) -> str:
    """``repr(value)`` for a message, with a hint when YAML read a number as text.

    YAML 1.1 (PyYAML) reads a number with an exponent as a float only when
    its mantissa has a dot and its exponent a sign: ``1e-4`` and ``1.0e5``
    are the strings ``'1e-4'`` and ``'1.0e5'``.

    Example:
        >>> shown("1e-4")
        "'1e-4' (text: YAML reads 1e-4 as a string; write 1.0e-4)"
        >>> shown("1.0e5")
        "'1.0e5' (text: YAML reads 1.0e5 as a string; write 1.0e+5)"
        >>> shown(0.5), shown("fast"), shown("inf")
        ('0.5', "'fast'", "'inf'")
        >>> shown([[["x"] * 9] * 9] * 9)  # what a message shows is bounded
        "[[['x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', ...], [...], ...], [[...], ...], ...]"
    """
    text = _SHORT.repr(value) if isinstance(value, list | tuple | dict | set | str) else repr(value)
    if not isinstance(value, str) or not value.strip():
        return text
    try:
        number = float(value)
    except ValueError:
        return text
    if not math.isfinite(number) and "e" not in value.lower():
        return text  # 'inf', 'nan': YAML's are .inf and .nan, refused as numbers anyway
    mantissa, e, exponent = value.strip().lower().partition("e")
    if e:
        mantissa = mantissa if "." in mantissa else f"{mantissa}.0"
        exponent = exponent if exponent[:1] in "+-" else f"+{exponent}"
        fix = f"{mantissa}e{exponent}"
    else:
        fix = f"{value} unquoted"
    return f"{text} (text: YAML reads {value} as a string; write {fix})"
