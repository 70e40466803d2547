"""Group "baseline" (reported, not required): the TESS − BPTT accuracy gap on digits
(same network, seed, data and epochs), in the thorough profile, float32.

BPTT runs on the backend under test when it offers ``method="bptt"`` (the torch
backend); otherwise on the torch backend (CPU) — the gap is a property of the rule,
so the backend's own TESS accuracy is set against the autodiff baseline either way.
Without torch there is no BPTT to compare with, and the test says how to install it."""

from __future__ import annotations

import importlib.util
from typing import Callable

import pytest

from tess import Model
from tess.conformance import dataset_reference as D
from tess.conformance.harness import Target
from tess.datasets import load_dataset
from tess_spec import get_preset


@pytest.mark.tess_dtypes("float32")
def test_bptt_gap_on_digits(target: Target, profile: str, note: Callable[[str], None]) -> None:
    """Report TESS (this backend) vs BPTT test accuracy on digits (same network, seed and epochs)."""
    if profile != "thorough":
        pytest.skip("the BPTT comparison trains two networks: run it with --profile thorough")
    backend = target.backend()
    if "bptt" in type(backend).methods:
        where, opts = target.name, {"dtype": target.dtype, **({"device": target.device} if target.device else {})}
    elif importlib.util.find_spec("torch") is not None:
        where, opts = "torch", {"dtype": target.dtype, "device": "cpu"}
    else:
        pytest.skip("BPTT needs PyTorch autograd, which is not installed: pip install 'tess[torch]'")
    s = D.SETTINGS["digits"]
    cfg = get_preset(s["preset"], epochs=s["epochs"], T=s["T"]).replace(
        **{"optimizer.lr": s["lr"], "train.seed": 0, "train.dtype": target.dtype})
    train, test = load_dataset("digits")
    hist = Model(cfg, where, method="bptt", **opts).fit(train, test)
    bptt = float(hist[-1].test_accuracy)
    tess_acc = D.accuracy(target, "digits")
    on = "this backend" if where == target.name else "the torch backend (CPU): this backend has no BPTT method"
    note(f"digits: TESS {100 * tess_acc:.2f}% vs BPTT {100 * bptt:.2f}% "
         f"(gap {100 * (bptt - tess_acc):+.2f} points; BPTT on {on})")
