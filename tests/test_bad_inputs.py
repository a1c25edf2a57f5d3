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
    "unsupported op": (lambda m: setattr(_node(m, "Relu"), "op_type", "Elu"), "op Elu is not supported"),
    "bit width 0": (lambda m: _set_init(m, "Quant_6_param3", 0.0), "bit width 0 is outside 1..32"),
    "bit width 33": (lambda m: _set_init(m, "Quant_6_param3", 33.0), "bit width 33 is outside 1..32"),
    "fractional bit width": (lambda m: _set_init(m, "Quant_6_param3", 2.5), "must be one integer"),
    "NaN weights": (lambda m: _set_init(m, "Quant_6_param0", np.full((16, 64), np.nan)), "NaN or infinite"),
    "inf weights": (lambda m: _set_init(m, "Quant_6_param0", np.full((16, 64), np.inf)), "NaN or infinite"),
    "zero scale": (lambda m: _set_init(m, "Quant_6_param1", 0.0), "finite and positive"),
    "negative scale": (lambda m: _set_init(m, "Quant_6_param1", -0.5), "finite and positive"),
    "float scale into softmax": (
        lambda m: _set_init(m, "Quant_0_param1", 0.3),
        "Softmax of a float-scaled tensor is not supported",
    ),
    "zero point": (lambda m: _set_init(m, "Quant_6_param2", 1.0), "non-zero zero point"),
    "softmax in the middle": (_softmax_in_the_middle, "Softmax is only supported as the last op"),
    "dynamic shape": (_dynamic_batch, "dimension 1 is not fixed"),
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
        (["--clock", "0"], "must be a number from 0.1 to"),
        (["--clock", "-5"], "must be a number from 0.1 to"),
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


# -- files and options that used to give a traceback or be accepted ---------------------------------------------------

JET = "qkeras_jettagging.onnx"
LAYER = "{units: 10, weight_bits: 3, bias_bits: 16, act_bits: 8}"


def _one_error_and_nothing_written(code, err, message, tmp_path, inputs):
    assert code == 2, err
    assert len(err) == 1 and message in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(inputs)


def _write(path, content):
    if content is None:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)


SPECS = {
    "random bytes": (bytes(range(128, 256)) * 4, "is not UTF-8 text"),
    "duplicate top-level key": (
        f"input: {{bits: 8}}\nlayers: [{LAYER}]\nlayers: [{LAYER}]\n",
        "duplicate key 'layers' at line 3",
    ),
    "duplicate key in a layer": (
        "input: {bits: 8}\nlayers:\n  - {units: 10, units: 12, weight_bits: 3, bias_bits: 16, act_bits: 8}\n",
        "duplicate key 'units' at line 3",
    ),
    "a hundred million units": (
        "input: {bits: 8}\nlayers:\n  - {units: 100000000, weight_bits: 3, bias_bits: 16, act_bits: 8}\n",
        "layers[0].units = 100000000 is more than the 65536 units",
    ),
    "two widest layers in a row": (
        "input: {bits: 8}\nlayers:\n"
        "  - {units: 65536, weight_bits: 3, bias_bits: 16, act_bits: 8}\n"
        "  - {units: 65536, weight_bits: 3, bias_bits: 16, act_bits: 8}\n",
        "layers[1] needs 65536 x 65536 weights",
    ),
    "multi-line YAML error": ("layers: [\n", "is not valid YAML: expected the node content"),
    "a directory": (None, "spec.yaml is a directory"),
}


@pytest.mark.parametrize("case", list(SPECS))
def test_bad_spec_file_gives_one_error_naming_the_problem(tmp_path, capsys, case):
    content, message = SPECS[case]
    _write(tmp_path / "spec.yaml", content)
    code, err = _run(
        ["train", "--spec", str(tmp_path / "spec.yaml"), "-o", str(tmp_path / "m.pt"), "--epochs", "1"], capsys
    )
    _one_error_and_nothing_written(code, err, message, tmp_path, ["spec.yaml"])


