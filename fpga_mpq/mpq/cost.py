"""Hardware cost of a configuration: BOPs, exact bits, and the estimator's LUT / FF / DSP.

* ``bops`` = Σ_layers MACs · b_w · b_in (HAWQ/SDQ convention; depends on the spec only).
* ``exact_bits`` = Σ over every multiply of effective input bits × effective weight bits, where
  the input bits are the layer's input activation width and a weight's effective bits are
  0 for a zero weight, else the bit length of |w| with trailing zeros stripped, plus one for the
  sign of a signed weight type (a power of two is a shift: 1 bit + sign). It follows the
  HGQ "EBOPs" idea, which tracks LUT + 55·DSP for fully unrolled designs.
* ``lut``, ``ff``, ``dsp`` from ``fpga_mpq.estimate.dense_cost`` for the target part (the HLS
  design's constant-weight dense layers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from fpga_mpq.errors import BadInput
from fpga_mpq.estimate import dense_cost, find_part
from fpga_mpq.ir.types import FixedType
from fpga_mpq.models.net import QuantNet
from fpga_mpq.models.spec import Spec

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


def spec_bops(spec: Spec, n_features: int) -> float:
    """BOPs from the spec alone: the input feeds layer 0, each hidden activation the next layer."""
    total, fan_in, in_bits = 0, n_features, spec.input_bits
    for layer in spec.layers:
        total += fan_in * layer.units * layer.weight_bits * in_bits
        fan_in, in_bits = layer.units, layer.act_bits
    return float(total)


@dataclass(frozen=True)
class LayerQuant:
    """What one layer's hardware depends on: integer weights (n_in, n_out) and both operand types."""

    weights: np.ndarray
    w_type: FixedType
    in_type: FixedType


def _fixed_type(scale: torch.Tensor, bits: torch.Tensor, signed: bool) -> FixedType:
    frac = -math.log2(float(scale))
    if frac != round(frac):
        raise BadInput(f"scale {float(scale)} is not a power of two")
    width = int(bits)
    return FixedType(bool(signed), width, width - int(round(frac)))


def layer_quants(model: QuantNet) -> list[LayerQuant]:
    """Read each QuantLinear's integer weights and its weight and input types from Brevitas."""
    model.eval()
    out = []
    with torch.no_grad():
        x = model.input_quant(torch.zeros(1, *model.input_shape))
        for block in model.layers:
            qw = block.op.quant_weight()
            w_int = torch.round(qw.value / qw.scale).to(torch.int64).numpy().T
            out.append(
                LayerQuant(
                    weights=w_int,
                    w_type=_fixed_type(qw.scale, qw.bit_width, qw.signed),
                    in_type=_fixed_type(x.scale, x.bit_width, x.signed),
                )
            )
            x = block(x)
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
            "bops": float(n_in * n_out * lq.w_type.width * lq.in_type.width),
            "exact_bits": exact_bits(lq.weights, lq.w_type.signed, lq.in_type.width),
        }
        key = (lq.weights.tobytes(), lq.weights.shape, lq.w_type, lq.in_type)
        if key not in self._cache:
            raw = dense_cost(lq.weights, lq.in_type, lq.w_type, part=self.part)
            self._cache[key] = {k: float(raw[k]) for k in ESTIMATOR_METRICS}
        return costs | self._cache[key]

    def measure_layers(self, model: QuantNet) -> list[dict[str, float]]:
        return [self.layer(lq) for lq in layer_quants(model)]

    def measure(self, model: QuantNet) -> dict[str, float]:
        """All metrics summed over the layers."""
        per_layer = self.measure_layers(model)
        return {k: sum(c[k] for c in per_layer) for k in per_layer[0]}
