"""Random QONNX MLPs for property-based tests and ``make fuzz``.

Each network is drawn from plain parameters (so hypothesis can shrink it) and written with
onnx.helper, the way Brevitas/QKeras exports look: Quant on the input, on every weight and bias,
MatMul + Add, an optional Relu and a Quant on every activation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROUNDING_MODES = ("ROUND", "HALF_EVEN", "HALF_UP", "HALF_DOWN", "FLOOR", "CEIL", "UP", "DOWN")
FLOAT32_EXACT_BITS = 24  # qonnx's reference runs MatMul in float32: exact below 2**24


@dataclass(frozen=True)
class QuantSpec:
    bits: int
    frac: int  # scale = 2**-frac
    signed: bool
    narrow: bool
    mode: str
    mult: float = 1.0  # scale = mult * 2**-frac; 1.0 keeps it a power of two

    @property
    def scale(self) -> np.float32:
        return np.float32(self.mult * 2.0**-self.frac)


@dataclass(frozen=True)
class LayerDraw:
    units: int
    weight: QuantSpec
    per_channel: bool  # weight scale per output channel (frac, frac+1, ... cycling)
    bias: QuantSpec | None
    relu: bool
    act: QuantSpec


@dataclass(frozen=True)
class MlpDraw:
    n_in: int
    input: QuantSpec
    layers: tuple[LayerDraw, ...]
    seed: int

    @property
    def power_of_two(self) -> bool:
        """Only power-of-two scales: qonnx's float32 reference is then exact too."""
        specs = [self.input] + [q for la in self.layers for q in (la.weight, la.bias, la.act) if q is not None]
        return all(q.mult == 1.0 for q in specs)


def quant_node(name: str, src: str, q: QuantSpec, scale: np.ndarray, inits: list) -> onnx.NodeProto:
    """A QONNX Quant node; its scale, zero point and bit width are appended to ``inits``."""
    for suffix, value in (("scale", scale), ("zeropt", np.float32(0)), ("bits", np.float32(q.bits))):
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), f"{name}_{suffix}"))
    return helper.make_node(
        "Quant",
        [src, f"{name}_scale", f"{name}_zeropt", f"{name}_bits"],
        [f"{name}_out"],
        name=name,
        domain="qonnx.custom_op.general",
        signed=int(q.signed),
        narrow=int(q.narrow),
        rounding_mode=q.mode,
    )


def build_mlp(draw: MlpDraw) -> onnx.ModelProto:
    """Write the drawn network as a QONNX model (batch 1, float32)."""
    rng = np.random.default_rng(draw.seed)
    inits: list = []
    nodes = [quant_node("q_in", "x", draw.input, draw.input.scale, inits)]
    live, fan_in = "q_in_out", draw.n_in
    for i, layer in enumerate(draw.layers):
        w = rng.normal(scale=2.0 ** (layer.weight.bits - 1 - layer.weight.frac) / 2, size=(fan_in, layer.units))
        inits.append(numpy_helper.from_array(w.astype(np.float32), f"w{i}"))
        fracs = layer.weight.frac + (np.arange(layer.units) % 3 if layer.per_channel else np.zeros(1, int))
        w_scale = (layer.weight.mult * 2.0 ** -fracs.astype(np.float64)).reshape(1, -1).astype(np.float32)
        nodes.append(
            quant_node(f"qw{i}", f"w{i}", layer.weight, w_scale if layer.per_channel else w_scale[0, 0], inits)
        )
        nodes.append(helper.make_node("MatMul", [live, f"qw{i}_out"], [f"mm{i}"], name=f"MatMul_{i}"))
        live = f"mm{i}"
        if layer.bias is not None:
            b = rng.normal(scale=2.0 ** (layer.bias.bits - 2 - layer.bias.frac), size=layer.units)
            inits.append(numpy_helper.from_array(b.astype(np.float32), f"b{i}"))
            nodes.append(quant_node(f"qb{i}", f"b{i}", layer.bias, layer.bias.scale, inits))
            nodes.append(helper.make_node("Add", [live, f"qb{i}_out"], [f"add{i}"], name=f"Add_{i}"))
            live = f"add{i}"
        if layer.relu:
            nodes.append(helper.make_node("Relu", [live], [f"relu{i}"], name=f"Relu_{i}"))
            live = f"relu{i}"
        nodes.append(quant_node(f"qa{i}", live, layer.act, layer.act.scale, inits))
        live, fan_in = f"qa{i}_out", layer.units
    nodes[-1].output[0] = "y"
    graph = helper.make_graph(
        nodes,
        "random_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, draw.n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, draw.layers[-1].units])],
        initializer=inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("qonnx.custom_op.general", 1)]
    )
    model.ir_version = 8
    return model


def save_mlp(draw: MlpDraw, path: Path) -> Path:
    onnx.save(build_mlp(draw), str(path))
    return path
