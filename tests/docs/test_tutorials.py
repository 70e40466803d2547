"""The tutorials' code runs: every ```python block of ``docs/tutorials/*.md`` is executed,
in page order, as one script per page in an empty folder (a block with
``title="FILE.py"`` is written to that file instead, as the page tells the reader to)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TUTORIALS = sorted((ROOT / "docs" / "tutorials").glob("*.md"))
FENCE = re.compile(r"^```python([^\n]*)\n(.*?)^```\s*$", re.S | re.M)


def code_blocks(markdown: str) -> list[tuple[str | None, str]]:
    """``(file name or None, code)`` of every ```python fence of a page, in order."""
    out = []
    for m in FENCE.finditer(markdown):
        title = re.search(r'title="([^"]+)"', m.group(1))
        out.append((title.group(1) if title else None, m.group(2)))
    return out


def test_there_are_tutorials_with_code():
    names = {p.stem for p in TUTORIALS}
    assert {"first-snn", "validate-backend", "cost", "export-nir"} <= names, names
    for page in TUTORIALS:
        assert any(f is None for f, _ in code_blocks(page.read_text(encoding="utf-8"))), f"{page.name} runs no code"


def test_code_blocks_are_found():
    text = '```python title="m.py"\nx = 1\n```\n\n```bash\nls\n```\n\n```python\nprint(2)\n```\n'
    assert code_blocks(text) == [("m.py", "x = 1\n"), (None, "print(2)\n")]


@pytest.mark.parametrize("page", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_runs(page: Path, tmp_path: Path):
    script = []
    for name, code in code_blocks(page.read_text(encoding="utf-8")):
        if name is None:
            script.append(code)
        else:
            (tmp_path / name).write_text(code, encoding="utf-8")
    (tmp_path / "tutorial.py").write_text("\n".join(script), encoding="utf-8")
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
               p for p in (str(tmp_path), os.environ.get("PYTHONPATH", "")) if p)}
    proc = subprocess.run([sys.executable, "tutorial.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, f"{page.name} failed (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
