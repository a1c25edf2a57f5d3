"""The spec: an architecture and the bit-width of every quantizer in it, read by every stage.

A YAML file. An MLP is a list of dense layers (``type`` may be left out)::

    input: {bits: 8, signed: false}
    layers:            # hidden layers end in a ReLU, the last one in a signed output quantizer
      - {units: 32, weight_bits: 6, bias_bits: 16, act_bits: 6}
      - {units: 10, weight_bits: 3, bias_bits: 16, act_bits: 8}

A CNN names each layer's type (channels-last images, Brevitas modules in the same order)::

    data: fashion                            # optional: the built-in data set it is made for
    training: {epochs: 8, batch_size: 64}    # optional: defaults for train / flow / search
    input: {bits: 8, signed: false}
    layers:
      - {type: conv, filters: 16, kernel: 3, padding: 1, batchnorm: true,
         weight_bits: 4, bias_bits: 16, act_bits: 4}
      - {type: maxpool, kernel: 2}
      - {type: residual, add_bits: 6, act_bits: 4,     # out = ReLU(q(body(x)) + q(shortcut(x)))
         body: [{type: conv, ...,  act_bits: 4}, {type: conv, ...}],  # the last conv has no act_bits
         shortcut: []}                                 # [] is the identity, else convs as in body
      - {type: avgpool, kernel: 2, act_bits: 6}        # avgpool / globalavgpool requantize: act_bits
      - {type: flatten}
      - {type: dense, units: 10, weight_bits: 4, bias_bits: 16, act_bits: 8}
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import yaml

from fpga_mpq.errors import BadInput, shown
from fpga_mpq.ir.network import MAX_UNITS, MAX_WEIGHTS

# 2 at least: Brevitas exports a 1-bit quantizer as a bipolar one (+-scale), not the 0 / scale it trains
MIN_BITS, MAX_BITS = 2, 32
MAX_KERNEL = 15
BUILTIN_DATA = ("digits", "fashion", "digits-quality", "fashion-quality")
_TOP_KEYS = {"input", "layers", "data", "training"}
_OPTIONAL_TOP = {"data", "training"}
_TRAINING_KEYS = {"epochs", "batch_size", "lr"}


@dataclass(frozen=True)
class LayerSpec:
    """A dense layer: ``units`` outputs, then (hidden) optional BatchNorm and a quantized ReLU, or
    (last) a signed output quantizer."""

    units: int
    weight_bits: int
    bias_bits: int
    act_bits: int
    batchnorm: bool = False
    kind = "dense"


@dataclass(frozen=True)
class ConvSpec:
    """A 2-D convolution (square kernel, zero padding), optional BatchNorm, then a quantized ReLU.

    ``act_bits`` is ``None`` only for a conv whose output goes straight into a residual Add.
    """

    filters: int
    kernel: int
    weight_bits: int
    bias_bits: int
    act_bits: int | None
    stride: int = 1
    padding: int = 0
    groups: int = 1
    batchnorm: bool = False
    kind = "conv"


@dataclass(frozen=True)
class PoolSpec:
    """``maxpool`` (no requantizer), ``avgpool`` (an exact sum, then a quantizer of ``act_bits``),
    or ``globalavgpool`` (the mean over the whole image, then ``act_bits``)."""

    kind: str
    kernel: int = 0  # 0 for globalavgpool
    stride: int = 0  # 0 for globalavgpool
    act_bits: int | None = None


@dataclass(frozen=True)
class FlattenSpec:
    """An image read as one vector (channels last), before a dense layer."""

    kind = "flatten"


@dataclass(frozen=True)
class ResidualSpec:
    """``ReLU_act(q_add(body(x)) + q_add(shortcut(x)))``: both inputs of the Add share one signed
    quantizer of ``add_bits`` (Brevitas needs one scale on both sides); an empty shortcut is ``x``."""

    body: tuple[ConvSpec, ...]
    shortcut: tuple[ConvSpec, ...]
    add_bits: int
    act_bits: int
    kind = "residual"


Layer = LayerSpec | ConvSpec | PoolSpec | FlattenSpec | ResidualSpec
POOL_KINDS = ("maxpool", "avgpool", "globalavgpool")


@dataclass(frozen=True)
class Training:
    """A spec's own training defaults (a 60k-image data set wants fewer, larger batches than digits)."""

    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None


