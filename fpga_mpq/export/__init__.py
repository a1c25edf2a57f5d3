"""Brevitas -> QONNX: export, clean with qonnx, and prove the file computes what Brevitas computes."""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch

from fpga_mpq.errors import VerificationFailed

# onnxruntime (used by qonnx's node-by-node execution) loads IR versions up to this one.
MAX_IR_VERSION = 10


PRODUCER_KEY = "fpga_mpq"  # metadata entry marking a file this tool exported


def export_qonnx_file(model: torch.nn.Module, input_shape: int | tuple[int, ...], path: Path) -> None:
    """Export and clean into ``path``; the IR version is capped so onnxruntime can load it.
    ``input_shape`` is one sample's: a feature count, or (C, H, W) for an image.

    Brevitas' raw export goes to the system's temporary folder, never beside the user's output.
    """
    from brevitas.export import export_qonnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    model.eval()
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # "torchvision is not installed", on every export
    with tempfile.TemporaryDirectory(prefix="fpga_mpq_export_") as tmp:
        raw = Path(tmp) / "raw.onnx"
        with contextlib.redirect_stdout(io.StringIO()):  # torch.onnx's progress lines would break --json
            shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
            export_qonnx(model, input_t=torch.zeros(1, *shape), export_path=str(raw))
        wrapper = cleanup_model(ModelWrapper(str(raw)))
    wrapper.model.ir_version = min(wrapper.model.ir_version, MAX_IR_VERSION)
    onnx.helper.set_model_props(wrapper.model, {PRODUCER_KEY: "qonnx export"})
    wrapper.save(str(path))


def is_exported_onnx(path: Path) -> bool:
    """True for an ONNX file this tool exported (so ``export`` may replace it)."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # any unreadable file is simply not ours
        return False
    return any(p.key == PRODUCER_KEY for p in model.metadata_props)


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


# A float (unquantized) head sums in float32, and the order of the sum depends on the CPU: torch's
# MKL adds pairwise on AMD processors, onnxruntime in sequence with fused multiply-adds. That moves
# the last bits only; a quantized output that differs is at least one step off, which for outputs
# up to 15 bits is more than this fraction of the column's largest value.
SUM_ORDER_TOLERANCE = 2.0**-16


def compare_qonnx_with_brevitas(model: torch.nn.Module, path: Path, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run both on ``x``; returns the QONNX outputs and which outputs differ from Brevitas by more
    than float32 summation order (``SUM_ORDER_TOLERANCE`` of the output column's magnitude)."""
    model.eval()
    with torch.no_grad():
        ref = np.concatenate(
            [
                model(torch.from_numpy(np.asarray(x[i : i + 1000], dtype=np.float32))).numpy()
                for i in range(0, len(x), 1000)
            ]
        ).reshape(len(x), -1)
    got = execute_qonnx(path, x.reshape(len(x), -1))
    scale = np.maximum(np.abs(ref).max(axis=0), np.finfo(np.float32).tiny)
    return got, np.abs(ref - got) > SUM_ORDER_TOLERANCE * scale


def has_batchnorm(model: torch.nn.Module) -> bool:
    return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())


def check_qonnx_equals_brevitas(model: torch.nn.Module, path: Path, x: np.ndarray) -> np.ndarray:
    """Run both on ``x``; any difference is a verification failure. Returns the QONNX outputs."""
    got, differ = compare_qonnx_with_brevitas(model, path, x)
    require_equal(differ)
    return got


def require_equal(differ: np.ndarray) -> None:
    """No output may differ (:func:`compare_qonnx_with_brevitas`'s mask); else a ``VerificationFailed``."""
    if differ.any():
        raise VerificationFailed(
            f"QONNX execution differs from Brevitas in {int(differ.sum())} of {differ.size} outputs"
        )


# With BatchNorm, PyTorch and onnxruntime compute in float32 in different orders: a value on a
# quantizer's boundary can round either way, in a rare sample. More than this share of the samples
# differing is a real mismatch, never excused.
BATCHNORM_TIE_SHARE = 0.01


def check_batchnorm_ties(differ: np.ndarray) -> None:
    """Differences a BatchNorm's float32 ties explain: in at most ``BATCHNORM_TIE_SHARE`` of the
    samples (one at least); else a ``VerificationFailed``."""
    rows = int(differ.any(axis=1).sum())
    if rows > max(1, BATCHNORM_TIE_SHARE * len(differ)):
        raise VerificationFailed(
            f"QONNX execution differs from Brevitas in {int(differ.sum())} of {differ.size} outputs ({rows} of "
            f"{len(differ)} samples): more than the {100 * BATCHNORM_TIE_SHARE:g} % of samples that float32 ties "
            "in a BatchNorm explain"
        )
