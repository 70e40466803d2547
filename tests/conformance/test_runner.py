"""The conformance runner: exit codes, the Markdown report and its JSON sidecar,
skip/xfail lists, module:attribute backends, and the explicit oracle choice (the
oracles themselves: tests/conformance/test_oracles.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tess.conformance import oracles
from tess.conformance import runner
from tess.conformance.plugin import load_expectations


def test_report_and_sidecar(tmp_path: Path) -> None:
    report = tmp_path / "r.md"
    code = runner.main(["--backend", "numpy", "--dtype", "float64", "-k", "golden_steps or bad_batch",
                        "--report", str(report)])
    assert code == 0
    text = report.read_text()
    assert "| golden | `test_golden_steps_match[float64-paper]` | passed |" in text
    assert "Tolerances used" in text
    data = json.loads(report.with_suffix(".json").read_text())
    assert set(data["header"]) >= {"backend", "dtype", "device", "versions", "profile", "oracle", "command", "machine"}
    assert "Oracle of the gradient properties: **" in text
    assert data["header"]["backend"] == "numpy" and data["header"]["device"] == "cpu"
    assert {r["group"] for r in data["rows"]} == {"golden", "errors"}
    assert all({"group", "test", "outcome", "reason"} <= set(r) for r in data["rows"])
    assert all(r["outcome"] == "passed" for r in data["rows"])


def test_mutant_fails_via_module_attribute(tmp_path: Path) -> None:
    report = tmp_path / "m.md"
    code = runner.main(["--backend", "tess.conformance.mutants:LambdaPreDropped", "--dtype", "float64",
                        "-k", "golden_steps", "--report", str(report)])
    assert code == 1
    rows = json.loads(report.with_suffix(".json").read_text())["rows"]
    assert rows and all(r["outcome"] == "failed" and r["reason"] for r in rows)


def test_listed_required_test_fails_the_run(tmp_path: Path) -> None:
    lst = tmp_path / "list.txt"
    lst.write_text("xfail golden::test_golden_steps_match* known difference, tracked in issue 99\n")
    code = runner.main(["--backend", "numpy", "--dtype", "float64", "-k", "golden_steps_match",
                        "--expectations", str(lst)])
    assert code == 1


def test_list_lines_need_a_reason(tmp_path: Path) -> None:
    lst = tmp_path / "bad.txt"
    lst.write_text("skip golden::*\n")
    with pytest.raises(Exception, match="reason"):
        load_expectations(lst)


def test_unknown_backend_exits_2() -> None:
    assert runner.main(["--backend", "no-such-backend", "-k", "nothing"]) == 2


def test_oracle_choice_is_explicit(tmp_path: Path) -> None:
    """``--oracle finite-differences`` is used and named even with torch installed; the
    gradient properties pass under its own tolerance."""
    report = tmp_path / "fd.md"
    try:
        code = runner.main(["--backend", "numpy", "--dtype", "float64", "--oracle", "finite-differences",
                            "--examples", "3", "-k", "lsg_signal or equals_autodiff", "--report", str(report)])
        data = json.loads(report.with_suffix(".json").read_text())
    finally:
        oracles.select("auto")
    assert code == 0, data["rows"]
    assert data["header"]["oracle"] == oracles.ORACLES["finite-differences"]
    assert "finite differences" in report.read_text()
    ran = {r["test"].split("[")[0] for r in data["rows"]}
    assert {"test_lsg_signal_is_local_loss_gradient", "test_update_equals_autodiff_in_special_case",
            "test_readout_backprop_equals_autodiff_in_special_case"} <= ran
    assert all("lsg_signal" in t or "equals_autodiff" in t for t in ran), ran


def test_autodiff_without_torch_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(oracles, "have_torch", lambda: False)
    try:
        assert runner.main(["--backend", "numpy", "--oracle", "autodiff", "-k", "nothing"]) == 2
        assert oracles.select("auto") == "finite-differences"
    finally:
        monkeypatch.undo()
        oracles.select("auto")
