"""C simulation of the Brevitas zoo (fpga_mpq.testing.BREVITAS_ZOO): the MLPs users write from the
quantizer presets, float or power-of-two scales, per tensor or per channel, BatchNorm or not, bias
or not, an output quantizer or an unquantized head, widths 2-8, io_parallel and io_stream.

C simulation == golden model, 0 mismatches on 2000 random inputs. ``make test`` runs every
CSIM_STRIDE-th case (spread over every factor); ``make fuzz`` runs them all. Golden == qonnx ==
Brevitas for every case: tests/test_brevitas_zoo.py.
"""

from __future__ import annotations

import pytest

from conftest import FUZZ
from fpga_mpq import api
from fpga_mpq.export import export_qonnx_file
from fpga_mpq.hls.config import HlsConfig
from fpga_mpq.testing import BREVITAS_ZOO, N_IN, brevitas_mlp

CSIM_STRIDE = 1 if FUZZ else 5
CASES = BREVITAS_ZOO[::CSIM_STRIDE]


@pytest.mark.parametrize("case", CASES, ids=[c.label for c in CASES])
def test_brevitas_zoo_case_is_exact_in_c_simulation(tmp_path, case):
    export_qonnx_file(brevitas_mlp(case), N_IN, tmp_path / "m.onnx")
    api.generate(tmp_path / "m.onnx", tmp_path / "prj", HlsConfig(io=case.io))
    assert api.csim(tmp_path / "prj", random=2000, seed=1)["mismatches"] == 0
