"""IR -> HLS project: hls4ml's nnet_utils layers, configured with exact types, printed by Jinja.

The Python side only builds a typed context; all C++, TCL and Makefile text lives in
``fpga_mpq/templates/hls``. Constants are printed as the exact decimal of their integer mantissas.
"""

from __future__ import annotations

import math
import shutil
from collections import Counter
from pathlib import Path

import hls4ml
import jinja2
import numpy as np

from fpga_mpq.errors import BadInput
from fpga_mpq.hls.config import BACKENDS, IO_TYPES, HlsConfig
from fpga_mpq.hls.stream import CHAIN_DEPTH, Geometry, conv_kernel, fifo_depths, needed, pool_kernel, reshape_is_free
from fpga_mpq.hls.stream import packs as stream_packs
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
from fpga_mpq.ir.types import FixedType, Overflow, Rounding, to_ap

TEMPLATES = Path(__file__).resolve().parents[1] / "templates" / "hls"  # package data: shipped in the wheel
HLS4ML_VIVADO = Path(hls4ml.__file__).parent / "templates" / "vivado"
MERGES = ("add", "concat")  # two-input layers: the stream FIFO depths of their inputs follow the branches
SOFTMAX_TYPE = FixedType(False, 18, 1, Rounding.RND, Overflow.SAT)
SOFTMAX_TOLERANCE = 0.02  # absolute, per probability: hls4ml's 1024-entry exp / inverse tables
# our own HLS C++, copied verbatim
STATIC_HEADERS = ("mpq_conv.h", "mpq_pool_stream.h", "mpq_threshold.h", "mpq_trace.h", "mpq_weights.h")


def exact_decimal(m: int, frac: int) -> str:
    """``m * 2**-frac`` as an exact decimal literal (a double holds it exactly up to 53 bits)."""
    if frac <= 0:
        return str(m << -frac)
    digits = str(abs(m) * 5**frac).rjust(frac + 1, "0")
    whole, part = digits[:-frac], digits[-frac:].rstrip("0")
    return ("-" if m < 0 else "") + whole + ("." + part if part else "")


MAX_STREAM_READERS = 3  # hls4ml's clone_stream makes two or three copies


def _layer_context(net: Network, cfg: HlsConfig) -> tuple[list[dict], dict | None]:
    """One context per fixed-point layer (C variables are named by the layer that writes them), and
    the clone of the input stream when io_stream reads it more than once."""
    exact = net.exact_layers
    stream = cfg.io == "stream"
    readers = Counter(name for layer in exact for name in layer.inputs)
    var, c_type = {net.input.output: "x"}, {net.input.output: "input_t"}
    copies: dict[str, list[str]] = {}  # io_stream: the clones of a tensor read more than once

    def clone(tensor: str, size: int) -> dict | None:
        n = readers[tensor]
        if not stream or n < 2:
            return None
        if n > MAX_STREAM_READERS:
            raise BadInput(f"tensor {tensor} is read by {n} layers; io_stream takes at most {MAX_STREAM_READERS}")
        copies[tensor] = [f"{var[tensor]}_cpy{k}" for k in range(1, n + 1)]
        dsts = [{"var": v, "tensor": tensor, "depth": CHAIN_DEPTH} for v in copies[tensor]]
        return {"src": var[tensor], "dsts": dsts, "c_type": c_type[tensor], "n": size}

    def read(tensor: str) -> str:
        return copies[tensor].pop(0) if tensor in copies else var[tensor]

    shapes = net.tensors
    stream_len = {net.input.output: stream_packs(net.input.shape)}  # io_stream: arrays per sample
    input_clone = clone(net.input.output, net.input.n)
    ctx = []
    for i, layer in enumerate(exact):
        index = i + 2  # hls4ml numbers the input as layer 1
        in_shape = shapes[layer.inputs[0]].shape
        common = {
            "index": index,
            "name": layer.name,
            "tensor": layer.output,
            "input_tensor": layer.inputs[0],
            "out_type": to_ap(layer.out),
            "in_c_type": c_type[layer.inputs[0]],
            "in_c_types": [c_type[t] for t in layer.inputs],
            "srcs": [read(t) for t in layer.inputs],
            "dst": "y" if i == len(exact) - 1 else f"layer{index}_out",
            "size": math.prod(layer.shape),
            "shape": "x".join(map(str, layer.shape)),
            "pack": layer.shape[-1] if stream and len(layer.shape) == 3 else math.prod(layer.shape),
            "weight_type": None,
            "bias_type": None,
            "impl": None,
            "pad": None,
            "alias": False,
        }
        common["src"] = common["srcs"][0]
        entry = common | _kind_context(layer, in_shape, cfg)
        if stream:
            entry |= _stream_context(net, layer, entry, in_shape, stream_len[layer.inputs[0]])
            stream_len[layer.output] = entry["packs"]
        if entry["alias"]:  # io_stream flatten: the dense layers read the pixel stream itself
            var[layer.output], c_type[layer.output] = var[layer.inputs[0]], c_type[layer.inputs[0]]
        else:
            var[layer.output], c_type[layer.output] = entry["dst"], f"layer{index}_t"
        ctx.append(entry | {"clone": clone(layer.output, entry["size"])})
    if stream:
        _set_depths(net, ctx, input_clone)
    return ctx, input_clone


