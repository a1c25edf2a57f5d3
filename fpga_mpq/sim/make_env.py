"""The environment a C-sim build runs in: what the user may set is hashed, the rest is cleared.

The project's Makefile reads ``CXX``, ``CXXFLAGS`` and ``DEFINES`` from the environment (a user's
own compiler or defines are welcome), so those are part of every binary's and PCH's key. Variables
that would change a build without being seen (``MAKEFLAGS`` injecting assignments, a stray ``PCH``
or ``BIN``) are removed before make runs.
"""

from __future__ import annotations

import os

BUILD_VARS = ("CXX", "CXXFLAGS", "DEFINES")  # read by the generated Makefile, keyed
_CLEARED = ("MAKEFLAGS", "MFLAGS", "GNUMAKEFLAGS", "MAKEFILES", "MAKELEVEL", "PCH", "PCH_SRC", "PCH_OUT", "BIN")


def make_env() -> dict[str, str]:
    """``os.environ`` without the variables that could change a build unkeyed."""
    return {k: v for k, v in os.environ.items() if k not in _CLEARED}


def build_vars_key() -> bytes:
    """The values of :data:`BUILD_VARS` (unset and empty told apart), for a hash."""
    return "".join(f"{k}={os.environ[k]!r}\0" if k in os.environ else f"{k} unset\0" for k in BUILD_VARS).encode()
