"""The exact IR: a graph of named, shaped tensors, every value typed with a ``FixedType``.

A tensor is a name, a shape without the batch (``(C,)``, ``(L, C)``, ``(H, W, C)``: channels last)
and a type. A layer names the tensors it reads and the one it writes; layers are kept in
topological order, so fan-out and two-input layers (``Add``) are ordinary. The network checks
this once, when it is built: every stage can then walk ``layers`` with an environment keyed by
tensor name.

Constants are integer mantissas plus the fraction bits of their type, so nothing downstream ever
sees a float weight. Accumulator types are derived from operand ranges and fan-in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from fpga_mpq.errors import BadInput
from fpga_mpq.ir.quant_nodes import QuantParams
from fpga_mpq.ir.types import FixedType, type_for_range

# A fully parallel layer this wide is far beyond any FPGA; the cap (for a spec or a model file) stops
# a typo (units: 100000000) from allocating gigabytes of weights before anything else can complain.
MAX_UNITS = 65_536  # outputs of one layer
MAX_WEIGHTS = 2**24  # weights of one layer (64 MB of float32; training keeps a few copies)


@dataclass(frozen=True)
class Tensor:
    """A value in the graph: ``shape`` excludes the batch, the last axis is the channel."""

    name: str
    shape: tuple[int, ...]
    type: FixedType

    @property
    def size(self) -> int:
        return math.prod(self.shape)


class _Sized:
    """Sizes of a layer's output, from its ``shape`` (channels last)."""

    shape: tuple[int, ...]

    @property
    def n(self) -> int:
        return math.prod(self.shape)

    @property
    def n_out(self) -> int:
        return self.shape[-1]


class _Unary(_Sized):
    """A layer reading one tensor, ``input``."""

    input: str

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.input,)


@dataclass(frozen=True)
class InputQuant(_Sized):
    """The float input cast to the hardware input type (the model's first quantizer, or a declared type)."""

    name: str  # the quantizer node (or the graph input, when the type was declared)
    output: str  # the tensor it writes
    shape: tuple[int, ...]
    out: FixedType
    from_model: bool  # False when the model had no input quantizer and the type was declared
    host_quant: QuantParams | None = None  # a quantizer no ap_fixed cast implements: the host applies it
    # A channels-last network reads the model's input (e.g. NCHW, ``model_shape`` without the
    # batch) transposed by ``perm``; the host does it, so the hardware sees pixels in order.
    model_shape: tuple[int, ...] = ()
    perm: tuple[int, ...] = ()


@dataclass(frozen=True)
class Dense(_Unary):
    """``y = x @ weight + bias`` along the last axis, computed exactly into ``out`` (the accumulator type)."""

    name: str
    input: str
    output: str
    shape: tuple[int, ...]  # of the output
    in_type: FixedType
    weight: np.ndarray  # int64 (n_in, n_out) mantissas of weight_type
    weight_type: FixedType
    bias: np.ndarray  # int64 (n_out,) mantissas of bias_type
    bias_type: FixedType
    out: FixedType

    @property
    def n_in(self) -> int:
        return self.weight.shape[0]

    @property
    def n_out(self) -> int:
        return self.weight.shape[1]


@dataclass(frozen=True)
class Activation(_Unary):
    """Optional ReLU, then a cast to ``out`` with its rounding and overflow modes (a QONNX Quant)."""

    name: str
    input: str
    output: str
    shape: tuple[int, ...]
    in_type: FixedType
    relu: bool
    out: FixedType


@dataclass(frozen=True)
class Threshold(_Unary):
    """Any monotone-per-channel requantisation (BatchNorm, scale Mul/Div/Sub, float-scale or bipolar
    quantizers) as exact integer thresholds on the accumulator, FINN-style.

    Channel ``c`` (the last axis) outputs ``values[c, k]`` where ``k`` counts the thresholds
    ``t <= x`` in ``thresholds[c]`` (ascending).
    """

    name: str
    input: str
    output: str
    shape: tuple[int, ...]
    in_type: FixedType
    thresholds: np.ndarray  # int64 (channels, k) mantissas of in_type, ascending per row
    values: np.ndarray  # int64 (channels, k + 1) mantissas of out
    out: FixedType


