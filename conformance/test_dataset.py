"""Group "dataset": the backend trains small networks to a stated accuracy, and all
backends agree with the NumPy backend within 1.5 accuracy points.

* digits (embedded 8×8 digits, direct input, T = 6, preset ``mlp_digits`` with lr 3e-3, 5 epochs): ≥ 95 %.
* events (synthetic order-coded events, T = 8, preset ``mlp_events``, 5 epochs): ≥ 90 %.
* the same events, time-collapsed (``Σ_t x[t]`` as direct input, 3 epochs): ≤ 35 % (chance is 1/6),
  showing that the order of events, not their count, carries the class.

The NumPy backend's accuracies are committed in ``conformance/data/dataset_reference.json``
(regenerate with ``python -m tess.conformance.dataset_reference``); a backend is
compared with that reference, or with a NumPy run made in the same session when the
reference lacks the setting.  The ``ci`` profile trains in float32 only.
"""

from __future__ import annotations

from typing import Callable

import pytest

from tess.conformance import dataset_reference as D
from tess.conformance.harness import Target

GAP_POINTS = 1.5
"""Largest allowed accuracy difference to the NumPy backend, in percentage points."""

THRESHOLDS = {"digits": 0.95, "events": 0.90}
CHANCE_BOUND = 0.35


def _dtype_allowed(target: Target, profile: str) -> None:
    if profile == "ci" and target.dtype != "float32":
        pytest.skip("the ci profile trains datasets in float32 only (use --profile thorough for float64)")


@pytest.mark.parametrize("dataset", list(THRESHOLDS))
def test_reaches_stated_accuracy(target: Target, profile: str, note: Callable[[str], None], dataset: str) -> None:
    """digits ≥ 95 %, events ≥ 90 % test accuracy with the seed-0 run."""
    _dtype_allowed(target, profile)
    acc = D.accuracy(target, dataset)
    note(f"{dataset}: test accuracy {100 * acc:.2f}%")
    assert acc >= THRESHOLDS[dataset], f"{dataset}: test accuracy {100 * acc:.2f}% < {100 * THRESHOLDS[dataset]:.0f}%"


def test_time_collapsed_events_stay_near_chance(target: Target, profile: str, note: Callable[[str], None]) -> None:
    """The same MLP fed Σ_t x[t] (no order information) stays near chance (1/6)."""
    _dtype_allowed(target, profile)
    acc = D.accuracy(target, "events_collapsed")
    note(f"events, time-collapsed: test accuracy {100 * acc:.2f}% (chance 16.7%)")
    assert acc <= CHANCE_BOUND, f"time-collapsed events reach {100 * acc:.2f}% > {100 * CHANCE_BOUND:.0f}%"


@pytest.mark.parametrize("dataset", list(THRESHOLDS))
def test_agrees_with_numpy(target: Target, profile: str, note: Callable[[str], None], dataset: str) -> None:
    """|accuracy − NumPy backend's accuracy| ≤ 1.5 points (same network, seed, data)."""
    _dtype_allowed(target, profile)
    acc = D.accuracy(target, dataset)
    ref, source = D.numpy_reference(target, dataset)
    gap = 100 * abs(acc - ref)
    note(f"{dataset}: {100 * acc:.2f}% vs NumPy {100 * ref:.2f}% ({source}): gap {gap:.2f} points")
    assert gap <= GAP_POINTS, f"{dataset}: {100 * acc:.2f}% vs NumPy {100 * ref:.2f}% — gap {gap:.2f} > {GAP_POINTS}"