def _npz(**arrays):
    def write(path):
        with path.open("wb") as f:
            np.savez(f, **arrays)

    return write


def _npy(array):
    def write(path):
        with path.open("wb") as f:
            np.save(f, array)

    return write


def _labels(n=20):
    return np.arange(n) % 2


DATA = {
    "empty file": (lambda p: p.write_bytes(b""), "d.npz is empty"),
    "empty archive": (_npz(), "must hold arrays 'X' and 'y', has []"),
    "random bytes": (lambda p: p.write_bytes(bytes(range(7, 256)) * 2), "is not a readable .npz: not a zip archive"),
    "a single .npy": (_npy(np.zeros((20, 4))), "is a single .npy array"),
    "object array": (_npz(X=np.array([[1, 2]] * 20, dtype=object), y=_labels()), "array 'X' holds Python objects"),
    "zero features": (_npz(X=np.zeros((20, 0)), y=_labels()), "X has 0 features"),
    "float64 beyond float32": (_npz(X=np.full((20, 4), 1e300), y=_labels()), "float32 range, X[0, 0] = 1e+300"),
    "complex X": (_npz(X=np.ones((20, 4), dtype=complex), y=_labels()), "X is complex (complex128)"),
    "dates as X": (_npz(X=np.zeros((20, 4), dtype="datetime64[s]"), y=_labels()), "has dtype datetime64[s]"),
    "label beyond any layer": (_npz(X=np.zeros((20, 4)), y=np.full(20, 2**63 + 5, np.uint64)), "y holds label"),
    "a directory": (lambda p: p.mkdir(), "d.npz is a directory"),
}


@pytest.mark.parametrize("case", list(DATA))
def test_bad_data_file_gives_one_error_naming_the_problem(tmp_path, capsys, case):
    write, message = DATA[case]
    write(tmp_path / "d.npz")
    code, err = _run(
        ["train", "--data", str(tmp_path / "d.npz"), "-o", str(tmp_path / "m.pt"), "--epochs", "1"], capsys
    )
    _one_error_and_nothing_written(code, err, message, tmp_path, ["d.npz"])


def test_boolean_features_are_read_as_zero_and_one(tmp_path):
    from fpga_mpq.data import load_npz

    x = np.arange(80).reshape(20, 4) % 3 == 0
    np.savez(tmp_path / "d.npz", X=x, y=_labels())
    got, _, _ = load_npz(tmp_path / "d.npz")
    assert got.dtype == np.float32 and np.array_equal(got, x.astype(np.float32))


def _duplicate_value_info(model):
    model.graph.value_info.append(model.graph.value_info[3])


def _duplicate_initializer(model):
    model.graph.initializer.append(model.graph.initializer[2])


def _tensor_made_twice(model):
    model.graph.node.append(model.graph.node[3])


def _save(edit):
    def write(zoo, path):
        model = onnx.load(str(zoo / JET))
        edit(model)
        onnx.save(model, str(path))

    return write


def _external_data(keep_bytes):
    """The model with its tensors in bad.onnx.data, cut to ``keep_bytes`` (None: the file is deleted)."""

    def write(zoo, path):
        model = onnx.load(str(zoo / JET))
        onnx.save(model, str(path), save_as_external_data=True, location="bad.onnx.data", size_threshold=0)
        data = path.with_name("bad.onnx.data")
        if keep_bytes is None:
            data.unlink()
        else:
            data.write_bytes(data.read_bytes()[:keep_bytes])

    return write


