"""Shared bench fixtures: the models compared, and a small table printer."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
ZOO = ROOT / "tests" / "data" / "qonnx_zoo"


def digits_model(workdir: Path) -> Path:
    """The default-spec digits MLP (seeded), exported to QONNX: the same graph `make demo` builds."""
    import torch

    from fpga_mpq.export import export_qonnx_file
    from fpga_mpq.models.net import QuantNet
    from fpga_mpq.models.spec import DEFAULT_SPEC

    torch.manual_seed(0)
    path = workdir / "digits.onnx"
    export_qonnx_file(QuantNet(DEFAULT_SPEC, 64).eval(), 64, path)
    return path


def cnn_model(name: str, workdir: Path) -> Path:
    """A ``CNN_ZOO`` network by name (seeded, calibrated), exported to QONNX as the tests export it."""
    from fpga_mpq.export import export_qonnx_file
    from fpga_mpq.testing import CNN_ZOO, brevitas_cnn

    model, shape = brevitas_cnn(name)
    path = workdir / f"cnn{list(CNN_ZOO).index(name)}.onnx"
    export_qonnx_file(model, shape, path)
    return path


def models(workdir: Path) -> dict[str, Path]:
    return {"TFC_2W2A": ZOO / "TFC_2W2A.onnx", "digits MLP": digits_model(workdir)}


def print_table(headers: list[str], rows: list[list[object]]) -> None:
    cells = [headers] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for k, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        if k == 0:
            print("  ".join("-" * w for w in widths))


def scratch() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="mpq_bench_")


def qonnx_per_sample(path: Path, x: np.ndarray) -> tuple[np.ndarray, float]:
    """qonnx as users run it: execute_onnx on one sample at a time."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.util.cleanup import cleanup_model

    model = cleanup_model(ModelWrapper(str(path)))
    name, out = model.graph.input[0].name, model.graph.output[0].name
    shape = model.get_tensor_shape(name)
    t = time.perf_counter()
    rows = [np.asarray(execute_onnx(model, {name: s.reshape(shape)})[out]).ravel() for s in x]
    return np.stack(rows), (time.perf_counter() - t) / len(x)
