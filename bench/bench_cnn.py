"""A Fashion-MNIST CNN side by side with the peers, in one run: golden model vs qonnx (speed, identical
outputs), generate + C-sim build vs hls4ml convert + compile (seconds), and the fraction of samples
whose outputs equal qonnx's bit for bit (our C simulation vs hls4ml's predict).

    python bench_cnn.py                 # trains the CNN briefly (seeded), then measures
    python bench_cnn.py --onnx M.onnx   # a trained QONNX model instead (e.g. out/<flow>/model.onnx)

Prints one table (task, ours, peer, ratio) and writes it to bench/results/cnn.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import print_table, qonnx_per_sample, scratch

from fpga_mpq import api
from fpga_mpq.errors import BadInput
from fpga_mpq.export import execute_qonnx, export_qonnx_file
from fpga_mpq.hls.config import HlsConfig
from fpga_mpq.ir.from_qonnx import network_from_qonnx
from fpga_mpq.ir.golden import run
from fpga_mpq.ir.network import Network
from fpga_mpq.sim.csim import build_testbench, random_inputs, write_testbench_data

DATA = Path("/usr/share/datasets/fashion-mnist")
RESULTS = Path(__file__).resolve().parent / "results" / "cnn.json"
TRAIN_SUBSET = 10_000
EPOCHS = 2
QONNX_SAMPLES = 200  # batch-1 execute_onnx per sample
GOLDEN_SAMPLES = 2000
EXACT_SAMPLES = 1000  # half test images, half random inputs across the input type's range
SEED = 0


def load_idx(name: str) -> np.ndarray:
    """One gzip'd idx file (images or labels) as a uint8 array."""
    with gzip.open(DATA / name, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def fashion_mnist(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 1, 28, 28) float32 in [0, 1] and labels (N,) int64; split is 'train' or 't10k'."""
    x = load_idx(f"{split}-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    y = load_idx(f"{split}-labels-idx1-ubyte.gz").astype(np.int64)
    return x[:, None, :, :], y


def fashion_cnn(batchnorm: bool = True):
    """conv3x3 1->16 -> BN -> ReLU4 -> max pool -> conv3x3 16->32 -> BN -> ReLU4 -> max pool -> dense 1568->10,
    power-of-two scales: 8-bit unsigned input, 4-bit weights, 16-bit biases, 8-bit signed output."""
    import brevitas.quant as bq
    from brevitas import nn as qnn
    from torch import nn

    w, a = bq.Int8WeightPerTensorFixedPoint, bq.Uint8ActPerTensorFixedPoint

    def block(c_in: int, c_out: int) -> list[nn.Module]:
        return [
            qnn.QuantConv2d(c_in, c_out, 3, padding=1, weight_quant=w, weight_bit_width=4, bias_quant=bq.Int16Bias),
            *([nn.BatchNorm2d(c_out)] if batchnorm else []),
            qnn.QuantReLU(act_quant=a, bit_width=4, return_quant_tensor=True),
            nn.MaxPool2d(2),
        ]

    return nn.Sequential(
        qnn.QuantIdentity(act_quant=a, bit_width=8, return_quant_tensor=True),
        *block(1, 16),
        *block(16, 32),
        nn.Flatten(),
        qnn.QuantLinear(32 * 7 * 7, 10, weight_quant=w, weight_bit_width=4, bias_quant=bq.Int16Bias),
        qnn.QuantIdentity(act_quant=bq.Int8ActPerTensorFixedPoint, bit_width=8),
    )


def train(model, x: np.ndarray, y: np.ndarray, epochs: int, seed: int):
    """Quantization-aware training from scratch (no float pre-training): Adam, batch 64."""
    import torch

    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(64):
            opt.zero_grad()
            loss_fn(model(xt[idx]), yt[idx]).backward()
            opt.step()
    return model.eval()


def trained_onnx(path: Path, batchnorm: bool = True) -> tuple[Path, str]:
    """Train the CNN on a seeded subset and export it; returns the path and a line with its test accuracy
    and how many outputs qonnx's execution differs from Brevitas in (float32 BatchNorm in each may round
    a value on a quantizer's boundary differently; qonnx is the reference everything here compares with)."""
    import torch

    x, y = fashion_mnist("train")
    x_test, y_test = fashion_mnist("t10k")
    pick = np.random.default_rng(SEED).permutation(len(x))[:TRAIN_SUBSET]
    torch.manual_seed(SEED)
    t = time.perf_counter()
    model = train(fashion_cnn(batchnorm), x[pick], y[pick], EPOCHS, SEED)
    seconds = time.perf_counter() - t
    export_qonnx_file(model, (1, 28, 28), path)
    x_check = x_test[:GOLDEN_SAMPLES]
    with torch.no_grad():
        brevitas = model(torch.from_numpy(x_check)).numpy()
    differ = int((execute_qonnx(path, x_check.reshape(len(x_check), -1)) != brevitas).sum())
    acc = float((brevitas.argmax(1) == y_test[:GOLDEN_SAMPLES]).mean())
    return path, (
        f"trained here: {EPOCHS} epochs QAT on {TRAIN_SUBSET:,} images (seed {SEED}), {seconds:.0f} s; "
        f"Brevitas test accuracy {acc:.3f}; qonnx differs from Brevitas in {differ} of {brevitas.size:,} outputs"
    )


# -- 1. golden model vs qonnx ---------------------------------------------------------------------


def golden_vs_qonnx(path: Path, net: Network, x: np.ndarray) -> dict:
    """Seconds per sample of the golden model (whole batch), qonnx batch 1 and qonnx batched, and
    the number of outputs where the golden model differs from either."""
    run(net, x[:10])  # warm-up
    t = time.perf_counter()  # before onnxruntime starts: its spinning thread pool slows numpy
    golden = run(net, x).output.astype(np.float32)
    s_golden = (time.perf_counter() - t) / len(x)
    ref1, s_qonnx1 = qonnx_per_sample(path, x[:QONNX_SAMPLES])
    t = time.perf_counter()
    ref = execute_qonnx(path, x)
    s_batch = (time.perf_counter() - t) / len(x)
    return {
        "golden_s": s_golden,
        "qonnx_batch1_s": s_qonnx1,
        "qonnx_batched_s": s_batch,
        "outputs_compared": int(golden.size + ref1.size),
        "differing_outputs": int((golden != ref).sum() + (golden[:QONNX_SAMPLES] != ref1).sum()),
        "golden_predictions": golden.argmax(1),
    }


# -- 2. project build ------------------------------------------------------------------------------


def ours_build(path: Path, out: Path) -> dict:
    """generate, then the C-sim testbench build (g++); io_stream when the generator takes the CNN."""
    fallback = None
    for io in ("stream", "parallel"):
        target = out / f"ours_{io}"
        try:
            t = time.perf_counter()
            api.generate(path, target, HlsConfig(io=io))
            t_gen = time.perf_counter() - t
            t = time.perf_counter()
            binary = build_testbench(target)
            return {
                "io": io,
                "generate_s": t_gen,
                "build_s": time.perf_counter() - t,
                "binary": binary,
                "io_stream_refused": fallback,
            }
        except BadInput as e:
            if io == "parallel":
                raise
            fallback = str(e)
    raise AssertionError("unreachable")


def channels_last_for_hls4ml(path: Path):
    """hls4ml 1.3.0's documented QONNX route (its test_qonnx.py): clean, channels last with the input
    too, Gemm as MatMul, clean again."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
    from qonnx.transformation.gemm_to_matmul import GemmToMatMul
    from qonnx.util.cleanup import cleanup_model

    model = cleanup_model(ModelWrapper(str(path)))
    model = model.transform(ConvertToChannelsLastAndClean(make_input_channels_last=True))
    return cleanup_model(model.transform(GemmToMatMul()))


def hls4ml_build(path: Path, out: Path) -> dict:
    """hls4ml convert (Vitis, io_stream, per-layer config) and compile (g++ shared library)."""
    import contextlib
    import io

    import hls4ml

    log = io.StringIO()
    t = time.perf_counter()
    with contextlib.redirect_stdout(log):  # hls4ml prints every layer
        model = channels_last_for_hls4ml(path)
        config = hls4ml.utils.config.config_from_onnx_model(model, granularity="name", backend="Vitis")
        hls_model = hls4ml.converters.convert_from_onnx_model(
            model, output_dir=str(out), io_type="io_stream", backend="Vitis", hls_config=config
        )
        t_convert = time.perf_counter() - t
        t = time.perf_counter()
        hls_model.compile()
    return {"convert_s": t_convert, "compile_s": time.perf_counter() - t, "model": hls_model}


# -- 3. exact outputs ------------------------------------------------------------------------------


def csim_outputs(binary: Path, net: Network, x: np.ndarray) -> tuple[np.ndarray, float]:
    """Our testbench binary on ``x``: its raw outputs (as printed, %.17g) and seconds per sample."""
    with tempfile.TemporaryDirectory(prefix="mpq_bench_csim_") as tmp:
        write_testbench_data(net, x, Path(tmp))  # inputs.txt and the golden outputs it counts against
        t = time.perf_counter()
        proc = subprocess.run([str(binary), tmp], capture_output=True, text=True, timeout=1800)
        seconds = (time.perf_counter() - t) / len(x)
        if proc.returncode not in (0, 1):  # 1: mismatches against the golden model, still outputs
            raise RuntimeError(f"C simulation exited {proc.returncode}: {proc.stderr[-500:]}")
        got = np.loadtxt(Path(tmp) / "csim_outputs.txt", dtype=np.float64, ndmin=2)
    return got.reshape(len(x), -1), seconds


def nhwc(path: Path, x: np.ndarray) -> np.ndarray:
    """Flat NCHW samples in the channels-last layout hls4ml's model takes."""
    from qonnx.core.modelwrapper import ModelWrapper

    model = ModelWrapper(str(path))
    _, c, h, w = model.get_tensor_shape(model.graph.input[0].name)
    return np.ascontiguousarray(x.reshape(len(x), c, h, w).transpose(0, 2, 3, 1))


def exact_fraction(got: np.ndarray, ref: np.ndarray) -> float:
    """Samples whose every output equals the reference exactly."""
    return float((got.reshape(ref.shape) == ref).all(axis=1).mean())


# -- the run ---------------------------------------------------------------------------------------


def ratio(num: float, den: float) -> str:
    return f"{num / den:,.1f}x" if den > 0 else "-"


def golden_rows(g: dict) -> list[list[str]]:
    ms = f"{g['golden_s'] * 1e3:.3f}"
    return [
        [
            "golden model vs qonnx execute_onnx batch 1, ms/sample",
            ms,
            f"{g['qonnx_batch1_s'] * 1e3:.3f}",
            ratio(g["qonnx_batch1_s"], g["golden_s"]),
        ],
        [
            "golden model vs qonnx execute_onnx batched, ms/sample",
            ms,
            f"{g['qonnx_batched_s'] * 1e3:.3f}",
            ratio(g["qonnx_batched_s"], g["golden_s"]),
        ],
        ["golden outputs differing from qonnx", f"{g['differing_outputs']} of {g['outputs_compared']:,}", "-", "-"],
    ]


def build_row(label: str, ours: dict, theirs: dict) -> list[str]:
    """One build-time row; a failed hls4ml conversion shows its exact error as the peer cell."""
    ours_s = ours["generate_s"] + ours["build_s"]
    mine = f"{ours_s:.1f} ({ours['generate_s']:.1f} + {ours['build_s']:.1f})"
    if "error" in theirs:
        return [label, mine, f"hls4ml: failed: {theirs['error']}", "-"]
    total = theirs["convert_s"] + theirs["compile_s"]
    return [label, mine, f"{total:.1f} ({theirs['convert_s']:.1f} + {theirs['compile_s']:.1f})", ratio(total, ours_s)]


def try_hls4ml(path: Path, out: Path) -> dict:
    try:
        return hls4ml_build(path, out)
    except Exception as e:  # report, do not hide, a peer that cannot convert the model
        return {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:200]}


