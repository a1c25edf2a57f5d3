"""CNN specs: the shipped files, YAML round trips, refusals that name the layer, weights moved by
module name, image data, and a trained CNN whose QONNX equals Brevitas and the golden model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from fpga_mpq.data import FASHION_DIR, load_split
from fpga_mpq.errors import BadInput
from fpga_mpq.export import check_qonnx_equals_brevitas, execute_qonnx, export_qonnx_file
from fpga_mpq.ir.from_qonnx import network_from_qonnx
from fpga_mpq.ir.golden import run
from fpga_mpq.models.net import FloatNet, QuantNet, transfer_weights
from fpga_mpq.models.spec import ConvSpec, ResidualSpec, load_spec, save_spec, spec_from_dict
from fpga_mpq.train import TrainConfig, quant_from_float, train

SPECS = Path(__file__).parent.parent / "specs"
CNN_SPECS = ("digits_cnn.yaml", "fashion_cnn.yaml", "digits_resnet.yaml")


@pytest.mark.parametrize("name", CNN_SPECS)
def test_shipped_cnn_specs_load_and_round_trip(tmp_path, name):
    spec = load_spec(SPECS / name)
    assert not spec.is_mlp and spec.data in ("digits", "fashion")
    save_spec(spec, tmp_path / "s.yaml")
    assert load_spec(tmp_path / "s.yaml") == spec


def test_mlp_spec_files_load_unchanged():
    for path in sorted(SPECS.glob("digits_[0-9d]*.yaml")):
        spec = load_spec(path)
        assert spec.is_mlp
        assert spec.to_dict() == yaml.safe_load(path.read_text()), path.name


def test_residual_spec_has_a_strided_shortcut():
    spec = load_spec(SPECS / "digits_resnet.yaml")
    blocks = [la for la in spec.layers if isinstance(la, ResidualSpec)]
    assert len(blocks) == 2 and blocks[0].shortcut == ()
    assert blocks[1].shortcut == (ConvSpec(16, 1, 4, 16, None, stride=2, batchnorm=True),)
    assert len(spec.weighted()) == 1 + 2 + 3 + 1


CONV = {"type": "conv", "filters": 4, "kernel": 3, "weight_bits": 4, "bias_bits": 8, "act_bits": 4}
DENSE = {"type": "dense", "units": 10, "weight_bits": 4, "bias_bits": 8, "act_bits": 8}
FLAT = {"type": "flatten"}


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ([CONV | {"type": "conv3d"}, FLAT, DENSE], "layers\\[0\\].type = 'conv3d' is not a layer type"),
        ([CONV, DENSE], "layers\\[1\\] \\(dense\\) reads an image: put a {type: flatten} before it"),
        ([CONV, FLAT, CONV, DENSE], "layers\\[2\\] \\(conv\\) needs an image"),
        ([CONV, FLAT], "the last layer is flatten"),
        ([CONV | {"padding": 3}, FLAT, DENSE], "layers\\[0\\].padding = 3 must be a whole number in 0..2"),
        ([{k: v for k, v in CONV.items() if k != "act_bits"}, FLAT, DENSE], "missing key 'act_bits' in layers\\[0\\]"),
        ([{"type": "maxpool"}, FLAT, DENSE], "missing key 'kernel' in layers\\[0\\]"),
        ([{"type": "avgpool", "kernel": 2}, FLAT, DENSE], "missing key 'act_bits' in layers\\[0\\]"),
        (
            [{"type": "residual", "body": [CONV], "shortcut": [], "add_bits": 6, "act_bits": 4}, FLAT, DENSE],
            "layers\\[0\\].body\\[0\\] feeds the Add, whose quantizer is add_bits: remove its act_bits",
        ),
        (
            [{"type": "residual", "body": [], "shortcut": [], "add_bits": 6, "act_bits": 4}, FLAT, DENSE],
            "layers\\[0\\].body needs at least one conv",
        ),
    ],
)
def test_bad_cnn_spec_names_the_layer(layers, message):
    with pytest.raises(BadInput, match=message):
        spec_from_dict({"input": {"bits": 8}, "layers": layers})


CONV_INTO_ADD = {k: v for k, v in CONV.items() if k != "act_bits"}


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ([CONV | {"groups": 3}, FLAT, DENSE], "layers\\[0\\].groups = 3 must divide its 1 input and 4 output"),
        ([CONV | {"kernel": 9}, FLAT, DENSE], "layers\\[0\\]: a 9x9 kernel does not fit its 8x8 input"),
        (
            [{"type": "residual", "body": [CONV_INTO_ADD], "shortcut": [], "add_bits": 6, "act_bits": 4}, FLAT, DENSE],
            "the body gives shape \\(4, 6, 6\\), the shortcut \\(1, 8, 8\\)",
        ),
    ],
)
def test_shapes_that_do_not_fit_are_refused_naming_the_layer(layers, message):
    spec = spec_from_dict({"input": {"bits": 8}, "layers": layers})
    with pytest.raises(BadInput, match=message):
        QuantNet(spec, (1, 8, 8))


def test_conv_weights_move_from_the_float_model_by_name():
    spec = load_spec(SPECS / "digits_resnet.yaml")
    torch.manual_seed(1)
    fmodel = FloatNet(spec, (1, 8, 8))
    with torch.no_grad():
        for value in fmodel.state_dict().values():
            if value.is_floating_point():
                value.uniform_(0.5, 1.5)  # statistics a fresh model would not have by chance
    qmodel = quant_from_float(fmodel, spec, (1, 8, 8), seed=2)
    fstate, qstate = fmodel.state_dict(), qmodel.state_dict()
    moved = [k for k in fstate if k.endswith(("op.weight", "op.bias", "bn.running_var"))]
    assert len(moved) == 7 + 7 + 6  # every conv and dense weight and bias, every BatchNorm's statistics
    for key in moved:
        assert torch.equal(fstate[key], qstate[key]), key


def test_a_float_model_of_another_architecture_is_refused():
    small, resnet = load_spec(SPECS / "digits_cnn.yaml"), load_spec(SPECS / "digits_resnet.yaml")
    with pytest.raises(ValueError, match="the float model has no"):
        transfer_weights(FloatNet(small, (1, 8, 8)), QuantNet(resnet, (1, 8, 8)))


def test_images_in_a_npz_are_read_channels_last_into_the_models_layout(tmp_path):
    x = np.random.default_rng(0).uniform(0, 1, (30, 5, 6, 2)).astype(np.float32)
    np.savez(tmp_path / "d.npz", X=x, y=np.arange(30) % 3)
    cnn = load_spec(SPECS / "digits_cnn.yaml")
    split = load_split(tmp_path / "d.npz", cnn)
    assert split.input_shape == (2, 5, 6)
    whole = np.concatenate([split.x_train, split.x_val, split.x_test])
    assert sorted(whole.transpose(0, 2, 3, 1).ravel().tolist()) == sorted(x.ravel().tolist())
    assert load_split(tmp_path / "d.npz").n_features == 60  # an MLP reads the image as one vector


def test_a_cnn_spec_on_vectors_is_refused(tmp_path):
    np.savez(tmp_path / "d.npz", X=np.zeros((20, 16)), y=np.zeros(20, int))
    with pytest.raises(BadInput, match="the spec is a CNN but the data holds vectors of 16 features"):
        load_split(tmp_path / "d.npz", load_spec(SPECS / "digits_cnn.yaml"))


def test_builtin_digits_are_8x8_images_for_a_cnn():
    split = load_split("digits", load_spec(SPECS / "digits_cnn.yaml"))
    assert split.input_shape == (1, 8, 8) and split.n_classes == 10
    assert np.array_equal(split.x_test.reshape(len(split.x_test), -1), load_split().x_test)


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_fashion_mnist_is_the_official_test_set_and_a_fixed_validation_split():
    split = load_split("fashion", load_spec(SPECS / "fashion_cnn.yaml"))
    assert (len(split.x_train), len(split.x_val), len(split.x_test)) == (50_000, 10_000, 10_000)
    assert split.input_shape == (1, 28, 28) and split.n_classes == 10
    assert 0.0 <= split.x_train.min() and split.x_train.max() <= 1.0


def test_trained_cnn_exports_to_qonnx_equal_to_brevitas_and_the_golden_model(tmp_path):
    spec = load_spec(SPECS / "digits_resnet.yaml")
    split = load_split("digits", spec)
    result = train(spec, split, TrainConfig(epochs=1, float_epochs=1))
    export_qonnx_file(result.model, split.input_shape, tmp_path / "m.onnx")
    ref = check_qonnx_equals_brevitas(result.model, tmp_path / "m.onnx", split.x_test)
    net = network_from_qonnx(tmp_path / "m.onnx")
    x = split.x_test.reshape(len(split.x_test), -1)
    assert np.array_equal(run(net, x).output.astype(np.float32), ref)
    assert np.array_equal(execute_qonnx(tmp_path / "m.onnx", x[:50]), ref[:50])
