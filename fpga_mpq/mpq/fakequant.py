"""A light fake-quantized copy of the float model, for the differentiable searches (sdq, dqmq).

Brevitas is too slow to re-instantiate per drawn width, so the searches train a copy of the float
model whose weights (a parametrization per conv / dense op) and activations (a forward hook per
activation group; the network input in ``quantize_input``) are quantized as the Brevitas model
would: power-of-two scales, max-based for weights, the calibrated range for activations. How a
group's width is drawn is the subclass's: :meth:`FakeQuantNet.mix` gets a function from a width to
the quantized tensor. The cost table holds, per conv / dense layer, the budget metric of every
(weight width, input width) pair on the current weights, measured by the cost model.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from functools import partial

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from fpga_mpq.ir.types import FixedType
from fpga_mpq.models.net import FloatNet
from fpga_mpq.mpq.cost import LayerQuant, kernel_matrix
from fpga_mpq.mpq.problem import Problem, weighted_ops
from fpga_mpq.mpq.widths import Group, Widths, structure

Quantize = Callable[[int], torch.Tensor]


def _round_ste(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


def frac_bits(top: float, bits: int, signed: bool) -> int:
    """Brevitas' *PerTensorFixedPoint scale 2^−f: f = −⌈log2(top / 2^(b − signed))⌉ (power-of-two int scaling)."""
    return -math.ceil(math.log2(max(top, 1e-8) / 2 ** (bits - signed)))


