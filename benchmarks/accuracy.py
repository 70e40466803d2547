"""Accuracy: TESS (torch backend) and BPTT on the same network, data, epochs and seed —
the embedded digits (MLP, direct input) and the synthetic order-coded events (MLP,
event frames) — and the gap BPTT − TESS in test accuracy (the paper reports TESS
within ~1.4 points of BPTT on its datasets)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .common import RESULTS_DIR, environment, markdown_table, write_json, write_markdown

DATASETS = {"digits": ("mlp_digits", {"shape": "flat"}), "events": ("mlp_events", {"shape": "flat"})}


def _subset(ds, n: int):
    return type(ds)(ds.x[:n], ds.y[:n], ds.n_classes, ds.name, ds.sequence)


def run(out_dir: Path = RESULTS_DIR, *, quick: bool = False, threads: int | None = None,
        device: str = "cpu", log=print, epochs: int = 10, seed: int = 0) -> dict[str, Any]:
    """Train both methods on both datasets; write ``accuracy.json`` / ``accuracy.md``."""
    import tess
    from tess.bptt import BPTTModel
    from tess.datasets import load_dataset
    from tess_spec import get_preset

    if threads:
        import torch

        torch.set_num_threads(threads)
    epochs = 1 if quick else epochs
    rows = []
    for name, (preset, kw) in DATASETS.items():
        train, test = load_dataset(name, **kw)
        if quick:
            train, test = _subset(train, 256), _subset(test, 128)
        config = get_preset(preset).replace(**{"train.epochs": epochs, "train.seed": seed})
        res = {}
        for method in ("tess", "bptt"):
            t0 = time.perf_counter()
            model = (tess.Model(config, "torch", device=device) if method == "tess"
                     else BPTTModel(config, device=device))
            hist = model.fit(train, test)
            res[method] = {"test_accuracy": hist[-1].test_accuracy, "train_accuracy": hist[-1].train_accuracy,
                           "seconds": time.perf_counter() - t0,
                           "history": [h.test_accuracy for h in hist]}
            log(f"accuracy {name:6s} {method:5s}: test {100 * hist[-1].test_accuracy:.2f}%")
        rows.append({"dataset": name, "preset": preset, "epochs": epochs, "seed": seed,
                     "n_train": len(train), "n_test": len(test), **res,
                     "gap_points": 100 * (res["bptt"]["test_accuracy"] - res["tess"]["test_accuracy"])})
    payload = {"benchmark": "accuracy", "quick": quick, "environment": environment(threads), "rows": rows}
    write_json(out_dir, "accuracy", payload)
    table = [[r["dataset"], r["preset"], r["epochs"], 100 * r["tess"]["test_accuracy"],
              100 * r["bptt"]["test_accuracy"], r["gap_points"], r["tess"]["seconds"], r["bptt"]["seconds"]]
             for r in rows]
    text = (f"Test accuracy (%) of TESS (torch backend) and BPTT, same network, epochs and seed ({seed}); "
            "gap = BPTT − TESS in points.\n\n"
            + markdown_table(["dataset", "preset", "epochs", "TESS", "BPTT", "gap (pts)", "TESS s", "BPTT s"], table))
    write_markdown(out_dir, "accuracy", text, payload["environment"])
    return payload
