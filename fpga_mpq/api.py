"""The Python API: one function per command; the CLI is a thin shell over these.

Each returns a plain dict summary (what ``--json`` prints) and raises ``BadInput`` or
``VerificationFailed``. Outputs are written to a temporary place and renamed into position.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from fpga_mpq.data import builtin_name, load_split
from fpga_mpq.errors import BadInput, VerificationFailed
from fpga_mpq.hls.config import PROJECT_META, PROJECT_MODEL, HlsConfig
from fpga_mpq.hls.generate import write_project
from fpga_mpq.ir.from_qonnx import network_from_qonnx, read_onnx
from fpga_mpq.ir.golden import run
from fpga_mpq.ir.network import Network, check_reuse_factor
from fpga_mpq.ir.types import FixedType, Overflow, Rounding
from fpga_mpq.models.spec import load_spec, save_spec
from fpga_mpq.mpq.confidence import CONFIDENCE
from fpga_mpq.outputs import atomic_dir, atomic_file, check_output, inner_folder, is_tool_folder, replace_file
from fpga_mpq.parallel import SERIAL, Runner, check_address
from fpga_mpq.sim.csim import csim_project, project_digest, random_inputs, write_testbench_data

TB_SAMPLES = 64  # inputs shipped in tb/ so the vendor TCL's csim step runs as-is
MAX_SAMPLES = 100_000  # random inputs per simulation: text files and golden traces stay in memory


def _file(data: Path | str | None) -> Path | None:
    """``--data`` as an input path to protect, or None for a built-in data set's name."""
    return None if data is None or builtin_name(data) else Path(data)


def train(
    out: Path,
    spec: Path | None = None,
    data: Path | str | None = None,
    epochs: int | None = None,
    seed: int = 0,
    force: bool = False,
    device: str = "auto",
) -> dict:
    """Quantization-aware training of the spec's network; saves a checkpoint at ``out``.
    ``data`` is a ``.npz`` or a built-in name; by default the spec's own data set, else digits.
    ``device``: ``auto`` (a CUDA GPU when there is one), ``cpu`` or ``cuda``."""
    from fpga_mpq.train import TrainConfig, is_checkpoint, resolve_device, save_checkpoint
    from fpga_mpq.train import train as run_training

    target = check_output(out, [spec, _file(data)], force, owned=is_checkpoint)
    model_spec = load_spec(spec)
    where = resolve_device(device)
    TrainConfig.for_spec(model_spec, epochs, seed)  # fail on bad input before reading the data
    split = load_split(data, model_spec)
    cfg = TrainConfig.for_spec(model_spec, epochs, seed, len(split.y_train), where)
    result = run_training(model_spec, split, cfg)
    with atomic_file(target) as tmp:
        save_checkpoint(result, split.input_shape, tmp)
    return {
        "checkpoint": str(out),
        "accuracy_float": result.accuracy_float,
        "accuracy_quant": result.accuracy_quant,
        "spec": model_spec.to_dict(),
    }


def export(checkpoint: Path, out: Path, data: Path | str | None = None, force: bool = False) -> dict:
    """Export a checkpoint to QONNX and compare qonnx's execution with Brevitas on the test set.

    They must be equal, except where the model has BatchNorm: PyTorch and onnxruntime compute it in
    float32 with different operation orders, so a value on a quantizer's boundary can round either
    way, in at most 1 % of the samples. That count is reported, never hidden; the hardware is checked
    against the QONNX graph.
    """
    from fpga_mpq.export import (
        check_batchnorm_ties,
        compare_qonnx_with_brevitas,
        export_qonnx_file,
        has_batchnorm,
        is_exported_onnx,
        require_equal,
    )
    from fpga_mpq.train import load_checkpoint

    target = check_output(out, [checkpoint, _file(data)], force, owned=is_exported_onnx)
    model, ck = load_checkpoint(checkpoint)
    split = load_split(data, model.spec)
    if split.input_shape != model.input_shape:
        raise BadInput(f"data has samples of shape {split.input_shape}, the checkpoint expects {model.input_shape}")
    with atomic_file(target) as tmp:
        export_qonnx_file(model, model.input_shape, tmp)
        got, differ = compare_qonnx_with_brevitas(model, tmp, split.x_test)
        if has_batchnorm(model):
            check_batchnorm_ties(differ)
        else:
            require_equal(differ)
    return {
        "onnx": str(out),
        "samples": len(split.x_test),
        "qonnx_equals_brevitas": not differ.any(),
        "outputs_differing_from_brevitas": int(differ.sum()),
    }


