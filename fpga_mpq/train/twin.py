"""A fast forward pass of a Brevitas :class:`~fpga_mpq.models.net.QuantNet`, on the model's own tensors.

Brevitas spends most of a small network's training step outside arithmetic: every quantizer is a
tree of proxies and script modules, every tensor a ``QuantTensor`` rebuilt per call. :class:`Twin`
computes the same forward pass with plain torch operations on the very parameters, BatchNorm modules
and activation-range state of the QuantNet it wraps, so training the twin trains that QuantNet and
nothing is copied back: the model a user gets is the Brevitas model, exported by Brevitas.

Every value equals Brevitas' bit for bit (``tests/test_twin.py``): the same order of operations,
power-of-two scales ``2^ceil(log2(max|w|)) / 2^(b-1)`` for weights, the bias on the accumulator's
grid (input scale × weight scale), and each activation's scale from Brevitas' own scaling module
while it collects its running statistics (the first training steps), then ``2^ceil(value)`` of the
learned log2 value it keeps. Measured (``bench/bench_train.py``): 2.3x Brevitas' samples/s on the
Fashion MLP, 1.2x on the convolution-bound CNN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from torch import Tensor, nn

from fpga_mpq.models.net import QuantNet, _Pool, _Residual, _Weighted

# A value and the scale of its grid (``None``: a plain float tensor, e.g. after BatchNorm).
Quantized = tuple[Tensor, Tensor | None]


def _ste(forward: Tensor, x: Tensor) -> Tensor:
    """``forward``'s value with the gradient of the identity in ``x`` (Brevitas' *Ste functions):
    ``x - x.detach()`` is exactly 0, so the value is ``forward``'s to the bit."""
    return forward + (x - x.detach())


class _FakeQuant(torch.autograd.Function):
    """``clamp(round(x / s), lo, hi) * s`` as one node, with the gradient of Brevitas' chain of nodes
    (RoundSte, clamp, scale) computed in one pass: to ``x`` where the clamp lets it through (``WEIGHT``:
    everywhere, as TensorClampSte), to ``s`` the sum of ``q - x/s`` there and of ``q`` elsewhere.
    ``RELU`` folds a ReLU in front (``lo`` = 0): the same values, one pass fewer each way."""

    WEIGHT, ACT, RELU = 0, 1, 2

    @staticmethod
    def forward(ctx, x: Tensor, scale: Tensor, lo: float, hi: float, mode: int) -> Tensor:
        v = x / scale
        q = torch.clamp(torch.round(v), lo, hi)
        if mode == _FakeQuant.WEIGHT:
            ctx.save_for_backward(q - v, None)
        else:
            # round(v) in [lo, hi] (hi is odd: hi + 0.5 rounds to hi + 1; lo is 0 or even); a ReLU blocks v <= 0
            inside = (v > 0 if mode == _FakeQuant.RELU else v >= lo - 0.5) & (v < hi + 0.5)
            ctx.save_for_backward(torch.where(inside, q - v, q), inside)
        ctx.scale_shape = scale.shape
        return q * scale

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple:
        to_scale, inside = ctx.saved_tensors
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = grad if inside is None else torch.where(inside, grad, 0.0)
        grad_scale = torch.dot(grad.reshape(-1), to_scale.reshape(-1)).reshape(ctx.scale_shape)
        return grad_x, grad_scale, None, None, None


class _Act(nn.Module):
    """A QuantIdentity or QuantReLU: optional ReLU, then round and clamp. The scale is Brevitas' own
    scaling module's while it collects statistics, then ``2^ceil(value) / 2^(b - signed)`` of its
    learned log2 value (both states stay the QuantNet's)."""

    def __init__(self, act: QuantIdentity | QuantReLU) -> None:
        super().__init__()
        match act:
            case QuantReLU():
                self.relu = True
            case QuantIdentity():
                self.relu = False
            case _:
                raise TypeError(f"no twin for activation {type(act).__name__}")
        quant = act.act_quant.fused_activation_quant_proxy.tensor_quant
        self.scaling = quant.scaling_impl
        bits = quant.msb_clamp_bit_width_impl()
        self.register_buffer("threshold", quant.int_scaling_impl(bits), persistent=False)
        self.lo = float(quant.int_quant.min_int(bits))
        self.hi = float(quant.int_quant.max_int(bits))
        self.min_scale = float(self.scaling.clamp_scaling.clamp_min_ste.min_val)

    def forward(self, x: Tensor) -> Quantized:
        scaling = self.scaling
        if scaling.counter <= scaling.collect_stats_steps:  # Brevitas' statistics see the ReLU's output
            x = torch.relu(x) if self.relu else x
            scale = scaling(x, self.threshold)
            return _FakeQuant.apply(x, scale, self.lo, self.hi, _FakeQuant.ACT), scale
        value = scaling.value
        scale = torch.clamp_min(2.0 ** _ste(torch.ceil(value), value), self.min_scale) / self.threshold
        mode = _FakeQuant.RELU if self.relu else _FakeQuant.ACT
        return _FakeQuant.apply(x, scale, self.lo, self.hi, mode), scale


