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
        layers.append(
            LayerSpec(
                units=units,
                weight_bits=_bits(layer["weight_bits"], f"layers[{i}].weight_bits"),
                bias_bits=_bits(layer["bias_bits"], f"layers[{i}].bias_bits"),
                act_bits=_bits(layer["act_bits"], f"layers[{i}].act_bits"),
            )
        )
    return Spec(_bits(inp["bits"], "input.bits"), signed, tuple(layers))


def load_spec(path: Path | None) -> Spec:
    """Read a spec file; ``None`` gives the built-in default."""
    if path is None:
        return DEFAULT_SPEC
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"spec file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise BadInput(f"spec file {path} is not valid YAML: {e}") from None
    return spec_from_dict(raw)


def save_spec(spec: Spec, path: Path) -> None:
    Path(path).write_text(yaml.safe_dump(spec.to_dict(), sort_keys=False))
