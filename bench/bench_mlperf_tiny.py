"""The MLPerf Tiny networks (``fpga_mpq.testing.MLPERF_TINY``, random calibrated weights) through the
product: export, generate (the default io: io_parallel for an MLP, io_stream for a CNN), C simulation
on 300 random inputs against the golden model, and the estimate. Printed per network: seconds per
stage, mismatches / samples, LUT / FF / DSP / BRAM18, latency in cycles and at the project's clock.
``--only TEXT`` runs the networks whose name contains TEXT.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import print_table, scratch

from fpga_mpq import api
from fpga_mpq.export import export_qonnx_file
from fpga_mpq.testing import MLPERF_TINY, mlperf_tiny

SAMPLES = 300
HEADERS = ["network", "io", "export s", "generate s", "C-sim mismatches", "C-sim s", "LUT", "FF", "DSP", "BRAM18"]
HEADERS += ["latency cycles", "latency us", "part @ clock"]


def run_network(name: str, work: Path) -> list[str]:
    model, shape = mlperf_tiny(name)
    path = work / f"{name.split()[0]}.onnx"
    t = time.perf_counter()
    export_qonnx_file(model, shape if len(shape) == 3 else shape[0], path)
    t_export, t = time.perf_counter() - t, time.perf_counter()
    prj = work / f"{name.split()[0]}_prj"
    api.generate(path, prj)
    t_generate, t = time.perf_counter() - t, time.perf_counter()
    sim = api.csim(prj, random=SAMPLES, seed=1)
    t_csim = time.perf_counter() - t
    est = api.estimate(prj)
    total = est["total"]
    row = [name, est["io"], f"{t_export:.0f}", f"{t_generate:.0f}", f"{sim['mismatches']} / {sim['samples']}"]
    row += [f"{t_csim:.0f}", f"{total['lut']:,.0f}", f"{total['ff']:,.0f}", f"{total['dsp']:,.0f}"]
    row += [f"{total['bram18']:,.0f}", f"{total['latency_cycles']:,}", f"{total['latency_ns'] / 1000:.2f}"]
    row += [f"{est['part']} @ {est['clock_ns']} ns"]
    print("done:", " | ".join(row), flush=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default="", help="run the networks whose name contains this text")
    a = p.parse_args()
    with scratch() as tmp:
        rows = [run_network(n, Path(tmp)) for n in MLPERF_TINY if a.only.lower() in n.lower()]
    print(f"\nMLPerf Tiny networks, C simulation on {SAMPLES} random inputs, estimates before any vendor tool")
    print_table(HEADERS, rows)


if __name__ == "__main__":
    main()
