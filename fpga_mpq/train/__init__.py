"""Quantization-aware training: a float reference first, then QAT of the Brevitas model from it."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from fpga_mpq.data import Split
from fpga_mpq.errors import BadInput, shown
from fpga_mpq.models.net import FloatNet, QuantNet, transfer_weights
from fpga_mpq.models.spec import Spec, spec_from_dict
from fpga_mpq.parallel import DEVICES, one_thread
from fpga_mpq.train.twin import Twin

MAX_EPOCHS = 100_000
MAX_INPUT = 1 << 22  # values per sample a checkpoint may declare (Fashion-MNIST: 784)
STEPS_PER_EPOCH = 300  # the fewest steps per epoch the default batch size keeps (batch_size_for)
EVAL_BATCH = 1000  # samples per forward pass when measuring accuracy: 10k images at once need gigabytes


def resolve_device(device: str) -> str:
    """``--device``: ``auto`` is a CUDA GPU when torch sees one, else the CPU; ``cuda`` without one is
    the user's error, said before any training."""
    if device not in DEVICES:
        raise BadInput(f"--device {shown(device)}: one of {', '.join(DEVICES)}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise BadInput(
            "--device cuda: torch sees no CUDA GPU here (torch.cuda.is_available() is False): use cpu or auto"
        )
    return device


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 40
    float_epochs: int = 40
    batch_size: int = 32
    lr: float = 3e-3
    seed: int = 0
    device: str = "cpu"  # where training runs (resolve_device); models come back to the CPU

    def __post_init__(self) -> None:
        """Checked before any training: a negative epoch count used to train nothing and say nothing.

        0 epochs is allowed: ``fit`` then leaves the model as initialised (an untrained model).
        The seed must suit numpy's legacy seeding too (the search uses it), which takes 0..2**32-1.
        """
        for option, value in (("--epochs", self.epochs), ("float_epochs", self.float_epochs)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_EPOCHS:
                raise BadInput(f"{option} {value}: must be a whole number of epochs from 0 to {MAX_EPOCHS:,}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise BadInput(f"batch_size {self.batch_size}: must be a whole number, 1 or more")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise BadInput(f"lr {self.lr}: the learning rate must be positive and finite")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            raise BadInput(f"--seed {self.seed}: must be a whole number in 0..{2**32 - 1}")
        if self.device not in ("cpu", "cuda"):
            raise BadInput(f"device {shown(self.device)}: cpu or cuda (resolve_device turns auto into one)")

    @classmethod
    def for_spec(
        cls, spec: Spec, epochs: int | None = None, seed: int = 0, n_train: int = 0, device: str = "cpu"
    ) -> TrainConfig:
        """``--epochs`` if given, else the spec's own training defaults, else the built-in ones; the
        batch size, unless the spec sets it, from the training set's size (:func:`batch_size_for`)."""
        t = spec.training
        epochs = epochs if epochs is not None else t.epochs if t.epochs is not None else cls.epochs
        return cls(
            epochs=epochs,
            float_epochs=epochs,
            batch_size=t.batch_size or batch_size_for(n_train),
            lr=t.lr or cls.lr,
            seed=seed,
            device=device,
        )


def batch_size_for(n_train: int) -> int:
    """32, or on a large training set the largest power of two up to 128 that keeps about 300 steps
    per epoch. A QAT step costs Brevitas about the same time at 32 samples as at 128, so on
    Fashion-MNIST (50,000 images) 128 trains 3x more samples per second; measured on the 784-64-32-10
    MLP, 20 epochs: float 88.6% at 128 vs 89.1% at 32, 2-bit 85.7% vs 86.1%."""
    size = 32
    while size < 128 and n_train >= 2 * size * STEPS_PER_EPOCH:
        size *= 2
    return size


@dataclass(frozen=True)
class TrainResult:
    model: QuantNet
    accuracy_float: float
    accuracy_quant: float


def correct(model: nn.Module, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """One bool per sample: did the model's top class match the label."""
    model.eval()
    with torch.no_grad():
        pred = [
            model(torch.from_numpy(x[i : i + EVAL_BATCH])).argmax(dim=1).numpy() for i in range(0, len(x), EVAL_BATCH)
        ]
    return np.concatenate(pred) == y


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    return float(correct(model, x, y).mean())


def fit(model: nn.Module, split: Split, cfg: TrainConfig, epochs: int, desc: str) -> None:
    """Adam with a cosine schedule on ``cfg.device`` (the model comes back to the CPU), on one CPU thread
    (:func:`fpga_mpq.parallel.one_thread`: faster here, and the same sums wherever it runs). A Brevitas
    model trains through its :class:`~fpga_mpq.train.twin.Twin`: the same values, 1.2-2.3x the samples/s."""
    with one_thread():
        model.to(cfg.device)
        try:
            _fit(model, split, cfg, epochs, desc)
        finally:
            model.to("cpu")


def adam(params, lr: float) -> torch.optim.Adam:
    """Adam with its fused kernel, one pass over every parameter per step: on a small network the
    per-tensor loop of the default costs as much as the arithmetic (float MLP: 1.7x the samples/s)."""
    return torch.optim.Adam(params, lr=lr, fused=True)


def fast_forward(model: nn.Module) -> nn.Module:
    """What a training step calls: a Brevitas model's twin, any other model itself."""
    return Twin(model) if isinstance(model, QuantNet) else model


def _fit(model: nn.Module, split: Split, cfg: TrainConfig, epochs: int, desc: str) -> None:
    gen = torch.Generator().manual_seed(cfg.seed)
    x = torch.from_numpy(split.x_train).to(cfg.device)  # on the device once; a step only gathers its batch
    y = torch.from_numpy(split.y_train).to(cfg.device)
    forward = fast_forward(model)
    opt = adam(model.parameters(), cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    loss_fn = nn.CrossEntropyLoss()
    bar = tqdm(range(epochs), desc=desc, leave=False, disable=None)
    for _ in bar:
        model.train()
        order = torch.randperm(len(x), generator=gen).to(cfg.device)
        for start in range(0, len(x), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            opt.zero_grad()
            loss = loss_fn(forward(x[idx]), y[idx])
            loss.backward()
            opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")


def train_float(spec: Spec, split: Split, cfg: TrainConfig) -> FloatNet:
    """The float reference every quantized model starts from (and is compared with)."""
    if split.n_classes > spec.layers[-1].units:
        raise BadInput(f"spec: last layer has {spec.layers[-1].units} units but the data has {split.n_classes} classes")
    torch.manual_seed(cfg.seed)
    fmodel = FloatNet(spec, split.input_shape)
    fit(fmodel, split, cfg, cfg.float_epochs, "float training")
    return fmodel.eval()


def quant_from_float(fmodel: FloatNet, spec: Spec, input_shape: int | tuple[int, ...], seed: int) -> QuantNet:
    """A QuantNet of ``spec`` holding ``fmodel``'s weights, moved by module name (no calibration, no
    training). ``input_shape`` is one sample's: a feature count or (C, H, W)."""
    torch.manual_seed(seed)
    qmodel = QuantNet(spec, input_shape)
    transfer_weights(fmodel, qmodel)
    return qmodel


def qat(
    fmodel: FloatNet, spec: Spec, split: Split, cfg: TrainConfig, desc: str = "quantization-aware training"
) -> QuantNet:
    """Quantization-aware training of ``spec`` starting from the float weights."""
    qmodel = quant_from_float(fmodel, spec, split.input_shape, cfg.seed)
    fit(qmodel, split, cfg, cfg.epochs, desc)
    return qmodel.eval()


def train(spec: Spec, split: Split, cfg: TrainConfig = TrainConfig()) -> TrainResult:
    """Train the float network, copy its weights into the quantized one, then run QAT."""
    fmodel = train_float(spec, split, cfg)
    qmodel = qat(fmodel, spec, split, cfg)
    return TrainResult(
        qmodel, accuracy(fmodel, split.x_test, split.y_test), accuracy(qmodel, split.x_test, split.y_test)
    )


CHECKPOINT_FORMAT = "fpga_mpq.checkpoint/2"  # 2: any spec's QuantNet and its input shape


def save_checkpoint(result: TrainResult, input_shape: tuple[int, ...], path: Path) -> None:
    """Tensors and plain data only, so loading never runs code (``torch.load(weights_only=True)``)."""
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "spec": result.model.spec.to_dict(),
            "input_shape": list(input_shape),
            "state_dict": dict(result.model.state_dict()),
            "accuracy_float": result.accuracy_float,
            "accuracy_quant": result.accuracy_quant,
        },
        path,
    )


def _read_checkpoint(path: Path) -> dict:
    """The checkpoint's dict, read without running any code a stranger put in the file."""
    path = Path(path)
    if path.is_dir():
        raise BadInput(f"checkpoint {path} is a folder, not a file")
    if not path.is_file():
        raise BadInput(f"checkpoint {path} does not exist")
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickle protocols on stderr
            warnings.simplefilter("ignore")
            ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a foreign or corrupt file; all mean the same
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BadInput(f"checkpoint {path} is not a fpga_mpq checkpoint ({reason[:200]})") from None
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise BadInput(f"checkpoint {path} is not a fpga_mpq checkpoint (no format {CHECKPOINT_FORMAT!r})")
    if not isinstance(ck.get("spec"), dict):
        raise BadInput(f"checkpoint {path}: spec = {shown(ck.get('spec'))} must be the bit-width spec (a mapping)")
    shape = ck.get("input_shape")
    if (
        not isinstance(shape, list)
        or len(shape) not in (1, 3)
        or not all(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= MAX_INPUT for n in shape)
        or math.prod(shape) > MAX_INPUT
    ):
        raise BadInput(
            f"checkpoint {path}: input_shape = {shown(shape)} must be [F] or [C, H, W] positive integers "
            f"(at most {MAX_INPUT:,} values)"
        )
    state = ck.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BadInput(f"checkpoint {path}: state_dict must map names to tensors")
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise BadInput(f"checkpoint {path}: {str(name)[:80]} holds NaN or infinite values")
    for key in ("accuracy_float", "accuracy_quant"):
        if not isinstance(ck.get(key), float):
            raise BadInput(f"checkpoint {path}: {key} = {shown(ck.get(key))} must be a number")
    return ck


def is_checkpoint(path: Path) -> bool:
    """True for a file this tool wrote as a checkpoint (so it may be replaced by a new one)."""
    try:
        _read_checkpoint(path)
    except BadInput:
        return False
    return True


def load_checkpoint(path: Path) -> tuple[QuantNet, dict]:
    """Rebuild the quantized model from a checkpoint; returns it with the checkpoint's metadata."""
    ck = _read_checkpoint(path)
    try:
        model = QuantNet(spec_from_dict(ck["spec"]), tuple(ck["input_shape"]))
        model.load_state_dict(ck["state_dict"])
    except BadInput as e:
        raise BadInput(f"checkpoint {path}: {e}") from None
    except RuntimeError as e:
        reason = " ".join(line.strip() for line in str(e).strip().splitlines()[1:2]) or str(e).strip()
        raise BadInput(f"checkpoint {path}: the weights do not fit its spec ({reason[:200]})") from None
    model.eval()
    return model, ck