@dataclass(frozen=True)
class _Merge(_Sized):
    """A layer reading two tensors, ``inputs``, of types ``in_types``."""

    name: str
    inputs: tuple[str, str]
    output: str
    shape: tuple[int, ...]
    in_types: tuple[FixedType, FixedType]
    out: FixedType


@dataclass(frozen=True)
class Add(_Merge):
    """The exact sum of two tensors of one shape (a residual connection): ``out`` holds every sum."""


@dataclass(frozen=True)
class Concat(_Merge):
    """Two tensors side by side along the channels (an inception block, a U-Net skip): each input's
    values exactly, on ``out``'s grid, which holds both types."""


@dataclass(frozen=True)
class Conv(_Unary):
    """2-D convolution, channels last: ``(H, W, C) -> (OH, OW, F)`` computed exactly into ``out``.

    ``pads`` are (top, left, bottom, right) zeros; ``groups`` splits the channels (``groups == C``
    is depthwise). A 1-D convolution is the case ``H == 1``.
    """

    name: str
    input: str
    output: str
    shape: tuple[int, ...]
    in_type: FixedType
    weight: np.ndarray  # int64 (KH, KW, C // groups, F) mantissas of weight_type
    weight_type: FixedType
    bias: np.ndarray  # int64 (F,) mantissas of bias_type
    bias_type: FixedType
    out: FixedType
    strides: tuple[int, int]
    pads: tuple[int, int, int, int]
    groups: int

    @property
    def kernel(self) -> tuple[int, int]:
        return self.weight.shape[0], self.weight.shape[1]

    @property
    def n_out(self) -> int:
        return self.weight.shape[3]


@dataclass(frozen=True)
class Pool(_Unary):
    """Max or sum over windows, channels last; a sum is exact (an average pool's division by the
    window size travels on as a scale to the next quantizer)."""

    name: str
    input: str
    output: str
    shape: tuple[int, ...]
    in_type: FixedType
    out: FixedType
    op: str  # "max" or "sum"
    kernel: tuple[int, int]
    strides: tuple[int, int]
    pads: tuple[int, int, int, int]  # max: padding never wins; sum: zeros


@dataclass(frozen=True)
class Reshape(_Unary):
    """A channels-last tensor read as one flat vector (a Flatten before a dense layer): no arithmetic."""

    name: str
    input: str
    output: str
    shape: tuple[int, ...]
    in_type: FixedType

    @property
    def out(self) -> FixedType:
        return self.in_type


@dataclass(frozen=True)
class Softmax(_Unary):
    """Final softmax: not fixed-point exact in any tool; compared with a stated tolerance."""

    name: str
    input: str
    output: str
    shape: tuple[int, ...]
    in_type: FixedType


Layer = Dense | Conv | Pool | Reshape | Activation | Threshold | Add | Concat | Softmax
ExactLayer = Dense | Conv | Pool | Reshape | Activation | Threshold | Add | Concat


@dataclass(frozen=True)
class FloatOp:
    """An elementwise float32 op with a constant, run on the host before the input quantizer or
    after the last fixed-point tensor, exactly as ONNX runs it (IEEE float32, correctly rounded)."""

    op: str  # Add, Sub, Mul, Div
    const: np.ndarray  # float32, broadcastable
    const_first: bool  # Sub(c, x) / Div(c, x)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        a, b = (self.const, x) if self.const_first else (x, self.const)
        fn = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[self.op]
        return fn(a.astype(np.float32), b.astype(np.float32)).astype(np.float32)


def input_types(layer: Layer) -> tuple[FixedType, ...]:
    """The types a layer reads, one per name in ``layer.inputs``."""
    return layer.in_types if isinstance(layer, _Merge) else (layer.in_type,)


