"""One wrapper for every external program: logs kept beside the work, timeouts enforced."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import tempfile
from pathlib import Path

from fpga_mpq.errors import BadInput


def run_tool(
    cmd: list[str],
    cwd: Path,
    log: Path,
    timeout: float = 600,
    env: dict[str, str] | None = None,
    names: dict[Path, str] | None = None,
) -> subprocess.CompletedProcess:
    """Run ``cmd`` in ``cwd``, write its output to ``log``; a missing program or a timeout is an error.

    ``names`` rewrites paths in the log (e.g. a scratch folder as ``.``): outputs are built in
    temporary places, and the same inputs must give the same log.

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
    log.write_text(_rename_paths(f"$ {' '.join(cmd)}\n{out}{err}", names or {}))
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


def _rename_paths(text: str, names: dict[Path, str]) -> str:
    forms = {str(form): name for path, name in names.items() for form in (path, path.absolute(), path.resolve())}
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, forms[form])
    return text


def keep_log(log: Path) -> Path:
    """Copy a failed run's log out of a scratch folder that is about to vanish, so the error can name it."""
    fd, kept = tempfile.mkstemp(prefix=f"fpga_mpq-{log.stem}-", suffix=".log")
    with os.fdopen(fd, "wb") as f:
        f.write(log.read_bytes() if log.is_file() else b"(no output)\n")
    return Path(kept)


def first_error(text: str) -> str:
    """The line of a tool's output that says what went wrong (the first one mentioning an error)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    found = next((line for line in lines if "error" in line.lower()), lines[-1] if lines else "no output")
    return found[:300]
