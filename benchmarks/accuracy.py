"""Accuracy: two TESS learning signals and BPTT, on the same network, data, epochs and seeds.

Methods (every one on the torch backend, CPU unless ``--device``):

* ``tess_lsg``: TESS with the paper's signal — each block's own fixed-basis local loss
  (``learning_signal="lsg"``, TESS_RULE.md §4);
* ``tess_readout_backprop``: TESS with the readout's per-step error back-propagated across
  the blocks within each step (``learning_signal="readout-backprop"``, §11) — the signal
  the public code's released loop gives its blocks;
* ``bptt``: the baseline, back-propagation through time (§10).

Tasks: every offline dataset tess ships — the embedded ``digits`` (MLP, direct input), the
synthetic order-coded ``events`` and the temporal-order task ``order`` (the class is the
order and spacing of two pulses; the time-summed input is at chance) — each with its
preset network.  Per task and method: the test accuracy after the last epoch for each seed,
its mean and spread (population standard deviation, min and max), and the gap
BPTT − TESS in points for both signals (mean over seeds, and per seed, paired: the same
seed gives both methods the same initial weights, batches and masks).  Nothing is tuned
per method: the preset's settings, the same epochs and learning rate for all.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .common import RESULTS_DIR, environment, markdown_table, write_json, write_markdown

DATASETS: dict[str, tuple[str, dict[str, Any]]] = {
    "digits": ("mlp_digits", {"shape": "flat"}),
    "events": ("mlp_events", {"shape": "flat"}),
    "order": ("mlp_order", {"shape": "flat"}),
}
"""Task → (preset, loader keyword arguments): every offline dataset of :data:`tess.datasets.DATASETS`."""

METHODS: dict[str, str | None] = {"tess_lsg": "lsg", "tess_readout_backprop": "readout-backprop", "bptt": None}
"""Method key of ``accuracy.json`` → TESS learning signal (``None``: BPTT)."""

LABELS = {"tess_lsg": "TESS-LSG", "tess_readout_backprop": "TESS-readout-backprop", "bptt": "BPTT"}
SEEDS: tuple[int, ...] = (0, 1, 2)
"""Seeds of every (task, method): the mean and spread are over these."""


def _subset(ds: Any, n: int) -> Any:
    return type(ds)(ds.x[:n], ds.y[:n], ds.n_classes, ds.name, ds.sequence)


def train_one(config: Any, method: str, train: Any, test: Any, device: str = "cpu") -> dict[str, Any]:
    """Train ``method`` (a key of :data:`METHODS`) on ``config`` (its seed, epochs) and
    return its last-epoch accuracies, seconds and test-accuracy history."""
    import tess
    from tess.bptt import BPTTModel

    t0 = time.perf_counter()
    signal = METHODS[method]
    if signal is None:
        model = BPTTModel(config, device=device)
    else:
        model = tess.Model(config.replace(learning_signal=signal), "torch", device=device)
    hist = model.fit(train, test)
    return {"seed": config.train.seed, "test_accuracy": hist[-1].test_accuracy,
            "train_accuracy": hist[-1].train_accuracy, "seconds": time.perf_counter() - t0,
            "history": [h.test_accuracy for h in hist]}


def summarise(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One method's entry: ``test_accuracy`` (mean over the runs), ``test_accuracies`` (per
    seed), ``std`` (population), ``min``, ``max``, ``seconds`` (total) and the ``runs``."""
    accs = np.array([r["test_accuracy"] for r in runs], float)
    return {"test_accuracy": float(accs.mean()), "test_accuracies": accs.tolist(), "std": float(accs.std()),
            "min": float(accs.min()), "max": float(accs.max()),
            "seconds": float(sum(r["seconds"] for r in runs)), "runs": list(runs)}


