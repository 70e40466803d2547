"""The generated parts of the site, on synthetic inputs: the support matrix from
conformance JSON reports, the benchmark include, the CLI help, the basis picture."""

from __future__ import annotations

import json
import re

import numpy as np

ROWS = [
    {"group": "equations", "test": "lif", "outcome": "passed", "reason": ""},
    {"group": "equations", "test": "psi", "outcome": "passed", "reason": ""},
    {"group": "golden", "test": "paper", "outcome": "failed", "reason": "u differs at t=3"},
    {"group": "golden", "test": "cuda-only", "outcome": "skipped", "reason": "no GPU here"},
]
HEADER = {"backend": "numpy", "dtype": "float64", "device": "cpu", "versions": {"numpy": "2.4"}, "profile": "ci"}


def test_support_matrix_without_reports_says_so(hooks, tmp_path):
    text = hooks.support_matrix_markdown(tmp_path)
    assert "No conformance report is committed yet" in text
    assert "|" not in text  # no table that could be mistaken for results


def test_support_matrix_from_reports(hooks, tmp_path):
    (tmp_path / "numpy.md.json").write_text(json.dumps({"header": HEADER, "rows": ROWS}))
    flat = {**HEADER, "backend": "example", "rows": ROWS[:2]}
    (tmp_path / "example.md.json").write_text(json.dumps(flat))
    text = hooks.support_matrix_markdown(tmp_path)
    assert '<div class="tess-support-matrix">' in text
    heads = re.findall(r"<th>(\w+)<", text)
    assert heads[:2] == ["group", "dtype"] and heads[2:7] == ["numpy", "torch", "jax", "example", "cupy"]
    rows = {tuple(re.findall(r"<td[^>]*>(.*?)</td>", r)[:2]): r for r in re.findall(r"<tr>(.*?)</tr>", text, re.S)}
    eq = rows[("equations", "any")]
    assert eq.count('class="tess-pass">2/2<') == 2  # numpy and example
    gold = rows[("golden", "any")]
    assert 'class="tess-fail">0/2, 1 failed, 1 skipped<' in gold and 'class="tess-none">—<' in gold
    assert "not run: needs an NVIDIA GPU" in text and "not run: no report committed" in text  # cupy, torch/jax
    assert "u differs at t=3" in text and "no GPU here" in text
    assert "numpy 2.4" in text
    assert not re.search("[\u2600-\u27bf\U0001f300-\U0001faff]", text), "the matrix needs no emoji font"


def test_report_rows_must_have_outcomes(hooks, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"header": HEADER, "rows": [{"group": "g", "test": "t"}]}))
    try:
        hooks.load_report(bad)
    except ValueError as exc:
        assert "outcome" in str(exc)
    else:
        raise AssertionError("a row without an outcome was accepted")


def test_benchmarks_include(hooks, tmp_path):
    assert "No benchmark results are committed yet" in hooks.benchmarks_markdown(tmp_path / "none")
    (tmp_path / "memory.md").write_text("# Memory vs T\n\n`make bench` on cpu\n\n![plot](memory.png)\n\n| T | MiB |\n|---|---|\n| 8 | 1 |\n")
    text = hooks.benchmarks_markdown(tmp_path)
    assert "## Memory vs T" in text  # demoted under the page title
    assert "](benchmarks/results/memory.png)" in text
    assert "| 8 | 1 |" in text


def test_cli_help_is_the_parsers(hooks):
    from tess.cli import build_parser

    text = hooks.cli_help_markdown()
    assert "### `tess --help`" in text and "### `tess train --help`" in text
    for flag in ("--backend", "--dataset", "--seed", "--set"):
        assert flag in text
    assert build_parser().description in text.replace("\n", " ") or "usage: tess" in text


def test_basis_picture_is_a_png(hooks):
    png = hooks.basis_png()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert np.array_equal(np.unique(__import__("tess_spec").lsg.basis(10, 64)), [-1, 0, 1])
