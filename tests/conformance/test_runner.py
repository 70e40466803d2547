"""The conformance runner: exit codes, the Markdown report and its JSON sidecar,
skip/xfail lists, module:attribute backends, and the finite-difference oracle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tess.conformance import oracles
from tess.conformance import runner
from tess.conformance import strategies as S
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
    assert set(data["header"]) >= {"backend", "dtype", "device", "versions", "profile"}
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


def test_fd_oracle_agrees_with_torch() -> None:
    pytest.importorskip("torch")
    from tess_spec import BlockConfig, NetworkConfig, TessConfig, TraceConfig, TrainConfig
    from tess_spec import reference as ref

    cfg = TessConfig(NetworkConfig((1, 4, 4), 3, (BlockConfig("conv", 2, pool="max", weight_std=True),)),
                     traces=TraceConfig(factors=(0.3, 0.5, 0.0, 1.0)), train=TrainConfig(T=4, n_learn=3))
    case = S.make_case(cfg, 3, batch=2, input_scale=1.5, weight_scale=2.0)
    _, _, rec = ref.train_batch(cfg, case.params, case.opt_state, case.x, case.y, case.masks)
    xs = oracles.block_inputs(cfg, case.x, rec, case.masks)
    prob = oracles.BlockProblem(cfg, 0, xs[0], rec["o"][0], case.masks[0], case.y)
    assert rec["o"][0].any()
    for t in range(1, 4):
        l1, g1 = oracles._torch_lsg_grad(prob, t)
        l2, g2 = oracles._fd_lsg_grad(prob, t)
        np.testing.assert_allclose(g2, g1, rtol=1e-4, atol=1e-6 * np.abs(g1).max())
        assert abs(l1 - l2) < 1e-6
    w1 = oracles._torch_weight_grad(prob, case.params)
    w2 = oracles._fd_weight_grad(prob, case.params)
    for k in w1:
        np.testing.assert_allclose(w2[k], w1[k], rtol=1e-4, atol=1e-5 * np.abs(w1[k]).max())
