"""The documentation's figures, drawn with matplotlib (Agg) from committed results only —
no number in a figure is typed by hand.

======================== ==================================================================
figure                   drawn from
======================== ==================================================================
``memory-vs-T.png``      ``benchmarks/results/memory.json`` (measured peaks), with the
                         analytic bytes of :func:`tess.complexity` for the same configs
``macs-per-block.png``   ``benchmarks/results/complexity.json`` (``tess complexity --paper``)
``accuracy.png``         ``benchmarks/results/accuracy.json``: every method a row reports
                         (``tess``, ``bptt``, and any other learning signal) is a series
``training-curve.png``   ``benchmarks/results/train-digits.metrics.jsonl`` (``tess train
                         --metrics``), drawn by :func:`tess.cli.plot_history` — what
                         ``tess train --plot`` draws
======================== ==================================================================

The docs build (``docs/hooks.py``) calls :func:`render_all`; ``python -m benchmarks.figures
--out DIR`` writes the same PNGs to a folder.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

RESULTS_DIR = Path(__file__).resolve().parent / "results"
"""Where the committed results live (``benchmarks/results``)."""

TRAINING_METRICS = "train-digits.metrics.jsonl"
"""The committed per-epoch metrics of the training-curve figure (see ``train-digits.md``)."""

COLORS = {"tess": "#1f77b4", "bptt": "#d62728"}
PHASE_COLORS = {"forward": "#7f7f7f", "neuron": "#bcbd22", "readout": "#17becf", "traces": "#9467bd",
                "learning_signal": "#ff7f0e", "weight_update": "#2ca02c", "optimizer": "#8c564b"}
PHASE_LABELS = {"forward": "forward current", "neuron": "neurons", "readout": "readout", "traces": "traces (ψ, q, h)",
                "learning_signal": "learning signal", "weight_update": "weight-gradient correlations",
                "optimizer": "optimiser"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    _plt().close(fig)
    return buf.getvalue()


def _load(results: Path, name: str) -> dict[str, Any]:
    path = results / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing: the figure is drawn from it (see benchmarks/figures.py)") from None


def method_label(name: str) -> str:
    """Legend label of a method key of ``accuracy.json`` (``tess`` → ``TESS``, ``tess_readout`` → ``TESS readout``)."""
    special = {"tess": "TESS", "bptt": "BPTT", "lsg": "LSG"}
    return " ".join(special.get(p, p) for p in name.replace("-", "_").split("_"))


# --------------------------------------------------------------------------- memory vs T
def memory_figure(results: Path = RESULTS_DIR) -> bytes:
    """Peak memory of one training batch vs T, TESS and BPTT, log axes: measured points
    (``memory.json``) and the analytic account (:func:`tess.complexity`, dashed)."""
    from tess.complexity import complexity

    from .common import network_config

    data = _load(results, "memory.json")
    rows = [r for r in data["rows"] if "error" not in r]
    nets = [n for n in ("vgg", "mlp") if any(r["net"] == n for r in rows)]
    plt = _plt()
    fig, axes = plt.subplots(1, len(nets), figsize=(9, 3.6), squeeze=False, layout="constrained")
    device = rows[0].get("device", "cpu") if rows else "cpu"
    for ax, net in zip(axes[0], nets):
        mine = [r for r in rows if r["net"] == net]
        for method in ("tess", "bptt"):
            pts = sorted((r["T"], r["delta_bytes"] / 2**20) for r in mine if r["method"] == method)
            if not pts:
                continue
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-" if method == "tess" else "s-",
                    color=COLORS[method], label=f"{method_label(method)}, measured")
            model = [(T, complexity(network_config(net, T, r["width"]), method, batch=r["batch"], lsg="fused",
                                    direct_input=net == "mlp").total_bytes / 2**20)
                     for T, r in sorted((r["T"], r) for r in mine if r["method"] == method)]
            ax.plot([p[0] for p in model], [p[1] for p in model], "--", color=COLORS[method], alpha=0.7,
                    label=f"{method_label(method)}, analytic (tess.complexity)")
        first = mine[0]
        title = (f"reduced VGG-9 (width × {first['width']}), batch {first['batch']}" if net == "vgg"
                 else f"digits MLP 64-256-256, batch {first['batch']}")
        ax.set_title(title, fontsize=10)
        ax.set_xscale("log")
        ax.set_yscale("log")
        Ts = sorted({r["T"] for r in mine})
        ax.set_xticks(Ts, [str(t) for t in Ts])
        ax.minorticks_off()
        ax.set_xlabel("time steps T")
        ax.set_ylabel(f"peak memory (MiB, {device})")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    return _png(fig)


# --------------------------------------------------------------------------- MACs per block
def macs_figure(results: Path = RESULTS_DIR, dataset: str = "dvs_gesture") -> bytes:
    """MACs of one training step per block, stacked by phase, TESS beside BPTT (left, linear),
    and per phase (right, log) — for one published configuration of ``complexity.json``."""
    data = _load(results, "complexity.json")
    row = next(r for r in data["configs"] if r["dataset"] == dataset)
    plt = _plt()
    import numpy as np

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2), gridspec_kw={"width_ratios": [3, 2]},
                                   layout="constrained")
    blocks = [b["name"].replace("block ", "") for b in row["tess"]["blocks"]]
    blocks[-1] = "ro"
    x = np.arange(len(blocks))
    w = 0.38
    phases = [p for p in PHASE_COLORS if any(b["macs"][p] for m in ("tess", "bptt") for b in row[m]["blocks"])]
    for off, method, hatch in ((-w / 2, "tess", None), (w / 2, "bptt", "//")):
        bottom = np.zeros(len(blocks))
        for p in phases:
            vals = np.array([b["macs"][p] for b in row[method]["blocks"]], float) / 1e9
            ax1.bar(x + off, vals, w, bottom=bottom, color=PHASE_COLORS[p], hatch=hatch, edgecolor="white",
                    linewidth=0.4, label=PHASE_LABELS[p] if method == "tess" else None)
            bottom += vals
    ax1.set_xticks(x, blocks)
    ax1.set_xlabel("block (left bar TESS, right bar BPTT, hatched; ro = readout)")
    ax1.set_ylabel("GMAC per training step")
    ax1.grid(axis="y", alpha=0.3)
    top = max(sum(b["macs"][p] for p in phases) for m in ("tess", "bptt") for b in row[m]["blocks"]) / 1e9
    ax1.set_ylim(0, top * 1.45)
    ax1.legend(fontsize=7, loc="upper left", ncol=2)
    tp, bp = row["tess"]["macs"], row["bptt"]["macs"]
    y = np.arange(len(phases))
    for off, method, vals in ((-0.2, "tess", tp), (0.2, "bptt", bp)):
        g = np.array([vals[p] / 1e9 if vals[p] else np.nan for p in phases])
        ax2.barh(y + off, g, 0.4, color=COLORS[method], label=method_label(method))
        for yi, v in zip(y + off, g):
            ax2.annotate("none" if not np.isfinite(v) else f"{v:.3g}", (v if np.isfinite(v) else np.nanmin(g), yi),
                         xytext=(3, 0), textcoords="offset points", va="center", fontsize=6)
    ax2.set_yticks(y, [PHASE_LABELS[p] for p in phases], fontsize=8)
    ax2.invert_yaxis()
    ax2.set_xscale("log")
    ax2.set_xlim(right=ax2.get_xlim()[1] * 30)
    ax2.set_xlabel("GMAC per training step (log)")
    ax2.grid(axis="x", alpha=0.3)
    ax2.legend(fontsize=8, loc="lower right")
    labels = {"dvs_gesture": "DVS Gesture", "cifar10_dvs": "CIFAR10-DVS", "cifar10": "CIFAR10", "cifar100": "CIFAR100"}
    fig.suptitle(f"VGG-9, {labels.get(dataset, dataset)} settings: T = {row['T']}, batch {row['batch']} "
                 f"(tess complexity --paper)", fontsize=10)
    return _png(fig)


# --------------------------------------------------------------------------- accuracy
def accuracy_methods(row: dict[str, Any]) -> list[str]:
    """The methods a row of ``accuracy.json`` reports: every key whose value holds a
    ``test_accuracy`` (a dict, or a list of per-seed dicts), in the row's order."""
    def has_acc(v: Any) -> bool:
        if isinstance(v, dict):
            return "test_accuracy" in v
        return isinstance(v, list) and bool(v) and all(isinstance(e, dict) and "test_accuracy" in e for e in v)

    return [k for k, v in row.items() if has_acc(v)]