def measure_builds(path: Path, tmp: Path, may_train: bool) -> tuple[list[list[str]], dict, dict, dict | None]:
    """Ours and hls4ml's build of the model; if hls4ml fails, also the same CNN without BatchNorm."""
    ours = ours_build(path, tmp)
    theirs = try_hls4ml(path, tmp / "hls4ml")
    rows = [build_row(f"generate + C-sim build, s (ours io_{ours['io']}, hls4ml io_stream)", ours, theirs)]
    fallback = None
    if "error" in theirs and may_train:  # the closest model hls4ml may take
        nobn, _ = trained_onnx(tmp / "fashion_cnn_nobn.onnx", batchnorm=False)
        fallback = try_hls4ml(nobn, tmp / "hls4ml_nobn")
        rows.append(
            build_row("same CNN without BatchNorm: generate + build, s", ours_build(nobn, tmp / "nobn"), fallback)
        )
    return rows, ours, theirs, fallback


def measure_exact(path: Path, net: Network, x: np.ndarray, binary: Path, peer) -> tuple[list[list[str]], dict]:
    """Fraction of samples equal to qonnx bit for bit (first half, second half of ``x``), and C-sim speed."""
    half = len(x) // 2
    ref = execute_qonnx(path, x)
    got, s_csim = csim_outputs(binary, net, x)
    ours = [exact_fraction(got[:half], ref[:half]), exact_fraction(got[half:], ref[half:])]
    theirs, s_predict = None, None
    if peer is not None:
        t = time.perf_counter()
        got_peer = np.asarray(peer.predict(nhwc(path, x)), dtype=np.float64)
        s_predict = (time.perf_counter() - t) / len(x)
        theirs = [exact_fraction(got_peer[:half], ref[:half]), exact_fraction(got_peer[half:], ref[half:])]
    rows = []
    for k, what in enumerate((f"{half} test images", f"{len(x) - half} random inputs")):
        peer_cell, rat = (f"{theirs[k]:.3f}", ratio(ours[k], theirs[k])) if theirs else ("-", "-")
        rows.append([f"samples equal to qonnx bit for bit, {what}", f"{ours[k]:.3f}", peer_cell, rat])
    rows.append(
        [
            f"C simulation of {len(x)} samples, ms/sample (our testbench vs hls4ml predict)",
            f"{s_csim * 1e3:.2f}",
            f"{s_predict * 1e3:.2f}" if s_predict else "-",
            ratio(s_predict, s_csim) if s_predict else "-",
        ]
    )
    data = {"ours": ours, "hls4ml": theirs, "halves": ["test images", "random inputs"]}
    return rows, data | {"csim_ms_per_sample": {"ours": s_csim * 1e3, "hls4ml": s_predict and s_predict * 1e3}}


