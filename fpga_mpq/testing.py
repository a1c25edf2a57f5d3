"""Random QONNX MLPs for property-based tests and ``make fuzz``.

Each network is drawn from plain parameters (so hypothesis can shrink it) and written with
onnx.helper, the way Brevitas/QKeras exports look: Quant on the input, on every weight and bias,
MatMul + Add, an optional BatchNormalization, an optional Relu and a Quant on every activation,
except an unquantized last layer (the usual classifier head), whose bias is quantized at input
scale x weight scale as Brevitas' ``Int32Bias`` does.
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
    act: QuantSpec | None  # None: an unquantized last layer
    batchnorm: bool = False
    float_bias: bool = False  # an unquantized bias (Brevitas' default), added after the quantized one
    monotone: str | None = None  # Sigmoid, Tanh or HardSigmoid before the activation quantizer


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
        if self.layers[-1].act is None and any(q.mult != 1.0 for q in specs):
            return False  # the head's bias scale is the product of two scales
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


def _batchnorm(name: str, src: str, units: int, rng: np.random.Generator, inits: list) -> onnx.NodeProto:
    """Inference BatchNorm with random statistics; some gains negative (falling thresholds)."""
    params = {
        "gamma": rng.normal(1.0, 0.6, units),
        "beta": rng.normal(0.0, 0.5, units),
        "mean": rng.normal(0.0, 0.5, units),
        "var": rng.uniform(0.25, 2.0, units),
    }
    for key, value in params.items():
        inits.append(numpy_helper.from_array(value.astype(np.float32), f"{name}_{key}"))
    inputs = [src, *(f"{name}_{key}" for key in params)]
    return helper.make_node("BatchNormalization", inputs, [f"{name}_out"], name=name, epsilon=1e-5)


def build_mlp(draw: MlpDraw) -> onnx.ModelProto:
    """Write the drawn network as a QONNX model (batch 1, float32)."""
    rng = np.random.default_rng(draw.seed)
    inits: list = []
    nodes = [quant_node("q_in", "x", draw.input, draw.input.scale, inits)]
    live, fan_in, in_scale = "q_in_out", draw.n_in, draw.input.scale
    for i, layer in enumerate(draw.layers):
        w = rng.normal(scale=2.0 ** (layer.weight.bits - 1 - layer.weight.frac) / 2, size=(fan_in, layer.units))
        inits.append(numpy_helper.from_array(w.astype(np.float32), f"w{i}"))
        fracs = layer.weight.frac + (np.arange(layer.units) % 3 if layer.per_channel else np.zeros(1, int))
        w_scale = (layer.weight.mult * 2.0 ** -fracs.astype(np.float64)).reshape(1, -1).astype(np.float32)
        w_scale = w_scale if layer.per_channel else w_scale[0, 0]
        nodes.append(quant_node(f"qw{i}", f"w{i}", layer.weight, w_scale, inits))
        nodes.append(helper.make_node("MatMul", [live, f"qw{i}_out"], [f"mm{i}"], name=f"MatMul_{i}"))
        live = f"mm{i}"
        if layer.bias is not None:
            b_scale = layer.bias.scale if layer.act is not None else np.float32(in_scale) * w_scale
            b = rng.normal(scale=2.0 ** (layer.bias.bits - 2) * np.max(b_scale), size=layer.units)
            inits.append(numpy_helper.from_array(b.astype(np.float32), f"b{i}"))
            nodes.append(quant_node(f"qb{i}", f"b{i}", layer.bias, np.reshape(b_scale, -1), inits))
            nodes.append(helper.make_node("Add", [live, f"qb{i}_out"], [f"add{i}"], name=f"Add_{i}"))
            live = f"add{i}"
        if layer.float_bias:
            fb = rng.normal(scale=2.0 ** (layer.weight.bits - layer.weight.frac), size=layer.units)
            inits.append(numpy_helper.from_array(fb.astype(np.float32), f"fb{i}"))
            nodes.append(helper.make_node("Add", [live, f"fb{i}"], [f"fadd{i}"], name=f"FloatBias_{i}"))
            live = f"fadd{i}"
        if layer.batchnorm:
            nodes.append(_batchnorm(f"bn{i}", live, layer.units, rng, inits))
            live = f"bn{i}_out"
        if layer.relu:
            nodes.append(helper.make_node("Relu", [live], [f"relu{i}"], name=f"Relu_{i}"))
            live = f"relu{i}"
        if layer.monotone:
            nodes.append(helper.make_node(layer.monotone, [live], [f"mono{i}"], name=f"{layer.monotone}_{i}"))
            live = f"mono{i}"
        if layer.act is not None:
            nodes.append(quant_node(f"qa{i}", live, layer.act, layer.act.scale, inits))
            live, in_scale = f"qa{i}_out", layer.act.scale
        fan_in = layer.units
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


def head_integers(net, qonnx_output: np.ndarray) -> np.ndarray:
    """The hardware integers qonnx's float output of an unquantized head stands for (the comparison
    rule of README "Float scales"): round((output - head_bias) / head_scale)."""
    scale = np.array([float(s) for s in net.head_scale])
    bias = 0.0 if net.head_bias is None else np.array(net.head_bias)
    return np.round((np.asarray(qonnx_output, dtype=np.float64) - bias) / scale)


# -- Brevitas MLPs from the quantizer presets -------------------------------------------------


@dataclass(frozen=True)
class BrevitasCase:
    """One Brevitas MLP as users write it: input QuantIdentity -> QuantLinear -> [BatchNorm1d] ->
    activation -> QuantLinear -> [output QuantIdentity]."""

    weight: str = "Int8WeightPerTensorFloat"
    act: str = "Uint8ActPerTensorFloat"
    bias: str | None = "Int32Bias"  # a preset, FLOAT_BIAS (Brevitas' default) or None (bias=False)
    batchnorm: bool = True
    out: str | None = None  # output QuantIdentity preset; None: the unquantized head
    bits: int | None = None  # weight and activation widths; None keeps the preset's
    io: str = "parallel"
    monotone: str | None = None  # a torch activation (MONOTONE) before the activation quantizer

    @property
    def label(self) -> str:
        parts = [self.weight, self.act, self.bias or "no bias", "BN" if self.batchnorm else "no BN"]
        parts += [self.monotone] if self.monotone else []
        parts += [self.out or "unquantized head", f"{self.bits or 'preset'} bits", self.io]
        return ", ".join(parts)


# The activation module each activation preset is used with.
ACT_MODULES = {
    "Uint8ActPerTensorFloat": "QuantReLU",
    "Uint8ActPerTensorFloatMSE": "QuantReLU",
    "Uint8ActPerTensorFixedPoint": "QuantReLU",
    "ShiftedUint8ActPerTensorFloat": "QuantReLU",
    "Int8ActPerTensorFloat": "QuantIdentity",
    "Int8ActPerTensorFixedPoint": "QuantIdentity",
    "Int8ActPerTensorFloatMinMaxInit": "QuantHardTanh",
}
# Monotone activations users put before a quantizer (QuantSigmoid and QuantTanh export as these).
MONOTONE = ("Sigmoid", "Tanh", "Hardsigmoid")
FIXED_WIDTH_WEIGHTS = ("SignedTernaryWeightPerTensorConst",)  # no bit-width override
N_IN, N_HID, N_OUT = 16, 24, 10


def _calibrated(model, shape: tuple[int, ...], seed: int, batch: int = 8, spread: float = 1.0):
    """Random BatchNorm statistics (some gains negative: falling thresholds), then 310 steps of
    Brevitas' statistics collection on normal inputs of ``shape``: scales become parameters, as
    after training."""
    import torch
    from torch import nn

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
                m.running_mean.normal_(0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.normal_(1.0, 0.5)
                m.bias.normal_(0, 0.3)
    model.train()
    with torch.no_grad():
        for _ in range(310):
            model(torch.randn(batch, *shape) * spread)
    return model.eval()


def brevitas_mlp(case: BrevitasCase, seed: int = 0):
    """Build the case with random BatchNorm statistics and run it past Brevitas' statistics
    collection, so every scale is a learned parameter as after training."""
    import brevitas.quant as bq
    import torch
    from brevitas import nn as qnn
    from torch import nn

    torch.manual_seed(seed)
    wbits = {} if case.bits is None or case.weight in FIXED_WIDTH_WEIGHTS else {"weight_bit_width": case.bits}
    abits = {} if case.bits is None else {"bit_width": case.bits}
    module = ACT_MODULES[case.act]
    minmax = {"min_val": -2.0, "max_val": 2.0} if module == "QuantHardTanh" else {}

    def linear(n_in: int, n_out: int) -> nn.Module:
        bias = {"bias_quant": getattr(bq, case.bias)} if case.bias not in (None, FLOAT_BIAS) else {}
        weight = getattr(bq, case.weight)
        return qnn.QuantLinear(n_in, n_out, bias=case.bias is not None, weight_quant=weight, **bias, **wbits)

    layers = [
        qnn.QuantIdentity(act_quant=bq.Int8ActPerTensorFloat, return_quant_tensor=True),
        linear(N_IN, N_HID),
        *([nn.BatchNorm1d(N_HID)] if case.batchnorm else []),
        *([getattr(nn, case.monotone)()] if case.monotone else []),
        getattr(qnn, module)(act_quant=getattr(bq, case.act), return_quant_tensor=True, **abits, **minmax),
        linear(N_HID, N_OUT),
    ]
    if case.out:
        layers.append(qnn.QuantIdentity(act_quant=getattr(bq, case.out)))
    return _calibrated(nn.Sequential(*layers), (N_IN,), seed, batch=16, spread=1.5)


def pairwise(factors: dict[str, tuple]) -> list[dict]:
    """A small set of combinations holding every pair of values of any two factors (greedy,
    deterministic): the cross product's pairwise interactions at a fraction of its size."""
    names = list(factors)
    uncovered = {
        (a, i, b, j)
        for x, a in enumerate(names)
        for b in names[x + 1 :]
        for i in range(len(factors[a]))
        for j in range(len(factors[b]))
    }

    def gain(case: dict[str, int], name: str, value: int) -> int:
        pos = names.index(name)
        return sum(
            ((o, case[o], name, value) if names.index(o) < pos else (name, value, o, case[o])) in uncovered
            for o in case
        )

    cases = []
    while uncovered:
        a, i, b, j = min(uncovered)
        case = {a: i, b: j}
        for name in names:
            if name not in case:
                case[name] = max(range(len(factors[name])), key=lambda v, n=name: (gain(case, n, v), -v))
        for x, p in enumerate(names):
            for q in names[x + 1 :]:
                uncovered.discard((p, case[p], q, case[q]))
        cases.append({name: factors[name][case[name]] for name in names})
    return cases