def accuracy_stats(value: Any) -> tuple[float, float | None, int]:
    """``(mean, std or None, n)`` of one method's test accuracy: a dict with ``test_accuracy``
    (and optionally per-seed ``test_accuracies``, or ``runs``/``seeds`` lists of dicts holding
    ``test_accuracy``), or a list of per-seed dicts."""
    import numpy as np

    accs: list[float] = []
    if isinstance(value, list):
        accs = [float(v["test_accuracy"]) for v in value]
    else:
        per_seed = value.get("test_accuracies")
        if isinstance(per_seed, list) and per_seed:
            accs = [float(a) for a in per_seed]
        for key in ("runs", "seeds"):
            runs = value.get(key)
            if not accs and isinstance(runs, list) and runs and all(isinstance(v, dict) for v in runs):
                accs = [float(v["test_accuracy"]) for v in runs if "test_accuracy" in v]
    if not accs or (isinstance(value, dict) and len(accs) == 1):
        return float(value["test_accuracy"]), None, 1
    mean = float(value["test_accuracy"]) if isinstance(value, dict) else float(np.mean(accs))
    return mean, float(np.std(accs)), len(accs)


def accuracy_figure(results: Path = RESULTS_DIR) -> bytes:
    """Test accuracy per dataset, one bar per method found in ``accuracy.json`` (± the
    standard deviation over seeds when the file has several)."""
    import numpy as np

    data = _load(results, "accuracy.json")
    rows = data["rows"]
    methods: list[str] = []
    for r in rows:
        methods += [m for m in accuracy_methods(r) if m not in methods]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(5.5, 1.6 * len(rows) * max(1, len(methods)) / 2 + 2), 3.6),
                           layout="constrained")
    x = np.arange(len(rows))
    w = 0.8 / max(1, len(methods))
    lowest = 100.0
    from matplotlib.colors import to_hex

    # methods without a colour of their own take tab10's, skipping the ones TESS and BPTT have
    palette = [c for c in plt.get_cmap("tab10").colors if to_hex(c) not in COLORS.values()]
    for j, m in enumerate(methods):
        means, errs = [], []
        for r in rows:
            if m in r:
                mean, std, _ = accuracy_stats(r[m])
                means.append(100 * mean)
                errs.append(100 * std if std is not None else 0.0)
            else:
                means.append(np.nan)
                errs.append(0.0)
        lowest = min(lowest, np.nanmin(np.array(means) - np.array(errs)))
        color = COLORS.get(m, palette[j % len(palette)])
        pos = x - 0.4 + w * (j + 0.5)
        bars = ax.bar(pos, means, w * 0.95, yerr=errs if any(errs) else None, capsize=3, color=color,
                      label=method_label(m))
        for b, v in zip(bars, means):
            if np.isfinite(v):
                ax.annotate(f"{v:.1f}", (b.get_x() + b.get_width() / 2, v), xytext=(0, 2),
                            textcoords="offset points", ha="center", fontsize=7)
    ax.set_xticks(x, [f"{r['dataset']}\n{r.get('preset', '')}, {r.get('epochs', '?')} epochs" for r in rows],
                  fontsize=8)
    ax.set_ylim(max(0.0, np.floor(lowest / 5) * 5 - 5), 101)
    ax.set_ylabel("test accuracy (%)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the bars, never over them
    return _png(fig)


# --------------------------------------------------------------------------- training curve
def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The epoch dicts of a ``tess train --metrics`` JSON-lines file."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing: the training-curve figure is drawn from it") from None
    return [json.loads(line) for line in lines if line.strip()]


