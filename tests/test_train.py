"""Training is reproducible and the exported QONNX computes exactly what Brevitas computes."""

from __future__ import annotations

import numpy as np
import torch

from fpga_mpq.data import load_split
from fpga_mpq.export import check_qonnx_equals_brevitas, export_qonnx_file
from fpga_mpq.models.spec import DEFAULT_SPEC
from fpga_mpq.train import TrainConfig, train

ONE_EPOCH = TrainConfig(epochs=1, float_epochs=1)


def test_training_with_a_fixed_seed_is_reproducible():
    split = load_split()
    a, b = train(DEFAULT_SPEC, split, ONE_EPOCH), train(DEFAULT_SPEC, split, ONE_EPOCH)
    assert a.accuracy_quant == b.accuracy_quant
    for (k, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k


def test_exported_qonnx_equals_brevitas_on_the_whole_test_set(tmp_path):
    split = load_split()
    result = train(DEFAULT_SPEC, split, ONE_EPOCH)
    export_qonnx_file(result.model, split.n_features, tmp_path / "m.onnx")
    out = check_qonnx_equals_brevitas(result.model, tmp_path / "m.onnx", split.x_test)
    assert out.shape == (len(split.x_test), 10)
    assert np.isfinite(out).all()
