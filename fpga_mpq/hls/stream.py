"""io_stream for images: which kernel each layer uses, and how deep each FIFO must be.

A stream carries one ``nnet::array<T, C>`` per pixel, row-major, channels last (hls4ml's
convention); a vector is one array per sample. Kernels:

* Conv, groups 1: hls4ml's line buffer (``conv_2d_buffer_cl``, what ``conv_2d_cl`` runs for
  ``conv_implementation::linebuffer``); 1x1 kernels hls4ml's ``pointwise_conv_2d_cl`` (the line
  buffer's 1-D path ignores a vertical stride); groups == channels: hls4ml's depthwise line buffer.
  Zero padding is hls4ml's ``zeropad2d_cl`` before the kernel.
* Max pool, window == stride, no padding: hls4ml's line-buffer pooling. Sum pools, other max
  pools and global pools: our exact ``mpq_pool_stream.h`` (hls4ml's average divides by the window).
* A flatten read only by dense layers is no code: the dense reads ``n_in / C`` pixels, as in hls4ml.

FIFO depths: a stream that feeds one layer is 2 deep (a chain never deadlocks). Where a tensor
forks and its branches meet again in an Add, each Add input is as deep as the number of outputs
its branch can produce while the other branch still works towards the output the Add waits for;
computed exactly from each layer's "pixels needed before output j" (``needed``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fpga_mpq.errors import BadInput
from fpga_mpq.ir.network import Add, Concat, Conv, Dense, Network, Pool, Reshape

CHAIN_DEPTH = 2


@dataclass(frozen=True)
class Geometry:
    """A window layer on its (unpadded) input: sizes, kernel, strides, pads."""

    h: int
    w: int
    kh: int
    kw: int
    sh: int
    sw: int
    pads: tuple[int, int, int, int]  # top, left, bottom, right
    oh: int
    ow: int

    @staticmethod
    def of(layer: Conv | Pool, in_shape: tuple[int, ...]) -> Geometry:
        (h, w, _), (oh, ow, _) = in_shape, layer.shape
        return Geometry(h, w, *layer.kernel, *layer.strides, tuple(layer.pads), oh, ow)


def conv_kernel(layer: Conv, in_shape: tuple[int, ...]) -> str:
    """Which hls4ml stream kernel computes this convolution, or an error naming the layer."""
    c, (kh, kw), f = in_shape[-1], layer.kernel, layer.n_out
    if layer.groups == 1:
        if (kh, kw) == (1, 1):
            return "pointwise"
        if kh == 1 and layer.strides[0] > 1:
            raise BadInput(
                f"layer {layer.name}: a 1x{kw} kernel with vertical stride {layer.strides[0]} "
                "has no io_stream kernel (use --io parallel)"
            )
        return "linebuffer"
    if layer.groups == c == f and kh > 1:
        return "depthwise"
    raise BadInput(
        f"layer {layer.name}: {layer.groups} groups on {c} channels ({f} filters, {kh}x{kw}); io_stream takes "
        "groups 1 or depthwise (groups == channels == filters, kernel height > 1); use --io parallel"
    )


def pool_kernel(layer: Pool, in_shape: tuple[int, ...]) -> str:
    """hls4ml's line-buffer max pool where it is exact and applies, else our own kernels."""
    g = Geometry.of(layer, in_shape)
    if (g.oh, g.ow) == (1, 1) and (g.kh, g.kw) == (g.h, g.w) and not any(g.pads):
        return "global"
    if layer.op == "max" and (g.kh, g.kw) == (g.sh, g.sw) and not any(g.pads) and g.kh > 1:
        return "hls4ml"
    return "window"


def _real_pixels_before(g: Geometry, row: np.ndarray, col: np.ndarray) -> np.ndarray:
    """How many real (unpadded) input pixels come at or before padded position (row, col)."""
    pt, pl = g.pads[0], g.pads[1]
    r = row - pt
    full_rows = np.clip(r, 0, g.h)
    in_row = np.where((r >= 0) & (r < g.h), np.clip(col - pl + 1, 0, g.w), 0)
    return full_rows * g.w + in_row