# The Brevitas test zoo: preset x BatchNorm x bias x output quantizer x width x io, every pair of
# values covered. Shared by tests/test_brevitas_zoo.py and hw_tests/test_brevitas_presets.py.
WEIGHTS = (
    "Int8WeightPerTensorFloat",
    "Int8WeightPerChannelFloat",
    "Int8WeightPerTensorFloatMSE",
    "Int8WeightPerTensorFixedPoint",
    "Int8WeightPerChannelFixedPointMSE",
    "Int8WeightNormL2PerChannelFixedPoint",
    "Int4WeightPerTensorFloatDecoupled",
    "SignedTernaryWeightPerTensorConst",
)
FLOAT_BIAS = "float bias"  # Brevitas' default layer: bias=True, bias_quant=None
BIASES = (None, FLOAT_BIAS, "Int32Bias", "Int16Bias", "Int8Bias")
OUTPUTS = (None, "Int8ActPerTensorFloat", "Int8ActPerTensorFixedPoint", "Uint8ActPerTensorFloat")
ZOO_FACTORS = {
    "weight": WEIGHTS,
    "act": tuple(ACT_MODULES),
    "batchnorm": (True, False),
    "bias": BIASES,
    "out": OUTPUTS,
    "bits": (2, 3, 4, 5, 6, 7, 8),
    "io": ("parallel", "stream"),
    "monotone": (None, *MONOTONE),
}
BREVITAS_ZOO = [BrevitasCase(**case) for case in pairwise(ZOO_FACTORS)]


