"""``make gpu-check`` logic on CPU: the dry run writes the full report with every GPU part
skipped with a reason; failing, crashing and hanging stages are reported, not fatal."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture()
def gpu_check(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    import gpu_check.report
    import gpu_check.runner
    import gpu_check.stages

    return gpu_check


def test_dry_run_writes_complete_report(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "gpu_check", "--dry-run", "--out", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = (tmp_path / "report.md").read_text()
    results = json.loads((tmp_path / "results.json").read_text())
    stages = results["stages"]
    assert list(stages) == ["env", "conformance-cupy", "conformance-torch", "conformance-jax", "throughput-cupy",
                            "throughput-torch", "throughput-jax", "memory", "bandwidth", "step-torch"]
    for heading in ("# GPU check report", "## Summary", "## Environment", "## Conformance",
                    "## Training throughput", "## Peak GPU memory", "## Fused block kernel", "## Fused neuron step",
                    "## Stages"):
        assert heading in report
    assert "DRY RUN" in report
    for name in ("conformance-cupy", "conformance-torch", "conformance-jax", "throughput-torch",
                 "throughput-jax", "memory", "bandwidth", "step-torch"):
        assert stages[name]["status"] == "skipped" and stages[name]["reason"].startswith("dry run"), name
    assert "--backend jax --device cuda --profile ci --report" in stages["conformance-jax"]["command"]
    # the harness itself ran on CPU with the CuPy backend's twin
    tp = stages["throughput-cupy"]
    assert tp["status"] == "ok" and tp["metrics"]["loss_finite"] and tp["metrics"]["samples_per_s"] > 0
    assert "not a GPU figure" in tp["metrics"]["backend"]
    assert stages["env"]["status"] == "ok" and stages["env"]["metrics"]["tess_spec"]
    bw_rows = stages["bandwidth"]["rows"]
    assert {r["dtype"] for r in bw_rows} == {"float32", "float64"} and all(r["bytes"] > 0 for r in bw_rows)
    step_rows = {r["impl"]: r for r in stages["step-torch"]["rows"]}  # the torch-step harness, on CPU
    assert {"torch fuse=none", "torch fuse=eager", "cupy CPU twin (dry run)"} <= set(step_rows)
    assert "error" not in step_rows["torch fuse=eager"]
    assert all(r["us_per_step"] > 0 for r in step_rows.values() if "error" not in r)
    assert "not measured" in report  # no verdict is invented without a measurement


def test_failing_crashing_and_hanging_stages_are_reported(gpu_check, tmp_path, monkeypatch):
    R = gpu_check.runner
    py = sys.executable
    fake = [
        R.Stage("env", (py, "-m", "gpu_check.stages", "env", "--json", str(tmp_path / "stages" / "env.json"),
                        "--dry-run"), 60),
        R.Stage("conformance-cupy", (py, "-c", "import sys; print('3 failed'); sys.exit(3)"), 60, kind="command"),
        R.Stage("throughput-cupy", (py, "-c", "raise SystemExit(2)"), 60),
        R.Stage("memory", (py, "-c", "import time; print('working', flush=True); time.sleep(60)"), 3),
    ]
    monkeypatch.setattr(R, "plan_stages", lambda *a, **k: fake)
    results = R.run(tmp_path, deadline=120)
    st = results["stages"]
    assert st["env"]["status"] == "ok"
    assert st["conformance-cupy"]["status"] == "failed" and "3 failed" in st["conformance-cupy"]["output_tail"]
    assert st["throughput-cupy"]["status"] == "failed" and "no result written" in st["throughput-cupy"]["reason"]
    assert st["memory"]["status"] == "timeout" and "working" in st["memory"]["output_tail"]
    assert st["memory"]["seconds"] < 30
    report = (tmp_path / "report.md").read_text()
    assert "FAIL" in report and "TIMED OUT" in report


def test_global_deadline_skips_late_stages(gpu_check, tmp_path, monkeypatch):
    R = gpu_check.runner
    fake = [R.Stage("env", (sys.executable, "-c", "pass"), 5), R.Stage("bandwidth", (sys.executable, "-c", "pass"), 20)]
    monkeypatch.setattr(R, "plan_stages", lambda *a, **k: fake)
    results = R.run(tmp_path, deadline=8)
    assert results["stages"]["bandwidth"]["status"] == "skipped"
    assert "global deadline" in results["stages"]["bandwidth"]["reason"]


def test_stage_exception_becomes_failed_result(gpu_check, monkeypatch):
    S = gpu_check.stages

    def boom(args):
        raise RuntimeError("device lost")

    monkeypatch.setitem(S.STAGES, "memory", boom)
    res = S.run_stage("memory", argparse.Namespace())
    assert res["status"] == "failed" and "device lost" in res["reason"] and res["notes"]


def test_plan_has_every_stage_within_eight_minutes(gpu_check, tmp_path):
    plan = gpu_check.runner.plan_stages(tmp_path, "python3", dry_run=False)
    assert sum(s.budget for s in plan) <= 480 - 30  # startup and report writing fit in the rest
    conf = [s for s in plan if s.kind == "command"]
    assert [s.argv[s.argv.index("--backend") + 1] for s in conf] == ["cupy", "torch", "jax"]
    assert all(s.argv[1:3] == ("-m", "tess.conformance") and "--device" in s.argv for s in conf)


def test_verdicts_from_measurements(gpu_check):
    results = {"dry_run": False, "stages": {
        "conformance-cupy": {"status": "ok"}, "conformance-torch": {"status": "failed", "reason": "exit code 1"},
        "bandwidth": {"status": "ok", "metrics": {"best_fraction_of_peak": 0.62, "peak_bytes_per_s": 4.8e12}},
        "throughput-cupy": {"status": "ok", "metrics": {"samples_per_s": 50.0}},
        "throughput-torch": {"status": "ok", "metrics": {"samples_per_s": 40.0}},
        "memory": {"status": "ok", "metrics": {"bptt_over_tess_T100": 7.5}},
    }}
    v = {r[0]: r[1] for r in gpu_check.report.verdicts(results)}
    assert v["conformance suite, cupy on CUDA (profile ci)"] == "PASS"
    assert v["conformance suite, torch on CUDA (profile ci)"] == "FAIL"
    assert v["conformance suite, jax on CUDA (profile ci)"] == "not measured"
    assert v["fused block kernel reaches ≥ 50 % of peak DRAM bandwidth"] == "PASS"
    assert v["cupy TESS throughput ≥ torch CUDA (VGG-9, T=20, batch 16)"] == "PASS"
    results["stages"]["bandwidth"]["metrics"]["best_fraction_of_peak"] = 0.3
    results["stages"]["throughput-torch"]["metrics"]["samples_per_s"] = 60.0
    v = {r[0]: r[1] for r in gpu_check.report.verdicts(results)}
    assert v["fused block kernel reaches ≥ 50 % of peak DRAM bandwidth"] == "FAIL"
    assert v["cupy TESS throughput ≥ torch CUDA (VGG-9, T=20, batch 16)"] == "FAIL"
    md = gpu_check.report.render_report(results)
    assert md.count("| ") > 10 and "30.0% of 4.80 TB/s" in md


def test_peak_bandwidth_sources(gpu_check):
    S = gpu_check.stages

    def fake(props, attrs=None):
        class RT:
            @staticmethod
            def getDeviceProperties(i):
                return props

            @staticmethod
            def deviceGetAttribute(attr, i):
                if attrs is None:
                    raise RuntimeError("unsupported")
                return attrs[attr]

        class Cuda:
            runtime = RT()

        class Cp:
            cuda = Cuda()

        return Cp()

    bw, src = S.peak_bandwidth(fake({"memoryClockRate": 2_619_000, "memoryBusWidth": 5120}))
    assert bw == pytest.approx(2 * 2.619e9 * 640) and "device attributes" in src
    bw, src = S.peak_bandwidth(fake({"name": b"NVIDIA H200"}, {36: 3_201_000, 37: 6144}))
    assert bw == pytest.approx(2 * 3.201e9 * 768)
    bw, src = S.peak_bandwidth(fake({"name": b"NVIDIA H200"}))
    assert bw == S.H200_PEAK_BW and "published H200" in src
    with pytest.raises(RuntimeError, match="not in the table"):
        S.peak_bandwidth(fake({"name": b"Mystery GPU"}))


def test_event_batch_is_seeded_binary_frames(gpu_check):
    x, y = gpu_check.stages.event_batch(3, 4, (2, 5, 5), 11, seed=7)
    x2, y2 = gpu_check.stages.event_batch(3, 4, (2, 5, 5), 11, seed=7)
    assert x.shape == (4, 3, 2, 5, 5) and x.dtype == np.float32 and set(np.unique(x)) <= {0.0, 1.0}
    assert np.array_equal(x, x2) and np.array_equal(y, y2) and y.max() < 11