MODELS = {
    "duplicate value_info": (_save(_duplicate_value_info), ["bad.onnx"], "has two ValueInfo entries"),
    "duplicate initializer": (
        _save(_duplicate_initializer),
        ["bad.onnx"],
        "initializer Quant_1_param0 is defined twice",
    ),
    "tensor made by two nodes": (_save(_tensor_made_twice), ["bad.onnx"], "is the output of two nodes"),
    "truncated file": (
        lambda zoo, p: p.write_bytes((zoo / JET).read_bytes()[:5000]),
        ["bad.onnx"],
        "bad.onnx is not a valid ONNX model",
    ),
    "empty file": (lambda zoo, p: p.write_bytes(b""), ["bad.onnx"], "bad.onnx is empty"),
    "a directory": (lambda zoo, p: p.mkdir(), ["bad.onnx"], "bad.onnx is a directory"),
    "external data missing": (_external_data(None), ["bad.onnx"], "which is not a file beside the model"),
    "external data cut short": (
        _external_data(100),
        ["bad.onnx", "bad.onnx.data"],
        "bad.onnx: initializer Quant_0_param0 cannot be read",
    ),
}


@pytest.mark.parametrize("case", list(MODELS))
def test_unreadable_model_file_gives_one_error_naming_the_file(zoo, tmp_path, capsys, case):
    write, inputs, message = MODELS[case]
    write(zoo, tmp_path / "bad.onnx")
    code, err = _run(["generate", str(tmp_path / "bad.onnx"), "-o", str(tmp_path / "prj"), *JET_TYPE], capsys)
    _one_error_and_nothing_written(code, err, message, tmp_path, inputs)


@pytest.mark.parametrize(
    "name",
    ["xcu250", "XCU250", "xcu250-figd2104-2L-e", "xc7z020clg400-1", "xczu9eg-ffvb1156-2-e", "xc7a100tcsg324-1",
     "xcvu13p-flga2577-2-e", "xczu9eg-ffvb1156-1LV-i"],
)  # fmt: skip
def test_base_names_and_real_part_numbers_are_found(name):
    from fpga_mpq.estimate.parts import find_part

    assert name.lower().startswith(find_part(name).name)


@pytest.mark.parametrize("name", ["xcu250_totally_fake", "xcu2500", "xcu250-figd2104", "xc7z020clg400", "xcu250-2L-e"])
def test_part_names_that_only_start_like_a_part_are_rejected(name):
    from fpga_mpq.errors import BadInput
    from fpga_mpq.estimate.parts import find_part

    with pytest.raises(BadInput, match="unknown part"):
        find_part(name)


@pytest.mark.parametrize("command", ["generate", "estimate"])
def test_unknown_part_is_rejected_by_generate_and_estimate(zoo, tmp_path, capsys, command):
    args = [command, str(zoo / JET), "-o", str(tmp_path / "out"), *JET_TYPE, "--part", "xcu250_totally_fake"]
    code, err = _run(args, capsys)
    _one_error_and_nothing_written(code, err, "unknown part 'xcu250_totally_fake'", tmp_path, [])


@pytest.mark.parametrize("command", ["generate", "rtlsim", "synth"])
@pytest.mark.parametrize("clock", ["inf", "nan"])
def test_clock_period_must_be_finite(zoo, tmp_path, capsys, command, clock):
    code, err = _run([command, str(zoo / JET), "-o", str(tmp_path / "out"), *JET_TYPE, f"--clock={clock}"], capsys)
    _one_error_and_nothing_written(code, err, f"clock period {clock} ns must be a number from 0.1 to", tmp_path, [])


@pytest.mark.parametrize(
    ("top", "message"),
    [
        ("int", "'int' is reserved in C++"),
        ("class", "'class' is reserved in C++"),
        ("main", "'main' is reserved in C++"),
        ("ünïcode", "'ünïcode' is not a C identifier"),
    ],
)
def test_hls_top_must_be_an_ascii_name_that_cpp_does_not_reserve(zoo, tmp_path, capsys, top, message):
    code, err = _run(["generate", str(zoo / JET), "-o", str(tmp_path / "p"), *JET_TYPE, "--top", top], capsys)
    _one_error_and_nothing_written(code, err, message, tmp_path, [])


