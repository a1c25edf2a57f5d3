"""Hardware cost of a configuration: BOPs, exact bits, and the estimator's LUT / FF / DSP.

Each conv or dense layer is priced through its kernel matrix: (n_in, n_out) for a dense layer,
(K·K·C/groups, F) for a conv, whose group g is the columns g·F/groups … (g+1)·F/groups.

* ``bops`` = Σ_layers MACs per output pixel · output pixels · b_w · b_in (HAWQ/SDQ convention),
  b_in the width of the activation quantizer feeding the layer (through any maxpool or flatten):
  every multiply the network does, whatever hardware does it.
* ``exact_bits`` = Σ over the kernel matrix of effective input bits × effective weight bits, where
  a weight's effective bits are 0 for a zero weight, else the bit length of |w| with trailing zeros
  stripped, plus one for the sign of a signed weight type (a power of two is a shift: 1 bit + sign).
  It follows the HGQ "EBOPs" idea, which tracks LUT + 55·DSP of the multipliers that exist.
* ``lut``, ``ff``, ``dsp`` from ``fpga_mpq.estimate.dense_cost`` for the target part, summed over
  the groups of the kernel matrix. A CNN runs in io_stream (the default for CNNs): one instance of
  a conv's kernel is reused over the pixels, so a conv costs its kernel, not its kernel × pixels.

``exact_bits`` and the estimator figures are per kernel instance; only ``bops`` counts pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from brevitas.nn import QuantConv2d, QuantLinear
from torch import nn

from fpga_mpq.errors import BadInput
from fpga_mpq.estimate.hls import dense_cost
from fpga_mpq.estimate.parts import find_part
from fpga_mpq.ir.types import FixedType
from fpga_mpq.models.net import QuantNet

DEFAULT_PART = "xczu9eg"
ESTIMATOR_METRICS = ("lut", "ff", "dsp")
# names accepted in ``--budget NAME=N`` -> the metric key in every cost dict
BUDGET_METRICS = {
    "bops": "bops",
    "exact_bits": "exact_bits",
    "ebops": "exact_bits",
    "lut": "lut",
    "luts": "lut",
    "ff": "ff",
    "ffs": "ff",
    "dsp": "dsp",
    "dsps": "dsp",
}


def effective_bits(w: np.ndarray, signed: bool) -> np.ndarray:
    """Per weight: 0 if zero, else bit length of |w| without trailing zeros, + 1 if the type is signed."""
    a = np.abs(np.asarray(w, dtype=np.int64))
    odd = np.where(a != 0, a // np.maximum(a & -a, 1), 0)  # a & -a is the lowest set bit
    bits = np.frexp(odd.astype(np.float64))[1]  # exact bit length for |w| < 2**53; 0 for 0
    return np.where(a != 0, bits + int(signed), 0)


def exact_bits(w: np.ndarray, w_signed: bool, in_bits: int) -> float:
    return float(effective_bits(w, w_signed).sum() * in_bits)


@dataclass(frozen=True)
class LayerQuant:
    """What one conv or dense layer's hardware depends on: its integer kernel matrix (n_in, n_out), both
    operand types, its group count and its output pixels (1 for a dense layer)."""

    weights: np.ndarray
    w_type: FixedType
    in_type: FixedType
    groups: int = 1
    pixels: int = 1


def kernel_matrix(w: torch.Tensor) -> np.ndarray:
    """A dense (F, n_in) or conv (F, C/groups, K, K) weight as the (n_in, F) matrix each output multiplies."""
    return w.reshape(w.shape[0], -1).T.numpy()


def _fixed_type(scale: torch.Tensor, bits: torch.Tensor, signed: bool) -> FixedType:
    frac = -math.log2(float(scale))
    if frac != round(frac):
        raise BadInput(f"scale {float(scale)} is not a power of two")
    width = int(bits)
    return FixedType(bool(signed), width, width - int(round(frac)))


def layer_quants(model: QuantNet) -> list[LayerQuant]:
    """Each conv / dense layer's integer weights, and its weight and input types as Brevitas holds them
    (the input read from the quantized tensor that reaches it), in the order of ``Spec.weighted()``."""
    model.eval()
    ops = [m for m in model.modules() if isinstance(m, QuantLinear | QuantConv2d)]
    seen: dict[nn.Module, tuple] = {}

    def record(op: nn.Module, args: tuple, out: torch.Tensor) -> None:
        seen[op] = (args[0], out.shape)

    hooks = [op.register_forward_hook(record) for op in ops]
    try:
        with torch.no_grad():
            model(torch.zeros(1, *model.input_shape))
    finally:
        for h in hooks:
            h.remove()
    out = []
    with torch.no_grad():
        for op in ops:
            x, shape = seen[op]
            qw = op.quant_weight()
            out.append(
                LayerQuant(
                    weights=kernel_matrix(torch.round(qw.value / qw.scale).to(torch.int64)),
                    w_type=_fixed_type(qw.scale, qw.bit_width, qw.signed),
                    in_type=_fixed_type(x.scale, x.bit_width, x.signed),
                    groups=getattr(op, "groups", 1),
                    pixels=math.prod(shape[2:]),
                )
            )
    return out


@dataclass
class CostModel:
    """Measures every metric of a QuantNet for one FPGA part; estimator calls are memoised per layer."""

    part: str = DEFAULT_PART
    _cache: dict = field(default_factory=dict, repr=False)

    headline: str = "lut"  # the cost users budget
    metrics: tuple[str, ...] = ("bops", "exact_bits", *ESTIMATOR_METRICS)

    def check_metric(self, metric: str) -> None:
        if metric not in self.metrics:
            raise BadInput(f"--budget {metric}: not a cost metric ({', '.join(self.metrics)})")

    def check_part(self) -> None:
        """Fail on an unknown part before any training."""
        find_part(self.part)

    def layer(self, lq: LayerQuant) -> dict[str, float]:
        n_in, n_out = lq.weights.shape
        costs = {
            "bops": float(n_in * n_out * lq.pixels * lq.w_type.width * lq.in_type.width),
            "exact_bits": exact_bits(lq.weights, lq.w_type.signed, lq.in_type.width),
        }
        key = (lq.weights.tobytes(), lq.weights.shape, lq.groups, lq.w_type, lq.in_type)
        if key not in self._cache:
            per_group = np.split(lq.weights, lq.groups, axis=1)
            raw = [dense_cost(w, lq.in_type, lq.w_type, part=self.part) for w in per_group]
            self._cache[key] = {k: float(sum(r[k] for r in raw)) for k in ESTIMATOR_METRICS}
        return costs | self._cache[key]

    def measure_layers(self, model: QuantNet) -> list[dict[str, float]]:
        return [self.layer(lq) for lq in layer_quants(model)]

    def measure(self, model: QuantNet) -> dict[str, float]:
        """All metrics summed over the layers."""
        per_layer = self.measure_layers(model)
        return {k: sum(c[k] for c in per_layer) for k in per_layer[0]}
