"""Golden model vs qonnx execute_onnx: samples per second, and identical outputs, in one run."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from common import models, print_table, qonnx_per_sample, scratch

from fpga_mpq.export import execute_qonnx
from fpga_mpq.ir.from_qonnx import network_from_qonnx
from fpga_mpq.ir.golden import run
from fpga_mpq.sim.csim import random_inputs

QONNX_SAMPLES = 100  # batch-1 execute_onnx: ~10 ms each
GOLDEN_SAMPLES = 20000


def main() -> None:
    rows = []
    with scratch() as tmp:
        for label, path in models(Path(tmp)).items():
            net = network_from_qonnx(path)
            x = random_inputs(net, GOLDEN_SAMPLES, seed=0)
            run(net, x[:100])  # warm-up
            t = time.perf_counter()  # before onnxruntime starts: its spinning thread pool slows numpy
            out = run(net, x).output
            s_golden = (time.perf_counter() - t) / len(x)
            ref1, s_qonnx = qonnx_per_sample(path, x[:QONNX_SAMPLES])
            t = time.perf_counter()
            ref_batch = execute_qonnx(path, x[:2000])
            s_batch = (time.perf_counter() - t) / 2000
            same = np.array_equal(out[:QONNX_SAMPLES], ref1) and np.array_equal(out[:2000], ref_batch)
            rows.append(
                [
                    label,
                    f"{1 / s_qonnx:,.0f}",
                    f"{1 / s_batch:,.0f}",
                    f"{1 / s_golden:,.0f}",
                    f"{s_qonnx / s_golden:,.0f}x",
                    f"{s_batch / s_golden:,.1f}x",
                    "yes" if same else "NO",
                ]
            )
    print("Golden model vs qonnx execute_onnx (samples/s; goal >= 1000x qonnx per sample, identical outputs)")
    print_table(
        ["model", "qonnx/s (batch 1)", "qonnx/s (batch 2000)", "golden/s", "vs batch 1", "vs batch", "identical"],
        rows,
    )


if __name__ == "__main__":
    main()