class _Op(nn.Module):
    """A QuantLinear or QuantConv2d: narrow power-of-two weights, the bias on the accumulator's grid."""

    def __init__(self, op: QuantLinear | QuantConv2d) -> None:
        super().__init__()
        match op:
            case QuantConv2d():
                self.conv = dict(stride=op.stride, padding=op.padding, dilation=op.dilation, groups=op.groups)
            case QuantLinear():
                self.conv = None
            case _:
                raise TypeError(f"no twin for layer {type(op).__name__}")
        self.op = op
        wq = op.weight_quant.tensor_quant
        wbits = wq.msb_clamp_bit_width_impl()
        self.register_buffer("w_threshold", wq.int_scaling_impl(wbits), persistent=False)
        self.w_hi = float(wq.int_quant.max_int(wbits))
        self.w_lo = float(wq.int_quant.min_int(wbits))
        self.w_min_scale = float(wq.scaling_impl.stats_scaling_impl.clamp_scaling.clamp_min_ste.min_val)
        bq = op.bias_quant.tensor_quant
        bbits = bq.msb_clamp_bit_width_impl()
        self.b_lo, self.b_hi = float(bq.int_quant.min_int(bbits)), float(bq.int_quant.max_int(bbits))

    def weight_scale(self) -> Tensor:
        """The weights' grid: ``2^ceil(log2(max|w|)) / 2^(b-1)``, Brevitas' max-based power-of-two scale."""
        top = torch.clamp_min(torch.max(torch.abs(self.op.weight)), self.w_min_scale)
        log_top = torch.log2(top)
        return 2.0 ** _ste(torch.ceil(log_top), log_top) / self.w_threshold

    def forward(self, x: Quantized) -> Quantized:
        value, x_scale = x
        if x_scale is None:
            raise ValueError("a quantized layer needs a quantized input")
        w = self.op.weight
        w_scale = self.weight_scale()
        wq = _FakeQuant.apply(w, w_scale, self.w_lo, self.w_hi, _FakeQuant.WEIGHT)
        b_scale = x_scale * w_scale
        y = self.op.bias / b_scale
        bq = torch.clamp(_ste(torch.round(y), y), self.b_lo, self.b_hi) * b_scale
        if self.conv is None:
            return F.linear(value, wq, bq), b_scale
        return F.conv2d(value, wq, bq, **self.conv), b_scale


class _Layer(nn.Module):
    """One spec layer of the QuantNet (weighted, pool, residual or flatten), in plain torch."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer
        match layer:
            case _Weighted():
                self.op = _Op(layer.op)
                self.act = None if layer.act is None else _Act(layer.act)
            case _Pool():
                self.act = None if layer.act is None else _Act(layer.act)
            case _Residual():
                self.body = nn.ModuleList(_Layer(m) for m in layer.body)
                self.shortcut = nn.ModuleList(_Layer(m) for m in layer.shortcut)
                self.add_quant, self.out_act = _Act(layer.add_quant), _Act(layer.act)
            case nn.Flatten():
                pass
            case _:
                raise TypeError(f"no twin for layer {type(layer).__name__}")

    def forward(self, x: Quantized) -> Quantized:
        layer = self.layer
        match layer:
            case _Weighted():
                x = self.op(x)
                if layer.bn is not None:
                    x = (layer.bn(x[0]), None)
                return x if self.act is None else self.act(x[0])
            case _Pool():
                value, scale = x
                pooled = layer.pool(value)
                if self.act is not None:
                    return self.act(pooled)
                return pooled, scale  # a max pool keeps its input's grid
            case _Residual():
                y, skip = x, x
                for m in self.body:
                    y = m(y)
                for m in self.shortcut:
                    skip = m(skip)
                a, b = self.add_quant(y[0]), self.add_quant(skip[0])
                return self.out_act(a[0] + b[0])
            case nn.Flatten():
                return layer(x[0]), x[1]
        raise TypeError(f"no twin for layer {type(layer).__name__}")


class Twin(nn.Module):
    """``Twin(model)(x) == model(x)`` bit for bit, faster to train through; training it trains ``model``."""

    def __init__(self, model: QuantNet) -> None:
        super().__init__()
        self.model = model
        self.input_act = _Act(model.input_quant)
        self.twin_layers = nn.ModuleList(_Layer(m) for m in model.layers)
        self.ops = [m for m in self.twin_layers.modules() if isinstance(m, _Op)]  # a plain list: not re-registered

    def weight_grids(self) -> list[tuple[Tensor, Tensor, int]]:
        """Every conv / dense op's weight, the scale of its grid and its largest level, in layer order."""
        return [(m.op.weight, m.weight_scale(), int(m.w_hi)) for m in self.ops]

    def forward(self, x: Tensor) -> Tensor:
        q = self.input_act(x)
        for layer in self.twin_layers:
            q = layer(q)
        return q[0]
