"""The committed golden traces regenerate from the spec within the stated float64
tolerance (``tess_spec.golden.GOLDEN_RTOL``/``GOLDEN_ATOL``; spikes, integers, data
and the exact case's membranes bit for bit), and what is bit-exact on any machine is
checked bit for bit — by SHA-256 digest, never by handing two large byte strings to
pytest's assertion rewriting (its difflib rendering of a failure ran for >20 min)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from tess_spec import golden as G

GOLDEN_DIR = Path(__file__).resolve().parents[2] / "conformance" / "golden"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", list(G.GOLDEN_CASES))
def test_golden_regenerates_within_tolerance(name: str) -> None:
    path = GOLDEN_DIR / f"{name}.npz"
    assert path.is_file(), f"{path} missing: run python -m tess_spec.golden --only {name}"
    bad = G.compare_arrays(G.generate(name), path)
    assert not bad, f"{len(bad)} array(s) of {name} out of tolerance: " + "; ".join(bad[:5])


def test_two_generations_in_one_process_are_bit_identical() -> None:
    """Same process, same BLAS: regeneration is deterministic to the bit."""
    for name in ("paper", "threshold-ties"):
        a, b = G.array_digest(G.generate(name)), G.array_digest(G.generate(name))
        assert a == b, f"two generations of {name} differ (array digests {a[:12]} != {b[:12]})"


def test_golden_file_bytes_are_deterministic(tmp_path: Path) -> None:
    """Writing the same arrays twice gives the same bytes (fixed timestamps and order), and
    rewriting the committed arrays reproduces the committed file byte for byte."""
    arrays = G.generate("paper")
    G.write_npz(tmp_path / "a.npz", arrays)
    G.write_npz(tmp_path / "b.npz", arrays)
    da, db = _sha(tmp_path / "a.npz"), _sha(tmp_path / "b.npz")
    assert da == db, f"the same arrays written twice give different files (sha256 {da[:12]} != {db[:12]})"
    assert da == G.npz_digest(arrays), "npz_digest disagrees with the bytes write_npz writes"
    for name in G.GOLDEN_CASES:
        with np.load(GOLDEN_DIR / f"{name}.npz", allow_pickle=False) as z:
            committed = {k: z[k] for k in z.files}
        got, want = G.npz_digest(committed), _sha(GOLDEN_DIR / f"{name}.npz")
        assert got == want, f"rewriting the committed arrays of {name} changes the file (sha256 {got[:12]} != {want[:12]})"


def test_exact_arrays_are_compared_exactly(tmp_path: Path) -> None:
    """A last-bit change in a float array is within tolerance; in a spike array, an integer
    or the exact case's membrane it is a deviation; a real change is out of tolerance."""
    arrays = G.generate("threshold-ties")
    path = tmp_path / "t.npz"
    G.write_npz(path, arrays)
    assert G.compare_arrays(arrays, path) == []

    def perturbed(key: str, f) -> dict:  # noqa: ANN001
        out = dict(arrays)
        out[key] = f(np.array(arrays[key]))
        return out

    ulp = lambda a: np.nextafter(a, np.inf)  # noqa: E731
    assert G.compare_arrays(perturbed("step0/record/h/0", ulp), path) == []
    assert G.compare_arrays(perturbed("step0/record/u/0", ulp), path)            # exact case: u is exact
    flip = lambda a: np.where(np.arange(a.size).reshape(a.shape) == 0, 1 - a, a)  # noqa: E731
    assert G.compare_arrays(perturbed("step0/record/o/1", flip), path)
    assert G.compare_arrays(perturbed("step0/record/n_correct", lambda a: a + 1), path)
    assert G.compare_arrays(perturbed("step0/record/h/0", lambda a: a * (1 + 1e-9)), path)
    out = G.compare_arrays({k: v for k, v in arrays.items() if k != "step0/record/loss"}, path)
    assert any("not regenerated" in m for m in out)


def test_threshold_ties_case_has_exact_ties() -> None:
    """The exact case really puts membranes on θ (strict inequality: no spike there), also
    right after a spike (the soft reset r lands on θ), in both blocks — and is dyadic."""
    cfg = G.golden_config("threshold-ties")
    theta = cfg.lif.theta
    g = G.load(GOLDEN_DIR / "threshold-ties.npz")
    assert g.exact == G.EXACT_QUANTITIES and g.config == cfg
    rec = g.steps[0]["record"]
    for i in range(len(cfg.network.blocks)):
        u, o = rec["u"][i], rec["o"][i]
        prev = np.concatenate([np.zeros_like(o[:1]), o[:-1]])
        ties = u == theta
        assert ties.sum() > 0 and not o[ties].any(), f"block {i}: {int(ties.sum())} ties, spikes at ties"
        assert (ties & (prev == 1)).any(), f"block {i}: no tie right after a spike (reset landing on θ)"
        assert np.array_equal(u * 2**24, np.round(u * 2**24)), f"block {i}: membranes are not dyadic"


def test_golden_cli_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert G.main(["--check", "--out", str(GOLDEN_DIR)]) == 0
    out = capsys.readouterr().out
    assert "OUT OF TOLERANCE" not in out and "tolerance" in out
    for name in G.GOLDEN_CASES:
        assert f"{name}.npz: within tolerance" in out


def test_golden_cli_never_overwrites_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "threshold-ties.npz"
    path.write_bytes(b"placeholder")
    assert G.main(["--out", str(tmp_path), "--only", "threshold-ties"]) == 0
    assert path.read_bytes() == b"placeholder" and "kept" in capsys.readouterr().out
    assert G.main(["--out", str(tmp_path), "--only", "threshold-ties", "--force"]) == 0
    assert G.main(["--check", "--out", str(tmp_path), "--only", "threshold-ties"]) == 0
    assert G.main(["--check", "--out", str(tmp_path), "--only", "paper"]) == 1  # missing file
