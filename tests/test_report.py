"""``write_report``: one offline HTML page from search, flow, estimate, csim, rtlsim and synth folders.

The inputs are written here in the formats the commands write (observed on real runs: a ptq and a
uniform search, a flow, estimate -o, csim, rtlsim and synth), so no training or tool runs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from fpga_mpq.errors import BadInput
from fpga_mpq.report import is_report, write_report

GROUPS = ("layers[0].weight", "layers[1].weight", "layers[2].weight", "input", "layers[0].act", "layers[1].act")
SPEC = {
    "input": {"bits": 8, "signed": False},
    "layers": [
        {"units": 32, "weight_bits": 6, "bias_bits": 16, "act_bits": 6},
        {"units": 32, "weight_bits": 4, "bias_bits": 16, "act_bits": 4},
        {"units": 10, "weight_bits": 3, "bias_bits": 16, "act_bits": 8},
    ],
}


def point(method: str, label: str, bits: list[int], lut: float, test: float, intervals: bool) -> dict:
    """A point dict of search.json; ``intervals``: the newer keys (older outputs lack them)."""
    p = {
        "method": method,
        "label": label,
        "widths": dict(zip(GROUPS, bits, strict=True)),
        "costs": {"bops": 10 * lut, "exact_bits": lut / 2, "lut": lut, "ff": lut / 10, "dsp": 0.0},
        "val_acc": test - 0.01,
        "test_acc": test,
        "sqnr_db": None,
    }
    if intervals:
        p |= {
            "val_acc_interval": [test - 0.05, test + 0.03],
            "test_acc_interval": [test - 0.04, test + 0.03],
            "interval_level": 0.95,
        }
    return p


def write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def ptq_search(folder: Path) -> Path:
    """A newer search.json: intervals, the selection rule and a peer front."""
    uniform = [
        point("uniform", f"uniform {b}", [b] * 6, lut, acc, True)
        for b, lut, acc in ((2, 4541.0, 0.70), (4, 20148.0, 0.86))
    ]
    front = [
        point("ptq", "ptq step 30", [2] * 6, 3277.0, 0.59, True),
        point("ptq", "ptq step 11", [2, 3, 6, 6, 8, 8], 14908.0, 0.76, True),
    ]
    peer = [point("uniform ptq", "uniform ptq 4", [4] * 6, 9000.0, 0.80, True)]
    return write(
        folder / "search.json",
        {
            "method": "ptq",
            "target": {"max_drop": 1.0, "metric": None, "budget": None},
            "feasible": True,
            "infeasible_reason": None,
            "cost_metric": "lut",
            "accuracy_float": {"val": 0.77, "val_interval": [0.72, 0.81], "test": 0.78, "test_interval": [0.74, 0.82]},
            "selection_rule": "the cheapest design whose validation accuracy drop is at most 1.0 points",
            "chosen": front[1] | {"spec": SPEC},
            "iso_accuracy_cost_ratio": 1.32,
            "cost_ratio_vs_uniform": {"uniform 2": 3.28, "uniform 4": 0.74},
            "uniform_beaten": [],
            "uniform_front": uniform,
            "front": front,
            "peer_front": peer,
            "evaluated": 31,
            "log": {},
            "pareto_csv": str(folder / "pareto.csv"),
            "pareto_png": str(folder / "pareto.png"),
            "spec": str(folder / "spec.yaml"),
            "checkpoint": str(folder / "model.pt"),
        },
    )


def dqmq_search(folder: Path) -> Path:
    """An older search.json (no intervals, no selection rule) of dqmq: one design per quality level."""
    levels = [
        point("dqmq", f"level {k}", bits, lut, acc, False)
        for k, (bits, lut, acc) in enumerate((([4, 4, 4, 6, 4, 4], 9000.0, 0.9), ([3, 3, 4, 5, 3, 3], 7000.0, 0.8)))
    ]
    chosen = point("dqmq", "dqmq", [2] * 6, 8000.0, 0.85, False) | {"widths": None, "levels": levels}
    return write(
        folder / "search.json",
        {
            "method": "dqmq",
            "target": {"max_drop": None, "metric": "lut", "budget": 8000.0},
            "cost_metric": "lut",
            "accuracy_float": {"val": 0.9, "test": 0.91},
            "chosen": chosen | {"spec": SPEC},
            "iso_accuracy_cost_ratio": None,
            "uniform_front": [point("uniform", "uniform 4", [4] * 6, 20148.0, 0.86, False)],
            "front": [chosen],
            "levels": [
                {"level": k, "name": name, "widths": lv["widths"], "cost": lv["costs"]["lut"], "costs": lv["costs"]}
                | {"val_acc": 0.8, "test_acc": lv["test_acc"], "spec": f"level{k}/spec.yaml"}
                for k, (name, lv) in enumerate(zip(("clean", "noisy"), levels, strict=True))
            ],
        },
    )


def estimate(lut0: int) -> dict:
    layer = {"dsp": 0, "bram18": 0, "uram": 0, "ii": 1}
    return {
        "target": "hls",
        "part": "xcu250",
        "clock_ns": 5.0,
        "reuse_factor": 1,
        "strategy": "latency",
        "io": "parallel",
        "total": {"lut": lut0 + 437, "ff": 5509, "dsp": 0, "bram18": 0, "uram": 0}
        | {"latency_cycles": 3, "latency_ns": 15.0, "ii": 1},
        "utilization_percent": {"lut": 2.578, "ff": 0.18, "dsp": 0.0, "bram18": 0.0, "uram": 0.0},
        "layers": [
            {"name": "Gemm_0", "kind": "dense", "lut": lut0, "ff": 5317, "latency_cycles": 2} | layer,
            {"name": "Relu_0", "kind": "relu", "lut": 437, "ff": 192, "latency_cycles": 1} | layer,
        ],
    }


def csim(mismatches: int) -> dict:
    first = {"sample": 3, "output": 7, "expected": 0.5, "got": 0.25} if mismatches else None
    return {"samples": 200, "outputs": 2000, "mismatches": mismatches, "first_mismatch": first}


def hls_project(prj: Path) -> dict:
    """The files a C simulation's record is bound to; returns the record's digest entry."""
    from fpga_mpq.sim.csim import project_digest

    for name in ("Makefile", "tb/tb.cpp", "firmware/mpq_top.cpp"):
        (prj / name).parent.mkdir(parents=True, exist_ok=True)
        (prj / name).write_text(f"// {name}\n")
    return {"project_digest": project_digest(prj)}


@pytest.fixture
def outputs(tmp_path: Path) -> dict[str, Path]:
    """A folder of each kind, as the commands lay them out."""
    d = {k: tmp_path / k for k in ("ptq", "dqmq", "flow", "estimate", "rtl")}
    ptq_search(d["ptq"])
    dqmq_search(d["dqmq"])
    flow = {"accuracy_float": 0.78, "accuracy_quant": 0.87, "accuracy_hardware": 0.87}
    digest = hls_project(d["flow"] / "hls")
    flow |= {"outputs_differing_from_brevitas": 0, "spec": SPEC, "csim": csim(0) | {"samples": 360} | digest}
    write(d["flow"] / "report" / "flow.json", flow | {"project": "hls", "onnx": "model.onnx"})
    write(d["flow"] / "hls" / "report" / "csim.json", {"status": "mismatch"} | csim(17) | {"layers": None} | digest)
    write(d["flow"] / "hls" / "report" / "estimate.json", estimate(12345))
    write(d["estimate"] / "estimate.json", estimate(33030))
    rtlsim = csim(0) | {"latency_cycles": 7, "ii": 1, "compared_layer": "Quant_9", "compared_tensor": "global_out"}
    write(d["rtl"] / "report" / "rtlsim.json", rtlsim | {"register_bits": 5495, "da4ml_cost": 27773.0})
    synth = {"lut": 26812, "ff": 5150, "carry": 5507, "dsp": 0, "bram18": 0, "lutram": 0, "part": "xcu250"}
    write(d["rtl"] / "report" / "synth.json", synth | {"cells": {"LUT2": 12329, "CARRY4": 5507}, "project": "rtl"})
    return d


def section(html: str, name: str) -> str:
    return html.split(f'<section id="{name}">')[1].split("</section>")[0]


def test_page_shows_fronts_widths_verification_and_resources(outputs, tmp_path):
    out = tmp_path / "report.html"
    summary = write_report(list(outputs.values()), out)
    html = out.read_text()
    assert summary["report"] == str(out)
    assert [f["found"] for f in summary["folders"]] == [
        ["search"],
        ["search"],
        ["flow", "hls estimate", "C simulation", "C simulation"],
        ["hls estimate"],
        ["RTL simulation", "Synthesis"],
    ]
    fronts = section(html, "fronts")
    assert "ptq front" in fronts and "uniform front" in fronts and "uniform ptq front" in fronts
    assert "validation accuracy drop is at most 1.0 points" in fronts
    assert "chosen: ptq step 11: 14,908 lut, test 76.00 % [72.00, 79.00]" in fronts
    assert fronts.count('stroke-opacity="0.55"') == 5  # error bars: ptq 2, uniform 2, peer 1; dqmq has none
    assert "lut at most 8000" in fronts
    widths = section(html, "widths")
    assert f"{outputs['ptq']}: ptq chosen" in widths and f"{outputs['flow']}: flow spec" in widths
    assert "dqmq level 0 (clean)" in widths and "dqmq level 1 (noisy)" in widths
    assert re.search(r'<td class="cell" style="background: #[0-9a-f]{6}; color: #[0-9a-f]{6}">8</td>', widths)
    checks = section(html, "verification")
    assert checks.count('class="check pass"') == 3  # the flow's C-sim, RTL sim, synthesis
    assert checks.count('class="check fail"') == 1  # the later C-sim with 17 mismatches
    assert "<dt>mismatches</dt><dd>17</dd>" in checks and "sample 3, output 7" in checks
    assert "<dt>LUT</dt><dd>26,812</dd>" in checks
    resources = section(html, "resources")
    assert "33,030" in resources and "12,345" in resources and "2.58 %" in resources
    assert "87.00 %" in section(html, "flows")
    assert "<script" not in html and "<link" not in html and not re.search(r'(src|href)="', html)


def test_folder_given_as_text_is_escaped(outputs, tmp_path):
    odd = tmp_path / "<b>odd&"
    shutil.copytree(outputs["estimate"], odd)
    out = tmp_path / "report.html"
    write_report([odd], out)
    assert "&lt;b&gt;odd&amp;" in out.read_text() and "<b>odd&" not in out.read_text()


def test_folder_without_report_is_one_bad_input_naming_it(outputs, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.json").write_text("{}")
    with pytest.raises(BadInput, match=rf"{re.escape(str(empty))} holds no report of fpga_mpq: expected search.json"):
        write_report([outputs["ptq"], empty], tmp_path / "r.html")
    with pytest.raises(BadInput, match="does not exist"):
        write_report([tmp_path / "missing"], tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()


def test_corrupt_json_is_one_bad_input_naming_the_file(outputs, tmp_path):
    csim_json = outputs["flow"] / "hls" / "report" / "csim.json"
    csim_json.write_text('{"status": "passed", "samp')
    with pytest.raises(BadInput, match=rf"{re.escape(str(csim_json))} is not a readable JSON report"):
        write_report([outputs["flow"]], tmp_path / "r.html")
    search_json = outputs["ptq"] / "search.json"
    search_json.write_text(json.dumps({"method": "ptq", "cost_metric": "lut"}))
    with pytest.raises(BadInput, match=rf"{re.escape(str(search_json))} is not a search report.*'front'"):
        write_report([outputs["ptq"]], tmp_path / "r.html")


def test_existing_file_not_written_by_report_is_kept(outputs, tmp_path):
    mine = tmp_path / "notes.html"
    mine.write_text("<html>my notes</html>")
    with pytest.raises(BadInput, match="was not written by fpga_mpq"):
        write_report([outputs["estimate"]], mine)
    assert mine.read_text() == "<html>my notes</html>"
    out = tmp_path / "report.html"
    write_report([outputs["estimate"]], out)
    write_report([outputs["rtl"]], out)  # a page this tool wrote is replaced
    assert is_report(out) and "RTL simulation" in out.read_text()
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["notes.html", "report.html"]


def test_an_input_is_never_overwritten(outputs, tmp_path):
    search_json = outputs["ptq"] / "search.json"
    before = search_json.read_text()
    for force in (False, True):
        with pytest.raises(BadInput):
            write_report([outputs["ptq"]], search_json, force=force)
    with pytest.raises(BadInput, match="also an input"):
        write_report([outputs["ptq"]], outputs["ptq"], force=True)
    assert search_json.read_text() == before


def chromium(page: Path, png: Path) -> list[str]:
    """Screenshot ``page`` headless; the console lines it logged (messages, uncaught errors)."""
    cmd = ["chromium", "--no-sandbox", "--disable-gpu", "--headless", f"--screenshot={png}"]
    cmd += ["--window-size=1280,1800", "--enable-logging=stderr", "--v=0", page.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=page.parent)
    assert png.is_file(), proc.stderr[-2000:]
    return [ln for ln in proc.stderr.splitlines() if ":CONSOLE" in ln or "Uncaught" in ln]


def test_page_renders_in_headless_chromium_without_console_errors(outputs, tmp_path):
    if shutil.which("chromium") is None:
        pytest.skip("chromium is not installed (make chromium installs it as root)")
    from PIL import Image

    broken = tmp_path / "broken.html"
    broken.write_text("<!DOCTYPE html><p>x</p><script>throw new Error('deliberate')</script>")
    assert any("deliberate" in ln for ln in chromium(broken, tmp_path / "broken.png"))  # the check can fail

    out = tmp_path / "report.html"
    write_report(list(outputs.values()), out)
    assert chromium(out, tmp_path / "report.png") == []
    image = Image.open(tmp_path / "report.png").convert("RGB")
    colours = image.getcolors(1 << 24)
    assert len(colours) > 300  # text, charts and the heat map; a blank page has one colour
    assert dict((c, n) for n, c in colours).get((0x1F, 0x77, 0xB4), 0) > 100  # the method's front was drawn
