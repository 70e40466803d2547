"""The throughput benchmark's accounting: FLOPs (checked against torch's FLOP counter), the
matmul peak, the rows of the torch variants, ratios and the page (tiny sizes; no timing
assertions)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # benchmarks/ is a source-tree package, not installed
    sys.path.insert(0, str(ROOT))

from benchmarks import common, throughput  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("method", ["tess", "bptt"])
def test_flop_model_equals_torchs_flop_counter(method: str) -> None:
    config = common.network_config("mlp", 3)
    x, y = common.batch_data(config, batch=4)
    check = throughput.flop_check(config, x, y, method=method)
    assert check["flop_counter"] > 0 and check["ratio"] == pytest.approx(1.0, abs=1e-12)


def test_conv_flops_count_the_fused_lsg_matrix() -> None:
    config = common.network_config("vgg", 2, width=1 / 16)
    x, y = common.batch_data(config, batch=2)
    assert throughput.flop_check(config, x, y)["ratio"] == pytest.approx(1.0, abs=1e-12)


def test_matmul_peak_is_positive() -> None:
    peak = throughput.matmul_peak(n=256, repeats=2)
    assert peak["gflops_wall"] > 0 and peak["gflops_cpu"] > 0


def test_rows_carry_gflops_and_the_fraction_of_peak() -> None:
    config = common.network_config("mlp", 2)
    x, y = common.batch_data(config, batch=4)
    rows = throughput.measure_interleaved([("tess", "torch", {}), ("tess", "torch", {"fuse": "none"}),
                                           ("tess", "torch", {"fuse": "bogus"})], config, x, y, 2, peak=True)
    by = {r["label"]: r for r in rows}
    assert set(by) == {"torch", "torch[fuse=none]", "torch[fuse=bogus]"}
    assert "skipped" in by["torch[fuse=bogus]"] and "fuse='bogus'" in by["torch[fuse=bogus]"]["skipped"]
    for r in (by["torch"], by["torch[fuse=none]"]):
        assert r["gflops"] == pytest.approx(r["gflop_per_batch"] / r["steady_batch_s"])
        assert 0 < r["fraction_of_peak"] == pytest.approx(r["gflops"] / r["peak_gflops"])
        assert len(r["batch_s"]) == len(r["cpu_s"]) == 2
    assert by["torch[fuse=none]"]["fuse"] == "none"
    rat = throughput.ratios(rows)
    assert rat["torch_over_before"]["median"] > 0 and rat["torch_over_numpy"] is None
    assert throughput.ratios(rows, "cpu_s")["torch_over_before"]["median"] > 0


def test_entries_time_the_step_before_fusion_and_compile_only_in_a_full_run() -> None:
    full = throughput.entries(["numpy", "torch", "example"], {"numpy": 1, "torch": 1}, quick=False)
    quick = throughput.entries(["numpy", "torch"], {"numpy": 1, "torch": 1}, quick=True)
    assert ("tess", "torch", {"fuse": "none"}) in full and ("tess", "torch", {"fuse": "compile"}) in full
    assert ("tess", "torch", {"fuse": "none"}) in quick and ("tess", "torch", {"fuse": "compile"}) not in quick
    assert full[-1] == ("bptt", "torch", {}) and not any(e[1] == "example" for e in full)


def test_compile_pays_after_and_the_page() -> None:
    def row(label, s, compile_s=None):
        return {"method": "tess", "backend": "torch", "label": label, "options": {}, "steady_batch_s": s,
                "compile_s": compile_s, "samples_per_s": 16 / s, "steady_cpu_s": s, "first_batch_s": s,
                "n_batches": 3, "batch_s": [s] * 3, "cpu_s": [s] * 3, "gflops": 1.0, "fraction_of_peak": 0.5,
                "fraction_of_peak_cpu": 0.6, "fuse": "cpp"}

    rows = [row("torch", 0.5), row("torch[fuse=none]", 1.0), row("torch[fuse=compile]", 0.8, 40.0),
            {"method": "tess", "backend": "cupy", "label": "cupy", "options": {}, "skipped": "X: no GPU"}]
    assert throughput.compile_pays_after(rows) == pytest.approx(200.0)
    assert throughput.compile_pays_after([row("torch[fuse=none]", 1.0), row("torch[fuse=compile]", 1.2, 5.0)]) \
        == float("inf")
    payload = {"environment": {"torch_threads": 1, "loadavg_before": [1, 1, 1], "loadavg_after": [1, 1, 1]},
               "width_scale": 0.25, "results": {"vgg": rows}, "ratios": {"vgg": throughput.ratios(rows)},
               "ratios_cpu": {"vgg": throughput.ratios(rows, "cpu_s")}, "compile_pays_after_batches": {"vgg": 200.0},
               "flop_check": {"vgg": {"tess": {"ratio": 1.0}, "bptt": {"error": "E: x"}}}}
    md = throughput.markdown(payload)
    assert "| vgg | TESS torch (auto: cpp) | 32 | 1 | 50% / 60% |" in md and "skipped: no GPU" in md
    assert "2.00 (2.00–2.00)" in md and "after: vgg 200 batches" in md and "vgg tess 1.000" in md
