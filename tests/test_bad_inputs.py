"""Bad model files and options: one clear error line naming what is wrong, exit 2, nothing written."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from fpga_mpq.cli import main

JET_TYPE = ["--input-type", "ap_fixed<16,6>"]


def _set_init(model, name, value):
    for init in model.graph.initializer:
        if init.name == name:
            init.CopyFrom(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))


def _node(model, op):
    return next(n for n in model.graph.node if n.op_type == op)


def _softmax_in_the_middle(model):
    relu = _node(model, "Relu")
    relu.op_type = "Softmax"
    relu.attribute.append(helper.make_attribute("axis", 1))


def _dynamic_batch(model):
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "features"


def _cycle(model):
    first = _node(model, "MatMul")
    first.input[0] = model.graph.node[-1].output[0]


def _missing_initializer(model):
    _node(model, "MatMul").input[1] = "no_such_weight"


def _second_input(model):
    model.graph.input.append(helper.make_tensor_value_info("extra", onnx.TensorProto.FLOAT, [1, 3]))


def _per_channel_activation_scale(model):
    quant = next(n for n in model.graph.node if n.op_type == "Quant" and n.input[0].startswith("Relu"))
    _set_init(model, quant.input[1], np.full((1, 64), 2.0**-6))


EDITS = {
    "unsupported op": (lambda m: setattr(_node(m, "Relu"), "op_type", "Tanh"), "op Tanh is not supported"),
    "bit width 0": (lambda m: _set_init(m, "Quant_6_param3", 0.0), "bit width 0 is outside 1..32"),
    "bit width 33": (lambda m: _set_init(m, "Quant_6_param3", 33.0), "bit width 33 is outside 1..32"),
    "fractional bit width": (lambda m: _set_init(m, "Quant_6_param3", 2.5), "must be one integer"),
    "NaN weights": (lambda m: _set_init(m, "Quant_6_param0", np.full((16, 64), np.nan)), "NaN or infinite"),
    "inf weights": (lambda m: _set_init(m, "Quant_6_param0", np.full((16, 64), np.inf)), "NaN or infinite"),
    "zero scale": (lambda m: _set_init(m, "Quant_6_param1", 0.0), "finite and positive"),
    "negative scale": (lambda m: _set_init(m, "Quant_6_param1", -0.5), "finite and positive"),
    "float scale into softmax": (
        lambda m: _set_init(m, "Quant_0_param1", 0.3),
        "a float-scaled tensor reaches the output without a quantizer",
    ),
    "zero point": (lambda m: _set_init(m, "Quant_6_param2", 1.0), "non-zero zero point"),
    "softmax in the middle": (_softmax_in_the_middle, "Softmax is only supported as the last op"),
    "dynamic shape": (_dynamic_batch, "static shape"),
    "cycle": (_cycle, "the graph has a cycle through node"),
    "missing initializer": (_missing_initializer, "no_such_weight"),
    "two inputs": (_second_input, "one input and one output"),
    "per-channel activation scale": (_per_channel_activation_scale, "per-channel activation scales"),
}


def _run(args, capsys):
    code = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


@pytest.mark.parametrize("case", list(EDITS))
def test_bad_model_gives_one_error_naming_the_problem(zoo, tmp_path, capsys, case):
    edit, message = EDITS[case]
    model = onnx.load(str(zoo / "qkeras_jettagging.onnx"))
    edit(model)
    onnx.save(model, str(tmp_path / "bad.onnx"))
    code, err = _run(["generate", str(tmp_path / "bad.onnx"), "-o", str(tmp_path / "prj"), *JET_TYPE], capsys)
    assert code == 2
    assert len(err) == 1 and message in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.onnx"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--reuse-factor", "7"], "does not divide layer"),
        (["--clock", "0"], "must be positive"),
        (["--clock", "-5"], "must be positive"),
        (["--top", "1top"], "not a C identifier"),
    ],
)
def test_bad_generate_options(zoo, tmp_path, capsys, args, message):
    code, err = _run(
        ["generate", str(zoo / "qkeras_jettagging.onnx"), "-o", str(tmp_path / "p"), *JET_TYPE, *args], capsys
    )
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "p").exists()


def test_bad_input_type_string(zoo, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["generate", str(zoo / "qkeras_jettagging.onnx"), "-o", str(tmp_path / "p"), "--input-type", "float"])
    assert exit_.value.code == 2
    assert "argument --input-type: type 'float' is not of the form ap_fixed<W,I>" in capsys.readouterr().err


def test_missing_input_type_for_a_model_without_input_quantizer(zoo, tmp_path, capsys):
    code, err = _run(["generate", str(zoo / "qkeras_jettagging.onnx"), "-o", str(tmp_path / "p")], capsys)
    assert code == 2 and "no input quantizer" in err[0]


def test_data_with_the_wrong_number_of_features(zoo, tmp_path, capsys):
    assert main(["generate", str(zoo / "qkeras_jettagging.onnx"), "-o", str(tmp_path / "p"), *JET_TYPE]) == 0
    np.savez(tmp_path / "d.npz", X=np.zeros((20, 15)), y=np.zeros(20, dtype=int))
    capsys.readouterr()
    code, err = _run(["csim", str(tmp_path / "p"), "--data", str(tmp_path / "d.npz")], capsys)
    assert code == 2 and "expects 16 input features" in err[0]


def test_zero_random_samples(zoo, tmp_path, capsys):
    assert main(["generate", str(zoo / "qkeras_jettagging.onnx"), "-o", str(tmp_path / "p"), *JET_TYPE]) == 0
    capsys.readouterr()
    code, err = _run(["csim", str(tmp_path / "p"), "--random", "0"], capsys)
    assert code == 2 and "at least one sample" in err[0]
