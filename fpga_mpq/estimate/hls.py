"""Estimate of the HLS design: hls4ml's nnet_utils layers as Vivado/Vitis HLS implements them.

No vendor tool runs here, so this model is not measured against synthesis (the RTL estimate is,
see ``rtl.py``). Its rules, all from the exact types and the constant weights:

* Latency strategy, reuse 1: every weight is a constant. A product is the sum of the weight's
  CSD digits (zero weights vanish, powers of two are wires); products whose operands are both
  wider than ``DSP_MIN_BITS`` go to DSP slices instead, several when wider than one slice.
  Each output's terms meet in a balanced adder tree, one LUT per adder bit.
* Reuse > 1 or the Resource strategy: ``ceil(n_in * n_out / reuse)`` shared generic multipliers
  with accumulators; under Resource the weights sit in a ROM (BRAM18 when it holds at least
  ``BRAM_MIN_BITS``, else LUTRAM).
* Pipelining: HLS schedules with 12.5 % clock uncertainty; a register stage goes in each time the
  logic delay reaches the remaining period, and every cut registers the values alive there.
* io_stream CNNs (one array per pixel, see ``fpga_mpq/hls/stream.py``): each kernel exists once and
  takes one pixel every ``reuse`` cycles. Line buffers hold (kh - 1) rows of the padded width, every
  channel, ``bits`` each (our window pool: kh rows): in BRAM18 when a buffer holds at least
  ``BRAM_MIN_BITS`` (one BRAM18 per row and 36 bits of channels, per 512 pixels of width), else
  shift registers in LUTs (SRL32: 32 bits per LUT). A FIFO of ``depth`` arrays of ``width`` bits:
  registers when ``depth <= 2``, else BRAM18 from ``BRAM_MIN_BITS`` on (``ceil(width/36) *
  ceil(depth/512)``), else SRL32 LUTs (``width * ceil(depth/32)``). Dataflow timing: a layer's II
  is the pixels it reads times its per-pixel interval; its fill delay the pixels it reads before its
  first output (times that interval) plus its pipeline depth; the design's II is the slowest
  layer's, its latency the sum of the fill delays plus that II.
"""

from __future__ import annotations

import math

import numpy as np

from fpga_mpq.estimate.arith import adder_tree, bit_length, csd_digits
from fpga_mpq.estimate.model import Cost, Estimate, EstimateConfig, LayerEstimate
from fpga_mpq.ir.network import (
    Activation,
    Add,
    Concat,
    Conv,
    Dense,
    Network,
    Pool,
    Reshape,
    Softmax,
    Threshold,
    unsupported_layer,
)
from fpga_mpq.ir.types import FixedType, Rounding

DSP_MIN_BITS = 10  # narrower products are cheaper in LUTs; HLS binds them there
BRAM_MIN_BITS = 1024
SOFTMAX_BITS = 18  # hls4ml's softmax output type here
UNCERTAINTY = 0.875  # Vivado/Vitis HLS default clock uncertainty: 12.5 %
LUT_DELAY_NS = {"7series": 0.65, "ultrascale+": 0.45}  # one LUT level plus its routing
CARRY_DELAY_NS = {"7series": 0.03, "ultrascale+": 0.015}  # per carry-chain bit
DSP_DELAY_NS = 2.5  # an unpipelined DSP multiply


def adder_delay(bits: int, family: str) -> float:
    return LUT_DELAY_NS[family] + CARRY_DELAY_NS[family] * bits


def stages(delay_ns: float, clock_ns: float) -> int:
    """Register stages a combinational path of ``delay_ns`` needs at this clock."""
    return max(1, math.ceil(delay_ns / (UNCERTAINTY * clock_ns)))


def dsps_per_product(a_bits: int, b_bits: int, operands: tuple[int, int]) -> int:
    big, small = operands
    return min(
        math.ceil(a_bits / big) * math.ceil(b_bits / small),
        math.ceil(a_bits / small) * math.ceil(b_bits / big),
    )


