"""Smoke test of the scaling benchmark: ``--quick`` (VGG-9 width × 0.125, T = 2, one round)
starts its two gloo workers and writes both files (no timing assertions).

Cost: two worker processes (torch import, gloo rendezvous), ~10 s of CPU.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # benchmarks/ is a source-tree package, not installed
    sys.path.insert(0, str(ROOT))

from benchmarks import scaling  # noqa: E402


def test_quick_run_writes_the_report(tmp_path: Path) -> None:
    payload = scaling.run(tmp_path, quick=True, log=lambda s: None)
    s = payload["summary"]
    assert set(s["modes"]) == set(scaling.MODES)
    for m in s["modes"].values():
        assert m["samples_per_s"] > 0 and m["n_batches"] == 1 and len(m["cpu_per_wall"]) == 2
    assert s["allreduce_bytes"] == 4 * payload["raw"]["allreduce_floats"] > 0
    assert s["efficiency_2_workers"]["median"] == pytest.approx(s["speedup_2_workers"]["median"] / 2)
    assert json.loads((tmp_path / "scaling.json").read_text())["benchmark"] == "scaling"
    text = (tmp_path / "scaling.md").read_text()
    assert "Parallel efficiency of 2 workers" in text and "| 2 workers × 1 thread |" in text
    assert not (tmp_path / ".scaling-workers.json").exists()