@dataclass(frozen=True)
class Network:
    """Layers in topological order from the input tensor; the last layer writes the output."""

    input: InputQuant
    layers: tuple[Layer, ...]
    preprocess: tuple[FloatOp, ...] = ()  # host-side, before the input quantizer
    postprocess: tuple[FloatOp, ...] = ()  # host-side, after the last fixed-point tensor
    # An unquantized final layer on float scales: the hardware outputs integer accumulators whose
    # real value is mantissa x head_scale[c] (exact rationals); the host multiplies in float32.
    head_scale: tuple[Fraction, ...] | None = None
    # A bias off that accumulator's grid (a float bias, Brevitas' default): the host adds it in float32
    # after the scale. Comparison with qonnx: round((qonnx_output - head_bias) / head_scale) == integer.
    head_bias: tuple[float, ...] | None = None
    # (layer name, the PyTorch module it came from), where the export recorded it: what tables show
    modules: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        """The graph is well formed: reads follow writes, types and shapes agree, nothing is dead."""
        if not self.layers:
            raise BadInput("the network has no layers")
        known = {self.input.output: Tensor(self.input.output, tuple(self.input.shape), self.input.out)}
        read: set[str] = set()
        for i, layer in enumerate(self.layers):
            for name, t in zip(layer.inputs, input_types(layer), strict=True):
                if name not in known:
                    raise BadInput(f"layer {layer.name}: input {name} is not written by an earlier layer")
                if known[name].type != t:
                    raise BadInput(f"layer {layer.name}: input {name} is {known[name].type}, the layer reads {t}")
                read.add(name)
            expected = _output_shape(layer, [known[name].shape for name in layer.inputs])
            if expected != tuple(layer.shape):
                raise BadInput(f"layer {layer.name}: output shape {layer.shape}, its inputs give {expected}")
            if layer.output in known:
                raise BadInput(f"layer {layer.name}: tensor {layer.output} is written twice")
            if isinstance(layer, Softmax) and i != len(self.layers) - 1:
                raise BadInput(f"layer {layer.name}: a softmax is only supported as the last layer")
            if not isinstance(layer, Softmax):
                known[layer.output] = Tensor(layer.output, tuple(layer.shape), layer.out)
        dead = [name for name in known if name not in read and name != self.exact_layers[-1].output]
        if dead:
            raise BadInput(f"tensor {dead[0]} is computed but never used")

    @property
    def tensors(self) -> dict[str, Tensor]:
        """Every fixed-point tensor by name, the input first, in topological order."""
        first = Tensor(self.input.output, tuple(self.input.shape), self.input.out)
        return {first.name: first} | {la.output: Tensor(la.output, tuple(la.shape), la.out) for la in self.exact_layers}

    @property
    def n_out(self) -> int:
        return math.prod(self.layers[-1].shape)

    @property
    def exact_layers(self) -> tuple[ExactLayer, ...]:
        """The layers whose outputs are fixed point (everything before a final softmax)."""
        return tuple(la for la in self.layers if not isinstance(la, Softmax))

    @property
    def is_chain(self) -> bool:
        """Each layer reads the previous one's output only (no fan-out, no two-input layers)."""
        prev = self.input.output
        for layer in self.layers:
            if tuple(layer.inputs) != (prev,):
                return False
            prev = layer.output
        return True