def lut_multiplier(a_bits: int, b_bits: int) -> float:
    """A generic LUT multiplier: about one LUT6 per two partial-product bits, plus its adders."""
    return a_bits * b_bits / 2 + a_bits + b_bits


def _constant_dense(layer: Dense, cfg: EstimateConfig) -> LayerEstimate:
    part, bx = cfg.part, layer.in_type.width
    w = layer.weight
    nonzero = w != 0
    w_bits = bit_length(w) + layer.weight_type.signed
    on_dsp = nonzero & (w_bits > DSP_MIN_BITS) & (bx > DSP_MIN_BITS)
    digits = np.where(nonzero & ~on_dsp, csd_digits(w), 0)
    terms = digits.sum(axis=0) + on_dsp.sum(axis=0) + (layer.bias != 0)
    dsp = int(sum(dsps_per_product(bx, int(b), part.dsp_operands) for b in w_bits[on_dsp]))
    lut = ff = 0.0
    depth = 0
    for t in terms:
        _, bits, levels = adder_tree(int(t), bx)
        lut += bits
        depth = max(depth, levels)
    acc = layer.out.width
    delay = (DSP_DELAY_NS if dsp else 0.0) + depth * adder_delay(acc, part.family)
    n_stages = stages(delay, cfg.clock_ns)
    # every internal cut registers the partial sums alive at that tree level
    for cut in range(1, n_stages):
        level = depth * cut // n_stages
        ff += float(np.sum(np.ceil(terms / 2**level))) * (bx + level)
    ff += layer.n_out * acc
    detail = {
        "weights": int(w.size),
        "zero_weights": int((~nonzero).sum()),
        "shift_weights": int((nonzero & (digits == 1)).sum()),
        "csd_digits": int(digits.sum()),
        "dsp_products": int(on_dsp.sum()),
        "accumulator": str(layer.out),
    }
    return LayerEstimate(layer.name, "dense", Cost(lut, ff, dsp), n_stages, 1, detail)


def _shared_dense(layer: Dense, cfg: EstimateConfig) -> LayerEstimate:
    part, bx, bw, acc = cfg.part, layer.in_type.width, layer.weight_type.width, layer.out.width
    reuse = cfg.reuse_factor
    n_mult = math.ceil(layer.weight.size / reuse)
    dsp = lut = 0.0
    if min(bx, bw) > DSP_MIN_BITS:
        dsp = n_mult * dsps_per_product(bx, bw, part.dsp_operands)
    else:
        lut += n_mult * lut_multiplier(bx, bw)
    select_bits = math.ceil(math.log2(reuse)) if reuse > 1 else 0
    lut += n_mult * (acc + bx * select_bits / 2)  # accumulator adders and the operand multiplexers
    ff = n_mult * acc + layer.n_out * acc
    bram = 0
    rom_bits = layer.weight.size * bw
    if cfg.strategy == "resource" and reuse > 1 and rom_bits >= BRAM_MIN_BITS:
        bram = math.ceil(n_mult * bw / 36) * math.ceil(reuse / 512)
    elif reuse > 1:
        lut += math.ceil(rom_bits / 64)  # LUTRAM / LUT ROM
    _, tree_bits, levels = adder_tree(math.ceil(n_mult / layer.n_out), acc)
    lut += layer.n_out * tree_bits
    latency = reuse + stages(levels * adder_delay(acc, part.family), cfg.clock_ns) + (1 if dsp else 0)
    detail = {"weights": int(layer.weight.size), "multipliers": n_mult, "accumulator": str(layer.out)}
    return LayerEstimate(layer.name, "dense", Cost(lut, ff, int(dsp), bram), latency, reuse, detail)


def _activation(layer: Activation) -> LayerEstimate:
    t_in, t_out = layer.in_type, layer.out
    per = t_out.width  # ReLU / saturation multiplexer per output bit
    if t_out.rounding is not Rounding.TRN and t_out.frac < t_in.frac:
        per += t_out.width + 1  # the rounding increment
    per += max(0, t_in.int_bits - t_out.int_bits) / 3  # overflow detection on the dropped high bits
    return LayerEstimate(
        layer.name, "relu" if layer.relu else "quant", Cost(per * layer.n, layer.n * t_out.width), 1, 1
    )


