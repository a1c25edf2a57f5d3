"""Estimate of the RTL design: da4ml's shift-and-add network, costed op by op.

The network is traced with the same tracer that writes the Verilog. Each operation carries
da4ml's own cost (LUT-equivalents of its carry-chain adder, from its operands' exact intervals);
we sum them by kind of hardware -- adders (incl. constant adds and negations), ReLUs,
multiplexers (saturation, rounding), ROMs, other logic -- because Yosys maps each kind
differently, and weigh each kind with a coefficient fitted once against Yosys ``synth_xilinx``
(``bench/bench_estimate.py --fit``) on designs that are not the ones the bench reports.
FFs are the pipeline's register bits times a fitted factor; latency is its stage count.
Per-layer figures come from tracing each layer alone, scaled to the whole network's totals.
"""

from __future__ import annotations

import math

import numpy as np
from da4ml.trace import to_pipeline
from da4ml.types import CombLogic

from fpga_mpq.estimate.model import Cost, Estimate, EstimateConfig, LayerEstimate
from fpga_mpq.ir.network import Network
from fpga_mpq.rtl.project import RtlConfig
from fpga_mpq.rtl.trace import rtl_layers, trace_network, trace_single

KINDS = ("adder", "relu", "mux", "rom", "other")
_KIND_OF_OPCODE = {0: "adder", 1: "adder", 4: "adder", 3: "adder", 2: "relu", 6: "mux", 8: "rom"}
# LUTs per unit of da4ml cost, by kind: non-negative least squares on relative error over the 16
# fit designs of bench/bench_estimate.py against Yosys 0.70 synth_xilinx -flatten. Yosys folds a
# ReLU into the logic around it (0) and spends about twice what da4ml counts on saturation
# multiplexers; no fit design has a ROM or other logic, so those keep da4ml's own figure.
LUT_PER_COST = {"adder": 0.997, "relu": 0.0, "mux": 2.176, "rom": 1.0, "other": 1.0}
FF_PER_REGISTER_BIT = 0.952  # Yosys drops registers whose bits are constant


def cost_by_kind(comb: CombLogic) -> dict[str, float]:
    """da4ml's per-operation costs, summed by kind of hardware."""
    out = dict.fromkeys(KINDS, 0.0)
    for op in comb.ops:
        if op.opcode in (-1, 5):  # inputs and constants: no hardware
            continue
        out[_KIND_OF_OPCODE.get(abs(op.opcode), "other")] += float(op.cost)
    return out


def lut_from_costs(costs: dict[str, float]) -> float:
    return sum(LUT_PER_COST[k] * v for k, v in costs.items())


def _share(total: float, parts: list[float]) -> list[float]:
    whole = sum(parts)
    return [total * p / whole if whole else 0.0 for p in parts]


def estimate_rtl(net: Network, cfg: EstimateConfig) -> Estimate:
    """LUT / FF and pipeline stages of the da4ml Verilog, per layer (no DSP or BRAM: all adders)."""
    cutoff = RtlConfig(cfg.part, cfg.clock_ns).latency_cutoff  # the same stages the Verilog writer cuts
    whole = trace_network(net).comb
    pipe = to_pipeline(whole, cutoff, verbose=False)
    total_lut = lut_from_costs(cost_by_kind(whole))
    total_ff = FF_PER_REGISTER_BIT * pipe.reg_bits
    layers = rtl_layers(net)
    shapes = {name: t.shape for name, t in net.tensors.items()}
    combs = [trace_single(layer, [shapes[name] for name in layer.inputs]) for layer in layers]
    costs = [cost_by_kind(c) for c in combs]
    delays = [float(np.max(c.latency)) if c.ops else 0.0 for c in combs]
    luts = _share(total_lut, [lut_from_costs(c) for c in costs])
    ffs = _share(
        total_ff,
        [to_pipeline(c, cutoff, verbose=False).reg_bits if d else 0 for c, d in zip(combs, delays, strict=True)],
    )
    est = []
    for layer, lut, ff, delay, cost in zip(layers, luts, ffs, delays, costs, strict=True):
        detail = {f"da4ml_{k}_cost": round(v, 1) for k, v in cost.items() if v} | {"delay_units": delay}
        est.append(
            LayerEstimate(layer.name, type(layer).__name__.lower(), Cost(lut, ff), math.ceil(delay / cutoff), 1, detail)
        )
    return Estimate("rtl", cfg, tuple(est), latency=len(pipe.solutions), extra={"da4ml_cost": float(whole.cost)})