@dataclass(frozen=True)
class Spec:
    input_bits: int
    input_signed: bool
    layers: tuple[Layer, ...]
    data: str | None = None
    training: Training = Training()

    @property
    def is_mlp(self) -> bool:
        """Dense layers only: the data is read as vectors (images flattened on the host)."""
        return all(isinstance(la, LayerSpec) for la in self.layers)

    def weighted(self) -> list[LayerSpec | ConvSpec]:
        """Every conv and dense layer in execution order (residual body, then shortcut)."""
        out: list[LayerSpec | ConvSpec] = []
        for la in self.layers:
            if isinstance(la, ResidualSpec):
                out += [*la.body, *la.shortcut]
            elif isinstance(la, LayerSpec | ConvSpec):
                out.append(la)
        return out

    def to_dict(self) -> dict:
        d: dict = {}
        if self.data is not None:
            d["data"] = self.data
        training = {f.name: getattr(self.training, f.name) for f in fields(Training)}
        training = {k: v for k, v in training.items() if v is not None}
        if training:
            d["training"] = training
        d["input"] = {"bits": self.input_bits, "signed": self.input_signed}
        d["layers"] = [_layer_to_dict(la, self.is_mlp) for la in self.layers]
        return d


def _layer_to_dict(la: Layer, mlp: bool) -> dict:
    """MLP layers keep the original four keys, so MLP spec files round-trip unchanged."""
    match la:
        case LayerSpec():
            d = {"units": la.units, "weight_bits": la.weight_bits, "bias_bits": la.bias_bits, "act_bits": la.act_bits}
            if la.batchnorm:
                d["batchnorm"] = True
            return d if mlp else {"type": "dense", **d}
        case ConvSpec():
            d = {"type": "conv", "filters": la.filters, "kernel": la.kernel, "stride": la.stride}
            d |= {"padding": la.padding, "groups": la.groups, "batchnorm": la.batchnorm}
            d |= {"weight_bits": la.weight_bits, "bias_bits": la.bias_bits}
            return d if la.act_bits is None else d | {"act_bits": la.act_bits}
        case PoolSpec():
            d = {"type": la.kind}
            if la.kind != "globalavgpool":
                d |= {"kernel": la.kernel, "stride": la.stride}
            return d if la.act_bits is None else d | {"act_bits": la.act_bits}
        case FlattenSpec():
            return {"type": "flatten"}
        case ResidualSpec():
            return {
                "type": "residual",
                "body": [_layer_to_dict(c, False) for c in la.body],
                "shortcut": [_layer_to_dict(c, False) for c in la.shortcut],
                "add_bits": la.add_bits,
                "act_bits": la.act_bits,
            }
    raise AssertionError(f"unknown layer {la!r}")


DEFAULT_SPEC = Spec(
    input_bits=8,
    input_signed=False,
    layers=(
        LayerSpec(units=32, weight_bits=6, bias_bits=16, act_bits=6),
        LayerSpec(units=32, weight_bits=4, bias_bits=16, act_bits=4),
        LayerSpec(units=10, weight_bits=3, bias_bits=16, act_bits=8),
    ),
)


