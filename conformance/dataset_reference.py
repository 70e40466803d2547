"""Dataset-level runs of the conformance suite, and the committed NumPy reference.

``python -m tess.conformance.dataset_reference`` retrains the NumPy backend on every
dataset setting (float32 and float64) and rewrites ``data/dataset_reference.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from tess import Model
from tess.datasets import Dataset, load_dataset
from tess_spec import get_preset

from .harness import Target

__all__ = ["SETTINGS", "REFERENCE_PATH", "accuracy", "train", "numpy_reference", "main"]

REFERENCE_PATH = Path(__file__).parent / "data" / "dataset_reference.json"
"""Committed NumPy-backend accuracies the dataset group compares other backends against."""

SETTINGS: dict[str, dict[str, Any]] = {
    "digits": {"dataset": "digits", "preset": "mlp_digits", "epochs": 5, "T": 6, "lr": 3e-3, "collapse": False},
    "events": {"dataset": "events", "preset": "mlp_events", "epochs": 5, "T": 8, "lr": 1e-3, "collapse": False},
    "events_collapsed": {"dataset": "events", "preset": "mlp_events", "epochs": 3, "T": 8, "lr": 1e-3,
                         "collapse": True},
}
"""Name → dataset, preset, epochs, T, learning rate and whether the time axis is summed away (seed 0)."""

_CACHE: dict[tuple[str, str, str | None, str], float] = {}


def _collapse(d: Dataset) -> Dataset:
    return Dataset(d.x.sum(axis=1), d.y, d.n_classes, d.name + "/collapsed", sequence=False)


def train(target: Target, name: str) -> dict[str, Any]:
    """Train setting ``name`` on the target; returns accuracies and seconds."""
    s = SETTINGS[name]
    train_set, test_set = load_dataset(s["dataset"])
    if s["collapse"]:
        train_set, test_set = _collapse(train_set), _collapse(test_set)
    config = get_preset(s["preset"], epochs=s["epochs"], T=s["T"]).replace(
        **{"train.dtype": target.dtype, "train.seed": 0, "optimizer.lr": s["lr"]})
    t0 = time.perf_counter()
    model = Model(config, target.backend())
    hist = model.fit(train_set, test_set)
    return {"test_accuracy": float(hist[-1].test_accuracy), "train_accuracy": float(hist[-1].train_accuracy),
            "seconds": round(time.perf_counter() - t0, 1), **{k: s[k] for k in ("epochs", "T", "lr")}}


def accuracy(target: Target, name: str) -> float:
    """Test accuracy of setting ``name`` on the target (trained once per session)."""
    key = (target.name, target.dtype, target.device, name)
    if key not in _CACHE:
        _CACHE[key] = train(target, name)["test_accuracy"]
    return _CACHE[key]


def _load_reference() -> dict[str, Any]:
    if REFERENCE_PATH.is_file():
        return json.loads(REFERENCE_PATH.read_text(encoding="utf-8"))
    return {}


def _matches(entry: dict[str, Any] | None, s: dict[str, Any]) -> bool:
    return bool(entry) and all(entry.get(k) == s[k] for k in ("epochs", "T", "lr"))  # type: ignore[union-attr]


def numpy_reference(target: Target, name: str) -> tuple[float, str]:
    """The NumPy backend's accuracy for ``name`` in the target's dtype: from the committed
    reference when its setting matches, else trained now."""
    s = SETTINGS[name]
    entry = _load_reference().get(f"{name}|{target.dtype}")
    if _matches(entry, s) and target.name != "numpy":
        return float(entry["test_accuracy"]), "committed reference"
    if target.name == "numpy":
        if _matches(entry, s):
            return float(entry["test_accuracy"]), "committed reference"
        raise AssertionError(f"no committed NumPy reference for {name}|{target.dtype}; "
                             "run python -m tess.conformance.dataset_reference")
    return accuracy(Target("numpy", target.dtype), name), "NumPy run in this session"


def main() -> int:
    """Retrain the NumPy backend on every setting and dtype; rewrite the reference JSON."""
    out: dict[str, Any] = {"_comment": "NumPy backend, seed 0; written by python -m tess.conformance.dataset_reference",
                           "numpy": np.__version__}
    for dtype in ("float32", "float64"):
        for name in SETTINGS:
            r = train(Target("numpy", dtype), name)
            out[f"{name}|{dtype}"] = r
            print(name, dtype, r)
    REFERENCE_PATH.parent.mkdir(parents=True, exist_ok=True)
    tmp = REFERENCE_PATH.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(REFERENCE_PATH)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
