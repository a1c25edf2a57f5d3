"""generate + C-sim build (ours) vs hls4ml's convert + compile of the same QONNX model, one run."""

from __future__ import annotations

import time
from pathlib import Path

from common import models, print_table, scratch

from fpga_mpq import api
from fpga_mpq.ir.from_qonnx import network_from_qonnx
from fpga_mpq.sim.csim import csim_project, project_digest, random_inputs


def ours(path: Path, out: Path) -> float:
    """generate, then build and run the C simulation on 10 inputs (the build dominates)."""
    t = time.perf_counter()
    api.generate(path, out)
    csim_project(
        out, network_from_qonnx(path), random_inputs(network_from_qonnx(path), 10, seed=0), project_digest(out)
    )
    return time.perf_counter() - t


def hls4ml_flow(path: Path, out: Path) -> float:
    """hls4ml 1.3.0's documented QONNX route: clean, channels-last, convert, compile (g++ shared lib)."""
    import hls4ml
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
    from qonnx.transformation.gemm_to_matmul import GemmToMatMul
    from qonnx.util.cleanup import cleanup_model

    t = time.perf_counter()
    model = cleanup_model(ModelWrapper(str(path)))
    model = cleanup_model(model.transform(ConvertToChannelsLastAndClean()).transform(GemmToMatMul()))
    config = hls4ml.utils.config.config_from_onnx_model(model, granularity="name", backend="Vitis")
    hls_model = hls4ml.converters.convert_from_onnx_model(
        model, output_dir=str(out), io_type="io_parallel", backend="Vitis", hls_config=config
    )
    hls_model.compile()
    return time.perf_counter() - t


def main() -> None:
    rows = []
    with scratch() as tmp:
        for label, path in models(Path(tmp)).items():
            mine = ours(path, Path(tmp) / f"ours_{label.replace(' ', '_')}")
            try:
                theirs = hls4ml_flow(path, Path(tmp) / f"hls4ml_{label.replace(' ', '_')}")
                ratio = f"{theirs / mine:.2f}x"
                theirs_s = f"{theirs:.1f}"
            except Exception as e:  # report, do not hide, a peer that cannot convert the model
                theirs_s, ratio = f"failed: {type(e).__name__}: {str(e)[:60]}", "-"
            rows.append([label, f"{mine:.1f}", theirs_s, ratio])
    print("HLS project build: fpga_mpq generate + C-sim build vs hls4ml convert + compile (seconds; goal: no slower)")
    print_table(["model", "fpga_mpq s", "hls4ml s", "hls4ml / fpga_mpq"], rows)


if __name__ == "__main__":
    main()