def _bits(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_BITS <= value <= MAX_BITS:
        raise BadInput(
            f"spec: {where} = {shown(value)} is not a bit-width in {MIN_BITS}..{MAX_BITS}"
            + (" (Brevitas exports a 1-bit quantizer as a bipolar one, never exact)" if value == 1 else "")
        )
    return value


def _int(value: object, where: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise BadInput(f"spec: {where} = {shown(value)} must be a whole number in {lo}..{hi}")
    return value


def _flag(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise BadInput(f"spec: {where} = {shown(value)} must be true or false")
    return value


def _check_keys(d: object, required: set[str], where: str, optional: set[str] = frozenset()) -> dict:
    if not isinstance(d, dict):
        raise BadInput(f"spec: {where} must be a mapping, got {type(d).__name__}")
    for key in d:
        if not isinstance(key, str):
            raise BadInput(f"spec: key {shown(key)} in {where} is not a name")
    allowed = required | optional
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise BadInput(f"spec: unknown key {shown(unknown[0])} in {where} (allowed: {', '.join(sorted(allowed))})")
    missing = sorted(required - set(d))
    if missing:
        raise BadInput(f"spec: missing key {shown(missing[0])} in {where}")
    return d


_DENSE = {"units", "weight_bits", "bias_bits", "act_bits"}
_CONV = {"filters", "kernel", "weight_bits", "bias_bits"}
_CONV_OPTIONAL = {"stride", "padding", "groups", "batchnorm", "act_bits"}


def _dense(raw: dict, where: str) -> LayerSpec:
    d = _check_keys(raw, _DENSE, where, {"type", "batchnorm"})
    units = _int(d["units"], f"{where}.units", 1, 2**63)
    if units > MAX_UNITS:
        raise BadInput(f"spec: {where}.units = {units} is more than the {MAX_UNITS} units a layer may have")
    return LayerSpec(
        units=units,
        weight_bits=_bits(d["weight_bits"], f"{where}.weight_bits"),
        bias_bits=_bits(d["bias_bits"], f"{where}.bias_bits"),
        act_bits=_bits(d["act_bits"], f"{where}.act_bits"),
        batchnorm=_flag(d.get("batchnorm", False), f"{where}.batchnorm"),
    )


def _conv(raw: dict, where: str, in_residual: bool = False) -> ConvSpec:
    d = _check_keys(raw, _CONV, where, {"type"} | _CONV_OPTIONAL)
    if d.get("type", "conv") != "conv":
        raise BadInput(f"spec: {where}.type = {shown(d['type'])}: a residual branch holds convs only")
    kernel = _int(d["kernel"], f"{where}.kernel", 1, MAX_KERNEL)
    act = d.get("act_bits")
    if act is None and not in_residual:
        raise BadInput(f"spec: missing key 'act_bits' in {where}")
    return ConvSpec(
        filters=_int(d["filters"], f"{where}.filters", 1, MAX_UNITS),
        kernel=kernel,
        weight_bits=_bits(d["weight_bits"], f"{where}.weight_bits"),
        bias_bits=_bits(d["bias_bits"], f"{where}.bias_bits"),
        act_bits=None if act is None else _bits(act, f"{where}.act_bits"),
        stride=_int(d.get("stride", 1), f"{where}.stride", 1, MAX_KERNEL),
        padding=_int(d.get("padding", 0), f"{where}.padding", 0, kernel - 1),
        groups=_int(d.get("groups", 1), f"{where}.groups", 1, MAX_UNITS),
        batchnorm=_flag(d.get("batchnorm", False), f"{where}.batchnorm"),
    )


def _pool(raw: dict, where: str, kind: str) -> PoolSpec:
    if kind == "globalavgpool":
        d = _check_keys(raw, {"type", "act_bits"}, where)
        return PoolSpec(kind, act_bits=_bits(d["act_bits"], f"{where}.act_bits"))
    required = {"type", "kernel"} | ({"act_bits"} if kind == "avgpool" else set())
    d = _check_keys(raw, required, where, {"stride"})
    kernel = _int(d["kernel"], f"{where}.kernel", 1, MAX_KERNEL)
    act = _bits(d["act_bits"], f"{where}.act_bits") if kind == "avgpool" else None
    return PoolSpec(kind, kernel, _int(d.get("stride", kernel), f"{where}.stride", 1, MAX_KERNEL), act)


def _branch(raw: object, where: str) -> tuple[ConvSpec, ...]:
    if not isinstance(raw, list):
        raise BadInput(f"spec: {where} must be a list of convs")
    convs = tuple(_conv(c, f"{where}[{i}]", in_residual=True) for i, c in enumerate(raw))
    for i, c in enumerate(convs):
        last = i == len(convs) - 1
        if last and c.act_bits is not None:
            raise BadInput(f"spec: {where}[{i}] feeds the Add, whose quantizer is add_bits: remove its act_bits")
        if not last and c.act_bits is None:
            raise BadInput(f"spec: missing key 'act_bits' in {where}[{i}]")
    return convs


def _residual(raw: dict, where: str) -> ResidualSpec:
    d = _check_keys(raw, {"type", "body", "shortcut", "add_bits", "act_bits"}, where)
    body = _branch(d["body"], f"{where}.body")
    if not body:
        raise BadInput(f"spec: {where}.body needs at least one conv")
    return ResidualSpec(
        body,
        _branch(d["shortcut"], f"{where}.shortcut"),
        _bits(d["add_bits"], f"{where}.add_bits"),
        _bits(d["act_bits"], f"{where}.act_bits"),
    )


def _layer(raw: object, where: str) -> Layer:
    if not isinstance(raw, dict):
        raise BadInput(f"spec: {where} must be a mapping, got {type(raw).__name__}")
    kind = raw.get("type", "dense")
    match kind:
        case "dense":
            return _dense(raw, where)
        case "conv":
            return _conv(raw, where)
        case "maxpool" | "avgpool" | "globalavgpool":
            return _pool(raw, where, kind)
        case "flatten":
            _check_keys(raw, {"type"}, where)
            return FlattenSpec()
        case "residual":
            return _residual(raw, where)
    kinds = "dense, conv, maxpool, avgpool, globalavgpool, flatten, residual"
    raise BadInput(f"spec: {where}.type = {shown(kind)} is not a layer type ({kinds})")


def _training(raw: object) -> Training:
    d = _check_keys(raw, set(), "training", _TRAINING_KEYS)
    lr = d.get("lr")
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, int | float) or not 0 < lr < 10):
        raise BadInput(f"spec: training.lr = {shown(lr)} must be a positive learning rate below 10")
    return Training(
        epochs=None if "epochs" not in d else _int(d["epochs"], "training.epochs", 0, 100_000),
        batch_size=None if "batch_size" not in d else _int(d["batch_size"], "training.batch_size", 1, 65_536),
        lr=None if lr is None else float(lr),
    )


def _check_order(layers: tuple[Layer, ...]) -> None:
    """What the Brevitas model and the hardware need: images before vectors, a dense last."""
    if all(isinstance(la, LayerSpec) for la in layers):
        return  # an MLP: the data is read as vectors
    flat = False
    for i, la in enumerate(layers):
        where = f"layers[{i}]"
        if isinstance(la, FlattenSpec):
            if flat:
                raise BadInput(f"spec: {where} flattens a vector: the input is already flat there")
            flat = True
        elif isinstance(la, ConvSpec | PoolSpec | ResidualSpec) and flat:
            raise BadInput(f"spec: {where} ({la.kind}) needs an image, but a flatten comes before it")
        elif isinstance(la, LayerSpec) and not flat:
            raise BadInput(f"spec: {where} (dense) reads an image: put a {{type: flatten}} before it")
    if not isinstance(layers[-1], LayerSpec):
        raise BadInput(f"spec: the last layer is {layers[-1].kind}; a network ends in a dense layer (the classes)")


def spec_from_dict(d: object) -> Spec:
    """Validate a parsed spec, naming the first wrong key."""
    d = _check_keys(d, _TOP_KEYS - _OPTIONAL_TOP, "the top level", _OPTIONAL_TOP)
    inp = _check_keys(d["input"], {"bits"}, "input", {"signed"})
    signed = _flag(inp.get("signed", False), "input.signed")
    data = d.get("data")
    if data is not None and data not in BUILTIN_DATA:
        raise BadInput(f"spec: data = {shown(data)} is not a built-in data set ({', '.join(BUILTIN_DATA)})")
    if not isinstance(d["layers"], list) or not d["layers"]:
        raise BadInput("spec: layers must be a non-empty list")
    layers = tuple(_layer(raw, f"layers[{i}]") for i, raw in enumerate(d["layers"]))
    _check_order(layers)
    units = [la.units for la in layers if isinstance(la, LayerSpec)]
    for i in range(1, len(units)):
        if units[i - 1] * units[i] > MAX_WEIGHTS:
            raise BadInput(
                f"spec: layers[{i}] needs {units[i - 1]} x {units[i]} weights, more than the {MAX_WEIGHTS} allowed"
            )
    training = _training(d["training"]) if "training" in d else Training()
    return Spec(_bits(inp["bits"], "input.bits"), signed, layers, data, training)


MAX_SPEC_BYTES = 1 << 20


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load keeps the last of two equal keys silently; a spec with one is a mistake. An alias
    (``*name``) is refused too: a spec needs none, and nested aliases expand beyond any memory."""

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "a spec may not use YAML aliases (*name)", mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = self.construct_object(key_node)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        problem=f"duplicate key {shown(key)}", problem_mark=key_node.start_mark
                    )
                seen.add(key)
        return super().construct_mapping(node, deep)


def _yaml_error(e: yaml.YAMLError) -> str:
    """PyYAML's messages span several lines; the CLI prints one."""
    problem, mark = getattr(e, "problem", None), getattr(e, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(e).split())


def load_spec(path: Path | None) -> Spec:
    """Read a spec file; ``None`` gives the built-in default."""
    if path is None:
        return DEFAULT_SPEC
    path = Path(path)
    if path.is_dir():
        raise BadInput(f"spec file {path} is a directory, not a YAML file")
    if not path.is_file():
        raise BadInput(f"spec file {path} does not exist")
    if path.stat().st_size > MAX_SPEC_BYTES:
        raise BadInput(f"spec file {path} has {path.stat().st_size:,} bytes; a spec is a few hundred")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadInput(f"spec file {path} is not UTF-8 text (byte {e.object[e.start]:#04x} at {e.start})") from None
    except OSError as e:
        raise BadInput(f"spec file {path} cannot be read: {e.strerror}") from None
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as e:
        raise BadInput(f"spec file {path} is not valid YAML: {_yaml_error(e)}") from None
    except RecursionError:
        raise BadInput(f"spec file {path} is nested too deeply to be a spec") from None
    except ValueError:  # PyYAML's int() of a number past Python's 4,300-digit limit
        raise BadInput(f"spec file {path} holds a number of more than 4,300 digits: no spec needs one") from None
    return spec_from_dict(raw)


def save_spec(spec: Spec, path: Path) -> None:
    Path(path).write_text(yaml.safe_dump(spec.to_dict(), sort_keys=False))