def _check_rounding_reach(layer: Activation) -> None:
    """ap_types rounds by reading the input bit just below the output's last bit; when even the input's
    top bit lies below that one (a tiny scale, e.g. 2**-60), its C simulation aborts on an assertion
    instead. Every such value rounds to zero: the quantizer is a mistake, refused here by name."""
    if layer.out.rounding is not Rounding.TRN and layer.in_type.int_bits + layer.out.frac < 0:
        raise BadInput(
            f"layer {layer.name}: rounds {to_ap(layer.in_type)} to {to_ap(layer.out)}, whose last bit lies above "
            "every bit of its input (all values become 0; ap_types' C simulation cannot compute it): the scales of "
            "the quantizers before it are too small for their bit widths"
        )


def _kind_context(layer, in_shape: tuple[int, ...], cfg: HlsConfig) -> dict:
    """What one layer kind adds to its context: the op, its types and its sizes."""
    match layer:
        case Dense():
            n_mult = layer.n_in * layer.n_out
            if cfg.io == "stream" and len(in_shape) == 3:
                raise BadInput(
                    f"layer {layer.name}: a dense layer on each pixel of {in_shape} has no io_stream "
                    "kernel here (use --io parallel)"
                )
            return {
                "kind": "dense",
                "op": "Dense",
                "in_type": to_ap(layer.in_type),
                "n_in": layer.n_in,
                "n_out": layer.n_out,
                "n_zeros": int(np.count_nonzero(layer.weight == 0)),
                "multiplier_limit": -(-n_mult // cfg.reuse_factor),
                "weight_type": to_ap(layer.weight_type),
                "bias_type": to_ap(layer.bias_type),
            }
        case Threshold():
            return {
                "kind": "threshold",
                "op": f"Threshold ({layer.thresholds.shape[1]} per channel: float ops + quantizer, tabulated)",
                "in_type": to_ap(layer.in_type),
                "n_thresholds": layer.thresholds.shape[1],
                "n_chan": layer.thresholds.shape[0],
            }
        case Activation():
            _check_rounding_reach(layer)
            return {
                "kind": "activation",
                "op": "ReLU + quantize" if layer.relu else "quantize",
                "in_type": to_ap(layer.in_type),
                "relu": layer.relu,
            }
        case Conv():
            kh, kw, cg, f = layer.weight.shape
            return {
                "kind": "conv",
                "op": f"Conv {kh}x{kw}" + (f", {layer.groups} groups" if layer.groups > 1 else ""),
                "in_type": to_ap(layer.in_type),
                "weight_type": to_ap(layer.weight_type),
                "bias_type": to_ap(layer.bias_type),
                **_window(layer, in_shape),
                "n_filt": f,
                "groups": layer.groups,
                "n_zeros": int(np.count_nonzero(layer.weight == 0)),
            }
        case Pool():
            return {
                "kind": "pool",
                "op": f"{'MaxPool' if layer.op == 'max' else 'SumPool'} {layer.kernel[0]}x{layer.kernel[1]}",
                "in_type": to_ap(layer.in_type),
                "is_max": layer.op == "max",
                **_window(layer, in_shape),
            }
        case Reshape():
            return {"kind": "reshape", "op": "Flatten", "in_type": to_ap(layer.in_type)}
        case Add():
            return {"kind": "add", "op": "Add", "in_type": " + ".join(to_ap(t) for t in layer.in_types)}
        case Concat():
            second = (*in_shape[:-1], layer.shape[-1] - in_shape[-1])
            return {
                "kind": "concat",
                "op": "Concat (channels)",
                "in_type": " | ".join(to_ap(t) for t in layer.in_types),
                "dims1": list(in_shape),
                "dims2": list(second),
            }
        case _:
            raise unsupported_layer(layer, "the HLS generator")


def _stream_context(net: Network, layer, entry: dict, in_shape: tuple[int, ...], in_packs: int) -> dict:
    """io_stream: the kernel, the zero padding before it, and the pixels it reads per output
    (``needed``, for the FIFO depths of residual blocks); ``in_packs`` arrays per sample come in."""
    out: dict = {"depth": CHAIN_DEPTH, "in_packs": in_packs, "packs": stream_packs(layer.shape)}
    geometry = None
    match layer:
        case Conv():
            out["impl"] = conv_kernel(layer, in_shape)
            out["op"] = entry["op"] + f" ({out['impl']})"
            geometry = Geometry.of(layer, in_shape)
            if any(layer.pads):  # hls4ml's zeropad2d_cl, then the kernel on the padded image without pads
                pt, pl, pb, pr = layer.pads
                h, w = in_shape[0] + pt + pb, in_shape[1] + pl + pr
                out["pad"] = {"dst": f"layer{entry['index']}_pad", "out_height": h, "out_width": w}
                out["op"] += f", zero pad {pt},{pl},{pb},{pr}"
            out["kernel_src"] = out["pad"]["dst"] if "pad" in out else entry["src"]
        case Pool():
            out["impl"] = pool_kernel(layer, in_shape)
            out["op"] = entry["op"] + f" ({'hls4ml line buffer' if out['impl'] == 'hls4ml' else 'mpq ' + out['impl']})"
            geometry = Geometry.of(layer, in_shape)
        case Reshape():
            out["alias"] = reshape_is_free(net, layer) and layer is not net.exact_layers[-1]
            out["op"] = "Flatten (no code: the dense reads the pixels)" if out["alias"] else "Flatten (repack)"
            if out["alias"]:
                out["pack"] = in_shape[-1] if len(in_shape) == 3 else math.prod(in_shape)
                out["packs"] = out["in_packs"]
    kind = out.get("impl") or (
        "all" if isinstance(layer, Dense) or (isinstance(layer, Reshape) and not out["alias"]) else "elementwise"
    )
    out["needed"] = needed(kind, geometry, out["in_packs"], out["packs"])
    return out


def _set_depths(net: Network, ctx: list[dict], input_clone: dict | None) -> None:
    """FIFO depths: CHAIN_DEPTH, and the Add / Concat inputs after a fork as deep as ``fifo_depths`` says."""
    plans = {
        e["tensor"]: {"needed": e["needed"], "input": None if e["kind"] in MERGES else e["input_tensor"],
                      "packs": e["packs"]}
        for e in ctx
    }  # fmt: skip
    depths = fifo_depths(net, plans)
    by_var: dict[str, int] = {}
    for e in ctx:
        if e["kind"] in MERGES:
            for src, tensor in zip(e["srcs"], net.exact_layers[e["index"] - 2].inputs, strict=True):
                by_var[src] = depths.get(tensor, CHAIN_DEPTH)
    for e in ctx:
        e["depth"] = by_var.get(e["dst"], CHAIN_DEPTH)
        for c in [e["clone"]] if e["clone"] else []:
            for d in c["dsts"]:
                d["depth"] = by_var.get(d["var"], CHAIN_DEPTH)
    for d in input_clone["dsts"] if input_clone else []:
        d["depth"] = by_var.get(d["var"], CHAIN_DEPTH)


def stream_plan(net: Network, reuse_factor: int = 1) -> dict[str, dict]:
    """The io_stream design of ``net`` by layer name (kernel, packs, FIFO depths, pixels needed),
    exactly as generated: the estimator prices this."""
    layers, _ = _layer_context(net, HlsConfig(io="stream", reuse_factor=reuse_factor))
    return {entry["name"]: entry for entry in layers}


def _window(layer: Conv | Pool, shape: tuple[int, ...]) -> dict:
    """A sliding window's geometry, in hls4ml's config names."""
    (h, w, c), (oh, ow, _), (kh, kw), (sh, sw), (pt, pl, pb, pr) = (
        shape, layer.shape, layer.kernel, layer.strides, layer.pads,
    )  # fmt: skip
    return {
        "in_height": h, "in_width": w, "n_chan": c, "out_height": oh, "out_width": ow, "filt_height": kh,
        "filt_width": kw, "stride_height": sh, "stride_width": sw, "pad_top": pt, "pad_left": pl,
        "pad_bottom": pb, "pad_right": pr,
    }  # fmt: skip


def _weight_files(net: Network, layers: list[dict]) -> dict[str, dict]:
    """Constant arrays: Dense weights/biases, Threshold thresholds/values, printed exactly."""
    files = {}
    for layer, ctx in zip(net.exact_layers, layers, strict=True):
        index = ctx["index"]
        if isinstance(layer, Dense | Conv):
            arrays = (
                ("w", layer.weight.ravel(), layer.weight_type, f"weight{index}_t"),
                ("b", layer.bias, layer.bias_type, f"bias{index}_t"),
            )
        elif isinstance(layer, Threshold):
            arrays = (
                ("t", layer.thresholds.ravel(), layer.in_type, ctx["in_c_type"]),
                ("v", layer.values.ravel(), layer.out, f"layer{index}_t"),
            )
        elif isinstance(layer, Activation | Add | Concat | Pool | Reshape):
            continue
        else:
            raise unsupported_layer(layer, "the HLS generator")
        for prefix, values, t, c_type in arrays:
            name = f"{prefix}{index}"
            files[f"firmware/weights/{name}.h"] = {
                "name": name,
                "layer": layer.name,
                "type": to_ap(t),
                "c_type": c_type,
                "guard": f"{name.upper()}_H_",
                "values": [exact_decimal(int(v), t.frac) for v in values],
            }
    return files


def build_context(net: Network, cfg: HlsConfig, model_name: str) -> dict:
    layers, input_clone = _layer_context(net, cfg)
    last = net.layers[-1]
    softmax = None
    if isinstance(last, Softmax):
        softmax = {
            "name": last.name,
            "n": last.n,
            "in_type": to_ap(last.in_type),
            "out_type": to_ap(SOFTMAX_TYPE),
            "exp_type": to_ap(SOFTMAX_TYPE),
            "norm_type": to_ap(FixedType(False, 18, 3, Rounding.RND, Overflow.SAT)),
            "sum_type": to_ap(FixedType(False, 18, max(1, last.n.bit_length()), Rounding.RND, Overflow.SAT)),
            "tolerance": SOFTMAX_TOLERANCE,
        }
    if not layers:
        raise BadInput("the network has no fixed-point layer to generate")
    tool, title = BACKENDS[cfg.backend]
    return {
        "top": cfg.top,
        "n_in": net.input.n,
        "n_out": net.n_out,
        "input_pack": net.input.shape[-1] if cfg.io == "stream" and len(net.input.shape) == 3 else net.input.n,
        "output_pack": layers[-1]["pack"],
        "images": any(la["kind"] in ("conv", "pool") for la in layers),
        "input_name": net.input.name,
        "input_type": to_ap(net.input.out),
        "input_from_model": net.input.from_model,
        "input_clone": input_clone,
        "layers": layers,
        "logits_index": layers[-1]["index"],
        "softmax": softmax,
        "io_type": IO_TYPES[cfg.io],
        "reuse_factor": cfg.reuse_factor,
        "part": cfg.part,
        "clock_ns": cfg.clock_ns,
        "io": cfg.io,
        "backend": cfg.backend,
        "tool": tool,
        "tool_title": title,
        "model_name": model_name,
        "preprocess": [_describe(op) for op in net.preprocess],
        "postprocess": [_describe(op) for op in net.postprocess],
    }


def _describe(op) -> str:
    """A host-side float op for the project README, e.g. ``x * 2`` or ``1.5 - x``."""
    sym = {"Add": "+", "Sub": "-", "Mul": "*", "Div": "/"}[op.op]
    const = np.array2string(op.const.ravel()[:4], separator=", ") + ("..." if op.const.size > 4 else "")
    return f"{const} {sym} x" if op.const_first else f"x {sym} {const}"


def _env(root: Path = TEMPLATES) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(root),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_text(name: str, **ctx: object) -> str:
    """Render a template of ``fpga_mpq/templates`` that is not part of an HLS project (``deployment/README.md.j2``)."""
    return _env(TEMPLATES.parent).get_template(name).render(**ctx)


def write_project(net: Network, cfg: HlsConfig, out: Path, model_name: str) -> None:
    """Render every file of the project into ``out`` (an empty folder)."""
    cfg = cfg.resolved(net)
    ctx = build_context(net, cfg, model_name)
    env = _env()
    renders = {
        "firmware/defines.h": ("firmware/defines.h.j2", ctx),
        "firmware/parameters.h": ("firmware/parameters.h.j2", ctx),
        f"firmware/{cfg.top}.h": ("firmware/top.h.j2", ctx),
        f"firmware/{cfg.top}.cpp": ("firmware/top.cpp.j2", ctx),
        "tb/tb.cpp": ("tb/tb.cpp.j2", ctx),
        "Makefile": ("Makefile.j2", ctx),
        "README.md": ("README.md.j2", ctx),
        "build_vivado_hls.tcl": (
            "build_hls.tcl.j2",
            ctx | {"backend": "vivado", "tool": BACKENDS["vivado"][0], "tool_title": BACKENDS["vivado"][1]},
        ),
        "build_vitis_hls.tcl": (
            "build_hls.tcl.j2",
            ctx | {"backend": "vitis", "tool": BACKENDS["vitis"][0], "tool_title": BACKENDS["vitis"][1]},
        ),
    }
    renders |= {path: ("firmware/weights.h.j2", wctx) for path, wctx in _weight_files(net, ctx["layers"]).items()}
    for path, (template, context) in sorted(renders.items()):
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(env.get_template(template).render(context))
    shutil.copytree(HLS4ML_VIVADO / "nnet_utils", out / "firmware" / "nnet_utils")
    shutil.copytree(HLS4ML_VIVADO / "ap_types", out / "firmware" / "ap_types")
    for header in STATIC_HEADERS:
        shutil.copyfile(TEMPLATES / "firmware" / header, out / "firmware" / header)
    (out / "report").mkdir(exist_ok=True)
