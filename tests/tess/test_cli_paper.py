"""`tess train` with the paper's presets on fake on-disk data, config files, metrics,
plots, checkpoints and resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import tess
from tess.checkpoint import read_checkpoint
from tess.cli import build_parser, main, make_config
from tess.datasets import fake
from tess.errors import BackendUnavailableError, TessError
from tess_spec.presets import PAPER_DATASETS, VGG9_WIDTHS


def _torch_reason() -> str | None:
    try:
        tess.get_backend("torch")
        return None
    except (BackendUnavailableError, ImportError, TessError) as exc:
        return f"{type(exc).__name__}: {exc}"


TORCH = _torch_reason()


@pytest.fixture(scope="module")
def data_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny fake copies of the four paper datasets in their real layouts."""
    root = tmp_path_factory.mktemp("paper-data")
    return {
        "dvs_gesture": fake.write_dvs_gesture(root / "dvs", layout="tonic", users=(1, 24), n_events=200),
        "cifar10_dvs": fake.write_cifar10_dvs(root / "c10dvs", per_class=2, n_events=200),
        "cifar10": fake.write_cifar(root / "c10", variant="cifar10", n_train=8, n_test=4),
        "cifar100": fake.write_cifar(root / "c100", variant="cifar100", n_train=8, n_test=4),
    }


def _args(*argv: str):
    return build_parser().parse_args(["train", *argv])


