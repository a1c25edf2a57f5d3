"""CLI start-up: `fpga-mpq --help` and an argument error must answer in under 1 s.

The peer is what every command paid before the CLI imported its libraries lazily: loading
``fpga_mpq.api`` (torch, Brevitas, qonnx, hls4ml), measured in the same run. Best of 5 each.
"""

from __future__ import annotations

import subprocess
import sys
import time

from common import print_table

GOAL_S = 1.0
RUNS = 5


def best_of(cmd: list[str], expect: int) -> float:
    """The fastest of RUNS wall times of ``cmd``, which must exit with ``expect``."""
    times = []
    for _ in range(RUNS):
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        times.append(time.perf_counter() - t)
        assert proc.returncode == expect, (cmd, proc.returncode, proc.stderr[-300:])
    return min(times)


def main() -> None:
    cli = [sys.executable, "-m", "fpga_mpq.cli"]
    peer = best_of([sys.executable, "-c", "import fpga_mpq.api"], 0)
    cases = {
        "fpga-mpq --help": best_of([*cli, "--help"], 0),
        "fpga-mpq search --help": best_of([*cli, "search", "--help"], 0),
        "fpga-mpq generate (no model: usage error)": best_of([*cli, "generate"], 2),
        "fpga-mpq search --method nope": best_of([*cli, "search", "--method", "nope", "--max-drop", "1"], 2),
    }
    rows = [[name, f"{s:.2f}", f"{s / peer:.2f}x", "met" if s < GOAL_S else "MISSED"] for name, s in cases.items()]
    rows.append(["peer: import fpga_mpq.api", f"{peer:.2f}", "1.00x", "-"])
    print(f"CLI start-up, best of {RUNS} (seconds; goal: under {GOAL_S:g} s)")
    print_table(["command", "seconds", "vs importing the API", "goal"], rows)


if __name__ == "__main__":
    main()
