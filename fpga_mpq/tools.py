"""One wrapper for every external program: logs kept beside the work, timeouts enforced."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from fpga_mpq.errors import BadInput


def run_tool(
    cmd: list[str], cwd: Path, log: Path, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run ``cmd`` in ``cwd``, write its output to ``log``; a missing program or a timeout is an error.

    The program runs in its own process group, so a timeout stops it with everything it started.
    """
    try:
        proc = subprocess.Popen(
            cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
        )
    except FileNotFoundError:
        raise BadInput(f"program {cmd[0]!r} is not installed or not on PATH") from None
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise BadInput(f"{' '.join(cmd)} ran past its {timeout:g} s timeout and was stopped") from None
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"$ {' '.join(cmd)}\n{out}{err}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
