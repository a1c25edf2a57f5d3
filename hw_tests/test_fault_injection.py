"""SIGKILL and SIGINT at random moments during `generate`, `flow` and `search`: the output is the
previous result or the new one, byte for byte, never a mix, and nothing half-written is visible.

Each run alternates between two configurations, so "previous" and "new" always differ. A few
runs per command in `make test`, many more in `make fuzz`.
"""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import FUZZ, interruptible

RUNS = 24 if FUZZ else 3


def _commands(zoo: Path) -> dict[str, tuple[list[str], list[str]]]:
    jet = [str(zoo / "qkeras_jettagging.onnx"), "--input-type", "ap_fixed<16,6>"]
    search = ["--method", "uniform", "--candidates", "2,8", "--max-drop", "50", "--epochs", "1"]
    return {
        "generate": (["generate", *jet, "--clock", "5"], ["generate", *jet, "--clock", "4"]),
        "flow": (["flow", "--epochs", "1", "--seed", "0"], ["flow", "--epochs", "1", "--seed", "1"]),
        "search": (["search", *search, "--seed", "0"], ["search", *search, "--seed", "1"]),
    }


def _tree(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(folder.rglob("*"))
    }


def _run(args: list[str], out: Path) -> tuple[subprocess.Popen, float]:
    cmd = [sys.executable, "-m", "fpga_mpq.cli", *args, "-o", str(out)]
    return subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible
    ), time.monotonic()


@pytest.mark.parametrize("command", ["generate", "flow", "search"])
def test_a_killed_run_leaves_the_previous_output_or_the_new_one(zoo, tmp_path, command):
    configs = _commands(zoo)[command]
    out = tmp_path / "out"
    snapshots, seconds = [], []
    for args in configs:  # each configuration's complete output, and how long it takes
        proc, start = _run(args, out)
        assert proc.wait() == 0, proc.stderr.read()
        seconds.append(time.monotonic() - start)
        snapshots.append(_tree(out))
    assert snapshots[0] != snapshots[1]
    rng = np.random.default_rng(sum(map(ord, command)))
    current, killed = 1, set()
    for _ in range(RUNS):
        new = 1 - current
        sig = signal.SIGKILL if rng.random() < 0.5 else signal.SIGINT
        proc, _ = _run(configs[new], out)
        time.sleep(rng.uniform(0.0, 1.1 * seconds[new]))
        proc.send_signal(sig)
        err = proc.communicate(timeout=600)[1]
        state = _tree(out)
        assert state in snapshots, f"{sig.name} left a mixed output ({proc.returncode}): {err[-500:]}"
        if proc.returncode == 0:
            assert state == snapshots[new]
        elif state != snapshots[new]:
            assert state == snapshots[current]
        current = snapshots.index(state)
        visible = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))
        hidden = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
        assert visible == ["out"]
        assert all(name.startswith(".out.fpga_mpq-tmp-") for name in hidden), hidden
        if sig == signal.SIGKILL and proc.returncode != 0:
            killed.add(proc.pid)  # a killed process cannot clean up: the next run to start sweeps its scratch
        owners = {int(name.split("-")[-2]) for name in hidden}
        if proc.returncode == 0:
            assert hidden == [], hidden
        else:  # an interrupted run removed its own scratch; a run stopped before it started may leave earlier ones
            assert owners <= killed, hidden
    proc, _ = _run(configs[1 - current], out)
    assert proc.wait() == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # the last run swept every stale scratch