def each_value(cases: list, factors: dict[str, tuple]) -> list:
    """A few of ``cases`` holding every value of every factor at least once (greedy, deterministic,
    in the cases' order): ``make test``'s representatives of a sweep ``make fuzz`` runs whole."""
    missing = {(name, value) for name, values in factors.items() for value in values}
    chosen = []
    while missing:
        best = max(cases, key=lambda c: sum((n, getattr(c, n)) in missing for n in factors))
        chosen.append(best)
        missing -= {(n, getattr(best, n)) for n in factors}
    return sorted(chosen, key=cases.index)


# Presets that cannot be exact, and the error each gives (README: "Brevitas quantizers").
REFUSED_PRESETS = {
    "ShiftedUint8WeightPerTensorFloat": "non-zero zero point",
    "SignedBinaryWeightPerTensorConst": "bipolar quantizer with a float scale",
}


# -- Brevitas CNNs ------------------------------------------------------------------------------


def brevitas_cnn(name: str, seed: int = 0):
    """One of ``CNN_ZOO``'s networks, built, calibrated and in eval mode; returns (model, input shape)."""
    import torch

    torch.manual_seed(seed)
    build, shape = CNN_ZOO[name]
    return _calibrated(build(), shape, seed), shape


def _small_cnn(float_scales: bool = False, pool: str = "max"):
    """conv3x3 (padding) -> BatchNorm -> ReLU -> pool -> conv3x3 -> ReLU -> [global pool] -> flatten -> dense. With
    ``float_scales`` every quantizer and bias is Brevitas' default: float scales and float biases."""
    import brevitas.quant as bq
    from brevitas import nn as qnn
    from torch import nn

    w = bq.Int8WeightPerTensorFloat if float_scales else bq.Int8WeightPerTensorFixedPoint
    a = bq.Uint8ActPerTensorFloat if float_scales else bq.Uint8ActPerTensorFixedPoint
    i = bq.Int8ActPerTensorFloat if float_scales else bq.Int8ActPerTensorFixedPoint
    conv_bias, head_bias = ({}, {}) if float_scales else ({"bias_quant": bq.Int16Bias}, {"bias_quant": bq.Int32Bias})
    pooling = nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2)
    # the average-pool network ends in AvgPool2d(2) on 2x2 maps as its global pool (MLPerf Tiny's ResNet-8 style)
    global_pool = [nn.AvgPool2d(2), qnn.QuantIdentity(act_quant=a, bit_width=6, return_quant_tensor=True)]
    global_pool, pixels = (global_pool, 1) if pool == "avg" else ([], 4)
    return nn.Sequential(
        qnn.QuantIdentity(act_quant=i, return_quant_tensor=True),
        qnn.QuantConv2d(1, 8, 3, padding=1, weight_quant=w, weight_bit_width=4, **conv_bias),
        nn.BatchNorm2d(8),
        qnn.QuantReLU(act_quant=a, bit_width=4, return_quant_tensor=True),
        pooling,
        *([qnn.QuantIdentity(act_quant=a, bit_width=6, return_quant_tensor=True)] if pool == "avg" else []),
        qnn.QuantConv2d(8, 8, 3, bias=False, weight_quant=w, weight_bit_width=4),
        qnn.QuantReLU(act_quant=a, bit_width=4, return_quant_tensor=True),
        *global_pool,
        nn.Flatten(),
        qnn.QuantLinear(8 * pixels, 10, bias=True, weight_quant=w, weight_bit_width=4, **head_bias),
    )


