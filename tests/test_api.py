"""The public API is unambiguous: commands live in ``fpga_mpq.api``, stages are subpackages."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("first", ["", "import fpga_mpq.api", "import fpga_mpq.train", "from fpga_mpq import api"])
def test_fpga_mpq_train_is_the_training_package_whatever_was_imported_first(first):
    check = (
        f"{first}\nimport types, fpga_mpq, fpga_mpq.train, fpga_mpq.export, fpga_mpq.api\n"
        "assert isinstance(fpga_mpq.train, types.ModuleType) and isinstance(fpga_mpq.export, types.ModuleType)\n"
        "assert all(callable(getattr(fpga_mpq.api, c)) for c in "
        "('train', 'export', 'generate', 'csim', 'estimate', 'rtlsim', 'synth', 'search', 'flow'))\n"
        "assert not hasattr(fpga_mpq, 'flow') and not hasattr(fpga_mpq, 'csim')\n"
    )
    proc = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
