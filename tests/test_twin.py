"""The training twin computes exactly what the Brevitas model computes, and training it trains that model."""

from __future__ import annotations

import pytest
import torch

from fpga_mpq.data import load_split
from fpga_mpq.models.net import QuantNet
from fpga_mpq.models.spec import ConvSpec, FlattenSpec, LayerSpec, PoolSpec, Spec, load_spec
from fpga_mpq.train import TrainConfig, adam, fit, resolve_device
from fpga_mpq.train.twin import Twin

MLP = load_spec("specs/digits_default.yaml")
CNN = load_spec("specs/digits_cnn.yaml")  # conv + BatchNorm + ReLU, max pools, flatten, dense
RESNET = load_spec("specs/digits_resnet.yaml")  # residual Adds, strided shortcut, global average pool
AVG_POOL = Spec(
    8,
    True,  # a signed input: the QuantIdentity clamp on both sides
    (
        ConvSpec(6, 3, 4, 12, 5, padding=1),
        PoolSpec("avgpool", 2, 2, act_bits=5),
        FlattenSpec(),
        LayerSpec(10, 3, 12, 6, batchnorm=True),
    ),
)
SPECS = {"mlp": (MLP, 64), "cnn": (CNN, (1, 8, 8)), "resnet": (RESNET, (1, 8, 8)), "avgpool": (AVG_POOL, (1, 8, 8))}
COLLECT = 3  # activation statistics steps, instead of Brevitas' 300, so a test crosses into the learned scales


def _pair(spec: Spec, shape) -> tuple[QuantNet, QuantNet]:
    """Two identical Brevitas models (same seed) whose activations collect statistics for COLLECT steps."""
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        model = QuantNet(spec, shape)
        for m in model.modules():
            if hasattr(m, "collect_stats_steps"):
                m.collect_stats_steps = COLLECT
        models.append(model)
    return models[0], models[1]


def _batch(shape, n: int = 24, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    dims = (n, shape) if isinstance(shape, int) else (n, *shape)
    return torch.rand(dims, generator=g) * 3 - 1  # beyond both ends of the input's range: both clamps act


@pytest.mark.parametrize("name", list(SPECS))
def test_twin_forward_equals_brevitas_bit_for_bit_through_the_statistics_phase(name: str) -> None:
    spec, shape = SPECS[name]
    brevitas, twinned = _pair(spec, shape)
    twin = Twin(twinned)
    brevitas.train(), twin.train()
    for step in range(COLLECT + 3):  # statistics, the step that turns them into log2 values, learned scales
        x = _batch(shape, seed=step)
        assert torch.equal(brevitas(x), twin(x)), f"{name}: training step {step}"
    brevitas.eval(), twin.eval()
    x = _batch(shape, seed=99)
    assert torch.equal(brevitas(x), twin(x))


@pytest.mark.parametrize("name", ["cnn", "resnet"])
def test_training_the_twin_trains_the_brevitas_model_it_wraps(name: str) -> None:
    """Steps of Adam through the twin move the QuantNet's own weights, BatchNorm statistics and
    activation scales: the Brevitas model then gives the twin's outputs, in both modes."""
    spec, shape = SPECS[name]
    model, _ = _pair(spec, shape)
    twin = Twin(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = adam(model.parameters(), 1e-2)
    model.train()
    for step in range(COLLECT + 4):
        opt.zero_grad()
        twin(_batch(shape, seed=step)).square().mean().backward()
        opt.step()
    after = model.state_dict()
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert any(k.endswith("op.weight") for k in moved)
    assert any(k.endswith("running_mean") for k in moved)
    assert any(k.endswith("scaling_impl.value") for k in after), "the learned activation scales are in the model"
    x = _batch(shape, seed=7)
    for mode in (True, False):
        model.train(mode)
        assert torch.equal(model(x), twin(x))


def test_fit_returns_a_brevitas_model_on_the_cpu_that_matches_its_accuracy() -> None:
    split = load_split("digits")
    torch.manual_seed(0)
    model = QuantNet(MLP, split.input_shape)
    fit(model, split, TrainConfig(epochs=10, float_epochs=0), 10, "test")  # 340 steps: past the statistics
    assert all(p.device.type == "cpu" for p in model.parameters())
    model.eval()
    x = torch.from_numpy(split.x_test)
    assert torch.equal(model(x), Twin(model)(x))
    assert (model(x).argmax(1).numpy() == split.y_test).mean() > 0.8


def test_device_auto_is_the_cpu_without_a_gpu_and_cuda_is_refused_there() -> None:
    from fpga_mpq.errors import BadInput

    if torch.cuda.is_available():
        assert resolve_device("auto") == "cuda"
    else:
        assert resolve_device("auto") == "cpu"
        with pytest.raises(BadInput, match="--device cuda: torch sees no CUDA GPU"):
            resolve_device("cuda")
    with pytest.raises(BadInput, match="--device 'gpu': one of auto, cpu, cuda"):
        resolve_device("gpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_training_on_cuda_gives_a_cpu_brevitas_model_equal_to_its_twin() -> None:
    split = load_split("digits")
    torch.manual_seed(0)
    model = QuantNet(CNN, split.input_shape)
    fit(model, split, TrainConfig(epochs=1, float_epochs=0, device="cuda"), 1, "cuda test")
    assert all(p.device.type == "cpu" for p in model.parameters())
    model.eval()
    x = torch.from_numpy(split.x_test)
    assert torch.equal(model(x), Twin(model)(x))
    cuda_model = model.to("cuda")
    assert torch.equal(cuda_model(x.cuda()), Twin(cuda_model)(x.cuda()))