def _depthwise_separable():
    """conv3x3 stride 2 -> depthwise 3x3 -> BatchNorm -> ReLU -> pointwise 1x1 -> global average -> dense."""
    import brevitas.quant as bq
    from brevitas import nn as qnn
    from torch import nn

    w, a = bq.Int8WeightPerTensorFixedPoint, bq.Uint8ActPerTensorFixedPoint
    return nn.Sequential(
        qnn.QuantIdentity(act_quant=bq.Int8ActPerTensorFixedPoint, return_quant_tensor=True),
        qnn.QuantConv2d(3, 8, 3, stride=2, padding=1, bias=False, weight_quant=w, weight_bit_width=5),
        qnn.QuantReLU(act_quant=a, bit_width=5, return_quant_tensor=True),
        qnn.QuantConv2d(8, 8, 3, padding=1, groups=8, bias=False, weight_quant=w, weight_bit_width=4),
        nn.BatchNorm2d(8),
        qnn.QuantReLU(act_quant=a, bit_width=4, return_quant_tensor=True),
        qnn.QuantConv2d(8, 12, 1, bias=True, weight_quant=w, weight_bit_width=4, bias_quant=bq.Int16Bias),
        qnn.QuantReLU(act_quant=a, bit_width=4, return_quant_tensor=True),
        nn.AdaptiveAvgPool2d(1),
        qnn.QuantIdentity(act_quant=a, bit_width=6, return_quant_tensor=True),
        nn.Flatten(),
        qnn.QuantLinear(12, 10, bias=False, weight_quant=w, weight_bit_width=4),
    )


