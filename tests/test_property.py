"""Property: on random QONNX MLPs the golden model equals qonnx's execution exactly."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings

from conftest import FUZZ, lower, mlps
from fpga_mpq.export import execute_qonnx
from fpga_mpq.ir.golden import run
from fpga_mpq.sim.csim import random_inputs

SETTINGS = settings(
    max_examples=600 if FUZZ else 60,
    deadline=None,
    derandomize=not FUZZ,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@SETTINGS
@given(draw=mlps())
def test_golden_model_equals_qonnx_on_random_mlps(draw, tmp_path):
    path = tmp_path / "m.onnx"
    net = lower(draw, path)
    x = random_inputs(net, 64, seed=draw.seed)
    assert np.array_equal(run(net, x).output.astype(np.float32), execute_qonnx(path, x))