def _load_network(model: Path, input_type: FixedType | None) -> Network:
    return network_from_qonnx(Path(model), input_type)


def generate(
    model: Path,
    out: Path,
    cfg: HlsConfig = HlsConfig(),
    input_type: FixedType | None = None,
    force: bool = False,
) -> dict:
    """QONNX -> HLS project folder, written atomically; the same inputs give the same bytes."""
    import onnx

    target = check_output(out, [model], force)
    net = _load_network(model, input_type)
    cfg = cfg.resolved(net)  # io left out: io_stream for a CNN; the project's metadata records the choice
    with atomic_dir(target, "generate") as tmp:
        write_project(net, cfg, tmp, Path(model).name)
        onnx.save(read_onnx(model), str(tmp / PROJECT_MODEL))  # external weights, if any, inlined
        meta = {"config": asdict(cfg), "input_type": _type_to_json(net.input.out) if not net.input.from_model else None}
        (tmp / PROJECT_META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        write_testbench_data(net, random_inputs(net, TB_SAMPLES, seed=0), tmp / "tb")
    return {"project": str(out), "layers": len(net.layers), "backend": cfg.backend, "part": cfg.part}


def _type_to_json(t: FixedType) -> dict:
    return {
        "signed": t.signed,
        "width": t.width,
        "int_bits": t.int_bits,
        "rounding": t.rounding.name,
        "overflow": t.overflow.name,
    }


def _type_from_json(d: dict | None) -> FixedType | None:
    if d is None:
        return None
    return FixedType(d["signed"], d["width"], d["int_bits"], Rounding[d["rounding"]], Overflow[d["overflow"]])


def project_config(prj: Path) -> tuple[HlsConfig, FixedType | None]:
    """A generated project's HLS configuration and declared input type, from its metadata file."""
    prj = Path(prj)
    meta_path = prj / PROJECT_META
    for own in (PROJECT_META, PROJECT_MODEL):  # read from the project, never from where a link leads
        if (prj / own).is_symlink():
            raise BadInput(f"project {prj}: {own} is a symbolic link; fpga_mpq reads only the project's own files")
    if not meta_path.is_file():
        raise BadInput(f"{prj} is not a fpga_mpq HLS project (no {PROJECT_META})")
    try:
        meta = json.loads(meta_path.read_text())
        cfg = HlsConfig(**meta["config"])
        input_type = _type_from_json(meta["input_type"])
    except (ValueError, TypeError, KeyError, BadInput) as e:
        raise BadInput(f"{meta_path} is damaged ({type(e).__name__}: {e}); generate the project again") from None
    return cfg, input_type


def load_project_network(prj: Path) -> Network:
    """The IR of a generated project, rebuilt from its copy of the model."""
    _, input_type = project_config(prj)
    return _load_network(Path(prj) / PROJECT_MODEL, input_type)


def _network_and_config(model: Path, input_type: FixedType | None) -> tuple[Network, dict, Path | None]:
    """A project folder gives its network, its HLS config and its report folder; a QONNX file
    gives its network and no defaults."""
    model = Path(model)
    if model.is_dir():
        cfg, _ = project_config(model)
        return load_project_network(model), asdict(cfg), inner_folder(model, "report")
    if not model.is_file():
        raise BadInput(f"model {model} does not exist")
    return _load_network(model, input_type), {}, None


def estimate(
    model: Path,
    out: Path | None = None,
    part: str | None = None,
    clock_ns: float | None = None,
    reuse_factor: int | None = None,
    strategy: str = "latency",
    io: str | None = None,
    rtl: bool = False,
    input_type: FixedType | None = None,
    force: bool = False,
) -> dict:
    """LUT / FF / DSP / BRAM and latency per layer of a project or a QONNX model, in seconds.

    Options left out come from the project's own configuration. ``rtl`` estimates the da4ml
    Verilog design instead of the HLS one. Writes ``estimate.json`` and ``estimate.png`` into
    the project's ``report/`` (or the folder ``out``).
    """
    from fpga_mpq.estimate.hls import estimate_hls
    from fpga_mpq.estimate.model import EstimateConfig
    from fpga_mpq.estimate.parts import find_part
    from fpga_mpq.estimate.report import write_report

    target = None
    if out is not None or not Path(model).is_dir():
        target = check_output(out if out is not None else "out/estimate", [model], force)
    net, prj_cfg, report_dir = _network_and_config(model, input_type)
    cfg = EstimateConfig(
        find_part(part or prj_cfg.get("part", HlsConfig.part)),
        clock_ns if clock_ns is not None else prj_cfg.get("clock_ns", HlsConfig.clock_ns),
        reuse_factor if reuse_factor is not None else prj_cfg.get("reuse_factor", 1),
        strategy,
        io or prj_cfg.get("io", "parallel"),
    )
    check_reuse_factor(net, cfg.reuse_factor)
    if rtl:
        from fpga_mpq.estimate.rtl import estimate_rtl

        est = estimate_rtl(net, cfg)
    else:
        est = estimate_hls(net, cfg)
    est = replace(est, modules=net.modules)
    if target is None:
        try:
            json_path, png_path = write_report(est, report_dir)
        except OSError as e:
            raise BadInput(f"cannot write the estimate into {report_dir}: {e.strerror or e}") from None
    else:
        with atomic_dir(target, "estimate") as tmp:
            json_path, png_path = (target.path / p.name for p in write_report(est, tmp))
    return {**est.to_json(), "report": str(json_path), "chart": str(png_path)}


def _rtl_config(part: str, clock_ns: float, top: str):
    from fpga_mpq.estimate.parts import find_part
    from fpga_mpq.rtl.project import RtlConfig

    return RtlConfig(find_part(part), clock_ns, top)


def rtlsim(
    model: Path,
    out: Path = Path("out/rtl"),
    part: str = HlsConfig.part,
    clock_ns: float = HlsConfig.clock_ns,
    top: str = HlsConfig.top,
    data: Path | None = None,
    random: int | None = None,
    seed: int = 0,
    input_type: FixedType | None = None,
    force: bool = False,
) -> dict:
    """Lower the model to pipelined Verilog with da4ml, simulate it cycle by cycle with Verilator
    and compare every output bit with the golden model (the logits when a softmax follows)."""
    from fpga_mpq.rtl.project import build_simulator, pipeline, simulate

    target = check_output(out, [model, data], force)
    cfg = _rtl_config(part, clock_ns, top)
    net = _load_network(model, input_type)
    x = _samples(net, data, random, seed)
    with atomic_dir(target, "rtlsim") as tmp:
        design = pipeline(net, cfg, tmp)
        build_simulator(design)
        got, want = simulate(design, net, x)
        bad = np.argwhere(got != want)
        summary = {
            "samples": int(len(x)),
            "outputs": int(got.size),
            "mismatches": int(len(bad)),
            "first_mismatch": None if not len(bad) else {"sample": int(bad[0][0]), "output": int(bad[0][1])},
            "latency_cycles": design.latency_cycles,
            "ii": 1,
            "compared_layer": design.traced.layers[-1],
            "compared_tensor": design.traced.out_tensor,
            "register_bits": design.reg_bits,
            "da4ml_cost": float(design.traced.comb.cost),
            "project": str(out),
        }
        if bad.size:  # nothing is kept: the previous output stays as it was
            raise VerificationFailed(json.dumps(summary))
        _write_report(tmp / "report" / "rtlsim.json", summary)
    return summary


def synth(
    model: Path,
    out: Path = Path("out/rtl"),
    part: str = HlsConfig.part,
    clock_ns: float = HlsConfig.clock_ns,
    top: str = HlsConfig.top,
    timeout: float = 1800,
    input_type: FixedType | None = None,
    force: bool = False,
) -> dict:
    """Yosys ``synth_xilinx`` of the model's RTL design: LUT, FF, CARRY, DSP, BRAM counts.

    ``model`` may be an RTL project written by ``rtlsim`` (its Verilog is reused) or a QONNX file.
    """
    from fpga_mpq.rtl.project import pipeline
    from fpga_mpq.rtl.synth import synthesize

    cfg = _rtl_config(part, clock_ns, top)
    if not (math.isfinite(timeout) and timeout > 0):
        raise BadInput(f"--timeout {timeout}: must be a positive number of seconds")
    model = Path(model)
    if model.is_dir():
        if not is_tool_folder(model) or not (model / "src" / f"{top}.v").is_file():
            raise BadInput(f"{model} is not an RTL project of fpga_mpq with top module {top!r} (no src/{top}.v)")
        report = inner_folder(model, "report")  # checked before minutes of synthesis
        with atomic_dir(check_output(model / "synth", force=force), "synth") as work:
            result = synthesize(model, top, cfg.part, timeout, work)
        summary = {**result.to_json(), "part": cfg.part.name, "cells": result.cells, "project": str(model)}
        _write_report(report / "synth.json", summary)
        return summary
    target = check_output(out, [model], force)
    net = _load_network(model, input_type)
    with atomic_dir(target, "synth") as tmp:
        pipeline(net, cfg, tmp)
        result = synthesize(tmp, top, cfg.part, timeout, tmp / "synth")
        summary = {**result.to_json(), "part": cfg.part.name, "cells": result.cells, "project": str(out)}
        _write_report(tmp / "report" / "synth.json", summary)
    return summary


def _write_report(path: Path, summary: dict) -> None:
    """A command's JSON report, written in one rename. Run times stay on stdout, so the same
    inputs give the same bytes."""
    text = json.dumps({k: v for k, v in summary.items() if k != "seconds"}, indent=2) + "\n"
    try:
        replace_file(path, lambda p: p.write_text(text))
    except OSError as e:
        raise BadInput(f"cannot write the report {path}: {e.strerror or e}") from None


def search(
    method: str,
    out: Path = Path("out/search"),
    spec: Path | None = None,
    data: Path | None = None,
    candidates: tuple[int, ...] = (2, 3, 4, 5, 6, 8),
    max_drop: float | None = None,
    budget: str | None = None,
    part: str = "xczu9eg",
    epochs: int | None = None,
    seed: int = 0,
    force: bool = False,
    confidence: float = CONFIDENCE,
    finetune_epochs: int = 0,
    ray_address: str = SERIAL,
    device: str = "auto",
) -> dict:
    """Mixed-precision search: the chosen spec, both Pareto fronts and the iso-accuracy comparison
    with uniform precision. An unmeetable target raises ``VerificationFailed`` (exit 1). ``spec`` is
    an MLP or a CNN; ``data`` and ``epochs`` default to the spec's own, as in ``train``. The method and
    the uniform widths train as parallel tasks at ``ray_address`` (``local``, a cluster, or ``off``)."""
    from fpga_mpq.mpq.problem import Target, parse_budget
    from fpga_mpq.mpq.ptq import check_finetune_epochs
    from fpga_mpq.mpq.search import search as run_search
    from fpga_mpq.mpq.search import write_outputs
    from fpga_mpq.train import TrainConfig, resolve_device

    output = check_output(out, [spec, _file(data)], force)
    where = resolve_device(device)
    if (max_drop is None) == (budget is None):
        raise BadInput("give exactly one target: --max-drop POINTS or --budget METRIC=N")
    target = Target(max_drop=max_drop) if max_drop is not None else parse_budget(budget)
    base = load_spec(spec)
    TrainConfig.for_spec(base, epochs, seed)  # fail on bad input before reading the data
    split = load_split(data, base)
    cfg = TrainConfig.for_spec(base, epochs, seed, len(split.y_train), where)
    check_finetune_epochs(finetune_epochs)
    if finetune_epochs and method != "ptq":
        raise BadInput(
            f"--finetune-epochs applies to --method ptq (the other methods train their designs), not {method}"
        )
    options = {"finetune_epochs": finetune_epochs} if method == "ptq" else {}
    runner = Runner(check_address(ray_address))
    result = run_search(
        method, base, split, candidates, target, part, seed, cfg, confidence=confidence, runner=runner, **options
    )
    if not result.feasible:  # nothing is written: a previous search's result stays as it was
        raise VerificationFailed(result.reason)
    data_name = builtin_name(data) or (str(Path(data).resolve()) if data is not None else base.data or "digits")
    with atomic_dir(output, "search") as tmp:
        paths = write_outputs(result, tmp, split.input_shape, data_name)
        summary = result.summary() | {k: str(Path(out) / Path(v).relative_to(tmp)) for k, v in paths.items()}
        for k, level in enumerate(summary.get("levels", [])):
            level["spec"] = summary[f"level{k}_spec"]
        _write_report(tmp / "search.json", summary)
    return summary


def report(dirs: list[Path], out: Path = Path("out/report.html"), force: bool = False) -> dict:
    """One HTML page over any mix of this tool's output folders (:mod:`fpga_mpq.report`)."""
    from fpga_mpq.report import write_report

    return write_report([Path(d) for d in dirs], Path(out), force)


def _samples(net: Network, data: Path | None, random: int | None, seed: int) -> np.ndarray:
    """The test set (default) or ``random`` inputs across the input type's range."""
    if seed < 0:
        raise BadInput(f"--seed {seed}: must be a non-negative integer")
    if random is not None:
        if random < 1:
            raise BadInput(f"--random {random}: needs at least one sample")
        if random > MAX_SAMPLES:
            raise BadInput(f"--random {random}: at most {MAX_SAMPLES:,} samples per run (split larger runs by --seed)")
        return random_inputs(net, random, seed)
    x = load_split(data).x_test
    if x.shape[1] != net.input.n:
        raise BadInput(
            f"the model expects {net.input.n} input features, the data has {x.shape[1]}: "
            "pass --data (a .npz, digits or fashion) or --random N"
        )
    return x


def csim(prj: Path, data: Path | None = None, random: int | None = None, seed: int = 0, trace: bool = False) -> dict:
    """C-simulate a project on the test set (or ``random`` inputs) and compare bit for bit;
    ``trace`` compares every layer's output too, so a mismatch names the layer it starts in."""
    cfg, _ = project_config(prj)
    digest = project_digest(prj)  # before the model is read: the result is bound to this project state
    net = load_project_network(prj)
    if trace and cfg.io != "parallel":
        raise BadInput("--trace needs a project generated with --io parallel")
    x = _samples(net, data, random, seed)
    result = csim_project(Path(prj), net, x, digest, trace_layers=trace)
    summary = {
        "samples": result.samples,
        "outputs": result.outputs,
        "mismatches": result.mismatches,
        "first_mismatch": result.first_mismatch,
        "project_digest": digest,
    }
    if result.layers is not None:
        summary["layers"] = result.layers
        first = next((la for la in result.layers if la["mismatches"]), None)
        summary["first_differing_tensor"] = first and first["tensor"]
        summary["first_differing_layer"] = first and first["layer"]
    if result.softmax_tolerance is not None:
        summary |= {
            "softmax_max_abs_error": result.softmax_max_abs_error,
            "softmax_tolerance": result.softmax_tolerance,
            "softmax_out_of_tolerance": result.softmax_out_of_tolerance,
        }
    if not result.ok:
        raise VerificationFailed(json.dumps(summary))
    return summary


def flow(
    out: Path,
    spec: Path | None = None,
    data: Path | str | None = None,
    cfg: HlsConfig = HlsConfig(),
    epochs: int | None = None,
    seed: int = 0,
    force: bool = False,
    device: str = "auto",
) -> dict:
    """Train (on ``device``, as in :func:`train`), export, generate and C-simulate into one folder;
    every check must pass, else the folder stays as it was."""
    from fpga_mpq.train import TrainConfig, resolve_device

    target = check_output(out, [spec, _file(data)], force)
    resolve_device(device)
    model_spec = load_spec(spec)
    TrainConfig.for_spec(model_spec, epochs, seed)  # fail on bad input before any work
    data = data if data is not None else model_spec.data  # every stage reads the spec's own data set
    load_split(data, model_spec)
    seconds: dict[str, float] = {}
    with atomic_dir(target, "flow") as tmp:
        t = time.perf_counter()
        trained = train(tmp / "model.pt", spec, data, epochs, seed, device=device)
        seconds["train"] = time.perf_counter() - t
        save_spec(load_spec(spec), tmp / "spec.yaml")

        t = time.perf_counter()
        exported = export(tmp / "model.pt", tmp / "model.onnx", data)
        seconds["export"] = time.perf_counter() - t

        t = time.perf_counter()
        net = _load_network(tmp / "model.onnx", None)
        test = load_split(data)
        hardware, inexact = _check_golden_equals_qonnx(net, tmp / "model.onnx", test.x_test)
        seconds["ir_golden"] = time.perf_counter() - t

        t = time.perf_counter()
        generate(tmp / "model.onnx", tmp / "hls", cfg)
        seconds["generate"] = time.perf_counter() - t

        t = time.perf_counter()
        sim = csim(tmp / "hls", data)
        seconds["csim"] = time.perf_counter() - t

        summary = {
            "accuracy_float": trained["accuracy_float"],
            "accuracy_quant": trained["accuracy_quant"],
            "accuracy_hardware": float((hardware.argmax(axis=1) == test.y_test).mean()),
            "outputs_differing_from_brevitas": exported["outputs_differing_from_brevitas"],
            "outputs_one_step_off_in_qonnx_float32": inexact,
            "spec": trained["spec"],
            "csim": sim,
            "project": str(Path(out) / "hls"),
            "onnx": str(Path(out) / "model.onnx"),
            "checkpoint": str(Path(out) / "model.pt"),
            "seconds": {k: round(v, 2) for k, v in seconds.items()},
        }
        _write_report(tmp / "report" / "flow.json", summary)
    return summary


def _check_golden_equals_qonnx(net: Network, onnx_path: Path, x: np.ndarray) -> tuple[np.ndarray, int]:
    """The golden model's outputs, which must equal qonnx's bit for bit, and how many outputs were
    excused: qonnx computes in float32, which is exact only while every tensor fits its 24-bit
    mantissa. Past that (16-bit weights and activations), an output of the last fixed-point tensor
    may be one step off in qonnx, never more; any other difference fails."""
    from fpga_mpq.export import execute_qonnx
    from fpga_mpq.ir.tabulate import FLOAT32_EXACT_BITS

    ref = execute_qonnx(onnx_path, x)
    trace = run(net, x)
    got = trace.output.astype(np.float32)
    differ = ref != got
    if not differ.any():
        return got, 0
    widest = max(net.layers, key=lambda la: la.out.width)
    inexact = widest.out.width > FLOAT32_EXACT_BITS
    step = 2.0 ** -trace.fracs[trace.last]
    plain = trace.softmax is None and trace.postprocessed is None  # the output is the last tensor's values
    if inexact and plain and np.all(np.abs(ref.astype(np.float64) - got)[differ] <= step):
        return got, int(differ.sum())
    why = (
        f" (qonnx's float32 reference is not exact here: layer {widest.name} carries {widest.out.width} bits, "
        f"float32 {FLOAT32_EXACT_BITS}; but some outputs differ by more than one step)"
        if inexact
        else ""
    )
    raise VerificationFailed(f"golden model differs from QONNX in {int(differ.sum())} outputs{why}")


def flow_deployment(
    out: Path,
    deployment: Path,
    data: Path | str | None = None,
    cfg: HlsConfig = HlsConfig(),
    force: bool = False,
) -> dict:
    """A dqmq deployment in hardware: export, generate, estimate and C-simulate every quality level's
    network (on that level's test inputs) and the quality estimator (on all of them), with no
    retraining; then a README on how a system switches levels and what each way costs. Every check
    must pass, else the folder stays as it was."""
    from fpga_mpq.mpq.deployment import load_deployment
    from fpga_mpq.mpq.widths import widths_of
    from fpga_mpq.train import load_checkpoint

    dep = load_deployment(Path(deployment))
    named = [lv.checkpoint for lv in dep.levels] + [dep.estimator]  # inputs too: never inside the output
    target = check_output(out, [dep.path, dep.path.parent, *named, _file(data)], force)
    classes = load_checkpoint(dep.estimator)[0].spec.layers[-1].units
    if classes != len(dep.levels):
        raise BadInput(
            f"deployment {dep.path}: its estimator ({dep.estimator}) tells {classes} classes apart, the deployment "
            f"has {len(dep.levels)} quality levels"
        )
    data = data if data is not None else dep.data
    split = load_split(data)
    if not split.has_quality or split.levels != len(dep.levels):
        raise BadInput(
            f"--data {data}: the deployment has {len(dep.levels)} quality levels, the data "
            + (f"{split.levels}" if split.has_quality else "none (give data with a quality array)")
        )
    seconds: dict[str, float] = {}
    rows, outputs = [], []
    with atomic_dir(target, "flow") as tmp:
        projects = [(f"level{lv.level}", lv.checkpoint, split.q_test == lv.level) for lv in dep.levels]
        projects.append(("estimator", dep.estimator, np.ones(len(split.y_test), bool)))
        for name, checkpoint, pick in projects:
            t = time.perf_counter()
            folder = tmp / name
            folder.mkdir()
            exported = export(checkpoint, folder / "model.onnx", data)
            net = _load_network(folder / "model.onnx", None)
            hw, _ = _check_golden_equals_qonnx(net, folder / "model.onnx", split.x_test)  # every input, for routing
            generate(folder / "model.onnx", folder / "hls", cfg)
            result = csim_project(folder / "hls", net, split.x_test[pick], project_digest(folder / "hls"))
            if not result.ok:
                raise VerificationFailed(
                    f"{name}: C simulation differs from the golden model in {result.mismatches} outputs"
                )
            est = estimate(folder / "hls")
            widths = widths_of(load_checkpoint(checkpoint)[0].spec)
            labels = split.q_test if name == "estimator" else split.y_test
            rows.append(
                {
                    "name": name,
                    "project": f"{name}/hls",
                    "weight_bits": "/".join(
                        str(b) for g, b in zip(widths.groups, widths.bits, strict=True) if g.kind == "weight"
                    ),
                    "act_bits": "/".join(
                        str(b) for g, b in zip(widths.groups, widths.bits, strict=True) if g.kind == "act"
                    ),
                    "total": est["total"],
                    "accuracy": float((hw[pick].argmax(1) == labels[pick]).mean()),
                    "mismatches": result.mismatches,
                    "outputs": result.outputs,
                    "outputs_differing_from_brevitas": exported["outputs_differing_from_brevitas"],
                }
            )
            outputs.append(hw)
            seconds[name] = time.perf_counter() - t
        *levels, estimator = rows
        *level_out, est_out = outputs
        routed = np.stack([o.argmax(1) for o in level_out])  # level × sample
        columns = np.arange(len(split.y_test))
        estimated = est_out.argmax(1)
        summary = {
            "deployment": str(deployment),
            "data": str(data),
            "levels": [
                r | {"level": k, "level_name": lv.name}
                for k, (r, lv) in enumerate(zip(levels, dep.levels, strict=True))
            ],
            "estimator": estimator | {"confusion": _confusion(split.q_test, estimated, len(levels))},
            "accuracy_hardware_level_declared": float((routed[split.q_test, columns] == split.y_test).mean()),
            "accuracy_hardware_level_estimated": float((routed[estimated, columns] == split.y_test).mean()),
            "costs": _switching_costs([r["total"] for r in levels], estimator["total"], dep.quality_mix),
            "seconds": {k: round(v, 2) for k, v in seconds.items()},
        }
        _write_deployment_readme(tmp / "README.md", summary, dep.quality_mix)
        _write_report(tmp / "report" / "flow.json", summary)
    return summary


def _confusion(true: np.ndarray, estimated: np.ndarray, n: int) -> list[list[int]]:
    return np.bincount(true * n + estimated, minlength=n * n).reshape(n, n).tolist()


RESOURCES = ("lut", "ff", "dsp", "bram18")


def _switching_costs(levels: list[dict], estimator: dict, mix: list[float]) -> dict:
    """Co-resident: the sum (with and without the estimator); reconfigured: the largest level and the
    expectation under the quality mix."""
    share = np.asarray(mix) / sum(mix)
    return {
        "coresident": {k: sum(t[k] for t in levels) for k in RESOURCES},
        "coresident_with_estimator": {k: sum(t[k] for t in levels) + estimator[k] for k in RESOURCES},
        "reconfigured_worst": {k: max(t[k] for t in levels) for k in RESOURCES},
        "reconfigured_expected": {
            k: round(float(sum(s * t[k] for s, t in zip(share, levels, strict=True)))) for k in RESOURCES
        },
    }


def _write_deployment_readme(path: Path, s: dict, mix: list[float]) -> None:
    from fpga_mpq.hls.generate import render_text

    costs = s["costs"]
    levels = [r | {"level": r["level"], "name": r["level_name"]} for r in s["levels"]]
    text = render_text(
        "deployment/README.md.j2",
        deployment=s["deployment"],
        data=s["data"],
        levels=levels,
        estimator=s["estimator"],
        mix=", ".join(f"{lv['name']} {100 * m / sum(mix):.0f} %" for lv, m in zip(levels, mix, strict=True)),
        with_estimator=True,
        coresident=costs["coresident"],
        coresident_est=costs["coresident_with_estimator"],
        worst=costs["reconfigured_worst"],
        expected=costs["reconfigured_expected"],
        accuracy_declared=s["accuracy_hardware_level_declared"],
        accuracy_estimated=s["accuracy_hardware_level_estimated"],
    )
    path.write_text(text)
