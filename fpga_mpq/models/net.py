"""Brevitas networks built from a spec, with power-of-two scales on every tensor, and their float twins.

Fixed-point quantizers make every tensor an exact ``ap_fixed`` value: weights and activations use
Brevitas' ``*FixedPoint`` presets with the spec's widths, biases use ``IntBias`` whose scale is
input scale x weight scale, so the bias sits on the accumulator's grid. The float model has the same
module names (``layers.3.op.weight``, ``layers.3.bn.running_var``), so weights move between the two
by name, never by position.
"""

from __future__ import annotations

import math

import torch
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from brevitas.quant import (
    Int8ActPerTensorFixedPoint,
    Int8WeightPerTensorFixedPoint,
    Int16Bias,
    Uint8ActPerTensorFixedPoint,
)
from torch import nn

from fpga_mpq.errors import BadInput
from fpga_mpq.models.spec import (
    MAX_WEIGHTS,
    ConvSpec,
    FlattenSpec,
    LayerSpec,
    PoolSpec,
    ResidualSpec,
    Spec,
)


def _act_quant(signed: bool):
    return Int8ActPerTensorFixedPoint if signed else Uint8ActPerTensorFixedPoint


def _weight_quant(la: LayerSpec | ConvSpec) -> dict:
    """Brevitas arguments of a conv or dense layer: power-of-two weights, a bias on the accumulator's grid;
    a layer followed by BatchNorm hands it a plain tensor."""
    return dict(
        weight_quant=Int8WeightPerTensorFixedPoint,
        weight_bit_width=la.weight_bits,
        bias_quant=Int16Bias,
        bias_bit_width=la.bias_bits,
        return_quant_tensor=not la.batchnorm,
    )


class _Weighted(nn.Module):
    """``op`` (conv or dense), optional ``bn``, optional ``act``: one spec layer."""

    def __init__(self, op: nn.Module, bn: nn.Module | None, act: nn.Module | None) -> None:
        super().__init__()
        self.op, self.bn, self.act = op, bn, act

    def forward(self, x):
        x = self.op(x)
        if self.bn is not None:
            x = self.bn(x)
        return x if self.act is None else self.act(x)


class _Pool(nn.Module):
    """A pooling layer; an average's exact sum is requantized by ``act``."""

    def __init__(self, pool: nn.Module, act: nn.Module | None) -> None:
        super().__init__()
        self.pool, self.act = pool, act

    def forward(self, x):
        x = self.pool(x)
        return x if self.act is None else self.act(x)


class _Residual(nn.Module):
    """``act(add_quant(body(x)) + add_quant(shortcut(x)))``: one quantizer on both inputs of the Add."""

    def __init__(self, body: list[nn.Module], shortcut: list[nn.Module], add_quant: nn.Module, act: nn.Module) -> None:
        super().__init__()
        self.body, self.shortcut = nn.ModuleList(body), nn.ModuleList(shortcut)
        self.add_quant, self.act = add_quant, act

    def forward(self, x):
        y, skip = x, x
        for m in self.body:
            y = m(y)
        for m in self.shortcut:
            skip = m(skip)
        return self.act(self.add_quant(y) + self.add_quant(skip))


