"""The main job: `tess train --backend numpy --dataset digits --epochs 10 --seed 0`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

import tess
from tess.cli import main
from tess.datasets import load_digits


def test_cli_train_digits_reaches_95_percent(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run.json"
    assert main(["train", "--backend", "numpy", "--dataset", "digits", "--epochs", "10", "--seed", "0",
                 "--json", str(out), "--no-progress"]) == 0
    summary = json.loads(out.read_text())
    for key in ("test_accuracy", "train_accuracy", "epochs", "seconds", "backend", "dataset"):
        assert key in summary
    assert summary["backend"] == "numpy" and summary["dataset"] == "digits" and summary["epochs"] == 10
    assert summary["test_accuracy"] >= 0.95, summary["test_accuracy"]
    printed = capsys.readouterr().out
    assert "epoch  10" in printed and "done: test accuracy" in printed


def test_cli_errors_are_clear_and_exit_2(capsys) -> None:
    assert main(["train", "--dataset", "digits", "--backend", "nope", "--epochs", "1"]) == 2
    assert "unknown backend 'nope'" in capsys.readouterr().err
    assert main(["train", "--epochs", "1", "--set", "train.n_learn=99"]) == 2
    assert "n_learn=99" in capsys.readouterr().err


def test_help_documents_the_options() -> None:
    text = subprocess.run([sys.executable, "-m", "tess", "train", "--help"], capture_output=True, text=True,
                          check=True).stdout
    for flag in ("--backend", "--dataset", "--epochs", "--seed", "--json", "--dtype", "--profile", "--set"):
        assert flag in text


def test_same_seed_same_result() -> None:
    train, test = load_digits()
    accs = []
    for _ in range(2):
        m = tess.Model(tess.presets.mlp_digits(epochs=1))
        m.fit(train, test)
        accs.append((m.history[-1].test_accuracy, m.numpy_params()["readout.weight"]))
    assert accs[0][0] == accs[1][0]
    np.testing.assert_array_equal(accs[0][1], accs[1][1])
