"""``fpga-mpq <command>``: a thin shell over ``fpga_mpq.api``.

Exit codes: 0 ok, 1 verification failed, 2 bad input, 3 internal error (a bug), 130 / 143
interrupted by SIGINT / SIGTERM, 141 the reader of stdout left (SIGPIPE). With ``--json`` the last line
of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import traceback
import warnings
from pathlib import Path

from fpga_mpq.errors import BadInput, VerificationFailed
from fpga_mpq.estimate.report import table
from fpga_mpq.hls.config import HlsConfig
from fpga_mpq.ir.types import parse_ap
from fpga_mpq.mpq.confidence import CONFIDENCE
from fpga_mpq.parallel import DEVICES, LOCAL, RAY_ADDRESS_ENV

DATA_HELP = (
    "a .npz with X (N, F) or (N, H, W, C), y (N,) and optionally quality (N,), or a built-in set: digits, "
    "fashion, digits-quality, fashion-quality (default: the spec's, else digits)"
)
EPOCHS_HELP = "epochs of float training and of QAT each (default: the spec's training.epochs, else 40)"
SPEC_HELP = "architecture and bit-width spec (YAML, e.g. specs/digits_cnn.yaml; default: the built-in digits MLP)"
SEED_HELP = "seed of weight initialisation and batch order (default: 0)"
DEVICE_HELP = (
    "where training runs: auto (a CUDA GPU when torch sees one, else the CPU), cpu or cuda; the trained model "
    "is the same Brevitas model either way (default: auto)"
)
RANDOM_HELP = "N random inputs across the input type's range instead of the test set (default: the test set)"
INPUT_TYPE_HELP = (
    "hardware input type, e.g. ap_ufixed<8,0>, when the model has no input Quant (default: from the model)"
)
MAX_ERROR = 600  # characters of an error line: a value is summarised, never printed whole
EXAMPLES = {
    "train": "fpga-mpq train --spec specs/digits_cnn.yaml -o out/cnn.pt",
    "export": "fpga-mpq export out/cnn.pt -o out/cnn.onnx",
    "generate": "fpga-mpq generate out/cnn.onnx -o out/cnn_hls --backend vivado --clock 4",
    "csim": "fpga-mpq csim out/cnn_hls --random 1000",
    "estimate": "fpga-mpq estimate out/cnn_hls",
    "rtlsim": "fpga-mpq rtlsim out/mlp.onnx -o out/mlp_rtl --random 500",
    "synth": "fpga-mpq synth out/mlp_rtl",
    "search": "fpga-mpq search --method sdq --budget luts=8000 -o out/search",
    "flow": "fpga-mpq flow --spec specs/digits_cnn.yaml -o out/cnn_flow",
    "report": "fpga-mpq report out/search out/cnn_flow out/mlp_rtl -o out/report.html",
}


def _hls_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backend", choices=["vivado", "vitis"], default="vitis", help="HLS tool the project is for (default: vitis)"
    )
    p.add_argument("--part", default=HlsConfig.part, help=f"FPGA part number (default: {HlsConfig.part})")
    p.add_argument(
        "--clock", type=float, default=HlsConfig.clock_ns, help=f"clock period in ns (default: {HlsConfig.clock_ns:g})"
    )
    p.add_argument(
        "--reuse-factor", type=int, default=1, help="multiplications per multiplier, 1 = fully parallel (default: 1)"
    )
    p.add_argument(
        "--io", choices=["parallel", "stream"], help="layer interfaces (default: stream for a CNN, parallel for an MLP)"
    )
    p.add_argument("--top", default=HlsConfig.top, help=f"name of the top function (default: {HlsConfig.top})")


def _ap_type(text: str):
    """argparse reports ArgumentTypeError as a usage error (exit 2) naming the option."""
    try:
        return parse_ap(text)
    except BadInput as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _candidates(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of bit-widths") from None


def _out(c: argparse.ArgumentParser, default: str | None, what: str, required: bool = False) -> None:
    """``-o`` and ``--force``; the path stays a string so an empty ``-o ""`` is seen as empty."""
    c.add_argument(
        "-o", "--out", required=required, default=default, help=what + (f" (default: {default})" if default else "")
    )
    c.add_argument(
        "--force", action="store_true", help="replace an existing output fpga_mpq did not make (default: refuse)"
    )


def _hls_config(a: argparse.Namespace) -> HlsConfig:
    return HlsConfig(a.backend, a.part, a.clock, a.reuse_factor, a.io, a.top)


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line naming the command, like every other bad input (exit 2)."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} -h)\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="fpga-mpq", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def cmd(name: str, help: str) -> argparse.ArgumentParser:
        example = EXAMPLES[name]
        c = sub.add_parser(
            name,
            help=help,
            description=help,
            epilog=f"example:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        c.add_argument("--json", action="store_true", help="print one JSON summary as the last line of stdout")
        return c

    c = cmd("train", "quantization-aware training of the spec's network (MLP or CNN)")
    _out(c, "out/model.pt", "checkpoint file")
    c.add_argument("--spec", type=Path, help=SPEC_HELP)
    c.add_argument("--data", help=DATA_HELP)
    c.add_argument("--epochs", type=int, help=EPOCHS_HELP)
    c.add_argument("--seed", type=int, default=0, help=SEED_HELP)
    c.add_argument("--device", choices=DEVICES, default="auto", help=DEVICE_HELP)

    c = cmd("export", "checkpoint -> cleaned QONNX, checked against Brevitas")
    c.add_argument("checkpoint", type=Path, help="model.pt written by train, flow or search")
    _out(c, "out/model.onnx", "QONNX file")
    c.add_argument("--data", help=DATA_HELP)

    c = cmd("generate", "QONNX -> HLS project (Vivado HLS / Vitis HLS, g++ C-sim)")
    c.add_argument("model", type=Path, help="a QONNX model (.onnx; its .onnx.data beside it if it has one)")
    _out(c, None, "project folder", required=True)
    c.add_argument("--input-type", type=_ap_type, help=INPUT_TYPE_HELP)
    _hls_args(c)

    c = cmd("csim", "build and run the C simulation, compare bit for bit with the golden model")
    c.add_argument("project", type=Path, help="an HLS project folder written by generate or flow")
    c.add_argument("--data", help=DATA_HELP)
    c.add_argument("--random", type=int, help=RANDOM_HELP)
    c.add_argument("--seed", type=int, default=0, help="seed of the --random inputs (default: 0)")
    c.add_argument(
        "--trace", action="store_true", help="compare every layer's output too (io parallel; default: outputs only)"
    )

    c = cmd("estimate", "LUT / FF / DSP / BRAM and latency per layer, before any vendor tool runs")
    c.add_argument("model", type=Path, help="a generated project folder or a QONNX model")
    _out(c, None, "report folder (default: the project's report/, else out/estimate)")
    c.add_argument("--part", help="FPGA part number (default: the project's, else " + HlsConfig.part + ")")
    c.add_argument(
        "--clock", type=float, help=f"clock period in ns (default: the project's, else {HlsConfig.clock_ns:g})"
    )
    c.add_argument("--reuse-factor", type=int, help="multiplications per multiplier (default: the project's, else 1)")
    c.add_argument(
        "--strategy",
        choices=["latency", "resource"],
        default="latency",
        help="hls4ml strategy priced (default: latency)",
    )
    c.add_argument(
        "--io", choices=["parallel", "stream"], help="layer interfaces (default: the project's, else parallel)"
    )
    c.add_argument(
        "--rtl", action="store_true", help="estimate the da4ml RTL design instead of the HLS one (default: HLS)"
    )
    c.add_argument("--input-type", type=_ap_type, help=INPUT_TYPE_HELP)

    c = cmd("rtlsim", "da4ml Verilog, simulated cycle by cycle with Verilator, compared bit for bit")
    c.add_argument("model", type=Path, help="a QONNX model (.onnx)")
    _out(c, "out/rtl", "RTL project folder")
    c.add_argument("--part", default=HlsConfig.part, help=f"FPGA part number (default: {HlsConfig.part})")
    c.add_argument(
        "--clock", type=float, default=HlsConfig.clock_ns, help=f"clock period in ns (default: {HlsConfig.clock_ns:g})"
    )
    c.add_argument("--top", default=HlsConfig.top, help=f"name of the top module (default: {HlsConfig.top})")
    c.add_argument("--data", help=DATA_HELP)
    c.add_argument("--random", type=int, help=RANDOM_HELP)
    c.add_argument("--seed", type=int, default=0, help="seed of the --random inputs (default: 0)")
    c.add_argument("--input-type", type=_ap_type, help=INPUT_TYPE_HELP)

    c = cmd("synth", "Yosys synth_xilinx of the RTL design: LUT, FF, CARRY, DSP, BRAM")
    c.add_argument("model", type=Path, help="a QONNX model or an RTL project from rtlsim")
    _out(c, "out/rtl", "RTL project folder (for a QONNX model)")
    c.add_argument("--part", default=HlsConfig.part, help=f"FPGA part number (default: {HlsConfig.part})")
    c.add_argument(
        "--clock", type=float, default=HlsConfig.clock_ns, help=f"clock period in ns (default: {HlsConfig.clock_ns:g})"
    )
    c.add_argument("--top", default=HlsConfig.top, help=f"name of the top module (default: {HlsConfig.top})")
    c.add_argument("--timeout", type=float, default=1800, help="seconds before Yosys is stopped (default: 1800)")
    c.add_argument("--input-type", type=_ap_type, help=INPUT_TYPE_HELP)

    c = cmd("search", "mixed-precision search under a budget, compared with uniform precision")
    c.add_argument(
        "--method",
        choices=["uniform", "ptq", "sdq", "dqmq"],
        required=True,
        help="dqmq: a precision per input-quality level (data with quality levels); budget on the expected cost",
    )
    _out(c, "out/search", "result folder")
    c.add_argument(
        "--model",
        type=Path,
        help="base spec (YAML): the architecture and the widths not searched (default: built-in MLP)",
    )
    c.add_argument("--data", help=DATA_HELP)
    c.add_argument(
        "--candidates",
        type=_candidates,
        default=(2, 3, 4, 5, 6, 8),
        help="bit-widths to choose from (default: 2,3,4,5,6,8)",
    )
    target = c.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--max-drop",
        type=float,
        help="accuracy points below the float model allowed, on the validation set (this or --budget is required)",
    )
    target.add_argument(
        "--budget",
        help="cost limit METRIC=N: luts, ff, dsp (each a count), bops or exact_bits (this or --max-drop is required)",
    )
    c.add_argument("--part", default="xczu9eg", help="FPGA part the costs are estimated for (default: xczu9eg)")
    c.add_argument("--epochs", type=int, help=EPOCHS_HELP)
    c.add_argument("--seed", type=int, default=0, help=SEED_HELP)
    c.add_argument("--device", choices=DEVICES, default="auto", help=DEVICE_HELP)
    c.add_argument(
        "--confidence",
        type=float,
        default=CONFIDENCE,
        help="one-sided level at which a --max-drop must hold: the chosen design's accuracy drop, bounded by a "
        f"paired bootstrap on the validation set (0.5 = the point estimate; default: {CONFIDENCE})",
    )
    c.add_argument(
        "--finetune-epochs",
        type=int,
        default=0,
        help="ptq only: epochs of QAT of the chosen widths from their post-training weights (default: 0, none)",
    )
    c.add_argument(
        "--ray-address",
        default=os.environ.get(RAY_ADDRESS_ENV, LOCAL),
        help="where the independent trainings run: local (a Ray on this machine, one task per core), a cluster "
        f"address ray://HOST:10001 or HOST:6379, or off (one after another here) (default: ${RAY_ADDRESS_ENV} "
        "if set, else local)",
    )

    c = cmd("flow", "train, export, generate and C-simulate into one folder")
    _out(c, "out/flow", "result folder")
    source = c.add_mutually_exclusive_group()
    source.add_argument("--spec", type=Path, help=SPEC_HELP)
    source.add_argument(
        "--deployment",
        type=Path,
        help="a dqmq search's deployment.yaml (or its folder): every quality level in hardware, no retraining "
        "(default: train the --spec)",
    )
    c.add_argument("--data", help=DATA_HELP)
    c.add_argument("--epochs", type=int, help=EPOCHS_HELP)
    c.add_argument("--seed", type=int, default=0, help=SEED_HELP)
    c.add_argument("--device", choices=DEVICES, default="auto", help=DEVICE_HELP)
    _hls_args(c)

    c = cmd("report", "one self-contained HTML page over search, flow, estimate, csim, rtlsim and synth outputs")
    c.add_argument("dirs", type=Path, nargs="+", help="output folders of fpga_mpq (search, flow, estimate, ...)")
    _out(c, "out/report.html", "the HTML page")
    return p


def _run(a: argparse.Namespace) -> dict:
    from fpga_mpq import api  # here, not at the top: torch, Brevitas and qonnx load only for a command

    if a.command == "train":
        return api.train(a.out, a.spec, a.data, a.epochs, a.seed, a.force, a.device)
    if a.command == "export":
        return api.export(a.checkpoint, a.out, a.data, a.force)
    if a.command == "generate":
        return api.generate(a.model, a.out, _hls_config(a), a.input_type, a.force)
    if a.command == "csim":
        return api.csim(a.project, a.data, a.random, a.seed, a.trace)
    if a.command == "estimate":
        return api.estimate(
            a.model, a.out, a.part, a.clock, a.reuse_factor, a.strategy, a.io, a.rtl, a.input_type, a.force
        )
    if a.command == "rtlsim":
        return api.rtlsim(a.model, a.out, a.part, a.clock, a.top, a.data, a.random, a.seed, a.input_type, a.force)
    if a.command == "synth":
        return api.synth(a.model, a.out, a.part, a.clock, a.top, a.timeout, a.input_type, a.force)
    if a.command == "report":
        return api.report(a.dirs, a.out, a.force)
    if a.command == "search":
        return api.search(
            a.method,
            a.out,
            a.model,
            a.data,
            a.candidates,
            a.max_drop,
            a.budget,
            a.part,
            a.epochs,
            a.seed,
            a.force,
            confidence=a.confidence,
            finetune_epochs=a.finetune_epochs,
            ray_address=a.ray_address,
            device=a.device,
        )
    if a.deployment is not None:
        if a.epochs is not None:
            raise BadInput("flow --deployment trains nothing: --epochs does not apply")
        return api.flow_deployment(a.out, a.deployment, a.data, _hls_config(a), a.force)
    return api.flow(a.out, a.spec, a.data, _hls_config(a), a.epochs, a.seed, a.force, a.device)


def _describe_layer(layer: dict) -> str:
    kind = layer.get("type", "dense")
    if kind == "dense":
        return f"dense, {layer['units']} units"
    if kind == "conv":
        return f"conv {layer['kernel']}x{layer['kernel']}, {layer['filters']} filters"
    if kind == "residual":
        return f"residual, {len(layer['body'])} + {len(layer['shortcut'])} convs"
    return kind


def _layer_bits(layer: dict) -> str:
    if "weight_bits" in layer:
        bits = f"weight {layer['weight_bits']}, bias {layer['bias_bits']}"
        return bits + (f", activation {layer['act_bits']} bits" if "act_bits" in layer else " bits")
    if layer.get("type") == "residual":
        return f"add {layer['add_bits']}, activation {layer['act_bits']} bits"
    return f"activation {layer['act_bits']} bits" if "act_bits" in layer else "-"


def _print_table(command: str, s: dict) -> None:
    if command == "flow" and "levels" in s:
        rows = [
            (
                f"level {r['level']} ({r['level_name']})",
                f"{r['total']['lut']} LUT, {100 * r['accuracy']:.2f} % on its inputs, "
                f"C-sim {r['mismatches']} mismatches of {r['outputs']}",
            )
            for r in s["levels"]
        ]
        e = s["estimator"]
        rows += [
            (
                "quality estimator",
                f"{e['total']['lut']} LUT, {100 * e['accuracy']:.2f} % right, C-sim {e['mismatches']} mismatches",
            ),
            ("accuracy, level declared", f"{100 * s['accuracy_hardware_level_declared']:.2f} %"),
            ("accuracy, level estimated", f"{100 * s['accuracy_hardware_level_estimated']:.2f} %"),
            ("co-resident LUT", str(s["costs"]["coresident"]["lut"])),
            ("README", "README.md in the output folder"),
        ]
    elif command == "search" and "levels" in s:
        rows = [("method", s["method"]), ("expected cost", f"{s['expected_cost']:,.0f} {s['cost_metric']}")]
        for r in s["levels"]:
            rows.append(
                (
                    f"level {r['level']} ({r['name']})",
                    f"{r['cost']:,.0f} {s['cost_metric']}, test {100 * r['test_acc']:.2f} %, {r['spec']}",
                )
            )
        if "versus_static" in s:
            rows.append(("against static designs", s["versus_static"]["reason"]))
        rows += [
            ("quality estimator", f"test {100 * s['estimator']['test_acc']:.2f} %"),
            ("accuracy, level estimated", f"{100 * s['test_acc_level_estimated']:.2f} %"),
            ("deployment", s["deployment"]),
        ]
    elif command == "flow":
        sim = s["csim"]
        rows = [
            ("float accuracy", f"{100 * s['accuracy_float']:.2f} %"),
            ("quantized accuracy", f"{100 * s['accuracy_quant']:.2f} %"),
            ("hardware accuracy", f"{100 * s['accuracy_hardware']:.2f} % (golden model == QONNX == C-sim)"),
            ("input bits", str(s["spec"]["input"]["bits"])),
        ]
        if s["outputs_one_step_off_in_qonnx_float32"]:
            rows.append(
                (
                    "QONNX float32 inexact",
                    f"{s['outputs_one_step_off_in_qonnx_float32']} outputs one step off in qonnx's float32 reference "
                    "(tensors past 24 bits); the golden model is exact",
                )
            )
        for i, layer in enumerate(s["spec"]["layers"]):
            rows.append((f"layer {i} ({_describe_layer(layer)})", _layer_bits(layer)))
        rows += [
            ("C-sim", f"{sim['samples']} samples, {sim['outputs']} outputs, {sim['mismatches']} mismatches"),
            ("project", s["project"]),
            ("stage seconds", ", ".join(f"{k} {v}" for k, v in s["seconds"].items())),
        ]
    elif command == "search":
        c = s["chosen"]
        costs = ", ".join(f"{k} {v:,.0f}" for k, v in c["costs"].items())
        rows = [
            ("method", s["method"]),
            ("weight bits", ", ".join(f"{g} {b}" for g, b in c["widths"].items() if g.endswith(".weight"))),
            ("activation bits", ", ".join(f"{g} {b}" for g, b in c["widths"].items() if not g.endswith(".weight"))),
            (
                "test accuracy",
                f"{_acc(c['test_acc'], c['test_acc_interval'])} "
                f"(float {_acc(s['accuracy_float']['test'], s['accuracy_float']['test_interval'])})",
            ),
            ("chosen by", s["selection_rule"]),
            ("costs", costs),
            (
                f"{s['cost_metric']} vs uniform",
                s["iso_accuracy_rule"] or "no uniform design to compare with",
            ),
        ]
        if "versus_static" in s:
            rows.append(("dqmq against static designs", s["versus_static"]["reason"]))
        if "peer_front" in s:
            beaten = ", ".join(s["peer_beaten"]) or "none"
            rows.append(("uniform post-training designs beaten", beaten))
        rows += [("spec", s["spec"]), ("front", f"{s['pareto_csv']}, {s['pareto_png']}")]
    elif command == "report":
        rows = [("report", s["report"])] + [(f["folder"], ", ".join(f["found"])) for f in s["folders"]]
    elif command == "estimate":
        print(table(s))
        rows = [("report", s["report"]), ("chart", s["chart"])]
    else:
        rows = [(k, json.dumps(v) if isinstance(v, dict | list) else str(v)) for k, v in s.items()]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


def _acc(acc: float, interval: list[float]) -> str:
    """An accuracy with its 95% interval, in percent."""
    return f"{100 * acc:.2f} % [{100 * interval[0]:.1f}, {100 * interval[1]:.1f}]"


# set by SIGTERM, which is then raised like Ctrl-C so every scratch folder and child process is cleaned
# up; a flag, not an exception subclass, because Ray's waits re-raise any KeyboardInterrupt as a plain one
_TERMINATED = threading.Event()


def _on_sigterm(signum: int, frame: object) -> None:
    _TERMINATED.set()
    raise KeyboardInterrupt


def _fail(a: argparse.Namespace, what: str, message: str, code: int) -> int:
    """One line on stderr, whatever the message holds (a path may contain a newline)."""
    line = message.replace("\r", "\\r").replace("\n", "\\n")
    if len(line) > MAX_ERROR:
        line = line[: MAX_ERROR - 3] + "..."
    try:
        print(f"fpga-mpq {a.command}: {what}: {line}", file=sys.stderr)
        if a.json:
            print(json.dumps({"error": message, "exit": code}))  # whole: a machine reads it
        sys.stdout.flush()
    except OSError:  # stdout or stderr closed or full: the exit code still tells
        _silence_stdout()
    return code


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    a, unknown = parser.parse_known_args(argv)
    if unknown:  # named with its command, like every other usage error
        parser.exit(2, f"fpga-mpq {a.command}: error: unrecognized arguments: {' '.join(unknown)}\n")
    with warnings.catch_warnings():
        # Every warning comes from a library (qonnx on FINN-era models, Brevitas' optional kernels and
        # deprecations): the tool says what is wrong with the user's input as an error. PYTHONWARNINGS=error
        # must not turn them into failures either; FPGA_MPQ_DEBUG=1 shows them.
        if not os.environ.get("FPGA_MPQ_DEBUG"):
            warnings.simplefilter("ignore")
        return _main(a)


def _main(a: argparse.Namespace) -> int:
    try:
        os.getcwd()  # relative paths, and libraries loaded after this (MKL), need the current folder
    except FileNotFoundError:
        return _fail(a, "error", "the current folder no longer exists (deleted?): cd into one that does", 2)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if main_thread else None
    _TERMINATED.clear()
    try:
        summary = _run(a)
    except BadInput as e:
        return _fail(a, "error", str(e), 2)
    except VerificationFailed as e:
        return _fail(a, "verification failed", str(e), 1)
    except OSError as e:  # a path the system refuses (too long, no permission, a loop of links), a full disk
        path = e.filename or getattr(a, "out", None) or getattr(a, "project", None)
        where = f": {e.filename}" if e.filename else f" (writing {path})" if path else ""
        return _fail(a, "error", f"{e.strerror or type(e).__name__}{where}", 2)
    except KeyboardInterrupt:
        sig = "SIGTERM" if _TERMINATED.is_set() else "SIGINT"
        code = 128 + (signal.SIGTERM if sig == "SIGTERM" else signal.SIGINT)
        return _fail(a, "interrupted", f"{sig}: stopped; the output was left as it was", code)
    except Exception as e:  # a bug, not the user's fault: one line, not exit 1 (a failed verification)
        if os.environ.get("FPGA_MPQ_DEBUG"):
            traceback.print_exc()
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return _fail(a, "internal error", f"{type(e).__name__}: {first} (a bug; FPGA_MPQ_DEBUG=1 shows where)", 3)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    return _print_summary(a, summary)


def _print_summary(a: argparse.Namespace, summary: dict) -> int:
    """The summary on stdout. A reader that left (``| head``) is no failure of the command: exit 141
    (SIGPIPE's, as a shell reports it) with nothing more; a stdout that cannot be written (a full
    disk) is one error line, exit 2. The outputs on disk are complete either way."""
    try:
        _print_table(a.command, summary)
        if a.json:
            print(json.dumps(summary))
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        return 128 + signal.SIGPIPE
    except OSError as e:
        _silence_stdout()
        print(f"fpga-mpq {a.command}: error: cannot write the summary to stdout ({e.strerror})", file=sys.stderr)
        return 2
    return 0


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so Python's flush at exit finds nothing left to fail on."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no file descriptor behind sys.stdout (a test's capture)
        pass
    finally:
        os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