def model_file(onnx: Path | None, tmp: Path) -> tuple[Path, str]:
    """The given QONNX file, or the CNN trained here; and a line describing it."""
    if onnx is not None:
        return onnx.resolve(), f"given: {onnx}"
    return trained_onnx(tmp / "fashion_cnn.onnx")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", type=Path, help="a trained QONNX CNN (NCHW input) instead of training one here")
    args = parser.parse_args()
    if args.onnx is not None and not args.onnx.is_file():
        sys.exit(f"--onnx {args.onnx}: no such file")
    t_start = time.perf_counter()
    x_test, y_test = fashion_mnist("t10k")
    x_test = x_test.reshape(len(x_test), -1)
    with scratch() as tmp_name:
        tmp = Path(tmp_name)
        path, model_note = model_file(args.onnx, tmp)
        print(f"model: {model_note}", flush=True)
        t = time.perf_counter()
        net = network_from_qonnx(path)
        s_ir = time.perf_counter() - t
        g = golden_vs_qonnx(path, net, x_test[:GOLDEN_SAMPLES])
        golden_acc = float((g["golden_predictions"] == y_test[:GOLDEN_SAMPLES]).mean())
        print(f"golden vs qonnx measured ({time.perf_counter() - t_start:.0f} s)", flush=True)
        build_rows, ours, theirs, fallback = measure_builds(path, tmp, may_train=args.onnx is None)
        print(f"builds measured ({time.perf_counter() - t_start:.0f} s)", flush=True)
        half = EXACT_SAMPLES // 2
        x = np.concatenate([x_test[GOLDEN_SAMPLES : GOLDEN_SAMPLES + half], random_inputs(net, half, seed=SEED)])
        exact_rows, exact = measure_exact(path, net, x, ours["binary"], theirs.get("model"))

    headers, rows = ["task", "ours", "peer", "ratio"], golden_rows(g) + build_rows + exact_rows
    wall = time.perf_counter() - t_start
    print(f"\nFashion-MNIST CNN (1x28x28 -> conv16 -> pool -> conv32 -> pool -> dense10); {model_note}")
    print(f"golden model test accuracy {golden_acc:.3f} on {GOLDEN_SAMPLES:,} images; IR built in {s_ir:.1f} s")
    refused = ours["io_stream_refused"]
    print(f"ours io_parallel (io_stream refused: {refused})" if refused else "ours io_stream")
    print("ratio: peer / ours for times (>1: ours faster), ours / peer for exact fractions")
    print_table(headers, rows)
    print(f"wall time {wall:.0f} s")
    summary = {
        "model": model_note,
        "ours_io": ours["io"],
        "ours_io_stream_refused": refused,
        "golden_test_accuracy": golden_acc,
        "ir_build_s": s_ir,
        "golden_vs_qonnx": {k: v for k, v in g.items() if k != "golden_predictions"},
        "ours_build_s": {"generate": ours["generate_s"], "build": ours["build_s"]},
        "hls4ml_build": {k: v for k, v in theirs.items() if k != "model"},
        "hls4ml_no_batchnorm_build": fallback and {k: v for k, v in fallback.items() if k != "model"},
        "exact_fraction": exact,
        "table": [dict(zip(headers, row, strict=True)) for row in rows],
        "wall_s": wall,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"written {RESULTS}")
    assert g["differing_outputs"] == 0, f"golden model differs from qonnx in {g['differing_outputs']} outputs"


if __name__ == "__main__":
    main()
