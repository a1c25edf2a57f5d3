"""Mixed-precision search on CNN specs: the groups, the per-layer costs, and each method on the digits CNN
and ResNet with tiny training and small sets (300 training, 200 validation and 200 test images, one QAT
epoch, 64 calibration images)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from fpga_mpq.data import Split, load_split
from fpga_mpq.estimate.hls import dense_cost
from fpga_mpq.export import check_qonnx_equals_brevitas, export_qonnx_file
from fpga_mpq.models.net import FloatNet, QuantNet
from fpga_mpq.models.spec import load_spec, spec_from_dict
from fpga_mpq.mpq.cost import CostModel, layer_quants
from fpga_mpq.mpq.problem import Problem, Target, calibrate, check_candidates
from fpga_mpq.mpq.sdq import SdqConfig, StochasticNet
from fpga_mpq.mpq.search import SearchResult, search, write_outputs
from fpga_mpq.mpq.widths import apply_widths, structure, widths_of
from fpga_mpq.train import TrainConfig, load_checkpoint, quant_from_float

SPECS = Path(__file__).resolve().parents[1] / "specs"
CNN, RESNET = load_spec(SPECS / "digits_cnn.yaml"), load_spec(SPECS / "digits_resnet.yaml")
FAST = TrainConfig(epochs=1, float_epochs=2)
CANDIDATES = (2, 4, 8)
CNN_BUDGET = Target(metric="bops", budget=200_000)  # all at 8 bits: 1,515,520 BOPs; all at 2: 94,720


def _small(split: Split) -> Split:
    train, held_out = slice(300), slice(200)
    return Split(
        split.x_train[train],
        split.y_train[train],
        split.x_val[held_out],
        split.y_val[held_out],
        split.x_test[held_out],
        split.y_test[held_out],
    )


@pytest.fixture(scope="module")
def images():
    return _small(load_split(None, CNN))


@pytest.fixture(scope="module")
def uniform_cnn(images) -> SearchResult:
    return search("uniform", CNN, images, CANDIDATES, CNN_BUDGET, train_cfg=FAST)


def test_resnet_groups_one_per_quantizer_and_the_add_inputs_share_one():
    s = structure(RESNET)
    assert [g.name for g in s.groups] == [
        "layers[0].weight",
        "layers[1].body[0].weight",
        "layers[1].body[1].weight",
        "layers[2].body[0].weight",
        "layers[2].body[1].weight",
        "layers[2].shortcut[0].weight",
        "layers[5].weight",
        "input",
        "layers[0].act",
        "layers[1].body[0].act",
        "layers[1].add",
        "layers[1].act",
        "layers[2].body[0].act",
        "layers[2].add",
        "layers[2].act",
        "layers[3].act",  # the global average's requantizer; the last dense's output is not searched
    ]
    feeds = {w.name: x.name for w, x in s.feeds}
    assert feeds["layers[2].body[0].weight"] == feeds["layers[2].shortcut[0].weight"] == "layers[1].act"
    assert feeds["layers[5].weight"] == "layers[3].act"  # through the flatten
    assert [g.name for g in s.groups if g.kind == "act" and g.signed] == ["layers[1].add", "layers[2].add"]
    ladders = check_candidates([2, 4])
    assert ladders.cheapest(RESNET).by_name()["layers[1].add"] == 2
    modules = dict(QuantNet(RESNET, (1, 8, 8)).named_modules())
    assert all(g.module in modules for g in s.groups)
    widths = widths_of(RESNET)
    changed = apply_widths(RESNET, widths.set(s.groups[10], 3))
    assert changed.layers[1].add_bits == 3 and widths_of(changed).by_name()["layers[1].add"] == 3
    assert apply_widths(RESNET, widths) == RESNET


def test_bops_of_a_small_conv_spec_by_hand():
    spec = spec_from_dict(
        {
            "input": {"bits": 5},
            "layers": [
                {"type": "conv", "filters": 4, "kernel": 3, "weight_bits": 3, "bias_bits": 16, "act_bits": 4},
                {
                    "type": "conv",
                    "filters": 4,
                    "kernel": 3,
                    "padding": 1,
                    "groups": 4,
                    "weight_bits": 2,
                    "bias_bits": 16,
                    "act_bits": 6,
                },
                {"type": "maxpool", "kernel": 2},
                {"type": "flatten"},
                {"type": "dense", "units": 10, "weight_bits": 4, "bias_bits": 16, "act_bits": 8},
            ],
        }
    )
    torch.manual_seed(0)
    model = QuantNet(spec, (1, 6, 6)).eval()
    lqs = layer_quants(model)
    shapes = [(lq.weights.shape, lq.groups, lq.pixels) for lq in lqs]
    assert shapes == [((9, 4), 1, 16), ((9, 4), 4, 16), ((16, 10), 1, 1)]
    assert [lq.in_type.width for lq in lqs] == [5, 4, 6]  # the dense reads the depthwise's 6 bits (pool, flatten)
    costs = CostModel().measure(model)
    assert costs["bops"] == 9 * 4 * 16 * 3 * 5 + 9 * 4 * 16 * 2 * 4 + 16 * 10 * 4 * 6
    depthwise = lqs[1]
    per_group = [dense_cost(depthwise.weights[:, [f]], depthwise.in_type, depthwise.w_type) for f in range(4)]
    assert CostModel().layer(depthwise)["lut"] == sum(c["lut"] for c in per_group)


def _check_design(r: SearchResult, split: Split, tmp_path: Path) -> None:
    """Feasible, within budget, written, reloaded, and its QONNX export computes what Brevitas does."""
    assert r.feasible, r.reason
    assert r.chosen.costs[r.target.metric] <= r.target.budget
    assert r.chosen.costs == CostModel().measure(r.model)
    paths = write_outputs(r, tmp_path, split.input_shape)
    assert load_spec(Path(paths["spec"])) == r.chosen.spec
    model, _ = load_checkpoint(Path(paths["checkpoint"]))
    export_qonnx_file(model, split.input_shape, tmp_path / "m.onnx")
    assert check_qonnx_equals_brevitas(model, tmp_path / "m.onnx", split.x_test[:64]).shape == (64, 10)
    with open(paths["pareto_csv"]) as f:
        header = next(csv.reader(f))
    assert header[2 : 2 + len(r.chosen.widths())] == list(widths_of(r.chosen.spec).by_name())
    assert r.summary()["chosen"]["widths"] == r.chosen.widths()


def test_uniform_on_the_cnn(uniform_cnn, images, tmp_path):
    assert [p.label for p in uniform_cnn.front] == ["uniform 2", "uniform 4", "uniform 8"]
    assert uniform_cnn.front[-1].costs["bops"] == 1_515_520
    assert set(uniform_cnn.chosen.widths().values()) == {2}
    _check_design(uniform_cnn, images, tmp_path)


def test_ptq_on_the_cnn_mixes_widths_within_the_budget(uniform_cnn, images, tmp_path):
    r = search(
        "ptq", CNN, images, CANDIDATES, CNN_BUDGET, train_cfg=FAST, uniform_front=uniform_cnn.uniform, calib_samples=64
    )
    _check_design(r, images, tmp_path)
    assert len(set(r.chosen.widths().values())) > 1
    assert r.log["moves"] and all(m.split("->")[0] in r.chosen.widths() for m in r.log["moves"])


def test_uniform_on_the_resnet(tmp_path):
    """(ptq on the resnet works too but takes minutes here: 16 groups, each move a calibrated model.)"""
    split = _small(load_split(None, RESNET))
    target = Target(metric="bops", budget=4_000_000)  # all at 8 bits: 8,693,760 BOPs; all at 4: 2,173,440
    r = search("uniform", RESNET, split, (4,), target, train_cfg=TrainConfig(epochs=1, float_epochs=1))
    _check_design(r, split, tmp_path)
    assert r.chosen.spec.layers[1].add_bits == 4


def test_sdq_on_the_cnn(uniform_cnn, images, tmp_path):
    options = {"cfg": SdqConfig(search_epochs=1), "calib_samples": 64}
    r = search("sdq", CNN, images, CANDIDATES, CNN_BUDGET, train_cfg=FAST, uniform_front=uniform_cnn.uniform, **options)
    _check_design(r, images, tmp_path)


def _problem(spec, split: Split) -> Problem:
    torch.manual_seed(0)
    fmodel = FloatNet(spec, split.input_shape).eval()
    no_float = np.zeros(len(split.y_val), bool)
    return Problem(spec, split, check_candidates(CANDIDATES), CostModel(), fmodel, FAST, no_float, 0.0)


def test_sdq_draws_once_per_group_a_residual_add_included(images):
    problem = _problem(RESNET, images)
    net = StochasticNet(problem, images.x_train[:64], "bops")
    for d in net.dbp:
        d.beta.data.fill_(0.5)
    gen = torch.Generator().manual_seed(1)
    net(torch.from_numpy(images.x_train[:8]), gen)
    reference = torch.Generator().manual_seed(1)
    torch.rand(len(net.groups), generator=reference)
    assert torch.equal(gen.get_state(), reference.get_state())


def test_sdq_cost_table_equals_the_cost_model_on_the_brevitas_cnn(images):
    problem = _problem(CNN, images)
    x = images.x_train[:256]
    net = StochasticNet(problem, x, "lut")
    ladders = problem.ladders
    for widths in (ladders.widest(CNN), ladders.cheapest(CNN), ladders.uniform(CNN, 4).set(net.groups[1], 2)):
        model = calibrate(quant_from_float(problem.fmodel, apply_widths(CNN, widths), images.input_shape, 0), x)
        assert net.proxy(widths) == CostModel().measure(model)["lut"]
        assert np.isfinite(net.proxy(widths))
