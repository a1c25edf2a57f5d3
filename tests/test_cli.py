"""The command line: exit codes, one clear error line, JSON last line, nothing half-written."""

from __future__ import annotations

import json

from fpga_mpq.cli import main


def test_bad_model_exits_2_with_one_error_line_and_no_output(tmp_path, capsys):
    (tmp_path / "bad.onnx").write_text("not onnx")
    code = main(["generate", str(tmp_path / "bad.onnx"), "-o", str(tmp_path / "prj"), "--json"])
    out, err = capsys.readouterr()
    assert code == 2
    assert err.count("\n") == 1 and "not a valid ONNX model" in err
    assert json.loads(out.splitlines()[-1])["exit"] == 2
    assert not (tmp_path / "prj").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.onnx"]


def test_spec_typo_exits_2_naming_the_key(tmp_path, capsys):
    (tmp_path / "s.yaml").write_text(
        "input: {bits: 8}\nlayers:\n  - {units: 10, weight_bit: 4, bias_bits: 8, act_bits: 4}\n"
    )
    code = main(["flow", "--spec", str(tmp_path / "s.yaml"), "-o", str(tmp_path / "out")])
    assert code == 2
    assert "weight_bit" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_input_type_option_is_parsed_at_the_edge(zoo, tmp_path, capsys):
    code = main(
        [
            "generate",
            str(zoo / "qkeras_jettagging.onnx"),
            "-o",
            str(tmp_path / "p"),
            "--input-type",
            "ap_fixed<12,4>",
            "--json",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert summary["project"] == str(tmp_path / "p")
    assert "ap_fixed<12,4,AP_RND_CONV,AP_SAT> input_t" in (tmp_path / "p" / "firmware" / "defines.h").read_text()


def test_csim_on_a_folder_that_is_not_a_project_exits_2(tmp_path, capsys):
    assert main(["csim", str(tmp_path)]) == 2
    assert "not a fpga_mpq HLS project" in capsys.readouterr().err


def test_every_option_of_every_command_explains_itself_and_each_help_ends_with_an_example():
    import argparse

    from fpga_mpq.cli import _parser

    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        for action in command._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            where = f"{name} {'/'.join(action.option_strings) or action.dest}"
            assert action.help, f"{where} has no help line"
            if action.option_strings and not action.required and not isinstance(action, argparse._StoreTrueAction):
                assert "default" in action.help or "required" in action.help, (
                    f"{where}: its help does not say its default"
                )
        assert command.epilog.startswith("example:\n  fpga-mpq " + name), name
