"""Property: on random QONNX MLPs, golden model == C simulation exactly, and == qonnx
execute_onnx exactly when every scale is a power of two (with float scales qonnx's float32
arithmetic is itself rounded; see hw_tests/test_brevitas_float_scales.py)."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings

from conftest import FUZZ, lower, mlps
from fpga_mpq import api
from fpga_mpq.export import execute_qonnx
from fpga_mpq.hls.config import HlsConfig
from fpga_mpq.ir.golden import run
from fpga_mpq.sim.csim import random_inputs


@settings(
    max_examples=150 if FUZZ else 12,
    deadline=None,
    derandomize=not FUZZ,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(draw=mlps(max_units=32, float_scales=True))
def test_random_mlps_are_bit_exact_in_c_simulation(draw, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prop")
    net = lower(draw, tmp / "m.onnx")
    x = random_inputs(net, 200, seed=draw.seed)
    if draw.power_of_two:
        assert np.array_equal(run(net, x).output.astype(np.float32), execute_qonnx(tmp / "m.onnx", x))
    io = "stream" if draw.seed % 2 else "parallel"
    api.generate(tmp / "m.onnx", tmp / "prj", HlsConfig(io=io))
    result = api.csim(tmp / "prj", random=200, seed=draw.seed)
    assert result["mismatches"] == 0