class _Builder:
    """Walks the spec once, tracking the tensor's shape, for both the quantized and the float model."""

    def __init__(self, spec: Spec, input_shape: tuple[int, ...], quant: bool) -> None:
        self.spec, self.quant = spec, quant
        self.shape = tuple(input_shape)  # (F,) or (C, H, W): PyTorch's layout
        self.n_weighted = len(spec.weighted())
        self.weighted_seen = 0

    def input_quant(self) -> nn.Module:
        if not self.quant:
            return nn.Identity()
        spec = self.spec
        return QuantIdentity(
            act_quant=_act_quant(spec.input_signed), bit_width=spec.input_bits, return_quant_tensor=True
        )

    def relu(self, bits: int) -> nn.Module:
        if not self.quant:
            return nn.ReLU()
        return QuantReLU(act_quant=Uint8ActPerTensorFixedPoint, bit_width=bits, return_quant_tensor=True)

    def requant(self, bits: int, signed: bool) -> nn.Module:
        if not self.quant:
            return nn.Identity()
        return QuantIdentity(act_quant=_act_quant(signed), bit_width=bits, return_quant_tensor=True)

    def dense(self, la: LayerSpec, where: str) -> nn.Module:
        if len(self.shape) != 1:
            raise BadInput(f"spec: {where} (dense) reads an image of shape {self.shape}: flatten it first")
        n_in = self.shape[0]
        if n_in * la.units > MAX_WEIGHTS:
            raise BadInput(f"spec: {where} needs {n_in} x {la.units} weights, more than the {MAX_WEIGHTS} allowed")
        self.weighted_seen += 1
        last = self.weighted_seen == self.n_weighted
        if self.quant:
            op = QuantLinear(
                n_in,
                la.units,
                bias=True,
                **_weight_quant(la),
            )
        else:
            op = nn.Linear(n_in, la.units)
        bn = nn.BatchNorm1d(la.units) if la.batchnorm else None
        act = self.requant(la.act_bits, signed=True) if last else self.relu(la.act_bits)
        if last and not self.quant:
            act = None
        self.shape = (la.units,)
        return _Weighted(op, bn, act)

    def conv(self, la: ConvSpec, where: str) -> nn.Module:
        if len(self.shape) != 3:
            raise BadInput(f"spec: {where} (conv) reads a vector of shape {self.shape}, not an image")
        c, h, w = self.shape
        if c % la.groups or la.filters % la.groups:
            raise BadInput(
                f"spec: {where}.groups = {la.groups} must divide its {c} input and {la.filters} output channels"
            )
        if la.filters * la.kernel**2 * (c // la.groups) > MAX_WEIGHTS:
            raise BadInput(f"spec: {where} needs more than the {MAX_WEIGHTS} weights a layer may have")
        oh = (h + 2 * la.padding - la.kernel) // la.stride + 1
        ow = (w + 2 * la.padding - la.kernel) // la.stride + 1
        if oh < 1 or ow < 1:
            raise BadInput(f"spec: {where}: a {la.kernel}x{la.kernel} kernel does not fit its {h}x{w} input")
        self.weighted_seen += 1
        common = dict(stride=la.stride, padding=la.padding, groups=la.groups, bias=True)
        if self.quant:
            op = QuantConv2d(
                c,
                la.filters,
                la.kernel,
                **_weight_quant(la),
                **common,
            )
        else:
            op = nn.Conv2d(c, la.filters, la.kernel, **common)
        bn = nn.BatchNorm2d(la.filters) if la.batchnorm else None
        act = None if la.act_bits is None else self.relu(la.act_bits)
        self.shape = (la.filters, oh, ow)
        return _Weighted(op, bn, act)

    def pool(self, la: PoolSpec, where: str, signed: bool) -> nn.Module:
        if len(self.shape) != 3:
            raise BadInput(f"spec: {where} ({la.kind}) reads a vector of shape {self.shape}, not an image")
        c, h, w = self.shape
        if la.kind == "globalavgpool":
            self.shape = (c, 1, 1)
            return _Pool(nn.AdaptiveAvgPool2d(1), self.requant(la.act_bits, signed))
        if la.kernel > h or la.kernel > w:
            raise BadInput(f"spec: {where}: a {la.kernel}x{la.kernel} pool does not fit its {h}x{w} input")
        self.shape = (c, (h - la.kernel) // la.stride + 1, (w - la.kernel) // la.stride + 1)
        if la.kind == "maxpool":
            return _Pool(nn.MaxPool2d(la.kernel, la.stride), None)
        return _Pool(nn.AvgPool2d(la.kernel, la.stride), self.requant(la.act_bits, signed))

    def residual(self, la: ResidualSpec, where: str) -> nn.Module:
        start = self.shape
        body = [self.conv(c, f"{where}.body[{i}]") for i, c in enumerate(la.body)]
        end, self.shape = self.shape, start
        shortcut = [self.conv(c, f"{where}.shortcut[{i}]") for i, c in enumerate(la.shortcut)]
        if self.shape != end:
            raise BadInput(f"spec: {where}: the body gives shape {end}, the shortcut {self.shape}; an Add needs one")
        return _Residual(body, shortcut, self.requant(la.add_bits, signed=True), self.relu(la.act_bits))

    def layers(self) -> nn.ModuleList:
        mods: list[nn.Module] = []
        signed = self.spec.input_signed  # the tensor's sign, for the requantizer after an average
        for i, la in enumerate(self.spec.layers):
            where = f"layers[{i}]"
            match la:
                case LayerSpec():
                    mods.append(self.dense(la, where))
                case ConvSpec():
                    mods.append(self.conv(la, where))
                case PoolSpec():
                    mods.append(self.pool(la, where, signed))
                case FlattenSpec():
                    self.shape = (math.prod(self.shape),)
                    mods.append(nn.Flatten())
                case ResidualSpec():
                    mods.append(self.residual(la, where))
            if not isinstance(la, PoolSpec | FlattenSpec):
                signed = False  # a ReLU ends every conv, dense and residual layer but the last
        return nn.ModuleList(mods)


def _shape(input_shape: int | tuple[int, ...]) -> tuple[int, ...]:
    """One sample's shape: a feature count, or (C, H, W)."""
    return (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)


class QuantNet(nn.Module):
    """The input quantizer, then one module per spec layer; ``forward`` returns plain tensors."""

    def __init__(self, spec: Spec, input_shape: int | tuple[int, ...]) -> None:
        super().__init__()
        self.spec, self.input_shape = spec, _shape(input_shape)
        builder = _Builder(spec, self.input_shape, quant=True)
        self.input_quant = builder.input_quant()
        self.layers = builder.layers()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_quant(x)
        for m in self.layers:
            x = m(x)
        return x.value if hasattr(x, "value") else x

    def __reduce__(self) -> tuple:
        """Pickled as its spec, input shape and tensors: Brevitas' quantizer objects do not unpickle,
        and a model trained in a Ray task must come back whole."""
        return (_rebuild_quant_net, (self.spec, self.input_shape, self.state_dict(), self.training))


def _rebuild_quant_net(spec: Spec, input_shape: tuple[int, ...], state: dict, training: bool) -> QuantNet:
    model = QuantNet(spec, input_shape)
    model.load_state_dict(state)
    return model.train(training)


class FloatNet(nn.Module):
    """The same architecture in float: the accuracy reference users compare against."""

    def __init__(self, spec: Spec, input_shape: int | tuple[int, ...]) -> None:
        super().__init__()
        self.spec, self.input_shape = spec, _shape(input_shape)
        self.layers = _Builder(spec, self.input_shape, quant=False).layers()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for m in self.layers:
            x = m(x)
        return x


_FROM_FLOAT = (nn.Linear, nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d)


def transfer_weights(fmodel: FloatNet, qmodel: QuantNet) -> None:
    """Copy every float weight, bias and BatchNorm statistic into the quantized model by name.

    Every such entry of the quantized model must come from the float one: a conv left at its random
    start would train from noise and nobody would notice.
    """
    fstate, qstate = fmodel.state_dict(), qmodel.state_dict()
    needed = {
        f"{name}.{key}" if name else key
        for name, m in qmodel.named_modules()
        if isinstance(m, _FROM_FLOAT)
        for key in m.state_dict(keep_vars=False)
        if "." not in key  # its own tensors, not a Brevitas quantizer's
    }
    missing = sorted(needed - set(fstate))
    if missing:
        raise ValueError(f"the float model has no {missing[0]} for the quantized model")
    with torch.no_grad():
        for key in sorted(needed):
            if qstate[key].shape != fstate[key].shape:
                raise ValueError(f"{key}: float shape {tuple(fstate[key].shape)}, quantized {tuple(qstate[key].shape)}")
            qstate[key].copy_(fstate[key])
