"""``deployment.yaml``: a dqmq design as files — one spec and checkpoint per quality level over shared
weights, the quality estimator's, the quality mix and the data the levels were measured on.

Paths inside are relative to the file, so a search folder can be moved or copied whole. ``flow
--deployment`` reads it back (:func:`load_deployment`) and verifies every level in hardware.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import yaml

from fpga_mpq.errors import BadInput, shown
from fpga_mpq.models.spec import save_spec
from fpga_mpq.mpq import dqmq
from fpga_mpq.train import TrainResult, save_checkpoint

if TYPE_CHECKING:
    from fpga_mpq.mpq.search import SearchResult

DEPLOYMENT_FORMAT = "fpga_mpq.deployment/1"


def write_deployment(result: SearchResult, out: Path, input_shape: tuple[int, ...], data: str | None) -> dict:
    """levelN/{spec.yaml,model.pt}, estimator/{spec.yaml,model.pt} and deployment.yaml (paths relative to it)."""
    dep = result.deployment
    n = len(result.chosen.levels)
    levels = []
    for k, (point, model) in enumerate(zip(result.chosen.levels, dep.models, strict=True)):
        folder = out / f"level{k}"
        folder.mkdir()
        save_spec(point.spec, folder / "spec.yaml")
        save_checkpoint(TrainResult(model, result.float_test, point.test_acc), input_shape, folder / "model.pt")
        levels.append(
            {
                "level": k,
                "name": dqmq.level_name(k, n),
                "spec": f"level{k}/spec.yaml",
                "checkpoint": f"level{k}/model.pt",
                "cost": point.costs[result.cost_metric],
                "test_acc": point.test_acc,
            }
        )
    folder = out / "estimator"
    folder.mkdir()
    est = dep.estimator
    save_spec(est.model.spec, folder / "spec.yaml")
    n_features = (int(np.prod(input_shape)),)
    save_checkpoint(TrainResult(est.model, est.accuracy, est.accuracy), n_features, folder / "model.pt")
    doc = {
        "format": DEPLOYMENT_FORMAT,
        "data": data,
        "cost_metric": result.cost_metric,
        "quality_mix": result.log.get("quality_mix"),
        "expected_cost": result.chosen.costs[result.cost_metric],
        "levels": levels,
        "estimator": {
            "spec": "estimator/spec.yaml",
            "checkpoint": "estimator/model.pt",
            "test_acc": est.accuracy,
            "confusion": est.confusion,
        },
    }
    (out / "deployment.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    paths = {"deployment": out / "deployment.yaml", "estimator_spec": out / "estimator/spec.yaml"}
    paths |= {f"level{k}_spec": out / f"level{k}/spec.yaml" for k in range(n)}
    return {k: str(v) for k, v in paths.items()}


@dataclass(frozen=True)
class LevelFiles:
    level: int
    name: str
    checkpoint: Path


@dataclass(frozen=True)
class DeploymentFiles:
    """A checked ``deployment.yaml``: every path exists; ``data`` as the search saw it."""

    path: Path
    data: str | None
    cost_metric: str
    quality_mix: list[float]
    levels: list[LevelFiles]
    estimator: Path


def load_deployment(path: Path) -> DeploymentFiles:
    """Read and check a deployment file; every problem is one ``BadInput`` naming the file and the key."""
    path = Path(path)
    if path.is_dir():
        path = path / "deployment.yaml"
    if not path.is_file():
        raise BadInput(f"deployment {path} does not exist (a dqmq search writes it: search --method dqmq -o DIR)")
    try:
        doc = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise BadInput(f"deployment {path} is not readable YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(doc, dict) or doc.get("format") != DEPLOYMENT_FORMAT:
        raise BadInput(f"deployment {path}: not a fpga_mpq deployment (no format {DEPLOYMENT_FORMAT!r})")

    def file(key: str, value: object) -> Path:
        if not isinstance(value, str) or not value:
            raise BadInput(f"deployment {path}: {key} = {shown(value)} must be a path relative to the file")
        f = path.parent / value
        if not f.is_file():
            raise BadInput(f"deployment {path}: {key} = {value} does not exist ({f})")
        return f

    levels = doc.get("levels")
    if not isinstance(levels, list) or len(levels) < 2:
        raise BadInput(f"deployment {path}: levels must list at least two quality levels")
    parsed = []
    for k, entry in enumerate(levels):
        if not isinstance(entry, dict) or entry.get("level") != k:
            raise BadInput(f"deployment {path}: levels[{k}] must be a mapping with level: {k}")
        parsed.append(
            LevelFiles(
                k, str(entry.get("name", f"level {k}")), file(f"levels[{k}].checkpoint", entry.get("checkpoint"))
            )
        )
    estimator = doc.get("estimator")
    if not isinstance(estimator, dict):
        raise BadInput(f"deployment {path}: estimator must be a mapping with its checkpoint")
    mix = doc.get("quality_mix")
    if (
        not isinstance(mix, list)
        or len(mix) != len(parsed)
        or not all(isinstance(m, int | float) and m >= 0 for m in mix)
    ):
        raise BadInput(f"deployment {path}: quality_mix must give a non-negative share per level ({len(parsed)})")
    data = doc.get("data")
    if data is not None and not isinstance(data, str):
        raise BadInput(f"deployment {path}: data = {shown(data)} must be a built-in data set's name or a .npz path")
    return DeploymentFiles(
        path,
        data,
        str(doc.get("cost_metric", "lut")),
        [float(m) for m in mix],
        parsed,
        file("estimator.checkpoint", estimator.get("checkpoint")),
    )
