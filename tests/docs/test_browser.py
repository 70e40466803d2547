"""The built site in a real browser (headless Debian Chromium, no network): the rule
reference's equations are typeset by the shipped KaTeX, and the support matrix
renders. Also: nothing in the site loads from the network."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
    "--virtual-time-budget=10000", "--dump-dom",
]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("Chromium is not installed: `make docs-check` installs it "
                    "(docs/scripts/ensure-chromium.sh, Debian package `chromium`)")
    return path


def dump_dom(page: Path, profile: Path) -> str:
    """The DOM of ``page`` after its scripts ran, from a fresh profile, over file://."""
    proc = subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, f"chromium failed on {page}: {proc.stderr[-2000:]}"
    assert "<html" in proc.stdout, f"chromium printed no DOM for {page}: {proc.stderr[-2000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def rule_dom(site, tmp_path_factory):
    return dump_dom(site / "rule.html", tmp_path_factory.mktemp("chromium-profile"))


@pytest.fixture(scope="module")
def matrix_dom(site, tmp_path_factory):
    return dump_dom(site / "support-matrix.html", tmp_path_factory.mktemp("chromium-profile"))


def test_rule_reference_math_is_typeset(site, rule_dom):
    served = (site / "rule.html").read_text(encoding="utf-8")
    n_math = len(re.findall(r'class="arithmatex"', served))
    assert n_math >= 30, f"the rule reference holds only {n_math} formulas"
    # Before the browser: raw TeX, no KaTeX output. After: one .katex per formula.
    assert 'class="katex"' not in served
    n_katex = len(re.findall(r'class="katex"', rule_dom))
    assert n_katex == n_math, f"{n_katex} typeset formulas for {n_math} in the page"
    assert "katex-error" not in rule_dom
    assert "<math" in rule_dom  # KaTeX's MathML twin: the formulas are real math, not text
    # The spec functions sit next to their equations.
    for ident in ("tess_spec.neuron.lif_step", "tess_spec.traces.presynaptic_trace", "tess_spec.lsg.basis",
                  "tess_spec.update.conv_update", "tess_spec.traces.noncausal_trace"):
        assert f'id="{ident}"' in rule_dom
    assert 'src="assets/generated/lsg-basis.png"' in rule_dom
    assert (site / "assets" / "generated" / "lsg-basis.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_support_matrix_renders(hooks, matrix_dom):
    reports = sorted((ROOT / "docs" / "reports").glob("*.json"))
    if not reports:
        assert "No conformance report is committed yet" in matrix_dom
        return
    # mkdocs-material's script wraps every table in scroll-wrapper divs once the page runs
    table = re.search(r'<div class="tess-support-matrix">(?:\s*<div[^>]*>)*\s*<table>(.*?)</table>', matrix_dom, re.S)
    assert table, "the support-matrix table is missing"
    n_rows = len(re.findall(r"<tr>", table.group(1)))
    assert n_rows >= 3  # header, at least one group, the total
    for path in reports:
        header, _ = hooks.load_report(path)
        if header.get("backend"):
            assert str(header["backend"]) in table.group(1)


def test_site_loads_nothing_from_the_network(site):
    """No remote script, stylesheet, font or image: the site works offline."""
    remote = re.compile(r"""(?:src|href)\s*=\s*["'](?:https?:)?//""", re.I)
    css_remote = re.compile(r"""(?:url\(\s*["']?(?:https?:)?//|@import\s+["']?(?:url\()?["']?https?:)""", re.I)
    offenders = []
    for path in site.rglob("*"):
        if path.suffix not in (".html", ".css"):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix == ".css":
            if css_remote.search(text):
                offenders.append(str(path.relative_to(site)))
            continue
        for m in remote.finditer(text):
            tag = text[text.rfind("<", 0, m.start()):m.start()].lower()
            if tag.startswith("<a"):  # a hyperlink to another site is fine; a loaded resource is not
                continue
            offenders.append(f"{path.relative_to(site)}: {text[m.start():m.start() + 100]}")
    assert not offenders, "\n".join(offenders[:20])
    fonts = list((site / "assets" / "katex" / "fonts").glob("*.woff2"))
    assert len(fonts) >= 15
