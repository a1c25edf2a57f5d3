"""Quantization-aware training: a float reference first, then QAT of the Brevitas model from it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from fpga_mpq.data import Split
from fpga_mpq.errors import BadInput
from fpga_mpq.models.mlp import FloatMLP, QuantMLP
from fpga_mpq.models.spec import Spec, spec_from_dict


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 40
    float_epochs: int = 40
    batch_size: int = 32
    lr: float = 3e-3
    seed: int = 0


@dataclass(frozen=True)
class TrainResult:
    model: QuantMLP
    accuracy_float: float
    accuracy_quant: float


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    model.eval()
    with torch.no_grad():
        pred = model(torch.from_numpy(x)).argmax(dim=1).numpy()
    return float((pred == y).mean())


def fit(model: nn.Module, split: Split, cfg: TrainConfig, epochs: int, desc: str) -> None:
    gen = torch.Generator().manual_seed(cfg.seed)
    x, y = torch.from_numpy(split.x_train), torch.from_numpy(split.y_train)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    loss_fn = nn.CrossEntropyLoss()
    bar = tqdm(range(epochs), desc=desc, leave=False, disable=None)
    for _ in bar:
        model.train()
        order = torch.randperm(len(x), generator=gen)
        for start in range(0, len(x), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")


def train_float(spec: Spec, split: Split, cfg: TrainConfig) -> FloatMLP:
    """The float reference every quantized model starts from (and is compared with)."""
    if split.n_classes > spec.layers[-1].units:
        raise BadInput(f"spec: last layer has {spec.layers[-1].units} units but the data has {split.n_classes} classes")
    torch.manual_seed(cfg.seed)
    fmodel = FloatMLP(spec, split.n_features)
    fit(fmodel, split, cfg, cfg.float_epochs, "float training")
    return fmodel.eval()


def quant_from_float(fmodel: nn.Module, spec: Spec, n_features: int, seed: int) -> QuantMLP:
    """A QuantMLP of ``spec`` holding ``fmodel``'s weights (no calibration, no training)."""
    torch.manual_seed(seed)
    qmodel = QuantMLP(spec, n_features)
    floats = [m for m in fmodel.modules() if isinstance(m, nn.Linear)]
    quants = [m for m in qmodel.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for f, q in zip(floats, quants, strict=True):
            q.weight.copy_(f.weight)
            q.bias.copy_(f.bias)
    return qmodel


def qat(
    fmodel: nn.Module, spec: Spec, split: Split, cfg: TrainConfig, desc: str = "quantization-aware training"
) -> QuantMLP:
    """Quantization-aware training of ``spec`` starting from the float weights."""
    qmodel = quant_from_float(fmodel, spec, split.n_features, cfg.seed)
    fit(qmodel, split, cfg, cfg.epochs, desc)
    return qmodel.eval()


def train(spec: Spec, split: Split, cfg: TrainConfig = TrainConfig()) -> TrainResult:
    """Train the float MLP, copy its weights into the quantized one, then run QAT."""
    fmodel = train_float(spec, split, cfg)
    qmodel = qat(fmodel, spec, split, cfg)
    return TrainResult(
        qmodel, accuracy(fmodel, split.x_test, split.y_test), accuracy(qmodel, split.x_test, split.y_test)
    )


def save_checkpoint(result: TrainResult, n_features: int, path: Path) -> None:
    torch.save(
        {
            "spec": result.model.spec.to_dict(),
            "n_features": n_features,
            "state_dict": result.model.state_dict(),
            "accuracy_float": result.accuracy_float,
            "accuracy_quant": result.accuracy_quant,
        },
        path,
    )


def load_checkpoint(path: Path) -> tuple[QuantMLP, dict]:
    """Rebuild the quantized model from a checkpoint; returns it with the checkpoint's metadata."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"checkpoint {path} does not exist")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
        model = QuantMLP(spec_from_dict(ck["spec"]), ck["n_features"])
        model.load_state_dict(ck["state_dict"])
    except (RuntimeError, KeyError, EOFError, OSError) as e:
        raise BadInput(f"checkpoint {path} is not a fpga_mpq checkpoint: {e}") from None
    model.eval()
    return model, ck
