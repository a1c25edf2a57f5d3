"""One wrapper for every external program: logs kept beside the work, timeouts enforced."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
from pathlib import Path

from fpga_mpq.errors import BadInput


def run_tool(
    cmd: list[str], cwd: Path, log: Path, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run ``cmd`` in ``cwd``, write its output to ``log``; a missing program or a timeout is an error.

    The program runs in its own process group, ended with everything it started on every way
    out: a timeout, Ctrl-C, SIGTERM, an error here; if this process is killed outright, the
    kernel kills the program (parent-death signal).
    """
    try:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    except FileNotFoundError:
        raise BadInput(f"program {cmd[0]!r} is not installed or not on PATH") from None
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _end_group(proc)
        raise BadInput(f"{' '.join(cmd)} ran past its {timeout:g} s timeout and was stopped") from None
    except BaseException:
        _end_group(proc)
        raise
    _end_group(proc)  # anything the program left running in its group
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"$ {' '.join(cmd)}\n{out}{err}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _die_with_parent() -> None:
    """In the child: ask Linux to SIGKILL it when the parent dies (no-op elsewhere)."""
    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _end_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
