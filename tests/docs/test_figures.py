"""The figures and benchmark tables of the docs: drawn from the committed results (and only
from them), generic over the methods a result reports, and all included in the pages."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # benchmarks/ is a source-tree package, not installed
    sys.path.insert(0, str(ROOT))

from benchmarks import figures  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
PNG = b"\x89PNG\r\n\x1a\n"


def test_every_figure_is_drawn_from_the_committed_results():
    pngs = figures.render_all()
    assert set(pngs) == set(figures.FIGURES)
    for name, png in pngs.items():
        assert png[:8] == PNG and len(png) > 10_000, name


def test_figures_fail_loudly_without_their_results(tmp_path):
    for name, fn in figures.FIGURES.items():
        with pytest.raises(FileNotFoundError, match=str(tmp_path)):
            fn(tmp_path)


def test_accuracy_figure_takes_every_method_as_a_series(tmp_path):
    """#14 adds learning signals to accuracy.json: any key holding test accuracies is a series,
    with per-seed spread when the file has seeds."""
    row = {"dataset": "digits", "preset": "mlp_digits", "epochs": 1, "seed": 0,
           "tess": {"test_accuracy": 0.9, "test_accuracies": [0.89, 0.9, 0.91]},
           "tess_readout_backprop": {"test_accuracy": 0.95},
           "bptt": [{"test_accuracy": 0.97, "seed": s} for s in range(3)],
           "gap_points": 7.0}
    assert figures.accuracy_methods(row) == ["tess", "tess_readout_backprop", "bptt"]
    mean, std, n = figures.accuracy_stats(row["tess"])
    assert (mean, n) == (0.9, 3) and std == pytest.approx(0.008165, rel=1e-3)
    assert figures.accuracy_stats(row["tess_readout_backprop"]) == (0.95, None, 1)
    assert figures.accuracy_stats(row["bptt"])[0] == pytest.approx(0.97)
    assert figures.method_label("tess_readout_backprop") == "TESS readout backprop"
    (tmp_path / "accuracy.json").write_text(json.dumps({"rows": [row, {**row, "dataset": "events"}]}))
    assert figures.accuracy_figure(tmp_path)[:8] == PNG


def test_training_curve_comes_from_committed_metrics():
    history = figures.read_metrics(RESULTS / figures.TRAINING_METRICS)
    assert [h["epoch"] for h in history] == list(range(1, len(history) + 1)) and len(history) >= 5
    for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "method", "backend", "dataset"):
        assert key in history[0]
    command = (RESULTS / "train-digits.md").read_text()
    assert "tess train" in command and f"--metrics benchmarks/results/{figures.TRAINING_METRICS}" in command


def test_every_benchmark_table_is_on_the_benchmarks_page():
    page = (ROOT / "docs" / "benchmarks.md").read_text()
    included = set(re.findall(r'--8<-- "benchmarks/results/([^"]+\.md)"', page))
    assert {p.name for p in RESULTS.glob("*.md")} <= included
    for name in figures.FIGURES:
        assert f"assets/generated/{name}" in page


def test_basis_figure_titles_clear_the_tick_labels(hooks):
    fig = hooks.basis_figure()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    top, bottom = fig.axes[0], fig.axes[1]
    title = bottom.title.get_window_extent(renderer)
    below_top = [t.get_window_extent(renderer) for t in top.get_xticklabels() if t.get_text()]
    below_top.append(top.xaxis.label.get_window_extent(renderer))
    assert below_top and not any(title.overlaps(b) for b in below_top)
    assert title.y0 > bottom.get_window_extent(renderer).y1 - 1  # above its own panel
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_datasets_table_names_no_private_function(hooks):
    text = hooks.datasets_markdown()
    assert "| `events` |" in text
    assert not re.search(r"`[\w.]*\._\w+`", text), text
    assert 'tess.datasets.load_dataset("events")' in text
