"""The committed golden traces regenerate bit-identically from the spec."""

from __future__ import annotations

from pathlib import Path

import pytest

from tess_spec import golden as G

GOLDEN_DIR = Path(__file__).resolve().parents[2] / "conformance" / "golden"


@pytest.mark.parametrize("name", list(G.GOLDEN_CASES))
def test_golden_regenerates_bit_identically(name: str) -> None:
    path = GOLDEN_DIR / f"{name}.npz"
    assert path.is_file(), f"{path} missing: run python -m tess_spec.golden"
    assert G.compare_arrays(G.generate(name), path) == []


def test_golden_file_bytes_are_deterministic(tmp_path: Path) -> None:
    """Writing the same arrays twice gives the same bytes (fixed timestamps and order)."""
    arrays = G.generate("paper")
    G.write_npz(tmp_path / "a.npz", arrays)
    G.write_npz(tmp_path / "b.npz", arrays)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    assert (tmp_path / "a.npz").read_bytes() == (GOLDEN_DIR / "paper.npz").read_bytes()


def test_golden_cli_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert G.main(["--check", "--out", str(GOLDEN_DIR)]) == 0
    assert "DIFFERS" not in capsys.readouterr().out
