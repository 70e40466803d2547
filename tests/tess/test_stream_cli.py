"""``tess stream`` (tess.stream.cli) and the streaming benchmark's code (benchmarks/stream.py),
on tiny streams; no timing assertions."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tess.cli import main
from tess.stream import Learner, read_state
from tess_spec import mlp_events

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # benchmarks/ is a source-tree package, not installed
    sys.path.insert(0, str(ROOT))


def test_stream_command_writes_summary_plot_and_state(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out, png, state = tmp_path / "s.json", tmp_path / "s.png", tmp_path / "learner.npz"
    rc = main(["stream", "--dataset", "events", "--train-limit", "48", "--test-limit", "12", "--points", "2",
               "--json", str(out), "--plot", str(png), "--save-state", str(state), "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "online accuracy" in printed and "last 20%" in printed
    summary = json.loads(out.read_text())
    tr, te = summary["train"], summary["test"]
    assert tr["samples"] == 48 and len(tr["curve"]) == 2 and tr["learning"] and not te["learning"]
    assert 0 <= tr["accuracy_last_20pct"] <= 1 and te["samples"] == 12
    assert summary["steps"] == 60 * 8 and summary["updates"] == 48 and summary["chance"] == pytest.approx(1 / 6)
    assert png.stat().st_size > 1000
    restored = Learner(mlp_events(), "numpy")
    restored.load(state)
    assert restored.updates == 48 and restored.steps == 60 * 8
    assert read_state(state)["counters"]["segments"] == 60


def test_stream_command_batches_and_test_modes(tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    assert main(["stream", "--dataset", "digits", "--batch", "3", "--train-limit", "20", "--test-limit", "7",
                 "--test-mode", "learn", "--apply-every", "2", "--json", str(out), "--no-progress"]) == 0
    s = json.loads(out.read_text())
    assert s["train"]["samples"] == 18 and s["train"]["skipped"] == 2 and s["test"]["samples"] == 6
    assert s["test"]["learning"] and s["updates"] == (6 + 2) * 6 // 2
    assert main(["stream", "--dataset", "events", "--train-limit", "2", "--test-mode", "skip", "--json", str(out),
                 "--no-progress"]) == 0
    assert json.loads(out.read_text())["test"] is None


@pytest.mark.parametrize("argv, message", [
    (["--plot", "curve.unknown-ext"], "--plot"),
    (["--save-state", "state.txt"], "--save-state"),
    (["--json", "same.npz", "--save-state", "same.npz"], "--json"),
    (["--backend", "nonexistent"], "nonexistent"),
    (["--dataset", "nonexistent"], "nonexistent"),
    (["--set", "train.n_learn=99"], "n_learn"),
])
def test_stream_command_refuses_bad_options_before_any_work(argv: list[str], message: str, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["stream", *argv, "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert "tess: error:" in captured.err and message in captured.err
    assert "tess stream:" not in captured.out  # nothing streamed
    assert not list(tmp_path.iterdir())


def test_benchmark_code_runs_on_a_tiny_stream(tmp_path: Path) -> None:
    from benchmarks import stream as bench

    rows = bench.measure_latency(presets=("mlp_events",), backends=("numpy", "nonexistent"), rounds=1, steps=3,
                                 log=lambda s: None)
    ok = [r for r in rows if "skipped" not in r]
    assert len(ok) == 1 and ok[0]["steps"] == 3 and ok[0]["median_us"] > 0
    assert any("skipped" in r for r in rows)
    mem = bench.memory_worker({"marks": [16, 40]})
    assert [p["steps"] for p in mem["points"]] == [16, 40] and mem["points"][0]["rss_bytes"] > 0
    assert mem["updates"] == 5 and mem["learner_array_bytes"] > 0
    mem["points"][0]["rss_over_first"] = mem["points"][1]["rss_over_first"] = 1.0
    online = bench.measure_online(limit=20, points=4)
    assert online["train_samples"] == 20 and len(online["curve"]) == 4 and online["updates"] == 20
    assert 0 <= online["accuracy_last_20pct"] <= 1 and online["test_samples"] == 20
    payload = {"latency": {"rounds": 1, "steps_per_round": 3, "rows": rows}, "memory": mem, "online": online}
    text = bench.markdown(payload)
    assert "| mlp_events | numpy |" in text and "| 40 |" in text and "| 16–20 |" in text
    assert np.isfinite(ok[0]["p90_us"])
