"""The built site in a real browser (headless Debian Chromium, no network): the rule
reference's equations are typeset by the shipped KaTeX, and the support matrix
renders; on every page at 1280 px, every figure loads, no table is wider than the
content column and no character is drawn as a missing-glyph box. Also: nothing in
the site loads from the network, and no page holds an emoji."""

from __future__ import annotations

import html as html_lib
import json
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


# --------------------------------------------------------------------------- every page, measured at 1280 px
PROBE_JS = Path(__file__).with_name("probe.js")
WINDOW = (1280, 900)
FIGURES = {  # page → generated figures it must show
    "benchmarks.html": ("memory-vs-T.png", "macs-per-block.png", "accuracy.png", "training-curve.png"),
    "rule.html": ("lsg-basis.png",),
    "tutorials/first-snn.html": ("training-curve.png",),
    "tutorials/cost.html": ("macs-per-block.png",),
}


def site_pages(site: Path) -> list[Path]:
    """Every page of the built site (not the vendored assets, the search index or 404.html)."""
    return sorted(p for p in site.rglob("*.html")
                  if p.relative_to(site).parts[0] not in ("assets", "search") and p.name != "404.html")


@pytest.fixture(scope="module")
def probes(site, tmp_path_factory) -> dict[str, dict]:
    """Page (relative path) → what ``probe.js`` measured in Chromium at 1280×900: images, tables
    and their content column, characters drawn as missing-glyph boxes."""
    copy = tmp_path_factory.mktemp("probed-site") / "site"
    shutil.copytree(site, copy)
    script = "<script>" + PROBE_JS.read_text(encoding="utf-8") + "</script></body>"
    out = {}
    for page in site_pages(copy):
        html = page.read_text(encoding="utf-8")
        assert "</body>" in html, f"{page}: no </body>"
        page.write_text(html.replace("</body>", script, 1), encoding="utf-8")
        proc = subprocess.run(
            [chromium(), *CHROMIUM_FLAGS, f"--window-size={WINDOW[0]},{WINDOW[1]}", "--hide-scrollbars",
             f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}", page.as_uri()],
            capture_output=True, text=True, timeout=120,
        )
        rel = page.relative_to(copy).as_posix()
        found = re.findall(r'<pre id="tess-probe">(.*?)</pre>', proc.stdout, re.S)
        assert proc.returncode == 0 and found, f"chromium ran no probe on {rel} (rc {proc.returncode}): {proc.stderr[-1500:]}"
        out[rel] = json.loads(html_lib.unescape(found[-1]))
    return out


def test_probe_saw_every_page_at_1280px(site, probes):
    pages = {p.relative_to(site).as_posix() for p in site_pages(site)}
    assert set(probes) == pages and len(pages) >= 15
    for rel, d in probes.items():
        assert d["viewport"] == WINDOW[0], f"{rel}: window {d['viewport']} px, not {WINDOW[0]}"
        assert 500 < d["column"]["width"] < WINDOW[0], f"{rel}: content column {d['column']['width']} px"


def test_every_figure_loads(site, probes):
    """Every <img> of every page decoded (natural size > 0), and the generated figures are where
    the pages say they are, as real, non-empty PNGs."""
    broken = [f"{rel}: {img['src']} (complete={img['complete']}, {img['w']}×{img['h']})"
              for rel, d in probes.items() for img in d["images"] if not (img["complete"] and img["w"] > 0 and img["h"] > 0)]
    assert not broken, "images that did not load:\n" + "\n".join(broken)
    for rel, names in FIGURES.items():
        shown = {Path(img["src"]).name for img in probes[rel]["images"]}
        for name in names:
            assert name in shown, f"{rel} does not show {name} (it shows {sorted(shown)})"
            png = (site / "assets" / "generated" / name).read_bytes()
            assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000, name


def test_no_table_is_wider_than_its_column(probes):
    """At 1280 px no table reaches past the content column or scrolls sideways inside it."""
    wide = []
    for rel, d in probes.items():
        right = d["column"]["right"]
        for t in d["tables"]:
            if t["right"] > right + 1 or t["scrollWidth"] > t["clientWidth"] + 1 or t["wrapScroll"] > t["wrapClient"] + 1:
                wide.append(f"{rel}: table {t['index']} ({t['head'][:60]!r}) is {max(t['width'], t['scrollWidth'], t['wrapScroll']):.0f} px "
                            f"in a {d['column']['width']:.0f} px column")
    assert not wide, "tables wider than the content column at 1280 px:\n" + "\n".join(wide)


def test_no_character_renders_as_a_missing_glyph_box(probes):
    """In Chromium on this machine (DejaVu fonts, no emoji font), no character of any page is
    drawn as the missing-glyph box (probe.js compares each with an unassigned code point)."""
    missing = sorted({f"{rel}: U+{g['cp'].upper()} {g['ch']!r} in {g['font']}" for rel, d in probes.items() for g in d["glyphs"]})
    assert not missing, "characters drawn as missing-glyph boxes:\n" + "\n".join(missing)


# Emoji-presentation characters need a colour-emoji font, which many readers (and this
# machine) do not have; marks are text or SVG instead.  U+FE0F asks for emoji presentation.
EMOJI = re.compile("[\U0001F000-\U0001FAFF\u2705\u274C\u274E\u2753-\u2755\u2757\u2795-\u2797\u27B0\u27BF"
                   "\u231A\u231B\u23E9-\u23EC\u23F0\u23F3\u25FD\u25FE\u2614\u2615\u2648-\u2653\u267F\u2693"
                   "\u26A1\u26AA\u26AB\u26BD\u26BE\u26C4\u26C5\u26CE\u26D4\u26EA\u26F2\u26F3\u26F5\u26FA\u26FD"
                   "\u2B1B\u2B1C\u2B50\u2B55\uFE0F]")


def test_no_emoji_in_any_page(site):
    """Machine-independent: no page's text holds an emoji-presentation character."""
    found = []
    for page in site_pages(site):
        text = re.sub(r"<(script|style)\b.*?</\1>", "", page.read_text(encoding="utf-8"), flags=re.S | re.I)
        text = html_lib.unescape(re.sub(r"<[^>]+>", " ", text))
        chars = sorted(set(EMOJI.findall(text)))
        if chars:
            found.append(f"{page.relative_to(site)}: " + " ".join(f"U+{ord(c):04X}" for c in chars))
    assert not found, "emoji in the site (use text or SVG marks):\n" + "\n".join(found)
