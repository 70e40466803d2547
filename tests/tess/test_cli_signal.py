"""``tess train --learning-signal NAME``: the run trains with that signal and its JSON
summary and checkpoint header record it; BPTT refuses the flag."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tess.checkpoint import read_checkpoint
from tess.cli import build_parser, main, make_config


def test_the_flag_sets_the_config() -> None:
    args = build_parser().parse_args(["train", "--dataset", "order", "--learning-signal", "released"])
    assert make_config(args).learning_signal == "released"
    args = build_parser().parse_args(["train", "--dataset", "digits"])
    assert make_config(args).learning_signal == "lsg"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--learning-signal", "nope"])


def test_readout_backprop_run_records_its_signal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run.json"
    rc = main(["train", "--dataset", "order", "--epochs", "1", "--learning-signal", "readout-backprop",
               "--json", str(out), "--checkpoint-dir", str(tmp_path / "ck"), "--no-progress"])
    assert rc == 0
    assert "signal=readout-backprop" in capsys.readouterr().out
    summary = json.loads(out.read_text())
    assert summary["learning_signal"] == "readout-backprop" and summary["test_accuracy"] > 0.3  # chance is 0.25
    ck = read_checkpoint(tmp_path / "ck" / "last.npz")
    assert ck.header["learning_signal"] == "readout-backprop" and ck.config.learning_signal == "readout-backprop"
    assert ck.header["config"]["learning_signal"] == "readout-backprop"


def test_bptt_refuses_a_learning_signal(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["train", "--dataset", "digits", "--method", "bptt", "--backend", "torch", "--learning-signal",
               "readout-backprop", "--epochs", "1", "--no-progress"])
    assert rc == 2 and "selects TESS's learning signal" in capsys.readouterr().err
