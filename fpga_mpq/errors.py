"""The two ways a command fails, mapped to exit codes by the CLI (2 and 1)."""

from __future__ import annotations

import reprlib


class BadInput(Exception):
    """The user's input is wrong (file, spec, op, shape); exit code 2."""


class VerificationFailed(Exception):
    """A check ran and found a difference (a mismatch, a missed target); exit code 1."""


_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxdict, _SHOWN.maxlist, _SHOWN.maxtuple, _SHOWN.maxset = 3, 4, 6, 6, 4
_SHOWN.maxstring, _SHOWN.maxlong, _SHOWN.maxother = 60, 40, 60


def shown(value: object) -> str:
    """``value`` for an error line: a summary of bounded length (a few nested levels, a few items),
    so a crafted input (a YAML alias bomb, a 5,000-digit number, a shared-reference bomb) never makes
    an unbounded message."""
    try:
        return _SHOWN.repr(value)
    except ValueError:  # an int past Python's 4,300-digit limit for printing
        return f"a number of {value.bit_length() if isinstance(value, int) else '?'} bits"