@pytest.mark.parametrize("command", ["rtlsim", "synth"])
@pytest.mark.parametrize(
    ("top", "message"),
    [
        *[(kw, "is a Verilog/SystemVerilog keyword") for kw in ("module", "wire", "reg", "input", "always", "begin")],
        ("end", "is a Verilog/SystemVerilog keyword"),
        ("int", "is a Verilog/SystemVerilog keyword"),
        ("mux", "is taken by one of da4ml's own modules"),
        ("ünïcode", "is not a Verilog identifier"),
    ],
)
def test_rtl_top_must_be_a_verilog_name_that_is_free(zoo, tmp_path, capsys, command, top, message):
    samples = ["--random", "4"] if command == "rtlsim" else []
    code, err = _run([command, str(zoo / JET), "-o", str(tmp_path / "r"), *JET_TYPE, *samples, "--top", top], capsys)
    _one_error_and_nothing_written(code, err, f"top module name {top!r} {message}", tmp_path, [])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--epochs", "-3"], "--epochs -3: must be a whole number of epochs from 0 to 100,000"),
        (["search", "--method", "uniform", "--max-drop", "1", "--epochs", "-1"], "--epochs -1: must be"),
        (["flow", "--epochs", "-2"], "--epochs -2: must be"),
        (["train", "--seed", "-1"], "--seed -1: must be a whole number in 0..4294967295"),
        (["search", "--method", "ptq", "--max-drop", "1", "--finetune-epochs", "-1"], "--finetune-epochs -1: a whole"),
        (["search", "--method", "sdq", "--max-drop", "1", "--finetune-epochs", "2"], "applies to --method ptq"),
        (["search", "--method", "sdq", "--max-drop", "1", "--confidence", "1.5"], "--confidence 1.5: a one-sided"),
        (["search", "--method", "sdq", "--max-drop", "1", "--ray-address", "a:b"], "--ray-address 'a:b': one of"),
    ],
)
def test_bad_epochs_seeds_and_search_options_are_rejected_before_training(tmp_path, capsys, args, message):
    code, err = _run([*args, "-o", str(tmp_path / "out")], capsys)
    _one_error_and_nothing_written(code, err, message, tmp_path, [])


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("float_epochs", -1, "float_epochs -1: must be"),
        ("batch_size", 0, "batch_size 0: must be a whole number, 1 or more"),
        ("lr", float("inf"), "lr inf: the learning rate must be positive and finite"),
        ("lr", float("nan"), "lr nan: the learning rate must be positive and finite"),
        ("lr", 0.0, "lr 0.0: the learning rate must be positive"),
    ],
)
def test_train_config_rejects_what_cannot_train(field, value, message):
    from fpga_mpq.errors import BadInput
    from fpga_mpq.train import TrainConfig

    with pytest.raises(BadInput) as e:
        TrainConfig(**{field: value})
    assert message in str(e.value)


def test_zero_epochs_gives_an_untrained_checkpoint(tmp_path, capsys):
    np.savez(tmp_path / "d.npz", X=np.random.default_rng(0).normal(size=(40, 4)), y=_labels(40))
    code = main(["train", "--data", str(tmp_path / "d.npz"), "--epochs", "0", "-o", str(tmp_path / "m.pt")])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "m.pt").is_file()


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("a" * 300 + ".onnx", "File name too long"),
        ("two\nlines.onnx", "model file "),
    ],
)
def test_odd_model_paths_give_one_line_and_exit_2(tmp_path, capsys, path, message):
    code, err = _run(["generate", str(tmp_path / path), "-o", str(tmp_path / "p")], capsys)
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert list(tmp_path.iterdir()) == []


def test_a_spec_key_that_is_not_a_name_is_refused(tmp_path, capsys):
    (tmp_path / "s.yaml").write_text("input: {bits: 8}\nlayers:\n  - {units: 10, ~: 4}\n")
    code, err = _run(["train", "--spec", str(tmp_path / "s.yaml"), "-o", str(tmp_path / "m.pt")], capsys)
    assert code == 2 and len(err) == 1 and "key None in layers[0] is not a name" in err[0], err