@pytest.mark.parametrize("dataset", list(PAPER_DATASETS))
def test_paper_presets_are_the_published_full_size_runs(dataset: str) -> None:
    cfg = make_config(_args("--dataset", dataset))
    pub = PAPER_DATASETS[dataset]
    assert tuple(b.features for b in cfg.network.blocks) == VGG9_WIDTHS
    assert cfg.network.input_shape == pub["input_shape"] and cfg.network.n_classes == pub["n_classes"]
    assert (cfg.train.T, cfg.train.n_learn, cfg.train.batch_size) == (pub["T"], pub["n_learn"], pub["batch_size"])
    assert cfg.traces.factors == pub["factors"] and cfg.train.epochs == 200
    narrow = make_config(_args("--dataset", dataset, "--preset-arg", "width_scale=0.125"))
    assert tuple(b.features for b in narrow.network.blocks) == tuple(w // 8 for w in VGG9_WIDTHS)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("dataset", list(PAPER_DATASETS))
def test_one_epoch_smoke_run_of_each_paper_preset(data_dirs, tmp_path: Path, dataset: str, backend: str) -> None:
    if backend == "torch" and TORCH is not None:
        pytest.skip(f"torch backend unavailable here: {TORCH}")
    out = tmp_path / "run.json"
    rc = main(["train", "--backend", backend, "--dataset", dataset, "--data-dir", str(data_dirs[dataset]),
               "--epochs", "1", "--preset-arg", "width_scale=0.0625", "--batch-size", "8",
               "--json", str(out), "--no-progress"])
    assert rc == 0
    s = json.loads(out.read_text())
    assert s["epochs"] == 1 and s["backend"] == backend and s["dataset"] == dataset
    h = s["history"][0]
    assert np.isfinite(h["train_loss"]) and h["train_loss"] > 0 and 0 <= h["test_accuracy"] <= 1


def test_config_files_json_and_toml_override_any_field(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps({"train": {"T": 8, "batch_size": 16}, "profile": "reference-code",
                                                 "lsg.temperature": 2.0}))
    (tmp_path / "b.toml").write_text('[traces]\nfactors = [0.1, 0.4, 0.0, 1.0]\n[optimizer]\nlr = 0.01\n'
                                     '[train]\nseed = 5\n')
    cfg = make_config(_args("--config", str(tmp_path / "a.json")))
    assert (cfg.train.T, cfg.train.n_learn, cfg.train.batch_size) == (8, 8, 16)
    assert cfg.profile == "reference-code" and cfg.lsg.temperature == 2.0
    cfg = make_config(_args("--dataset", "cifar10", "--config", str(tmp_path / "b.toml"), "--lr", "0.002"))
    assert cfg.traces.factors == (0.1, 0.4, 0.0, 1.0) and cfg.train.seed == 5
    assert cfg.optimizer.lr == 0.002  # explicit flags beat the file
    cfg = make_config(_args("--config", str(tmp_path / "b.toml"), "--set", "optimizer.lr=0.5", "--seed", "1"))
    assert cfg.optimizer.lr == 0.5 and cfg.train.seed == 1


def test_config_file_errors_exit_2_with_the_reason(tmp_path: Path, capsys) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "unknown.json").write_text('{"train": {"nope": 1}}')
    assert main(["train", "--config", str(tmp_path / "bad.json")]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    assert main(["train", "--config", str(tmp_path / "unknown.json")]) == 2
    assert "train.nope" in capsys.readouterr().err
    assert main(["train", "--config", str(tmp_path / "absent.toml")]) == 2
    assert "cannot read config file" in capsys.readouterr().err
    assert main(["train", "--preset-arg", "width_scale"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_print_config_shows_the_resolved_config(capsys) -> None:
    assert main(["train", "--dataset", "cifar10_dvs", "--print-config", "--set", "train.T=4"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["train"]["T"] == 4 and cfg["network"]["input_shape"] == [2, 48, 48]


def test_missing_data_tells_where_to_put_the_files(tmp_path: Path, capsys) -> None:
    assert main(["train", "--dataset", "dvs_gesture", "--data-dir", str(tmp_path), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "ibmGestureTrain" in err and "never downloads" in err


def _digits_run(tmp_path: Path, epochs: int, *extra: str) -> list[str]:
    return ["train", "--dataset", "digits", "--epochs", str(epochs), "--dtype", "float64", "--no-progress",
            "--set", "train.T=3", "--set", "network.blocks=" + json.dumps(
                [{"kind": "linear", "features": 32, "dropout": 0.1}]), *extra]


def test_resume_from_checkpoint_equals_an_uninterrupted_run(tmp_path: Path, capsys) -> None:
    straight, parted = tmp_path / "straight", tmp_path / "parted"
    assert main(_digits_run(tmp_path, 3, "--checkpoint-dir", str(straight), "--metrics",
                            str(tmp_path / "s.jsonl"))) == 0
    assert main(_digits_run(tmp_path, 2, "--checkpoint-dir", str(parted), "--metrics",
                            str(tmp_path / "p.jsonl"))) == 0
    # a stray line from an epoch that never finished must not survive the resume
    with open(tmp_path / "p.jsonl", "a") as fh:
        fh.write(json.dumps({"epoch": 3, "train_loss": -1}) + "\n")
    capsys.readouterr()
    assert main(_digits_run(tmp_path, 3, "--checkpoint-dir", str(parted), "--resume", "--metrics",
                            str(tmp_path / "p.jsonl"), "--json", str(tmp_path / "p.json"))) == 0
    assert "resuming from" in capsys.readouterr().out
    a, b = read_checkpoint(straight / "last.npz"), read_checkpoint(parted / "last.npz")
    assert a.epoch == b.epoch == 3
    for k, v in a.state["params"].items():
        np.testing.assert_array_equal(v, b.state["params"][k], err_msg=k)
    assert a.state["rng"] == b.state["rng"] and a.state["schedule"] == b.state["schedule"]
    s_lines = [json.loads(x) for x in (tmp_path / "s.jsonl").read_text().splitlines()]
    p_lines = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in p_lines] == [1, 2, 3]
    assert [x["train_loss"] for x in p_lines] == [x["train_loss"] for x in s_lines]
    assert json.loads((tmp_path / "p.json").read_text())["epochs"] == 3


def test_resume_refuses_a_checkpoint_of_another_run(tmp_path: Path, capsys) -> None:
    ck = tmp_path / "ck"
    assert main(_digits_run(tmp_path, 1, "--checkpoint-dir", str(ck))) == 0
    capsys.readouterr()
    assert main(_digits_run(tmp_path, 2, "--checkpoint-dir", str(ck), "--resume", "--lr", "0.01")) == 2
    err = capsys.readouterr().err
    assert "different run" in err and "optimizer.lr" in err
    assert main(_digits_run(tmp_path, 2, "--resume")) == 2
    assert "--resume needs --checkpoint-dir" in capsys.readouterr().err


def test_metrics_lines_and_plot(tmp_path: Path) -> None:
    metrics, plot = tmp_path / "m.jsonl", tmp_path / "curves.png"
    assert main(_digits_run(tmp_path, 2, "--metrics", str(metrics), "--plot", str(plot))) == 0
    lines = [json.loads(x) for x in metrics.read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2]
    for x in lines:
        assert {"train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr", "backend", "dataset"} <= set(x)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 5000