def _output_shape(layer: Layer, in_shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    """What a layer's output shape must be; a kind no stage knows keeps its own (the stages refuse it)."""
    if isinstance(layer, Dense):
        if in_shapes[0][-1] != layer.n_in:
            raise BadInput(f"layer {layer.name}: {layer.n_in} weight rows for input shape {in_shapes[0]}")
        return (*in_shapes[0][:-1], layer.n_out)
    if isinstance(layer, Conv | Pool):
        return window_shape(layer, in_shapes[0])
    if isinstance(layer, Reshape):
        if math.prod(in_shapes[0]) != math.prod(layer.shape):
            raise BadInput(f"layer {layer.name}: reshapes {in_shapes[0]} to {layer.shape}")
        return tuple(layer.shape)
    if isinstance(layer, Concat):
        if in_shapes[0][:-1] != in_shapes[1][:-1]:
            raise BadInput(f"layer {layer.name}: concatenates shapes {in_shapes[0]} and {in_shapes[1]}")
        return (*in_shapes[0][:-1], in_shapes[0][-1] + in_shapes[1][-1])
    if isinstance(layer, Add):
        if in_shapes[0] != in_shapes[1]:
            raise BadInput(f"layer {layer.name}: adds shapes {in_shapes[0]} and {in_shapes[1]}")
        return in_shapes[0]
    if isinstance(layer, Threshold) and layer.thresholds.shape[0] != in_shapes[0][-1]:
        raise BadInput(f"layer {layer.name}: {layer.thresholds.shape[0]} threshold rows for shape {in_shapes[0]}")
    if isinstance(layer, Activation | Threshold | Softmax):
        return in_shapes[0]
    return tuple(layer.shape)


def window_out(size: int, kernel: int, stride: int, pad_before: int, pad_after: int) -> int:
    """Output length of a sliding window (ONNX floor mode)."""
    return (size + pad_before + pad_after - kernel) // stride + 1


def window_shape(layer: Conv | Pool, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The output shape of a convolution or pool on ``shape`` (H, W, C), or an error naming the layer."""
    if len(shape) != 3:
        raise BadInput(f"layer {layer.name}: input shape {shape} is not (H, W, C)")
    (h, w, c), (kh, kw), (sh, sw), (pt, pl, pb, pr) = shape, layer.kernel, layer.strides, layer.pads
    oh, ow = window_out(h, kh, sh, pt, pb), window_out(w, kw, sw, pl, pr)
    if oh < 1 or ow < 1:
        raise BadInput(f"layer {layer.name}: a {kh}x{kw} window does not fit input {shape} with pads {layer.pads}")
    if isinstance(layer, Conv):
        if c % layer.groups or layer.weight.shape[2] * layer.groups != c or layer.n_out % layer.groups:
            weight = layer.weight.shape
            raise BadInput(f"layer {layer.name}: weight {weight} and {layer.groups} groups for {c} channels")
        return (oh, ow, layer.n_out)
    return (oh, ow, c)


def unsupported_layer(layer: object, stage: str) -> BadInput:
    """The error every stage raises for a layer kind it does not know: never a silent pass-through."""
    name = getattr(layer, "name", "?")
    return BadInput(f"layer {name}: kind {type(layer).__name__} is not supported by {stage}")


def accumulator_type(in_type: FixedType, weight: np.ndarray, w_frac: int, bias: np.ndarray, b_frac: int) -> FixedType:
    """Tightest exact type for ``x @ w + b`` over every input in ``in_type``'s range.

    Works on the actual weight values, so zero weights and small columns narrow it.
    """
    frac = max(in_type.frac + w_frac, b_frac)
    w = weight.astype(object) * 2 ** (frac - in_type.frac - w_frac)
    b = bias.astype(object) * 2 ** (frac - b_frac)
    lo_x, hi_x = in_type.min_int, in_type.max_int
    hi = b + np.where(w > 0, w * hi_x, w * lo_x).sum(axis=0)
    lo = b + np.where(w > 0, w * lo_x, w * hi_x).sum(axis=0)
    return type_for_range(int(min(lo.min(), 0)), int(max(hi.max(), 0)), frac)


def sum_type(a: FixedType, b: FixedType) -> FixedType:
    """Tightest exact type for ``a + b``: the finer grid, the sum of the ranges."""
    frac = max(a.frac, b.frac)
    lo = (a.min_int << (frac - a.frac)) + (b.min_int << (frac - b.frac))
    hi = (a.max_int << (frac - a.frac)) + (b.max_int << (frac - b.frac))
    return type_for_range(min(lo, 0), max(hi, 0), frac)


def concat_type(a: FixedType, b: FixedType) -> FixedType:
    """Tightest type holding every value of ``a`` and of ``b`` exactly: the finer grid, both ranges."""
    frac = max(a.frac, b.frac)
    lo = min(a.min_int << (frac - a.frac), b.min_int << (frac - b.frac))
    hi = max(a.max_int << (frac - a.frac), b.max_int << (frac - b.frac))
    return type_for_range(min(lo, 0), max(hi, 0), frac)


def check_reuse_factor(net: Network, reuse_factor: int) -> None:
    """hls4ml shares each multiplier ``reuse_factor`` times: it must divide every dense layer."""
    if reuse_factor < 1:
        raise BadInput(f"reuse factor {reuse_factor} must be at least 1")
    for layer in net.layers:
        if isinstance(layer, Dense) and (layer.n_in * layer.n_out) % reuse_factor:
            raise BadInput(
                f"reuse factor {reuse_factor} does not divide layer {layer.name} "
                f"({layer.n_in}x{layer.n_out} = {layer.n_in * layer.n_out} multiplications)"
            )
