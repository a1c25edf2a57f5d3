"""A residual MLP as Brevitas users write it: one tensor read twice (fan-out), two branches joined
by an Add whose inputs share one quantizer, BatchNorm on a branch, float scales, an unquantized head.

Brevitas == qonnx exactly; golden == qonnx within the measured float32 bound; C simulation == golden
with 0 mismatches in io_parallel (arrays read twice) and io_stream (a cloned stream); RTL too.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fpga_mpq import api
from fpga_mpq.export import check_qonnx_equals_brevitas, execute_qonnx, export_qonnx_file
from fpga_mpq.hls.config import HlsConfig
from fpga_mpq.ir.from_qonnx import network_from_qonnx
from fpga_mpq.ir.golden import run
from fpga_mpq.ir.network import Add
from fpga_mpq.sim.csim import random_inputs
from fpga_mpq.testing import head_integers

N_IN, N_HID, N_OUT = 16, 24, 10
FLOAT32_BOUND = 0.002  # as in test_brevitas_presets.py: qonnx's float32 crossing a rounding boundary


class ResidualMlp(nn.Module):
    def __init__(self) -> None:
        import brevitas.quant as bq
        from brevitas import nn as qnn

        super().__init__()
        self.inp = qnn.QuantIdentity(act_quant=bq.Int8ActPerTensorFloat, return_quant_tensor=True)
        self.fc1 = qnn.QuantLinear(N_IN, N_HID, bias=True, bias_quant=bq.Int32Bias)
        self.act1 = qnn.QuantReLU(return_quant_tensor=True)
        self.fc2 = qnn.QuantLinear(N_HID, N_HID, bias=False)
        self.bn = nn.BatchNorm1d(N_HID)
        self.shared = qnn.QuantIdentity(act_quant=bq.Int8ActPerTensorFloat, return_quant_tensor=True)
        self.act2 = qnn.QuantReLU(return_quant_tensor=True)
        self.head = qnn.QuantLinear(N_HID, N_OUT, bias=True, bias_quant=bq.Int32Bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.shared(self.act1(self.fc1(self.inp(x))))
        r = self.shared(self.bn(self.fc2(h)))  # the residual's two inputs share one quantizer
        return self.head(self.act2(h + r))


@pytest.fixture(scope="module")
def residual_onnx(tmp_path_factory):
    torch.manual_seed(0)
    model = ResidualMlp()
    with torch.no_grad():
        model.bn.running_mean.normal_(0, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
        model.bn.weight.normal_(1.0, 0.5)
    model.train()
    with torch.no_grad():
        for _ in range(310):  # past Brevitas' statistics collection, so every scale is a parameter
            model(torch.randn(16, N_IN) * 1.5)
    model.eval()
    path = tmp_path_factory.mktemp("residual") / "m.onnx"
    export_qonnx_file(model, N_IN, path)
    check_qonnx_equals_brevitas(model, path, np.random.default_rng(0).normal(0, 1.5, (500, N_IN)).astype(np.float32))
    return path


def test_residual_add_reads_a_fanned_out_tensor_and_golden_equals_qonnx(residual_onnx):
    net = network_from_qonnx(residual_onnx)
    (add,) = [la for la in net.layers if isinstance(la, Add)]
    readers = [la.name for la in net.layers if add.inputs[0] in la.inputs]
    assert len(readers) == 2, "the shared tensor feeds the second dense layer and the Add"
    x = random_inputs(net, 2000, seed=1)
    ref = execute_qonnx(residual_onnx, x).astype(np.float64)
    differing = int((head_integers(net, ref) != run(net, x).result).sum())
    assert differing <= FLOAT32_BOUND * ref.size, f"{differing} of {ref.size}"


@pytest.mark.parametrize("io", ["parallel", "stream"])
def test_residual_mlp_is_exact_in_c_simulation(residual_onnx, tmp_path, io):
    api.generate(residual_onnx, tmp_path / "prj", HlsConfig(io=io))
    top = (tmp_path / "prj" / "firmware" / "mpq_top.cpp").read_text()
    assert ("nnet::clone_stream" in top) == (io == "stream")
    assert api.csim(tmp_path / "prj", random=2000, seed=1)["mismatches"] == 0


def test_residual_mlp_trace_compares_every_tensor(residual_onnx, tmp_path):
    api.generate(residual_onnx, tmp_path / "prj", HlsConfig(io="parallel"))
    summary = api.csim(tmp_path / "prj", random=50, seed=2, trace=True)
    net = network_from_qonnx(residual_onnx)
    assert [la["tensor"] for la in summary["layers"]] == [la.output for la in net.exact_layers]
    assert summary["first_differing_tensor"] is None


@pytest.mark.rtl
@pytest.mark.slow  # 4-5 minutes of Verilator build (its float-scale thresholds); make test: C-sim above
def test_residual_mlp_is_exact_in_rtl_simulation(residual_onnx, tmp_path):
    summary = api.rtlsim(residual_onnx, tmp_path / "rtl", random=500, seed=3)
    assert summary["mismatches"] == 0
