"""Brevitas -> QONNX: export, clean with qonnx, and prove the file computes what Brevitas computes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from fpga_mpq.errors import VerificationFailed

# onnxruntime (used by qonnx's node-by-node execution) loads IR versions up to this one.
MAX_IR_VERSION = 10


def export_qonnx_file(model: torch.nn.Module, n_features: int, path: Path) -> None:
    """Export, clean and save atomically; the IR version is capped so onnxruntime can load it."""
    from brevitas.export import export_qonnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.eval()
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        raw = Path(tmp) / "raw.onnx"
        export_qonnx(model, input_t=torch.zeros(1, n_features), export_path=str(raw))
        wrapper = cleanup_model(ModelWrapper(str(raw)))
        wrapper.model.ir_version = min(wrapper.model.ir_version, MAX_IR_VERSION)
        clean = Path(tmp) / "clean.onnx"
        wrapper.save(str(clean))
        os.replace(clean, path)


def execute_qonnx(path: Path, x: np.ndarray, tensor: str | None = None) -> np.ndarray:
    """qonnx's reference execution on a batch; ``tensor`` picks an intermediate output.

    qonnx needs a static batch, so the graph is re-shaped to ``len(x)`` and run once.
    """
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.change_batchsize import ChangeBatchSize
    from qonnx.util.cleanup import cleanup_model

    x = np.asarray(x, dtype=np.float32)
    model = cleanup_model(ModelWrapper(str(path)))
    name = model.graph.input[0].name
    shape = model.get_tensor_shape(name)
    model = cleanup_model(model.transform(ChangeBatchSize(len(x))))
    out = tensor or model.graph.output[0].name
    ctx = execute_onnx(model, {name: x.reshape(len(x), *shape[1:])}, return_full_exec_context=tensor is not None)
    return np.asarray(ctx[out]).reshape(len(x), -1)


def check_qonnx_equals_brevitas(model: torch.nn.Module, path: Path, x: np.ndarray) -> np.ndarray:
    """Run both on ``x``; any difference is a verification failure. Returns the QONNX outputs."""
    model.eval()
    with torch.no_grad():
        ref = model(torch.from_numpy(np.asarray(x, dtype=np.float32))).numpy()
    got = execute_qonnx(path, x)
    if not np.array_equal(ref, got):
        bad = int((ref != got).sum())
        raise VerificationFailed(f"QONNX execution differs from Brevitas in {bad} of {ref.size} outputs")
    return got
