"""External programs end with the tool: Ctrl-C, SIGTERM or SIGKILL during `synth` leaves no Yosys
running and no scratch folder beside the output."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import interruptible


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (they run in their own session, so not in its group)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if int(fields.get("PPid", "0").strip()) == pid:
            found.append(int(status.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.synth
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_yosys_ends_with_the_tool(zoo, tmp_path, sig):
    cmd = [sys.executable, "-m", "fpga_mpq.cli", "synth", str(zoo / "qkeras_jettagging.onnx")]
    cmd += ["-o", str(tmp_path / "rtl"), "--input-type", "ap_fixed<16,6>"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    deadline = time.monotonic() + 300
    children: list[int] = []
    while not children and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
        children = _children(proc.pid)
    assert children, "synth never started Yosys"
    time.sleep(1.0)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    expected = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGKILL: -signal.SIGKILL}[sig]
    assert proc.returncode == expected, err
    if sig != signal.SIGKILL:
        assert err.strip().splitlines()[-1].startswith("fpga-mpq synth: interrupted:")
    deadline = time.monotonic() + 10
    while any(_alive(c) for c in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(c) for c in children), "Yosys outlived the tool"
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == [] or (sig == signal.SIGKILL and all(name.startswith(".rtl.fpga_mpq-tmp-") for name in left))
    if sig != signal.SIGKILL:
        assert os.listdir(tmp_path) == []
