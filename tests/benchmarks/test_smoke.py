"""Smoke test of the benchmark code (tiny configurations; no timing assertions)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # benchmarks/ is a source-tree package, not installed
    sys.path.insert(0, str(ROOT))

from benchmarks import common, memory, throughput  # noqa: E402


@pytest.fixture(autouse=True)
def _restore_threads():
    """The memory worker sets torch's thread count (it normally owns its process): restore it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_memory_worker_and_tables(tmp_path: Path) -> None:
    rows = [memory.worker({"net": "mlp", "method": m, "T": 2, "threads": 1}) for m in ("tess", "bptt")]
    for r in rows:
        assert r["peak_bytes"] >= r["baseline_bytes"] > 0 and r["delta_bytes"] >= 0
        assert r["spec_bytes"]["total"] == r["spec_bytes"]["state"] + r["spec_bytes"]["params"] + r["spec_bytes"]["adam"]
    # spec bytes for the MLP at batch 32: u, o, h per neuron (256 + 256) and q per input (64 + 256)
    assert rows[0]["spec_bytes"]["state"] == 32 * 4 * (3 * 512 + 64 + 256)
    summary = memory._summarise(rows, (2,))
    md = memory._markdown(rows, summary, 0.25, "cpu")
    assert md.count("| mlp |") >= 2
    common.write_json(tmp_path, "memory", {"rows": rows})
    assert json.loads((tmp_path / "memory.json").read_text())["rows"][0]["method"] == "tess"


def test_throughput_measures_torch_and_bptt() -> None:
    config = common.network_config("mlp", 2)
    x, y = common.batch_data(config, batch=4)
    r = throughput.measure_tess("torch", config, x, y, 1)
    assert r["samples_per_s"] > 0 and r["n_batches"] == 1
    b = throughput.measure_bptt(config, x, y, 1)
    assert b["samples_per_s"] > 0
    skipped = throughput.measure_tess("cupy", config, x, y, 1)
    assert "skipped" in skipped or skipped["samples_per_s"] > 0


def test_markdown_table_formats() -> None:
    text = common.markdown_table(["a", "b"], [[1, 0.5], [None, 12345.6]])
    assert text.splitlines()[0] == "| a | b |" and "| — | 12,346 |" in text