def _threshold(layer: Threshold) -> LayerEstimate:
    n, k = layer.n, layer.thresholds.shape[1]
    w = layer.in_type.width
    lut = n * (k * math.ceil(w / 2) + layer.out.width * math.ceil((k + 1) / 4))
    return LayerEstimate(layer.name, "threshold", Cost(lut, n * layer.out.width), 1, 1, {"thresholds": k})


def _conv(layer: Conv, cfg: EstimateConfig) -> LayerEstimate:
    """io_parallel, fully unrolled: each group of each output pixel is a constant-weight dense layer."""
    kh, kw, cg, f = layer.weight.shape
    fg, pixels = f // layer.groups, math.prod(layer.shape[:-1])
    cost, latency, detail = Cost(), 0, {}
    for g in range(layer.groups):
        w = layer.weight[..., g * fg : (g + 1) * fg].reshape(kh * kw * cg, fg)
        b = layer.bias[g * fg : (g + 1) * fg]
        dense = Dense(layer.name, "x", "y", (fg,), layer.in_type, w, layer.weight_type, b, layer.bias_type, layer.out)
        est = _constant_dense(dense, cfg)
        cost, latency = cost + est.cost, max(latency, est.latency_cycles)
        detail = {k: detail.get(k, 0) + v for k, v in est.detail.items() if isinstance(v, int)}
    scaled = Cost(cost.lut * pixels, cost.ff * pixels, cost.dsp * pixels, cost.bram18 * pixels)
    return LayerEstimate(layer.name, "conv", scaled, latency, 1, detail | {"output_pixels": pixels})


def _pool(layer: Pool) -> LayerEstimate:
    """A comparator (max) or adder (sum) tree per output element over its window."""
    n, taps = math.prod(layer.shape), layer.kernel[0] * layer.kernel[1]
    _, bits, levels = adder_tree(taps, layer.in_type.width)
    per = bits if layer.op == "sum" else (taps - 1) * (layer.in_type.width + 1)  # compare, then select
    return LayerEstimate(layer.name, f"{layer.op}pool", Cost(n * per, n * layer.out.width), max(1, levels), 1)


def _add(layer: Add) -> LayerEstimate:
    """One adder per element as wide as the output, no register (latency mode)."""
    return LayerEstimate(layer.name, "add", Cost(layer.n * layer.out.width, layer.n * layer.out.width), 1, 1)


def _softmax(layer: Softmax, cfg: EstimateConfig) -> LayerEstimate:
    """hls4ml's stable softmax: max, exp table per input, sum, inverse table, n products."""
    n, w = layer.n, layer.in_type.width
    _, max_bits, levels = adder_tree(n, w)
    _, sum_bits, _ = adder_tree(n, 18)
    lut = max_bits + n * w + sum_bits  # max tree, subtractors, sum tree
    bram = math.ceil(n / 2) + 1  # 1024 x 18 tables, two lookups per dual-port BRAM18
    latency = 2 * levels + 6
    return LayerEstimate(layer.name, "softmax", Cost(lut, n * 36, n, bram), latency, 1)


def _stream_fifo(layer: LayerEstimate, bits: int) -> LayerEstimate:
    """io_stream: a depth-one FIFO after each layer, one register per bit, one cycle more."""
    cost = layer.cost + Cost(0, bits)
    return LayerEstimate(layer.name, layer.kind, cost, layer.latency_cycles + 1, layer.ii, layer.detail)


