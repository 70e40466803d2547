"""The plain-C example (examples/c_linear) passes `tess vectors check` on every linear
case in float64 and float32, and mutated copies of it fail with a verdict that names
the quantity, block and step where they first diverge.

Compiled with ``cc -std=c99 -O2 -Wall -Wextra ... -lm`` (``$CC`` if set) and warning-free;
skipped, with that reason, only where no C compiler is installed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tess.cli import main as tess_main
from tess.vectors import CASES, check_vectors, export_vectors, family

SOURCE = Path(__file__).resolve().parents[2] / "examples" / "c_linear" / "tess_linear.c"
CC = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
FLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra"]
LINEAR = [n for n, c in CASES.items() if family(c.build().config) == "linear"]

pytestmark = pytest.mark.skipif(CC is None,
                                reason="no C compiler (cc, gcc or clang) on PATH: cannot build examples/c_linear")


def build(tmp: Path, source_text: str, dtype: str, name: str) -> Path:
    """Compile ``source_text`` (the example, perhaps mutated) for ``dtype``; fail on any warning."""
    src = tmp / f"{name}.c"
    src.write_text(source_text, encoding="utf-8")
    exe = tmp / name
    cmd = [str(CC), *FLAGS, *(["-DTESS_FLOAT32"] if dtype == "float32" else []), "-o", str(exe), str(src), "-lm"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0 and not done.stderr.strip(), f"{' '.join(cmd)}:\n{done.stderr}"
    return exe


def run_cases(exe: Path, vectors: Path, results: Path, cases: list[str]) -> None:
    for case in cases:
        out = results / case
        out.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([str(exe), str(vectors / case), str(out)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{exe.name} on {case}: {done.stderr}"


@pytest.fixture(scope="module", params=["float64", "float32"])
def setup(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, Path, Path]:
    """``(dtype, folder, exported linear cases, the example built for dtype)``."""
    dtype = request.param
    tmp = tmp_path_factory.mktemp(f"c-{dtype}")
    export_vectors(tmp / "vectors", LINEAR, dtype)
    return dtype, tmp, tmp / "vectors", build(tmp, SOURCE.read_text(encoding="utf-8"), dtype, "tess_linear")


def test_c_example_passes_every_linear_case(setup: tuple[str, Path, Path, Path],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    dtype, tmp, vectors, exe = setup
    run_cases(exe, vectors, tmp / "results", LINEAR)
    code = tess_main(["vectors", "check", str(vectors), str(tmp / "results"), "--report", str(tmp / "c.md"),
                      "--name", "examples/c_linear"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"{len(LINEAR)}/{len(LINEAR)} case(s) pass" in out
    assert "| vectors | no | 6 | 0 |" in (tmp / "c.md").read_text(encoding="utf-8")


# (name, text in the example, its replacement, case, dtype → the first divergence the verdict must name)
MUTATIONS = [
    ("spike-at-threshold", "(u > theta)", "(u >= theta)", "linear-threshold-ties", "o, block 0, step 0, "),
    ("presynaptic-trace-one-step-late", "lam_pre * bk->q[i] + inp[i]", "lam_pre * (bk->q[i] + inp[i])",
     "linear-block", "q, block 0, step 0, "),
]


@pytest.mark.parametrize("mutation", MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_mutated_c_example_fails_where_it_diverges(setup: tuple[str, Path, Path, Path], mutation: tuple) -> None:
    dtype, tmp, vectors, _ = setup
    name, old, new, case, where = mutation
    text = SOURCE.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"the mutation target {old!r} must occur once in {SOURCE.name}"
    exe = build(tmp, text.replace(old, new), dtype, f"mutant-{name}")
    results = tmp / f"results-{name}"
    run_cases(exe, vectors, results, [case])
    (v,) = check_vectors(vectors, results, [case])
    assert not v.passed
    assert v.first_divergence.startswith(where), v.first_divergence
    quantity = where.split(",")[0]
    q = next(x for x in v.quantities if x.quantity == quantity)
    assert q.failed and (q.block, q.step) == (0, 0) and q.index


def test_c_example_refuses_what_it_does_not_implement(setup: tuple[str, Path, Path, Path]) -> None:
    dtype, tmp, _, exe = setup
    export_vectors(tmp / "conv", ["conv-block"], dtype)
    (tmp / "out").mkdir(exist_ok=True)
    done = subprocess.run([str(exe), str(tmp / "conv" / "conv-block"), str(tmp / "out")],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "needs more than linear blocks" in done.stderr
    other = "float32" if dtype == "float64" else "float64"
    export_vectors(tmp / other, ["lif-neuron"], other)
    done = subprocess.run([str(exe), str(tmp / other / "lif-neuron"), str(tmp / "out")], capture_output=True, text=True)
    assert done.returncode == 2 and f"the case is {other}" in done.stderr