def needed(impl: str, g: Geometry | None, in_packs: int, out_packs: int) -> np.ndarray:
    """``needed[j]``: input packs a layer must have read before it can write output pack ``j``
    (``impl``: a window kernel's name, "all" for a layer that reads everything first, else elementwise)."""
    if g is None:
        if impl == "all":
            return np.full(out_packs, in_packs, dtype=np.int64)
        return np.arange(1, out_packs + 1, dtype=np.int64)  # elementwise: pixel for pixel
    oh, ow = np.divmod(np.arange(g.oh * g.ow), g.ow)
    last_row = oh * g.sh + g.kh - 1  # padded coordinates of the window's bottom-right pixel
    last_col = ow * g.sw + g.kw - 1
    if impl == "global":
        return np.full(1, g.h * g.w, dtype=np.int64)
    if impl == "window":  # our pool writes a row of outputs once its last input row is complete
        return (np.clip(last_row - g.pads[0], 0, g.h - 1) + 1) * g.w
    return _real_pixels_before(g, last_row, last_col)  # line buffers write as the window completes


def compose(first: np.ndarray, then: np.ndarray) -> np.ndarray:
    """``needed`` of two layers in a row: ``then`` reads what ``first`` writes."""
    return first[then - 1]


def fifo_depths(net: Network, plans: dict[str, dict]) -> dict[str, int]:
    """Depth of every Add or Concat input stream that follows a fork, keyed by tensor name (others: CHAIN_DEPTH).

    ``plans`` maps each layer's output tensor to its ``needed`` array and its input tensor.
    """
    readers: dict[str, int] = {}
    for layer in net.exact_layers:
        for t in layer.inputs:
            readers[t] = readers.get(t, 0) + 1
    depths: dict[str, int] = {}
    for layer in net.exact_layers:
        if not isinstance(layer, Add | Concat):
            continue
        branches = [_branch(t, readers, plans) for t in layer.inputs]
        n = plans[layer.output]["packs"]
        for i, (fork, need) in enumerate(branches):
            other_fork, other_need = branches[1 - i]
            t = layer.inputs[i]
            if fork is None or fork != other_fork:
                depths[t] = max(CHAIN_DEPTH, n)  # no common fork found: the whole tensor, always safe
                continue
            made = np.searchsorted(need, other_need, side="right")  # outputs ready when the other needs j
            depths[t] = max(CHAIN_DEPTH, int(np.max(made - np.arange(len(other_need)))))
    return depths


def _branch(tensor: str, readers: dict[str, int], plans: dict[str, dict]) -> tuple[str | None, np.ndarray]:
    """Walk back from an Add input to the tensor that forks: (fork tensor, composed ``needed``)."""
    need = np.arange(1, plans[tensor]["packs"] + 1, dtype=np.int64)
    while readers.get(tensor, 0) <= 1:
        plan = plans.get(tensor)
        if plan is None or plan["input"] is None:  # the network input, or a layer of two inputs
            return None, need
        need = compose(plan["needed"], need)
        tensor = plan["input"]
    return tensor, need


def line_buffer_bits(layer: Conv | Pool, in_shape: tuple[int, ...], bits: int) -> int:
    """(kh - 1) rows of the padded input width, every channel: what a line-buffer kernel stores."""
    g = Geometry.of(layer, in_shape)
    return (g.kh - 1) * (g.w + g.pads[1] + g.pads[3]) * in_shape[-1] * bits


def packs(shape: tuple[int, ...]) -> int:
    """Stream elements per sample: one per pixel for an image, one for a vector."""
    return math.prod(shape[:-1]) if len(shape) == 3 else 1


def reshape_is_free(net: Network, layer: Reshape) -> bool:
    """A flatten read only by dense layers (and not the output) needs no code in io_stream."""
    users = [la for la in net.exact_layers if layer.output in la.inputs]
    return bool(users) and all(isinstance(la, Dense) for la in users)
