"""The two ways a command fails, mapped to exit codes by the CLI (2 and 1)."""

from __future__ import annotations


class BadInput(Exception):
    """The user's input is wrong (file, spec, op, shape); exit code 2."""


class VerificationFailed(Exception):
    """A check ran and found a difference (a mismatch, a missed target); exit code 1."""