def _residual_block(c_in: int, c_out: int, stride: int, conv: dict, act, shared, shortcut_bn: bool = False):
    """``relu(shared(bn2(conv2(relu(bn1(conv1(x)))))) + shared(shortcut(x)))``: two padded 3x3 convs
    (``conv``: their Brevitas arguments), a strided 1x1 shortcut [with BatchNorm] when the shape
    changes, one ``shared`` quantizer on both inputs of the Add, as Brevitas requires."""
    import torch
    from brevitas import nn as qnn
    from torch import nn

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = qnn.QuantConv2d(c_in, c_out, 3, stride=stride, padding=1, **conv)
            self.bn1 = nn.BatchNorm2d(c_out)
            self.relu1 = qnn.QuantReLU(act_quant=act, return_quant_tensor=True)
            self.conv2 = qnn.QuantConv2d(c_out, c_out, 3, padding=1, **conv)
            self.bn2 = nn.BatchNorm2d(c_out)
            self.shortcut = None
            if stride != 1 or c_in != c_out:
                short = qnn.QuantConv2d(c_in, c_out, 1, stride=stride, **conv)
                self.shortcut = nn.Sequential(short, nn.BatchNorm2d(c_out)) if shortcut_bn else short
            self.shared = qnn.QuantIdentity(act_quant=shared, return_quant_tensor=True)
            self.relu2 = qnn.QuantReLU(act_quant=act, return_quant_tensor=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
            skip = x if self.shortcut is None else self.shortcut(x)
            return self.relu2(self.shared(y) + self.shared(skip))

    return Block()


class _Residual:
    """Two residual blocks, the second with a strided 1x1 shortcut; each block's Add reads two
    tensors quantized by one shared quantizer, as Brevitas requires."""

    @staticmethod
    def build():
        import brevitas.quant as bq
        from brevitas import nn as qnn
        from torch import nn

        w, a, shared = bq.Int8WeightPerTensorFixedPoint, bq.Uint8ActPerTensorFixedPoint, bq.Int8ActPerTensorFixedPoint
        conv = {"bias": False, "weight_quant": w}

        return nn.Sequential(
            qnn.QuantIdentity(act_quant=shared, return_quant_tensor=True),
            qnn.QuantConv2d(1, 8, 3, padding=1, bias=False, weight_quant=w),
            nn.BatchNorm2d(8),
            qnn.QuantReLU(act_quant=a, return_quant_tensor=True),
            _residual_block(8, 8, 1, conv, a, shared, shortcut_bn=True),
            _residual_block(8, 16, 2, conv, a, shared, shortcut_bn=True),
            nn.AdaptiveAvgPool2d(1),
            qnn.QuantIdentity(act_quant=a, return_quant_tensor=True),
            nn.Flatten(),
            qnn.QuantLinear(16, 10, bias=True, weight_quant=w, bias_quant=bq.Int16Bias),
        )


def _finn_cnv():
    """FINN's CNV in small: bipolar weights and activations (scale 1), BatchNorm, max pool, and a last
    conv to one pixel before its bipolar quantizer."""
    import brevitas.quant as bq
    from brevitas import nn as qnn
    from torch import nn

    class Binary(bq.SignedBinaryWeightPerTensorConst):
        scaling_const = 1.0

    class BinaryAct(bq.SignedBinaryActPerTensorConst):
        scaling_const = 1.0

    class Ternary2(bq.Int8WeightPerTensorFixedPoint):
        bit_width = 2

    return nn.Sequential(
        qnn.QuantIdentity(act_quant=bq.Int8ActPerTensorFixedPoint, bit_width=8, return_quant_tensor=True),
        qnn.QuantConv2d(1, 16, 3, bias=False, weight_quant=Ternary2),
        nn.BatchNorm2d(16),
        qnn.QuantIdentity(act_quant=BinaryAct, return_quant_tensor=True),
        qnn.QuantConv2d(16, 16, 3, bias=False, weight_quant=Binary),
        nn.BatchNorm2d(16),
        qnn.QuantIdentity(act_quant=BinaryAct, return_quant_tensor=True),
        nn.MaxPool2d(2),
        qnn.QuantConv2d(16, 16, 2, bias=False, weight_quant=Binary),  # one pixel, as CNV's last conv leaves
        nn.BatchNorm2d(16),
        qnn.QuantIdentity(act_quant=BinaryAct, return_quant_tensor=True),
        nn.Flatten(),
        qnn.QuantLinear(16, 10, bias=False, weight_quant=Binary),
    )


class _Inception:
    """Two branches of the quantized input (a padded 3x3 conv with BatchNorm, a 1x1 conv), each with its
    own power-of-two quantizer (4 and 6 bits), concatenated along the channels (``torch.cat``), then a
    3x3 conv, a max pool and a dense head."""

    @staticmethod
    def build():
        import brevitas.quant as bq
        import torch
        from brevitas import nn as qnn
        from torch import nn

        w, a = bq.Int8WeightPerTensorFixedPoint, bq.Uint8ActPerTensorFixedPoint

        class Net(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.q = qnn.QuantIdentity(act_quant=bq.Int8ActPerTensorFixedPoint, return_quant_tensor=True)
                self.wide = qnn.QuantConv2d(1, 4, 3, padding=1, bias=False, weight_quant=w, weight_bit_width=4)
                self.bn = nn.BatchNorm2d(4)
                self.wide_act = qnn.QuantReLU(act_quant=a, bit_width=4)  # plain tensors: torch.cat of two widths
                self.narrow = qnn.QuantConv2d(1, 3, 1, bias=False, weight_quant=w, weight_bit_width=4)
                self.narrow_act = qnn.QuantReLU(act_quant=a, bit_width=6)
                self.conv = qnn.QuantConv2d(7, 8, 3, bias=False, weight_quant=w, weight_bit_width=4)
                self.act = qnn.QuantReLU(act_quant=a, bit_width=4, return_quant_tensor=True)
                self.pool = nn.MaxPool2d(2)
                self.fc = qnn.QuantLinear(8 * 3 * 3, 10, bias=False, weight_quant=w, weight_bit_width=4)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                x = self.q(x)
                y = torch.cat([self.wide_act(self.bn(self.wide(x))), self.narrow_act(self.narrow(x))], dim=1)
                return self.fc(torch.flatten(self.pool(self.act(self.conv(y))), 1))

        return Net()


def _conv1d():
    """Time series (C, L) = (4, 32): Conv1d (padding) -> BatchNorm1d -> ReLU -> MaxPool1d -> strided Conv1d ->
    ReLU -> AvgPool1d as the global pool -> dense; Brevitas' float defaults."""
    from brevitas import nn as qnn
    from torch import nn

    return nn.Sequential(
        qnn.QuantIdentity(return_quant_tensor=True),
        qnn.QuantConv1d(4, 8, 3, padding=1, weight_bit_width=4),
        nn.BatchNorm1d(8),
        qnn.QuantReLU(bit_width=4, return_quant_tensor=True),
        nn.MaxPool1d(2),
        qnn.QuantConv1d(8, 8, 3, stride=2, weight_bit_width=4, bias=False),
        qnn.QuantReLU(bit_width=4, return_quant_tensor=True),
        nn.AvgPool1d(7),
        qnn.QuantIdentity(return_quant_tensor=True),
        nn.Flatten(),
        qnn.QuantLinear(8, 5, weight_bit_width=4),
    )


CNN_ZOO = {
    "small CNN, power-of-two scales, max pool": (lambda: _small_cnn(), (1, 8, 8)),
    "small CNN, Brevitas float defaults (float biases), BatchNorm": (lambda: _small_cnn(float_scales=True), (1, 8, 8)),
    "small CNN, average pool": (lambda: _small_cnn(pool="avg"), (1, 8, 8)),
    "depthwise-separable block, strided, global average": (_depthwise_separable, (3, 10, 10)),
    "residual network, strided 1x1 shortcut": (_Residual.build, (1, 8, 8)),
    "FINN CNV-style 1-bit/2-bit": (_finn_cnv, (1, 8, 8)),
    "1-D convolutions and pools, float defaults": (_conv1d, (4, 32)),
    "inception-style Concat of two branches": (_Inception.build, (1, 8, 8)),
}


# -- The MLPerf Tiny networks (random weights, calibrated: exactness needs no training) ---------------


def _kws_mlp():
    """MLPerf Tiny keyword spotting as FINN's MLP (KWS-W3A3): 490 MFCC features (49 x 10, 8 bits) -> 3 x (dense 256 ->
    BatchNorm -> ReLU) -> 12 classes, every weight and activation 3 bits (W3A3)."""
    import brevitas.quant as bq
    from brevitas import nn as qnn
    from torch import nn

    layers = [qnn.QuantIdentity(act_quant=bq.Int8ActPerTensorFixedPoint, return_quant_tensor=True)]
    n_in = 490
    for _ in range(3):
        layers += [
            qnn.QuantLinear(n_in, 256, bias=False, weight_quant=bq.Int8WeightPerTensorFixedPoint, weight_bit_width=3),
            nn.BatchNorm1d(256),
            qnn.QuantReLU(act_quant=bq.Uint8ActPerTensorFixedPoint, bit_width=3, return_quant_tensor=True),
        ]
        n_in = 256
    layers.append(
        qnn.QuantLinear(256, 12, bias=False, weight_quant=bq.Int8WeightPerTensorFixedPoint, weight_bit_width=3)
    )
    return nn.Sequential(*layers)


def _finn_cnv_w1a1():
    """FINN's CNV (the BNN-PYNQ example Brevitas ships) at 1-bit weights and activations, 32 x 32 x 3."""
    from brevitas_examples.bnn_pynq.models.CNV import CNV

    return CNV(num_classes=10, weight_bit_width=1, act_bit_width=1, in_bit_width=8, in_ch=3)


class _ResNet8:
    """MLPerf Tiny image classification's ResNet-8 (32 x 32 x 3): a conv stem, three residual stacks of
    16 / 32 / 64 channels (the last two strided, with 1x1 shortcuts), ``AvgPool2d(8)`` as the global
    pool and a dense head; Brevitas' float defaults (float scales, float biases), one shared signed
    quantizer on both inputs of each Add."""

    @staticmethod
    def build():
        import brevitas.quant as bq
        from brevitas import nn as qnn
        from torch import nn

        act = bq.Uint8ActPerTensorFloat

        return nn.Sequential(
            qnn.QuantIdentity(act_quant=bq.Int8ActPerTensorFloat, return_quant_tensor=True),
            qnn.QuantConv2d(3, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            qnn.QuantReLU(act_quant=act, return_quant_tensor=True),
            _residual_block(16, 16, 1, {}, act, bq.Int8ActPerTensorFloat),
            _residual_block(16, 32, 2, {}, act, bq.Int8ActPerTensorFloat),
            _residual_block(32, 64, 2, {}, act, bq.Int8ActPerTensorFloat),
            nn.AvgPool2d(8),
            qnn.QuantIdentity(act_quant=act, return_quant_tensor=True),
            nn.Flatten(),
            qnn.QuantLinear(64, 10),
        )


def _ds_cnn():
    """MLPerf Tiny keyword spotting's DS-CNN (49 x 10 x 1 MFCCs): a 10x4 stride-2 conv of 64 channels, four
    depthwise-separable blocks (3x3 depthwise, 1x1 pointwise, each with BatchNorm and ReLU), a global
    average pool and 12 classes; 8-bit power-of-two weights, 4-bit activations."""
    import brevitas.quant as bq
    from brevitas import nn as qnn
    from torch import nn

    w, a = bq.Int8WeightPerTensorFixedPoint, bq.Uint8ActPerTensorFixedPoint

    def relu() -> nn.Module:
        return qnn.QuantReLU(act_quant=a, bit_width=4, return_quant_tensor=True)

    layers = [
        qnn.QuantIdentity(act_quant=bq.Int8ActPerTensorFixedPoint, return_quant_tensor=True),
        qnn.QuantConv2d(1, 64, (10, 4), stride=2, padding=(5, 1), bias=False, weight_quant=w),
        nn.BatchNorm2d(64),
        relu(),
    ]
    for _ in range(4):
        layers += [
            qnn.QuantConv2d(64, 64, 3, padding=1, groups=64, bias=False, weight_quant=w),
            nn.BatchNorm2d(64),
            relu(),
            qnn.QuantConv2d(64, 64, 1, bias=False, weight_quant=w),
            nn.BatchNorm2d(64),
            relu(),
        ]
    layers += [
        nn.AdaptiveAvgPool2d(1),
        qnn.QuantIdentity(act_quant=a, bit_width=8, return_quant_tensor=True),
        nn.Flatten(),
        qnn.QuantLinear(64, 12, bias=False, weight_quant=w),
    ]
    return nn.Sequential(*layers)


def _ad08():
    """MLPerf Tiny anomaly detection's AD08 dense autoencoder: 640 log-mel features -> 4 x (dense 128 ->
    BatchNorm -> ReLU) -> 8 -> 4 x (dense 128 -> BatchNorm -> ReLU) -> 640, the reconstruction unquantized;
    Brevitas' float defaults, 6-bit weights and activations."""
    import brevitas.quant as bq
    from brevitas import nn as qnn
    from torch import nn

    def block(n_in: int, n_out: int) -> list[nn.Module]:
        return [
            qnn.QuantLinear(n_in, n_out, weight_bit_width=6),
            nn.BatchNorm1d(n_out),
            qnn.QuantReLU(act_quant=bq.Uint8ActPerTensorFloat, bit_width=6, return_quant_tensor=True),
        ]

    widths = [640, 128, 128, 128, 128, 8, 128, 128, 128, 128]
    layers = [qnn.QuantIdentity(act_quant=bq.Int8ActPerTensorFloat, return_quant_tensor=True)]
    for n_in, n_out in zip(widths, widths[1:], strict=False):
        layers += block(n_in, n_out)
    layers.append(qnn.QuantLinear(128, 640, weight_bit_width=6))
    return nn.Sequential(*layers)


# name: (builder, one sample's input shape)
MLPERF_TINY = {
    "KWS MLP W3A3": (_kws_mlp, (490,)),
    "FINN CNV W1A1": (_finn_cnv_w1a1, (3, 32, 32)),
    "ResNet-8": (_ResNet8.build, (3, 32, 32)),
    "DS-CNN": (_ds_cnn, (1, 49, 10)),
    "AD08 autoencoder": (_ad08, (640,)),
}


def mlperf_tiny(name: str, seed: int = 0):
    """One of ``MLPERF_TINY``'s networks, built, calibrated and in eval mode; returns (model, input shape)."""
    import torch

    torch.manual_seed(seed)
    build, shape = MLPERF_TINY[name]
    model = build()
    if len(shape) == 3:
        return _calibrated(model, shape, seed), shape
    return _calibrated(model, shape, seed, batch=16, spread=1.5), shape
