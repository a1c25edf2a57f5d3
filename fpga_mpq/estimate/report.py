"""Show an estimate: a terminal table, ``estimate.json`` and a per-layer bar chart."""

from __future__ import annotations

import json
from pathlib import Path

from fpga_mpq.estimate.model import Estimate
from fpga_mpq.outputs import replace_file

_COLUMNS = ("lut", "ff", "dsp", "bram18", "latency_cycles", "ii")


def table(data: dict) -> str:
    """Per-layer rows, the total, and the share of the part it takes (from ``Estimate.to_json``)."""
    rows = [("layer", "kind", *_COLUMNS)]
    rows += [(_label(la), la["kind"], *(str(la[c]) for c in _COLUMNS)) for la in data["layers"]]
    rows.append(("total", "", *(str(data["total"][c]) for c in _COLUMNS)))
    util = data["utilization_percent"]
    rows.append((f"% of {data['part']}", "", *(f"{util[c]:.2f}" if c in util else "" for c in _COLUMNS)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        f"{data['target'].upper()} design on {data['part']} at {data['clock_ns']} ns, reuse {data['reuse_factor']}, "
        f"{data['strategy']} strategy, io {data['io']}"
    ]
    for r in rows:
        lines.append(
            "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        )
    return "\n".join(lines)


def _label(layer: dict) -> str:
    """The layer as the user's PyTorch module names it, beside the graph's node name."""
    return f"{layer['module']} ({layer['name']})" if layer.get("module") else layer["name"]


def write_report(est: Estimate, folder: Path, name: str = "estimate") -> tuple[Path, Path]:
    """``<name>.json`` and ``<name>.png`` in ``folder``, each replaced in one rename."""
    folder = Path(folder)
    json_path, png_path = folder / f"{name}.json", folder / f"{name}.png"
    replace_file(json_path, lambda p: p.write_text(json.dumps(est.to_json(), indent=2) + "\n"))
    replace_file(png_path, lambda p: _bar_chart(est, p))
    return json_path, png_path


def _bar_chart(est: Estimate, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    data = est.to_json()
    names = [la["name"] for la in data["layers"]]
    metrics = [("lut", "LUT"), ("ff", "FF"), ("dsp", "DSP"), ("latency_cycles", "latency (cycles)")]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 0.35 * len(names) + 2), sharey=True)
    for ax, (key, label) in zip(axes, metrics, strict=True):
        values = [la[key] for la in data["layers"]]
        ax.barh(range(len(names)), values, color="#4c72b0")
        ax.set_title(f"{label}\ntotal {data['total'][key]:,}")
        ax.set_yticks(range(len(names)), names)
        ax.set_xlim(0, max(1, max(values)) * 1.05)
        ax.grid(axis="x", alpha=0.3)
    axes[0].invert_yaxis()  # shared: first layer on top
    fig.suptitle(f"{data['target'].upper()} estimate, {data['part']} at {data['clock_ns']} ns")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
