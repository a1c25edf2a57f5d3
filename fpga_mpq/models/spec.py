"""The bit-width spec: what every stage reads to know each layer's size and widths.

A YAML file::

    input: {bits: 8, signed: false}
    layers:            # hidden layers end in a ReLU, the last one in a signed output quantizer
      - {units: 32, weight_bits: 6, bias_bits: 16, act_bits: 6}
      - {units: 10, weight_bits: 3, bias_bits: 16, act_bits: 8}
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from fpga_mpq.errors import BadInput

MIN_BITS, MAX_BITS = 1, 32
# A fully parallel layer this wide is far beyond any FPGA; the cap stops a typo (units: 100000000)
# from allocating gigabytes of weights before anything else can complain.
MAX_UNITS = 65_536
MAX_WEIGHTS = 2**24  # between two spec layers (64 MB of float32; training keeps a few copies)
_INPUT_KEYS = {"bits", "signed"}
_LAYER_KEYS = {"units", "weight_bits", "bias_bits", "act_bits"}
_TOP_KEYS = {"input", "layers"}


@dataclass(frozen=True)
class LayerSpec:
    units: int
    weight_bits: int
    bias_bits: int
    act_bits: int


@dataclass(frozen=True)
class Spec:
    input_bits: int
    input_signed: bool
    layers: tuple[LayerSpec, ...]

    def to_dict(self) -> dict:
        return {
            "input": {"bits": self.input_bits, "signed": self.input_signed},
            "layers": [asdict(layer) for layer in self.layers],
        }


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
        raise BadInput(f"spec: {where} = {value!r} is not a bit-width in {MIN_BITS}..{MAX_BITS}")
    return value


def _check_keys(d: object, allowed: set[str], where: str) -> dict:
    if not isinstance(d, dict):
        raise BadInput(f"spec: {where} must be a mapping, got {type(d).__name__}")
    for key in d:
        if not isinstance(key, str):
            raise BadInput(f"spec: key {key!r} in {where} is not a name")
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise BadInput(f"spec: unknown key {unknown[0]!r} in {where} (allowed: {', '.join(sorted(allowed))})")
    missing = sorted(allowed - set(d) - {"signed"})
    if missing:
        raise BadInput(f"spec: missing key {missing[0]!r} in {where}")
    return d


def spec_from_dict(d: object) -> Spec:
    """Validate a parsed spec, naming the first wrong key."""
    d = _check_keys(d, _TOP_KEYS, "the top level")
    inp = _check_keys(d["input"], _INPUT_KEYS, "input")
    signed = inp.get("signed", False)
    if not isinstance(signed, bool):
        raise BadInput(f"spec: input.signed = {signed!r} must be true or false")
    if not isinstance(d["layers"], list) or not d["layers"]:
        raise BadInput("spec: layers must be a non-empty list")
    layers = []
    for i, raw in enumerate(d["layers"]):
        layer = _check_keys(raw, _LAYER_KEYS, f"layers[{i}]")
        units = layer["units"]
        if isinstance(units, bool) or not isinstance(units, int) or units < 1:
            raise BadInput(f"spec: layers[{i}].units = {units!r} must be a positive integer")
        if units > MAX_UNITS:
            raise BadInput(f"spec: layers[{i}].units = {units} is more than the {MAX_UNITS} units a layer may have")
        if layers and layers[-1].units * units > MAX_WEIGHTS:
            raise BadInput(
                f"spec: layers[{i}] needs {layers[-1].units} x {units} weights, more than the {MAX_WEIGHTS} allowed"
            )
        layers.append(
            LayerSpec(
                units=units,
                weight_bits=_bits(layer["weight_bits"], f"layers[{i}].weight_bits"),
                bias_bits=_bits(layer["bias_bits"], f"layers[{i}].bias_bits"),
                act_bits=_bits(layer["act_bits"], f"layers[{i}].act_bits"),
            )
        )
    return Spec(_bits(inp["bits"], "input.bits"), signed, tuple(layers))


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load keeps the last of two equal keys silently; a spec with one is a mistake."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = self.construct_object(key_node)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        problem=f"duplicate key {key!r}", problem_mark=key_node.start_mark
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
    return spec_from_dict(raw)


def save_spec(spec: Spec, path: Path) -> None:
    Path(path).write_text(yaml.safe_dump(spec.to_dict(), sort_keys=False))
