"""The searched quantizers of a spec (its groups), and the widths a configuration gives them.

A group is one quantizer whose width the search chooses: each conv or dense layer's weights, and
each activation quantizer that feeds a multiplier or an Add — the network input, each conv / dense
``act_bits`` (not the last layer's output quantizer, which keeps the base spec's width), each
avgpool / globalavgpool ``act_bits``, and per residual block its ``add_bits`` (one quantizer on both
inputs of the Add, so one group) and its ``act_bits``. Names follow the spec's paths
(``layers[1].body[0].weight``, ``layers[2].add``, ``input``). Weight groups come first, then
activation groups, each in execution order; for an MLP that is the order the search always used.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from fpga_mpq.models.spec import ConvSpec, FlattenSpec, Layer, LayerSpec, PoolSpec, ResidualSpec, Spec


@dataclass(frozen=True)
class Group:
    """One searched quantizer. ``module`` is its name in :class:`~fpga_mpq.models.net.QuantNet` (a
    weight group's conv / dense op; an activation group's quantizer), the same in ``FloatNet`` but for
    ``input_quant``, which the float model does not have."""

    name: str
    kind: str  # "weight" or "act"
    signed: bool
    module: str


@dataclass(frozen=True)
class Structure:
    """A spec's groups with their widths, and which two groups each conv / dense layer multiplies."""

    groups: tuple[Group, ...]
    bits: tuple[int, ...]
    feeds: tuple[tuple[Group, Group], ...]  # per layer of ``Spec.weighted()``: (its weights, its input)


class _Walk:
    """One pass over the spec in execution order, tracking which activation quantizer holds the tensor."""

    def __init__(self, spec: Spec) -> None:
        self.current = Group("input", "act", spec.input_signed, "input_quant")
        self.weights: list[tuple[Group, int]] = []
        self.acts: list[tuple[Group, int]] = [(self.current, spec.input_bits)]
        self.feeds: list[tuple[Group, Group]] = []
        self.signed = spec.input_signed  # the tensor's sign, for the requantizer after an average
        self.n_weighted = len(spec.weighted())

    def act(self, name: str, signed: bool, module: str, bits: int) -> Group:
        group = Group(name, "act", signed, module)
        self.acts.append((group, bits))
        self.current = group
        return group

    def weighted(self, la: LayerSpec | ConvSpec, where: str, module: str) -> None:
        group = Group(f"{where}.weight", "weight", True, f"{module}.op")
        self.weights.append((group, la.weight_bits))
        self.feeds.append((group, self.current))
        if la.act_bits is not None and len(self.feeds) < self.n_weighted:
            self.act(f"{where}.act", False, f"{module}.act", la.act_bits)

    def residual(self, la: ResidualSpec, where: str, module: str) -> None:
        start = self.current
        for i, c in enumerate(la.body):
            self.weighted(c, f"{where}.body[{i}]", f"{module}.body.{i}")
        self.current = start
        for i, c in enumerate(la.shortcut):
            self.weighted(c, f"{where}.shortcut[{i}]", f"{module}.shortcut.{i}")
        self.act(f"{where}.add", True, f"{module}.add_quant", la.add_bits)
        self.act(f"{where}.act", False, f"{module}.act", la.act_bits)

    def layer(self, la: Layer, i: int) -> None:
        where, module = f"layers[{i}]", f"layers.{i}"
        match la:
            case LayerSpec() | ConvSpec():
                self.weighted(la, where, module)
            case ResidualSpec():
                self.residual(la, where, module)
            case PoolSpec() if la.act_bits is not None:
                self.act(f"{where}.act", self.signed, f"{module}.act", la.act_bits)
        if not isinstance(la, PoolSpec | FlattenSpec):
            self.signed = False  # a ReLU ends every conv, dense and residual layer but the last


def structure(spec: Spec) -> Structure:
    walk = _Walk(spec)
    for i, la in enumerate(spec.layers):
        walk.layer(la, i)
    pairs = walk.weights + walk.acts
    return Structure(tuple(g for g, _ in pairs), tuple(b for _, b in pairs), tuple(walk.feeds))


@dataclass(frozen=True)
class Widths:
    """One width per group, in the order of :func:`structure`."""

    groups: tuple[Group, ...]
    bits: tuple[int, ...]

    def label(self) -> str:
        """``w<weight widths> x<activation widths>``: every group, so two configurations never share a label."""
        w = [b for g, b in zip(self.groups, self.bits, strict=True) if g.kind == "weight"]
        x = [b for g, b in zip(self.groups, self.bits, strict=True) if g.kind == "act"]
        return "w" + "/".join(map(str, w)) + " x" + "/".join(map(str, x))

    def by_name(self) -> dict[str, int]:
        return {g.name: b for g, b in zip(self.groups, self.bits, strict=True)}

    def get(self, g: Group) -> int:
        return self.bits[self.groups.index(g)]

    def set(self, g: Group, bits: int) -> Widths:
        k = self.groups.index(g)
        return replace(self, bits=self.bits[:k] + (bits,) + self.bits[k + 1 :])


def widths_of(spec: Spec) -> Widths:
    s = structure(spec)
    return Widths(s.groups, s.bits)


def apply_widths(spec: Spec, widths: Widths) -> Spec:
    """``spec`` with every group at its width in ``widths``; biases and the output quantizer unchanged."""
    if widths.groups != structure(spec).groups:
        raise ValueError("the widths are for another architecture")
    bits = widths.by_name()

    def act(la: Layer, where: str) -> int | None:
        return bits.get(f"{where}.act", la.act_bits)  # no group: the output quantizer, or none

    def set_layer(la: Layer, where: str) -> Layer:
        match la:
            case LayerSpec() | ConvSpec():
                return replace(la, weight_bits=bits[f"{where}.weight"], act_bits=act(la, where))
            case PoolSpec():
                return replace(la, act_bits=act(la, where))
            case ResidualSpec():
                body = tuple(set_layer(c, f"{where}.body[{i}]") for i, c in enumerate(la.body))
                shortcut = tuple(set_layer(c, f"{where}.shortcut[{i}]") for i, c in enumerate(la.shortcut))
                return replace(la, body=body, shortcut=shortcut, add_bits=bits[f"{where}.add"], act_bits=act(la, where))
        return la

    layers = tuple(set_layer(la, f"layers[{i}]") for i, la in enumerate(spec.layers))
    return replace(spec, input_bits=bits["input"], layers=layers)
