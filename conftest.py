"""Fixtures shared by tests/ and hw_tests/."""

from __future__ import annotations

from pathlib import Path

import pytest

ZOO = Path(__file__).resolve().parent / "tests" / "data" / "qonnx_zoo"  # copied from the public zoo, see SOURCES.md


@pytest.fixture(scope="session")
def zoo() -> Path:
    return ZOO


@pytest.fixture(scope="session")
def default_onnx(tmp_path_factory) -> Path:
    """The default-spec Brevitas MLP (seeded, untrained) exported to QONNX."""
    import torch

    from fpga_mpq.export import export_qonnx_file
    from fpga_mpq.models.mlp import QuantMLP
    from fpga_mpq.models.spec import DEFAULT_SPEC

    torch.manual_seed(0)
    model = QuantMLP(DEFAULT_SPEC, 64).eval()
    path = tmp_path_factory.mktemp("default") / "model.onnx"
    export_qonnx_file(model, 64, path)
    return path
