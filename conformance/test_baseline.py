"""Group "baseline" (reported, not required): where the backend has a BPTT baseline
(``tess train --method bptt``, ``tess.bptt``), train the digits network with it and
report the accuracy gap to TESS.  Runs in the ``thorough`` profile."""

from __future__ import annotations

import importlib
from typing import Callable

import pytest

from tess.conformance import dataset_reference as D
from tess.conformance.harness import Target
from tess.datasets import load_dataset
from tess_spec import get_preset
from tess_spec.errors import TessError


def test_bptt_gap_on_digits(target: Target, profile: str, note: Callable[[str], None]) -> None:
    """Report TESS vs BPTT test accuracy on digits (same network, seed and epochs)."""
    if profile != "thorough":
        pytest.skip("the BPTT comparison runs in the thorough profile")
    if target.dtype != "float32":
        pytest.skip("reported for float32")
    from tess.cli import METHODS

    target_fn = METHODS.get("bptt")
    if target_fn is None:
        pytest.skip("no BPTT method is registered")
    module, _, attr = target_fn.partition(":")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except ImportError as exc:
        pytest.skip(f"BPTT baseline not importable: {exc}")
    s = D.SETTINGS["digits"]
    cfg = get_preset(s["preset"], epochs=s["epochs"], T=s["T"]).replace(**{"optimizer.lr": s["lr"]})
    train, test = load_dataset("digits")
    try:
        hist = fn(cfg, target.name, {"dtype": target.dtype}, train, test, None)
    except (TessError, NotImplementedError) as exc:
        pytest.skip(f"backend {target.name!r} has no BPTT baseline: {exc}")
    bptt = float(hist[-1]["test_accuracy"])
    tess_acc = D.accuracy(target, "digits")
    note(f"digits: TESS {100 * tess_acc:.2f}% vs BPTT {100 * bptt:.2f}% (gap {100 * (bptt - tess_acc):+.2f} points)")
