"""QONNX -> exact IR: the golden model equals qonnx's execution, and bad graphs are named."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from fpga_mpq.errors import BadInput
from fpga_mpq.export import execute_qonnx
from fpga_mpq.ir.from_qonnx import network_from_qonnx
from fpga_mpq.ir.golden import run
from fpga_mpq.ir.network import Dense, Softmax, Threshold
from fpga_mpq.ir.types import parse_ap, to_float
from fpga_mpq.sim.csim import random_inputs

JET_INPUT = parse_ap("ap_fixed<16,6>")


def _on_grid(net, x):
    """The float inputs the hardware actually sees: cast to the input type."""
    trace = run(net, x)
    return to_float(trace.mantissas[net.input.output], net.input.out.frac).astype(np.float32)


def test_golden_equals_qonnx_on_brevitas_default_model(default_onnx):
    net = network_from_qonnx(default_onnx)
    x = random_inputs(net, 150, seed=1)
    assert np.array_equal(run(net, x).output.astype(np.float32), execute_qonnx(default_onnx, x))


def test_golden_equals_qonnx_up_to_softmax_input_on_jet_tagging(zoo):
    path = zoo / "qkeras_jettagging.onnx"
    net = network_from_qonnx(path, JET_INPUT)
    assert isinstance(net.layers[-1], Softmax)
    x = _on_grid(net, random_inputs(net, 100, seed=2))
    ref_logits = execute_qonnx(path, x, tensor="Add_3_out0")
    trace = run(net, x)
    assert np.array_equal(trace.logits.astype(np.float32), ref_logits)
    # float softmax of identical logits: equal to float32 rounding
    assert np.abs(trace.softmax - execute_qonnx(path, x)).max() < 1e-6


def test_every_layer_output_fits_its_type_at_extreme_inputs(default_onnx):
    net = network_from_qonnx(default_onnx)
    t = net.input.out
    corners = np.array([[t.min_int], [t.max_int]]) * 2.0**-t.frac
    x = np.vstack([random_inputs(net, 300, seed=3), np.repeat(corners, net.input.n, axis=1)])
    trace = run(net, x)
    for layer in net.exact_layers:
        m = trace.mantissas[layer.output]
        assert layer.out.min_int <= m.min() and m.max() <= layer.out.max_int, layer.name
    dense = [la for la in net.layers if isinstance(la, Dense)]
    assert all(la.out.frac == la.in_type.frac + la.weight_type.frac for la in dense)


def test_model_without_input_quantizer_needs_a_declared_type(zoo):
    with pytest.raises(BadInput, match="no input quantizer"):
        network_from_qonnx(zoo / "qkeras_jettagging.onnx")


def _edit(zoo, tmp_path, edit):
    model = onnx.load(str(zoo / "qkeras_jettagging.onnx"))
    edit(model)
    path = tmp_path / "edited.onnx"
    onnx.save(model, str(path))
    return path


def _set_init(model, name, value):
    for init in model.graph.initializer:
        if init.name == name:
            init.CopyFrom(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))


def _set_op(model, old, new):
    next(n for n in model.graph.node if n.op_type == old).op_type = new


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: _set_init(m, "Quant_6_param1", 0.0), "finite and positive"),
        (lambda m: _set_init(m, "Quant_6_param3", 0.0), "bit width 0 is outside"),
        (lambda m: _set_init(m, "Quant_6_param3", 33.0), "bit width 33 is outside"),
        (lambda m: _set_init(m, "Quant_6_param2", 1.0), "non-zero zero point"),
        (lambda m: _set_init(m, "Quant_6_param0", np.full((16, 64), np.nan)), "NaN"),
        (lambda m: _set_op(m, "Relu", "Elu"), "op Elu is not supported"),
    ],
)
def test_bad_graphs_name_the_node(zoo, tmp_path, edit, message):
    with pytest.raises(BadInput, match=message):
        network_from_qonnx(_edit(zoo, tmp_path, edit), JET_INPUT)


def test_missing_truncated_and_non_onnx_files(zoo, tmp_path):
    with pytest.raises(BadInput, match="does not exist"):
        network_from_qonnx(tmp_path / "nope.onnx")
    data = (zoo / "qkeras_jettagging.onnx").read_bytes()
    (tmp_path / "trunc.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(BadInput, match="not a valid ONNX model"):
        network_from_qonnx(tmp_path / "trunc.onnx")
    (tmp_path / "text.onnx").write_text("hello")
    with pytest.raises(BadInput, match="not a valid ONNX model"):
        network_from_qonnx(tmp_path / "text.onnx")


def test_wrong_input_shape_is_rejected(default_onnx):
    net = network_from_qonnx(default_onnx)
    with pytest.raises(BadInput, match="expects 64"):
        run(net, np.zeros((3, 63), dtype=np.float32))


@pytest.mark.parametrize("name", ["TFC_2W2A.onnx", "TFC_1W1A.onnx"])
def test_golden_equals_qonnx_on_finn_zoo_models_including_host_float_ops(zoo, name):
    """BatchNorm + quantizer become thresholds; input scaling and the output affine stay on the host."""
    path = zoo / name
    net = network_from_qonnx(path)
    assert net.preprocess and net.postprocess
    assert any(isinstance(la, Threshold) for la in net.layers)
    rng = np.random.default_rng(7)
    x = rng.uniform(-0.2, 1.2, size=(200, net.input.n)).astype(np.float32)
    x[:20] = 0.5  # maps to exactly 0 before the input quantizer: the tie / sign(0) case
    assert np.array_equal(run(net, x).output, execute_qonnx(path, x))
