"""The released-loop diagram of the rule reference is the spec's schedule, drawn by
``docs/scripts/released_loop.py``, and the committed SVG is that script's output."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("released_loop", ROOT / "docs" / "scripts" / "released_loop.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_committed_svg_is_the_scripts_output() -> None:
    mod = _script()
    assert mod.SVG.read_text(encoding="utf-8") == mod.render(), "run python docs/scripts/released_loop.py"
    assert "released-loop.svg" in (ROOT / "docs" / "rule.md").read_text(encoding="utf-8")


def test_the_diagram_says_what_the_public_code_runs() -> None:
    """CIFAR10/100 and CIFAR10-DVS: readout back-propagation at every step, the LSG never;
    a 21-frame DVS Gesture slice: the LSG at step 0 only."""
    rows = {label: dict(r) for label, _, r in _script().schedules()}
    released = {k: v["public code (released loop)"] for k, v in rows.items()}
    assert set(released["CIFAR10 / CIFAR100"]) == {"readout-backprop"} and len(released["CIFAR10 / CIFAR100"]) == 6
    assert set(released["CIFAR10-DVS"]) == {"readout-backprop"} and len(released["CIFAR10-DVS"]) == 10
    gesture = released["DVS Gesture (training slice)"]
    assert gesture[0] == "lsg" and set(gesture[1:]) == {"readout-backprop"} and len(gesture) == 21
    assert set(rows["CIFAR10-DVS"]["paper (lsg)"]) == {"lsg"}