def training_curve_figure(results: Path = RESULTS_DIR) -> bytes:
    """Loss and accuracy per epoch of the committed digits run, drawn by
    :func:`tess.cli.plot_history` (the function behind ``tess train --plot``)."""
    from tess.cli import plot_history

    history = read_metrics(results / TRAINING_METRICS)
    first = history[0]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "curve.png"
        plot_history(history, out, title=f"{first.get('method', 'tess')} · {first.get('backend', '?')} · "
                                         f"{first.get('dataset', '?')}")
        return out.read_bytes()


FIGURES: dict[str, Callable[[Path], bytes]] = {
    "memory-vs-T.png": memory_figure,
    "macs-per-block.png": macs_figure,
    "accuracy.png": accuracy_figure,
    "training-curve.png": training_curve_figure,
}
"""File name → function drawing it from a results folder."""


def render_all(results: Path = RESULTS_DIR) -> dict[str, bytes]:
    """Every figure of :data:`FIGURES` as PNG bytes."""
    return {name: fn(results) for name, fn in FIGURES.items()}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.figures [--results DIR] --out DIR``: write every figure."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.figures", description=__doc__.split("\n\n")[0])
    p.add_argument("--results", type=Path, default=RESULTS_DIR, help=f"results folder [{RESULTS_DIR}]")
    p.add_argument("--out", type=Path, required=True, help="folder to write the PNGs into")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, png in render_all(args.results).items():
        (args.out / name).write_bytes(png)
        print(f"wrote {args.out / name}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.exit(main())
