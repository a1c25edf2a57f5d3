"""One wrapper for every external program: logs kept beside the work, timeouts enforced."""

from __future__ import annotations

import subprocess
from pathlib import Path

from fpga_mpq.errors import BadInput


def run_tool(cmd: list[str], cwd: Path, log: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``cmd`` in ``cwd``, write its output to ``log``; a missing program or a timeout is an error."""
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise BadInput(f"program {cmd[0]!r} is not installed or not on PATH") from None
    except subprocess.TimeoutExpired:
        raise BadInput(f"{' '.join(cmd)} ran past its {timeout} s timeout and was stopped") from None
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    return proc