def estimate_hls(net: Network, cfg: EstimateConfig) -> Estimate:
    """Per-layer resources and latency of the generated HLS project on ``cfg.part``."""
    if cfg.io == "stream" and any(isinstance(la, Conv | Pool) for la in net.layers):
        return _stream_cnn(net, cfg)
    layers = []
    for layer in net.layers:
        match layer:
            case Dense():
                shared = cfg.reuse_factor > 1 or cfg.strategy == "resource"
                est = _shared_dense(layer, cfg) if shared else _constant_dense(layer, cfg)
            case Activation():
                est = _activation(layer)
            case Threshold():
                est = _threshold(layer)
            case Conv():
                est = _conv(layer, cfg)
            case Pool():
                est = _pool(layer)
            case Reshape():
                est = LayerEstimate(layer.name, "reshape", Cost(), 0, 1)  # wires
            case Add():
                est = _add(layer)
            case Concat():
                est = LayerEstimate(layer.name, "concat", Cost(), 0, 1)  # wires
            case Softmax():
                est = _softmax(layer, cfg)
            case _:
                raise unsupported_layer(layer, "the HLS estimator")
        if cfg.io == "stream" and not isinstance(layer, Softmax):
            est = _stream_fifo(est, math.prod(layer.shape) * layer.out.width)
        layers.append(est)
    return Estimate("hls", cfg, tuple(layers))


def fifo_cost(depth: int, width: int) -> Cost:
    """One FIFO of ``depth`` arrays of ``width`` bits (rule in the module docstring)."""
    if depth <= 2:
        return Cost(0, depth * width)
    if depth * width >= BRAM_MIN_BITS:
        return Cost(bram18=math.ceil(width / 36) * math.ceil(depth / 512))
    return Cost(width * math.ceil(depth / 32))


def line_buffer_cost(rows: int, width: int, chan_bits: int) -> Cost:
    """``rows`` rows of ``width`` pixels of ``chan_bits`` bits (every channel side by side)."""
    bits = rows * width * chan_bits
    if bits >= BRAM_MIN_BITS:
        return Cost(bram18=rows * math.ceil(chan_bits / 36) * math.ceil(width / 512))
    return Cost(math.ceil(bits / 32))


def _window_kernel(layer: Conv, cfg: EstimateConfig) -> LayerEstimate:
    """The products of one window, built once: full convolution one dense layer of (kh*kw*C, F),
    depthwise one (kh*kw, 1) per channel."""
    kh, kw, cg, f = layer.weight.shape
    cost, latency, detail = Cost(), 0, {}
    for g in range(layer.groups):
        fg = f // layer.groups
        w = layer.weight[..., g * fg : (g + 1) * fg].reshape(kh * kw * cg, fg)
        b = layer.bias[g * fg : (g + 1) * fg]
        dense = Dense(layer.name, "x", "y", (fg,), layer.in_type, w, layer.weight_type, b, layer.bias_type, layer.out)
        est = _shared_dense(dense, cfg) if cfg.reuse_factor > 1 else _constant_dense(dense, cfg)
        cost, latency = cost + est.cost, max(latency, est.latency_cycles)
        detail = {k: detail.get(k, 0) + v for k, v in est.detail.items() if isinstance(v, int)}
    return LayerEstimate(layer.name, "conv", cost, latency, cfg.reuse_factor, detail)


