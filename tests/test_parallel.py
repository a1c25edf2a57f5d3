"""Independent trainings as Ray tasks: the same designs as the serial run, progress on stderr."""

from __future__ import annotations

import json
import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch

from fpga_mpq.cli import main
from fpga_mpq.data import load_split
from fpga_mpq.models.spec import DEFAULT_SPEC
from fpga_mpq.mpq.problem import Target
from fpga_mpq.mpq.search import search
from fpga_mpq.parallel import Runner
from fpga_mpq.train import TrainConfig, qat, train_float

FAST = TrainConfig(epochs=2, float_epochs=2)


def test_a_ray_search_gives_the_serial_searchs_designs_bit_for_bit():
    split = load_split("digits")
    runs = {
        address: search(
            "ptq", DEFAULT_SPEC, split, (2, 4, 8), Target(max_drop=3.0), train_cfg=FAST, runner=Runner(address)
        )
        for address in ("off", "local")
    }
    serial, ray = runs["off"], runs["local"]
    assert ray.chosen.widths() == serial.chosen.widths()
    for a, b in zip(serial.front + serial.uniform + serial.peers, ray.front + ray.uniform + ray.peers, strict=True):
        assert (a.label, a.costs, a.val_acc, a.test_acc) == (b.label, b.costs, b.val_acc, b.test_acc)
    state, ray_state = serial.model.state_dict(), ray.model.state_dict()
    assert state.keys() == ray_state.keys()
    assert all(torch.equal(state[k], ray_state[k]) for k in state)


def test_a_trained_quant_net_pickles_whole_so_a_ray_task_can_return_it():
    split = load_split("digits")
    fmodel = train_float(DEFAULT_SPEC, split, TrainConfig(epochs=1, float_epochs=1))
    model = qat(fmodel, DEFAULT_SPEC, split, TrainConfig(epochs=1, float_epochs=1))
    copy = pickle.loads(pickle.dumps(model))
    x = torch.from_numpy(split.x_test)
    assert torch.equal(copy(x), model(x)) and not copy.training


def test_progress_of_each_task_goes_to_stderr_not_to_the_json_on_stdout(tmp_path, capsys):
    args = ["search", "--method", "uniform", "--max-drop", "5", "--epochs", "1", "--candidates", "2,4"]
    args += ["--ray-address", "local"]
    assert main([*args, "-o", str(tmp_path / "s"), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out.strip().splitlines()[-1])["method"] == "uniform"
    assert "[search uniform]" not in captured.out
    assert "[search uniform] 2 tasks on Ray" in captured.err
    assert "[search uniform] 2/2 done: uniform" in captured.err


@pytest.mark.parametrize("address", ["nohost", "ray://:10001", "host:port"])
def test_a_malformed_ray_address_is_one_clear_error(tmp_path, capsys, address):
    args = ["search", "--method", "uniform", "--max-drop", "1", "--epochs", "1", "--ray-address", address]
    assert main([*args, "-o", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert f"--ray-address {address!r}: one of off, local, ray://HOST:PORT or HOST:PORT" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "s").exists()


def test_sigterm_during_ray_tasks_stops_with_143_and_leaves_no_ray_process(tmp_path):
    """Ray installs its own SIGTERM handler (an abort with a stack dump); ours must win."""
    args = ["search", "--method", "uniform", "--candidates", "2,8", "--max-drop", "50", "--epochs", "20"]
    args += ["--ray-address", "local"]
    cmd = [sys.executable, "-m", "fpga_mpq.cli", *args, "-o", str(tmp_path / "s")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    for line in proc.stderr:  # wait until the tasks run on Ray
        if "tasks on Ray" in line:
            break
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 143, err[-500:]
    assert "interrupted: SIGTERM: stopped; the output was left as it was" in err
    assert not (tmp_path / "s").exists()
    time.sleep(3)  # Ray's processes end with the driver
    left = subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert left == []


def test_the_ray_address_defaults_to_the_environment_variable_then_local(monkeypatch):
    from fpga_mpq.cli import _parser

    args = ["search", "--method", "uniform", "--max-drop", "1"]
    monkeypatch.setenv("FPGA_MPQ_RAY_ADDRESS", "head:6379")
    assert _parser().parse_args(args).ray_address == "head:6379"
    assert _parser().parse_args([*args, "--ray-address", "off"]).ray_address == "off"
    monkeypatch.delenv("FPGA_MPQ_RAY_ADDRESS")
    assert _parser().parse_args(args).ray_address == "local"