def fq_weight(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Int8WeightPerTensorFixedPoint: narrow signed levels on the max-based power-of-two scale."""
    m = 2 ** (bits - 1) - 1
    s = 2.0 ** -frac_bits(float(w.detach().abs().max()), bits, True)
    return torch.clamp(_round_ste(w / s), -m, m) * s


def fq_act(x: torch.Tensor, bits: int, top: float, signed: bool) -> torch.Tensor:
    """(U)Int8ActPerTensorFixedPoint with the calibrated range ``top``."""
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    s = 2.0 ** -frac_bits(top, bits, signed)
    return torch.clamp(_round_ste(x / s), lo, hi) * s


def lambda_step(lam: float, rel_cost: float, rel_budget: float, progress: float, gain: float) -> float:
    """The searches' multiplicative λ controller: the cost target glides (log scale) from the widest
    design's (1) to the budget as ``progress`` goes 0 → 1, and λ grows while the cost is above it."""
    goal = math.exp(math.log(rel_budget) * min(1.0, progress))
    error = float(np.clip(rel_cost / goal - 1, -1.0, 1.0))
    return float(np.clip(lam * math.exp(gain * error), 1e-4, 1e4))


class _FakeQuantWeight(nn.Module):
    """A weight parametrization: ``quantize(w)``, the weight as its group's draw quantizes it."""

    def __init__(self, quantize: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.quantize = quantize

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self.quantize(w)


class FakeQuantNet(nn.Module):
    """A copy of the float model with a fake quantizer on every group; subclasses define :meth:`mix`."""

    def __init__(self, problem: Problem, x_cal: np.ndarray, metric: str) -> None:
        super().__init__()
        s = structure(problem.spec)
        self.groups, self.feeds = s.groups, s.feeds
        self.ladders = [problem.ladders.bits] * len(s.groups)
        self.net = copy.deepcopy(problem.fmodel).eval()
        self.ops = weighted_ops(self.net)
        self.problem, self.metric = problem, metric
        self.tops, self.pixels = self._float_stats(x_cal)
        self.input_index = next(k for k, g in enumerate(self.groups) if g.name == "input")
        self.setup_draws()  # before the parametrizations: registering one runs it once
        modules = dict(self.net.named_modules())
        self.hooks = []
        for k, g in enumerate(self.groups):
            if g.kind == "weight":
                fake_quant = _FakeQuantWeight(partial(self._weight, k))
                parametrize.register_parametrization(modules[g.module], "weight", fake_quant)
            elif k != self.input_index:
                self.hooks.append(modules[g.module].register_forward_hook(partial(self._act_hook, k)))
        self.refresh_costs()

    def setup_draws(self) -> None:
        """Create what draws each group's width (its parameters), from ``self.ladders``."""
        raise NotImplementedError

    def mix(self, k: int, quantize: Quantize) -> torch.Tensor:
        """Group ``k``'s tensor at the width(s) this step draws; ``quantize(bits)`` quantizes it."""
        raise NotImplementedError

    def _float_stats(self, x_cal: np.ndarray) -> tuple[dict[Group, float], list[int]]:
        """Each activation group's range (max |x| of the float model on the calibration set, over every
        use of a shared quantizer) and each op's output pixels."""
        modules = dict(self.net.named_modules())
        tops = {g: float(np.abs(x_cal).max()) for g in self.groups if g.name == "input"}
        pixels: dict[nn.Module, int] = {}

        def act(g: Group, m: nn.Module, args: tuple, out: torch.Tensor) -> None:
            tops[g] = max(tops.get(g, 0.0), float(out.abs().max()))

        def op(m: nn.Module, args: tuple, out: torch.Tensor) -> None:
            pixels[m] = math.prod(out.shape[2:])

        hooks = [
            modules[g.module].register_forward_hook(partial(act, g))
            for g in self.groups
            if g.kind == "act" and g not in tops
        ]
        hooks += [m.register_forward_hook(op) for m in self.ops]
        try:
            with torch.no_grad():
                self.net(torch.from_numpy(x_cal))
        finally:
            for h in hooks:
                h.remove()
        return tops, [pixels[m] for m in self.ops]

    def _weight(self, k: int, w: torch.Tensor) -> torch.Tensor:
        return self.mix(k, lambda bits: fq_weight(w, bits))

    def _act(self, k: int, x: torch.Tensor) -> torch.Tensor:
        g = self.groups[k]
        return self.mix(k, lambda bits: fq_act(x, bits, self.tops[g], g.signed))

    def _act_hook(self, k: int, m: nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor:
        return self._act(k, out)

    def quantized_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self._act(self.input_index, x))

    def release(self) -> FloatNet:
        """Remove the fake quantizers: the float model with the weights the search learned. The cost
        table stays for commitment; ``net`` no longer quantizes."""
        for h in self.hooks:
            h.remove()
        for op in self.ops:
            parametrize.remove_parametrizations(op, "weight", leave_parametrized=False)
        return self.net.eval()

    def float_model(self) -> FloatNet:
        """A float model holding the weights the search has learned so far; the fake quantizers stay."""
        out = copy.deepcopy(self.problem.fmodel)
        state = {k.replace("parametrizations.weight.original", "weight"): v for k, v in self.net.state_dict().items()}
        out.load_state_dict(state)
        return out.eval()

    def float_weight(self, i: int) -> torch.Tensor:
        op = self.ops[i]
        return (op.parametrizations.weight.original if parametrize.is_parametrized(op) else op.weight).detach()

    def refresh_costs(self) -> None:
        """Per layer, the budget metric of every (weight bits, input bits) pair on the current weights."""
        ladder = dict(zip(self.groups, self.ladders, strict=True))
        self.table = [
            {
                (wb, xb): self.problem.cost.layer(self._layer_quant(i, wb, xb))[self.metric]
                for wb in ladder[w]
                for xb in ladder[x]
            }
            for i, (w, x) in enumerate(self.feeds)
        ]

    def _layer_quant(self, i: int, w_bits: int, x_bits: int) -> LayerQuant:
        """Layer ``i`` as the Brevitas model would hold it at these widths (weights on the max-based scale)."""
        w = self.float_weight(i)
        m = 2 ** (w_bits - 1) - 1
        w_frac = frac_bits(float(w.abs().max()), w_bits, True)
        w_int = torch.clamp(torch.round(w * 2.0**w_frac), -m, m).to(torch.int64)
        x = self.feeds[i][1]
        x_frac = frac_bits(self.tops[x], x_bits, x.signed)
        return LayerQuant(
            kernel_matrix(w_int),
            FixedType(True, w_bits, w_bits - w_frac),
            FixedType(x.signed, x_bits, x_bits - x_frac),
            groups=getattr(self.ops[i], "groups", 1),
            pixels=self.pixels[i],
        )

    def proxy(self, widths: Widths) -> float:
        """The table cost of a configuration: the cost model on the current weights."""
        return sum(t[(widths.get(w), widths.get(x))] for t, (w, x) in zip(self.table, self.feeds, strict=True))
