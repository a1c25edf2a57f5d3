"""QONNX Trunc (dropping LSBs after an accumulation): exact against qonnx and in C simulation."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from fpga_mpq import api
from fpga_mpq.export import execute_qonnx
from fpga_mpq.ir.from_qonnx import network_from_qonnx
from fpga_mpq.ir.golden import run
from fpga_mpq.ir.network import Threshold
from fpga_mpq.sim.csim import random_inputs
from fpga_mpq.testing import QuantSpec, quant_node


def _trunc_model(path, mode: str) -> None:
    """Quant input -> MatMul with quantized weights -> Trunc to 8 bits."""
    inits: list = []
    nodes = [quant_node("q_in", "x", QuantSpec(8, 4, True, False, "ROUND"), np.float32(2**-4), inits)]
    w = np.random.default_rng(0).normal(size=(6, 5)).astype(np.float32)
    inits.append(numpy_helper.from_array(w, "w"))
    nodes.append(quant_node("qw", "w", QuantSpec(4, 2, True, False, "ROUND"), np.float32(2**-2), inits))
    nodes.append(helper.make_node("MatMul", ["q_in_out", "qw_out"], ["mm"], name="MatMul_0"))
    for name, value in (("t_scale", 2.0**-6), ("t_zeropt", 0.0), ("t_in_bits", 14.0), ("t_out_bits", 8.0)):
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
    nodes.append(
        helper.make_node(
            "Trunc",
            ["mm", "t_scale", "t_zeropt", "t_in_bits", "t_out_bits"],
            ["y"],
            name="Trunc_0",
            domain="qonnx.custom_op.general",
            rounding_mode=mode,
        )
    )
    graph = helper.make_graph(
        nodes,
        "trunc",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])],
        initializer=inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("qonnx.custom_op.general", 1)]
    )
    model.ir_version = 8
    onnx.save(model, str(path))


def test_trunc_is_exact_against_qonnx_and_in_c_simulation(tmp_path):
    for mode in ("FLOOR", "ROUND"):
        _trunc_model(tmp_path / f"{mode}.onnx", mode)
        net = network_from_qonnx(tmp_path / f"{mode}.onnx")
        assert isinstance(net.layers[-1], Threshold)
        x = random_inputs(net, 2000, seed=10)
        assert np.array_equal(run(net, x).output.astype(np.float32), execute_qonnx(tmp_path / f"{mode}.onnx", x))
        api.generate(tmp_path / f"{mode}.onnx", tmp_path / mode)
        assert api.csim(tmp_path / mode, random=2000, seed=10)["mismatches"] == 0