def gaps(row: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per TESS signal: BPTT − TESS in points, of the means and per seed (paired)."""
    b = row["bptt"]
    out = {}
    for m in METHODS:
        if m == "bptt":
            continue
        per = [100 * (rb["test_accuracy"] - rt["test_accuracy"]) for rb, rt in zip(b["runs"], row[m]["runs"])]
        out[m] = {"points": 100 * (b["test_accuracy"] - row[m]["test_accuracy"]), "per_seed": per,
                  "trails_bptt": bool(b["test_accuracy"] > row[m]["test_accuracy"])}
    return out


def _verdict(points: float) -> str:
    if round(points, 1) > 0:
        return f"trails BPTT by {points:.1f} points"
    if round(points, 1) < 0:
        return f"is ahead of BPTT by {-points:.1f} points"
    return "matches BPTT (to 0.1 point)"


def markdown(payload: dict[str, Any]) -> str:
    """The results table (mean ± std over seeds, min–max) and the gaps, as Markdown."""
    rows = payload["rows"]
    seeds = ", ".join(str(s) for s in payload["seeds"])
    head = ["task", "preset", "epochs", *(LABELS[m] for m in METHODS), "BPTT − LSG (pts)",
            "BPTT − readout-backprop (pts)"]
    table = []
    for r in rows:
        cells: list[Any] = [r["dataset"], r["preset"], r["epochs"]]
        for m in METHODS:
            v = r[m]
            cells.append(f"{100 * v['test_accuracy']:.1f} ± {100 * v['std']:.1f} "
                         f"({100 * v['min']:.1f}–{100 * v['max']:.1f})")
        for m in ("tess_lsg", "tess_readout_backprop"):
            g = r["gap_points"][m]
            cells.append(f"{g['points']:+.1f} (" + ", ".join(f"{p:+.1f}" for p in g["per_seed"]) + ")")
        table.append(cells)
    lines = [f"Test accuracy (%) after the last epoch, mean ± standard deviation (min–max) over seeds {seeds}; "
             "same network, data, epochs, learning rate and seed for every method (torch backend, CPU). "
             "Gap = BPTT − TESS in points, of the means (per seed, paired, in brackets): positive means "
             "the TESS signal trails BPTT.", "", markdown_table(head, table).rstrip(), ""]
    for r in rows:
        says = "; ".join(f"{LABELS[m]} {_verdict(r['gap_points'][m]['points'])}"
                         for m in ("tess_lsg", "tess_readout_backprop"))
        lines.append(f"- **{r['dataset']}**: {says}.")
    secs = sum(r[m]["seconds"] for r in rows for m in METHODS)
    lines.append(f"\nTraining time of the whole table: {secs:.0f} s ({len(rows)} tasks × {len(METHODS)} methods × "
                 f"{len(payload['seeds'])} seeds, one thread).")
    return "\n".join(lines) + "\n"


def run(out_dir: Path = RESULTS_DIR, *, quick: bool = False, threads: int | None = None,
        device: str = "cpu", log: Callable[[str], None] = print, epochs: int = 10,
        seeds: Sequence[int] = SEEDS) -> dict[str, Any]:
    """Train every method on every task for every seed; write ``accuracy.json`` / ``accuracy.md``.

    ``quick``: 1 epoch, one seed, 256 training and 128 test samples per task (a smoke run)."""
    from tess.datasets import load_dataset
    from tess_spec import get_preset

    if threads:
        import torch

        torch.set_num_threads(threads)
    epochs = 1 if quick else epochs
    seeds = tuple(seeds)[:1] if quick else tuple(seeds)
    t_all = time.perf_counter()
    rows = []
    for name, (preset, kw) in DATASETS.items():
        train, test = load_dataset(name, **kw)
        if quick:
            train, test = _subset(train, 256), _subset(test, 128)
        row: dict[str, Any] = {"dataset": name, "preset": preset, "epochs": epochs, "seeds": list(seeds),
                               "n_train": len(train), "n_test": len(test)}
        for method in METHODS:
            runs = []
            for seed in seeds:
                config = get_preset(preset).replace(**{"train.epochs": epochs, "train.seed": seed})
                runs.append(train_one(config, method, train, test, device))
                log(f"accuracy {name:6s} {method:22s} seed {seed}: test {100 * runs[-1]['test_accuracy']:.2f}% "
                    f"({runs[-1]['seconds']:.1f} s)")
            row[method] = summarise(runs)
        row["gap_points"] = gaps(row)
        rows.append(row)
    payload = {"benchmark": "accuracy", "quick": quick, "seeds": list(seeds), "epochs": epochs,
               "methods": {m: LABELS[m] for m in METHODS}, "seconds": time.perf_counter() - t_all,
               "environment": environment(threads), "rows": rows}
    write_json(out_dir, "accuracy", payload)
    write_markdown(out_dir, "accuracy", markdown(payload), payload["environment"])
    return payload