def _stream_layer(layer, plan: dict, in_shape: tuple[int, ...], cfg: EstimateConfig) -> LayerEstimate:
    """One layer of an io_stream CNN: its kernel once, its line buffer, its output FIFOs, its timing."""
    per_pixel = 1  # cycles per input pixel
    extra, detail = Cost(), {}
    match layer:
        case Conv():
            est = _window_kernel(layer, cfg)
            per_pixel = cfg.reuse_factor
            pt, pl, pb, pr = layer.pads
            width = in_shape[1] + pl + pr
            if plan["impl"] != "pointwise":
                rows, chan_bits = layer.kernel[0] - 1, in_shape[-1] * layer.in_type.width
                extra = line_buffer_cost(rows, width, chan_bits)
                detail["line_buffer_bits"] = rows * width * chan_bits
            if plan["pad"]:
                extra = extra + fifo_cost(2, in_shape[-1] * layer.in_type.width)
                detail["fifo_bits"] = 2 * in_shape[-1] * layer.in_type.width
        case Pool():
            c, taps = in_shape[-1], layer.kernel[0] * layer.kernel[1]
            base = _pool(layer)
            est = LayerEstimate(layer.name, base.kind, Cost(base.cost.lut / math.prod(layer.shape[:-1])), 1, 1)
            rows = {"hls4ml": layer.kernel[0] - 1, "window": layer.kernel[0], "global": 0}[plan["impl"]]
            if rows:
                extra = line_buffer_cost(rows, in_shape[1], c * layer.in_type.width)
                detail["line_buffer_bits"] = rows * in_shape[1] * c * layer.in_type.width
            else:
                extra = Cost(0, c * layer.out.width)  # the running max / sum per channel
            detail["taps"] = taps
        case Dense():
            shared = cfg.reuse_factor > 1 or cfg.strategy == "resource"
            est = _shared_dense(layer, cfg) if shared else _constant_dense(layer, cfg)
        case Activation() | Threshold() | Add():
            base = {Activation: _activation, Threshold: _threshold, Add: _add}[type(layer)](layer)
            scale = plan["pack"] / layer.n  # one pixel's worth of the elementwise logic
            est = LayerEstimate(layer.name, base.kind, Cost(base.cost.lut * scale, base.cost.ff * scale), 1, 1,
                                base.detail)  # fmt: skip
        case Reshape():
            est = LayerEstimate(layer.name, "reshape", Cost(), 0, 1)
        case Concat():
            est = LayerEstimate(layer.name, "concat", Cost(), 1, 1)  # wires, one pixel per cycle
        case _:
            raise unsupported_layer(layer, "the HLS estimator")
    width = plan["pack"] * layer.out.width
    fifos = [] if plan["alias"] else [plan["depth"]]
    fifos += [d["depth"] for d in plan["clone"]["dsts"]] if plan["clone"] else []
    for depth in fifos:
        extra = extra + fifo_cost(depth, width)
    detail["fifo_bits"] = detail.get("fifo_bits", 0) + sum(fifos) * width
    in_packs = plan["in_packs"]
    fill = int(plan["needed"][0]) * per_pixel + est.latency_cycles + (1 if plan["clone"] else 0)
    ii = in_packs * per_pixel if not isinstance(layer, Dense) else in_packs + est.ii
    if plan["impl"] == "window":
        ii += plan["packs"]  # our pool writes its output rows in bursts between input rows
    if plan["alias"]:
        fill = ii = 0  # a flatten the dense layers read directly: no code
    detail |= {"fill_cycles": fill, "pixels_in": in_packs, "fifo_depths": fifos}
    return LayerEstimate(layer.name, est.kind, est.cost + extra, fill, ii, est.detail | detail)


def _stream_cnn(net: Network, cfg: EstimateConfig) -> Estimate:
    """An io_stream CNN as the generator builds it (same kernels, same FIFO depths)."""
    from fpga_mpq.hls.generate import stream_plan  # the generator imports the estimator's part table

    plans = stream_plan(net, cfg.reuse_factor)
    shapes = net.tensors
    layers = []
    for layer in net.layers:
        if isinstance(layer, Softmax):
            layers.append(_stream_fifo(_softmax(layer, cfg), layer.n * SOFTMAX_BITS))
            continue
        plan = plans[layer.name]
        layers.append(_stream_layer(layer, plan, shapes[layer.inputs[0]].shape, cfg))
    fills, ii = sum(la.latency_cycles for la in layers), max(la.ii for la in layers)
    return Estimate("hls", cfg, tuple(layers), latency=fills + ii)


def dense_cost(weights: np.ndarray, in_type: FixedType, w_type: FixedType, part: str = "xczu9eg") -> dict:
    """LUT / FF / DSP of one constant-weight dense layer (no bias), for cost-driven search."""
    from fpga_mpq.estimate.parts import find_part
    from fpga_mpq.ir.network import accumulator_type

    weights = np.asarray(weights, dtype=np.int64)
    bias = np.zeros(weights.shape[1], dtype=np.int64)
    acc = accumulator_type(in_type, weights, w_type.frac, bias, w_type.frac)
    layer = Dense("dense", "x", "y", (weights.shape[1],), in_type, weights, w_type, bias, w_type, acc)
    est = _constant_dense(layer, EstimateConfig(find_part(part)))
    return {"lut": est.cost.lut, "ff": est.cost.ff, "dsp": est.cost.dsp}
