"""A Brevitas MLP built from a bit-width spec, with power-of-two scales on every tensor.

Fixed-point quantizers make every tensor an exact ``ap_fixed`` value: weights and activations
use Brevitas' ``*FixedPoint`` presets with the spec's widths, biases use ``IntBias`` whose scale
is input scale x weight scale, so the bias sits on the accumulator's grid.
"""

from __future__ import annotations

import torch
from brevitas.nn import QuantIdentity, QuantLinear, QuantReLU
from brevitas.quant import (
    Int8ActPerTensorFixedPoint,
    Int8WeightPerTensorFixedPoint,
    Int16Bias,
    Uint8ActPerTensorFixedPoint,
)
from torch import nn

from fpga_mpq.models.spec import Spec


def _act_quant(signed: bool):
    return Int8ActPerTensorFixedPoint if signed else Uint8ActPerTensorFixedPoint


class QuantMLP(nn.Module):
    """Input quantizer, then per layer QuantLinear -> QuantReLU (hidden) or QuantIdentity (last)."""

    def __init__(self, spec: Spec, n_features: int) -> None:
        super().__init__()
        self.spec = spec
        self.input_quant = QuantIdentity(
            act_quant=_act_quant(spec.input_signed), bit_width=spec.input_bits, return_quant_tensor=True
        )
        layers: list[nn.Module] = []
        fan_in = n_features
        for i, layer in enumerate(spec.layers):
            layers.append(
                QuantLinear(
                    fan_in,
                    layer.units,
                    bias=True,
                    weight_quant=Int8WeightPerTensorFixedPoint,
                    weight_bit_width=layer.weight_bits,
                    bias_quant=Int16Bias,
                    bias_bit_width=layer.bias_bits,
                    return_quant_tensor=True,
                )
            )
            last = i == len(spec.layers) - 1
            if last:
                layers.append(
                    QuantIdentity(
                        act_quant=Int8ActPerTensorFixedPoint, bit_width=layer.act_bits, return_quant_tensor=True
                    )
                )
            else:
                layers.append(
                    QuantReLU(act_quant=Uint8ActPerTensorFixedPoint, bit_width=layer.act_bits, return_quant_tensor=True)
                )
            fan_in = layer.units
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(self.input_quant(x))
        return out.value if hasattr(out, "value") else out


class FloatMLP(nn.Module):
    """The same architecture in float: the accuracy reference users compare against."""

    def __init__(self, spec: Spec, n_features: int) -> None:
        super().__init__()
        dims = [n_features] + [layer.units for layer in spec.layers]
        mods: list[nn.Module] = []
        for i in range(len(dims) - 1):
            mods.append(nn.Linear(dims[i], dims[i + 1]))
            if i < len(dims) - 2:
                mods.append(nn.ReLU())
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
