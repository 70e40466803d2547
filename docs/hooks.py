"""MkDocs build hooks of the tess documentation site (listed under ``hooks:`` in mkdocs.yml).

Everything a page shows that the code can produce is produced here, at build
time, so the site cannot drift from the code:

* ``build/docs-api-src/``: a copy of ``tess/``, ``tess_spec/``, ``backends/`` (as
  ``tess/backends``) and ``conformance/`` (as ``tess/conformance``) — the import
  names of an installed tess — that mkdocstrings reads by static analysis
  (griffe), so backends whose framework is not installed still get documented.
* API pages: ``<!-- tess:api SECTION -->`` becomes one ``::: module`` block per
  public module found on disk; names a module merely re-exports become links to
  where they are defined.
* ``assets/generated/lsg-basis.png``: the LSG basis B from
  :func:`tess_spec.lsg.basis` (matplotlib, Agg).
* ``assets/generated/{memory-vs-T,macs-per-block,accuracy,training-curve}.png``: the
  figures of ``benchmarks/figures.py``, drawn from the committed ``benchmarks/results/``.
* ``<!-- tess:support-matrix -->``: the support matrix from ``docs/reports/*.json``
  (written by ``make reports``: ``python -m tess.conformance --profile thorough --report
  docs/reports/NAME.md`` per backend) — an HTML table with plain-text marks, one column
  per backend, ``cupy`` saying why it has no report.
* ``<!-- tess:benchmarks -->``: the tables of ``benchmarks/results/*.md`` (``make bench``).
* ``<!-- tess:cli-help -->``, ``<!-- tess:datasets -->``, ``<!-- tess:presets -->``,
  ``<!-- tess:backends-table -->``: ``tess --help`` output, the dataset and preset
  registries, the built-in backends' names and devices.
* The offline plugin's search shim, which mkdocs-material loads from a CDN, is
  pointed at the copy vendored in ``docs/assets/iframe-worker/``.
* Pages other helpers own (``conformance.md``, ``gpu-check.md``) get an honest
  stub while they do not exist yet, so the nav never points nowhere.

Every helper is a plain function so the docs tests can call it directly.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

from mkdocs.plugins import event_priority  # noqa: E402

log = logging.getLogger("mkdocs.hooks.tess")

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
API_SRC = ROOT / "build" / "docs-api-src"
REPORTS = DOCS / "reports"
BENCH_RESULTS = ROOT / "benchmarks" / "results"
BASIS_PNG = "assets/generated/lsg-basis.png"

# Folder on disk -> import name of an installed tess.
API_LAYOUT = {
    "tess": "tess",
    "tess_spec": "tess_spec",
    "backends": "tess/backends",
    "conformance": "tess/conformance",
}
API_SECTIONS = {
    "tess": lambda m: m.split(".")[0] == "tess" and not m.startswith(("tess.backends", "tess.conformance")),
    "tess_spec": lambda m: m.split(".")[0] == "tess_spec",
    "backends": lambda m: m == "tess.backends" or m.startswith("tess.backends."),
    "conformance": lambda m: m == "tess.conformance" or m.startswith("tess.conformance."),
}
OWNED_ELSEWHERE = {
    "conformance.md": (
        "# Conformance suite\n\n!!! warning \"Not written yet\"\n"
        "    This page is written by the conformance suite's authors and is not in the repository yet.\n"
        "    The suite runs as `python -m tess.conformance --backend NAME --profile ci`; see the\n"
        "    [support matrix](support-matrix.md) for the committed reports.\n"
    ),
    "gpu-check.md": (
        "# GPU check\n\n!!! warning \"Not written yet\"\n"
        "    This page (how the CuPy/CUDA backends were checked on a GPU) is not in the repository yet.\n"
    ),
}


# --------------------------------------------------------------------------- API source tree
def build_api_tree(dest: Path = API_SRC) -> Path:
    """Copy the Python sources to ``dest`` under their installed import names; return ``dest``."""
    if dest.exists():
        shutil.rmtree(dest)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.npz", "*.so")
    for folder, target in API_LAYOUT.items():
        src = ROOT / folder
        if (src / "__init__.py").is_file():
            shutil.copytree(src, dest / target, ignore=ignore)
    return dest


def public_modules(tree: Path = API_SRC) -> list[str]:
    """Dotted names of every public module under ``tree`` (packages first, then alphabetical)."""
    mods = []
    for path in sorted(tree.rglob("*.py")):
        rel = path.relative_to(tree).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if not parts or any(p.startswith("_") for p in parts):
            continue
        # pytest's files (the conformance suite's test modules) are not API.
        if parts[-1] == "conftest" or parts[-1].startswith("test_"):
            continue
        # A folder is a package only with an __init__.py all the way up.
        if not all((tree.joinpath(*parts[:i]) / "__init__.py").is_file() for i in range(1, len(parts))):
            continue
        mods.append(".".join(parts))
    return sorted(set(mods), key=lambda m: tuple(m.split(".")))


def load_griffe(tree: Path = API_SRC) -> dict[str, Any]:
    """Load ``tess`` and ``tess_spec`` statically from ``tree`` with the docs' griffe extension."""
    import griffe

    import importlib.util

    spec = importlib.util.spec_from_file_location("_tess_griffe_aliases", DOCS / "griffe_aliases.py")
    assert spec and spec.loader
    ext = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ext)
    loader = griffe.GriffeLoader(
        search_paths=[str(tree)], extensions=griffe.load_extensions(ext.BackendAliases)
    )
    pkgs = {name: loader.load(name, try_relative_path=False) for name in ("tess_spec", "tess")}
    loader.resolve_aliases(implicit=False, external=False)
    for name, pkg in pkgs.items():
        if not Path(str(pkg.filepath)).resolve().is_relative_to(tree.resolve()):
            raise RuntimeError(f"griffe loaded {name} from {pkg.filepath}, not from {tree}")
    return pkgs


def _plain_roles(text: str) -> str:
    return re.sub(r":(?:py:)?(?:mod|func|class|meth|attr|data|exc|obj|const):`~?\.?([^`]+)`", r"`\1`", text)


def _get(pkgs: dict[str, Any], dotted: str) -> Any:
    top, _, rest = dotted.partition(".")
    obj = pkgs[top]
    return obj[rest] if rest else obj


def _first_line(obj: Any) -> str:
    try:
        doc = obj.docstring
    except Exception:  # unresolved alias
        return ""
    text = (doc.value if doc else "").strip().split("\n\n")[0].replace("\n", " ")
    return _plain_roles(text).replace("|", "\\|")


def classify_exports(pkgs: dict[str, Any], module: str, documented: set[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Split ``module.__all__`` into names rendered in place and ``(name, target)`` re-exports.

    A name is a re-export when it is an alias (an import) whose target module is
    itself documented; it is then linked, not rendered twice.
    """
    mod = _get(pkgs, module)
    here, links = [], []
    for name in mod.exports or []:
        member = mod.members.get(name)
        if member is None:
            here.append(name)
            continue
        if member.is_alias:
            try:  # follow chains of re-exports (tess.TessConfig -> tess_spec.TessConfig -> ...config.TessConfig)
                target = member.final_target.path
            except Exception:  # unresolvable: render in place, where the failure shows
                target = member.target_path
            target_mod = target if target in documented else target.rpartition(".")[0]
            if target_mod in documented and target_mod != module:
                links.append((name, target))
                continue
        here.append(name)
    return here, links


def api_markdown(section: str, tree: Path = API_SRC) -> str:
    """The Markdown (mkdocstrings blocks and link tables) of one API page."""
    mods = public_modules(tree)
    documented = set(mods)
    pkgs = load_griffe(tree)
    out = []
    for module in (m for m in mods if API_SECTIONS[section](m)):
        here, links = classify_exports(pkgs, module, documented)
        mod = _get(pkgs, module)
        block = f"::: {module}\n"
        if mod.exports is not None:
            block += "    options:\n      members: " + (json.dumps(here) if here else "false") + "\n"
        out.append(block)
        if links:
            out.append("Re-exported here (documented where defined):\n")
            out.append("| name | defined as | summary |\n|---|---|---|")
            for name, target in links:
                try:
                    summary = _first_line(_get(pkgs, target))
                except (KeyError, Exception):
                    summary = ""
                out.append(f"| `{module}.{name}` | [`{target}`][{target}] | {summary} |")
            out.append("")
    if not out:
        out.append("No public module of this package exists in this checkout.\n")
    return "\n".join(out)


# --------------------------------------------------------------------------- LSG basis picture
def basis_png() -> bytes:
    """PNG of the LSG basis B (two examples), drawn from :func:`tess_spec.lsg.basis`."""
    import matplotlib.pyplot as plt

    fig = basis_figure()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def basis_figure() -> Any:
    """The matplotlib figure behind :func:`basis_png` (two panels and a colour bar)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from tess_spec.lsg import basis

    cases = [
        (10, 64, "10 classes, D = 64 (e.g. 16 channels, k = 2)"),
        (11, 1024, "11 classes, D = 1024 (VGG-9 block 1 on DVS Gesture: 64 channels, k = 4)"),
    ]
    # constrained layout keeps the second title clear of the first panel's tick labels
    fig, axes = plt.subplots(2, 1, figsize=(9, 4.8), gridspec_kw={"height_ratios": [1, 1]}, layout="constrained")
    for ax, (c, d, title) in zip(axes, cases):
        B = basis(c, d)
        im = ax.imshow(B, aspect="auto", interpolation="nearest", cmap="coolwarm", vmin=-1, vmax=1)
        ax.set_title(f"B = sign(sin(ω_c · j)), {title}", fontsize=9)
        ax.set_ylabel("class c")
        ax.set_yticks(range(c))
        ax.tick_params(labelsize=7)
        ax.set_xlabel("index j", fontsize=8)
    fig.colorbar(im, ax=axes, ticks=[-1, 0, 1], fraction=0.03)
    return fig


# --------------------------------------------------------------------------- benchmark figures
FIGURES_DIR = "assets/generated"


def figure_pngs(results: Path = BENCH_RESULTS) -> dict[str, bytes]:
    """The figures of ``benchmarks/figures.py`` (memory vs T, MACs per block, accuracy, training
    curve), drawn from the committed ``benchmarks/results/`` files: file name → PNG."""
    import sys

    if str(ROOT) not in sys.path:  # benchmarks/ is a source-tree package, not installed
        sys.path.insert(0, str(ROOT))
    from benchmarks.figures import render_all

    return render_all(results)


# --------------------------------------------------------------------------- support matrix
REPORT_HEADER_KEYS = ("backend", "dtype", "device", "versions", "profile")
MATRIX_BACKENDS = ("numpy", "torch", "jax", "example", "cupy")
"""Columns the matrix always shows (a backend without a report says why); others are appended."""
NOT_RUN = {"cupy": 'not run: needs an NVIDIA GPU (<a href="gpu-check.html">the GPU check</a>, <code>make gpu-check</code>)'}
"""Why a backend has no committed report (default: none is committed yet)."""
MATRIX_GROUPS = ("strategies", "equations", "properties", "golden", "errors", "dataset", "baseline")


def load_report(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``(header, rows)`` of a conformance JSON report.

    Accepts ``{"header": {...}, "rows": [...]}``, a flat object with the header
    keys beside ``"rows"``, or a list whose first item is the header.
    """
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict):
        header = data.get("header") or {k: data[k] for k in REPORT_HEADER_KEYS if k in data}
        rows = data.get("rows") or data.get("results") or []
    elif isinstance(data, list):
        header = data[0] if data and isinstance(data[0], dict) and "group" not in data[0] else {}
        rows = [r for r in data if isinstance(r, dict) and "group" in r]
    else:
        raise ValueError(f"{path}: not a conformance report (expected an object or a list)")
    for r in rows:
        if not {"group", "test", "outcome"} <= set(r):
            raise ValueError(f"{path}: row {r!r} lacks group/test/outcome")
    return dict(header), list(rows)


def _label(header: dict[str, Any], path: Path) -> str:
    parts = [str(header.get(k)) for k in ("backend", "dtype", "device") if header.get(k)]
    return " / ".join(parts) or path.stem


def _esc(text: Any) -> str:
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;"))


def _row_dtype(row: dict[str, Any]) -> str:
    d = str(row.get("dtype") or "")
    if not d:
        m = re.search(r"\[(float32|float64)\b", str(row.get("test", "")))
        d = m.group(1) if m else ""
    return d


_PASSING = ("passed", "xfailed")


def cell_text(outcomes: list[str]) -> tuple[str, str]:
    """``(css class, plain text)`` of one matrix cell: ``"24/24"`` when everything passed,
    else the failures and skips spelled out (``"3/5, 2 skipped"``) — words, no glyphs."""
    if not outcomes:
        return "tess-none", "—"
    n = len(outcomes)
    passed = sum(o == "passed" for o in outcomes)
    failed = sum(o in ("failed", "error", "xpassed") for o in outcomes)
    other = n - passed - failed
    extra = []
    if failed:
        extra.append(f"{failed} failed")
    for kind in sorted({o for o in outcomes if o not in ("passed", "failed", "error", "xpassed")}):
        extra.append(f"{sum(o == kind for o in outcomes)} {kind}")
    cls = "tess-fail" if failed else ("tess-partial" if other else "tess-pass")
    return cls, f"{passed}/{n}" + (", " + ", ".join(extra) if extra else "")


def _cell(outcomes: list[str]) -> str:
    """Plain-text cell (kept for callers of the earlier Markdown matrix)."""
    cls, text = cell_text(outcomes)
    return {"tess-pass": "pass ", "tess-fail": "FAIL ", "tess-partial": "", "tess-none": ""}[cls] + text


def _columns(reports: list[tuple[Path, dict[str, Any], list[dict[str, Any]]]]) -> dict[str, dict[str, Any]]:
    """Backend → its reports merged (a backend's float32 and float64 reports form one column)."""
    cols: dict[str, dict[str, Any]] = {}
    for path, header, rows in reports:
        name = str(header.get("backend") or path.stem)
        col = cols.setdefault(name, {"reports": [], "rows": {}})
        col["reports"].append((path, header))
        for r in rows:
            key = (str(r["group"]), _row_dtype(r), str(r["test"]))
            prev = col["rows"].get(key)
            if prev is None or (prev in _PASSING and r["outcome"] not in _PASSING):
                col["rows"][key] = r["outcome"]
    return cols


def support_matrix_markdown(reports_dir: Path = REPORTS) -> str:
    """The support matrix (an HTML table: one column per backend, one row per group and dtype;
    plain-text marks, no emoji) and per-report details, or an honest note when there are none."""
    paths = sorted(reports_dir.glob("*.json")) if reports_dir.is_dir() else []
    if not paths:
        return (
            '!!! note "No conformance report is committed yet"\n'
            "    This table is generated from `docs/reports/*.json`, and there are none in this checkout,\n"
            "    so no backend is claimed to conform here. Produce them with `make reports`.\n"
        )
    reports = [(p, *load_report(p)) for p in paths]
    cols = _columns(reports)
    names = [b for b in MATRIX_BACKENDS] + sorted(set(cols) - set(MATRIX_BACKENDS))
    order = {g: i for i, g in enumerate(MATRIX_GROUPS)}
    keys = sorted({(g, d) for c in cols.values() for (g, d, _) in c["rows"]},
                  key=lambda k: (order.get(k[0], 99), k[0], {"": 0, "float32": 1, "float64": 2}.get(k[1], 3), k[1]))
    n_rows = len(keys) + 1
    head = []
    for b in names:
        if b in cols:
            profiles = sorted({str(h.get("profile", "?")) for _, h in cols[b]["reports"]})
            devices = sorted({str(h.get("device", "?")) for _, h in cols[b]["reports"]})
            head.append(f"<th>{_esc(b)}<br><small>{_esc(', '.join(profiles))}<br>{_esc(', '.join(devices))}</small></th>")
        else:
            head.append(f"<th>{_esc(b)}</th>")
    html = ['<div class="tess-support-matrix">', "<table>", "<thead>", "<tr>",
            "<th>group</th><th>dtype</th>" + "".join(head), "</tr>", "</thead>", "<tbody>"]
    for j, (g, d) in enumerate(keys):
        cells = []
        for b in names:
            if b not in cols:
                if j == 0:
                    reason = NOT_RUN.get(b, "not run: no report committed")
                    cells.append(f'<td class="tess-notrun" rowspan="{n_rows}">{reason}</td>')
                continue
            out = [o for (gg, dd, _), o in cols[b]["rows"].items() if gg == g and dd == d]
            cls, text = cell_text(out)
            cells.append(f'<td class="{cls}">{_esc(text)}</td>')
        html += ["<tr>", f"<td>{_esc(g)}</td><td>{_esc(d or 'any')}</td>" + "".join(cells), "</tr>"]
    total = []
    for b in names:
        if b in cols:
            cls, text = cell_text(list(cols[b]["rows"].values()))
            total.append(f'<td class="{cls}"><strong>{_esc(text)}</strong></td>')
    html += ["<tr>", "<td><strong>all</strong></td><td></td>" + "".join(total), "</tr>", "</tbody>", "</table>",
             "</div>"]
    out = ["## Matrix\n",
           "Each cell: tests passed / tests run for that group and dtype (*any*: tests that do not depend on "
           "the dtype), with failures and skips spelled out; the reasons are listed per report below. "
           "A backend without a committed report is not claimed to work.\n",
           "\n".join(html), "", "## Reports\n"]
    for p, h, rows in reports:
        versions = h.get("versions")
        if isinstance(versions, dict):
            versions = ", ".join(f"{k} {v}" for k, v in versions.items())
        result = "PASS" if h.get("passed") else ("FAIL" if "passed" in h else "result not recorded")
        out.append(f"### {_label(h, p)}\n")
        facts = [f"**{result}**", f"profile `{h.get('profile', '?')}`"]
        if h.get("examples"):
            facts.append(f"{h['examples']} Hypothesis examples per property test (`--examples`)")
        if h.get("seconds") is not None:
            facts.append(f"{h['seconds']} s")
        if h.get("date"):
            facts.append(str(h["date"]))
        out.append(", ".join(facts) + f" — `docs/reports/{p.with_suffix('.md').name}`.\n")
        if h.get("oracle"):
            out.append(f"Oracle of the gradient properties: {h['oracle']}.\n")
        if h.get("command"):
            out.append(f"Command: `{h['command']}`" + (f" on {h['machine']}" if h.get("machine") else "") + ".\n")
        if h.get("notes"):
            out.append(f"Notes: {h['notes']}\n")
        if versions:
            out.append(f"Versions: {versions}.\n")
        odd = [r for r in rows if r["outcome"] != "passed"]
        if not odd:
            out.append(f"All {len(rows)} tests passed.\n")
            continue
        out.append(f"{len(rows) - len(odd)} of {len(rows)} tests passed; the others:\n")
        out.append('<div class="tess-fit" markdown>\n')
        out.append("| group | test | outcome | reason |\n|---|---|---|---|")
        for r in odd:
            reason = str(r.get("reason") or "(no reason recorded)").replace("|", "\\|").replace("\n", " ")
            out.append(f"| {r['group']} | `{r['test']}` | {r['outcome']} | {reason} |")
        out.append("\n</div>\n")
    return "\n".join(out)


# --------------------------------------------------------------------------- benchmarks
def benchmark_files(results: Path = BENCH_RESULTS) -> list[Path]:
    """The Markdown tables written by ``make bench``."""
    return sorted(results.glob("*.md")) if results.is_dir() else []


def benchmarks_markdown(results: Path = BENCH_RESULTS) -> str:
    """Every ``benchmarks/results/*.md``, headings demoted one level, links to its assets rewritten."""
    files = benchmark_files(results)
    if not files:
        return (
            '!!! note "No benchmark results are committed yet"\n'
            "    `make bench` writes its tables (with the command and the machine) to\n"
            "    `benchmarks/results/*.md`; there are none in this checkout, so nothing is claimed here.\n"
        )
    out = []
    for f in files:
        text = f.read_text(encoding="utf-8")
        text = re.sub(r"^(#{1,5}) ", r"#\1 ", text, flags=re.M)
        text = re.sub(r"\]\((?!https?:|/|#)([^)\s]+)\)", lambda m: f"](benchmarks/results/{m.group(1)})", text)
        out.append(f"<!-- from benchmarks/results/{f.name} -->\n" + text.strip() + "\n")
        out.append(f"*Source: `benchmarks/results/{f.name}`.*\n")
    return "\n".join(out)


# --------------------------------------------------------------------------- CLI, datasets, presets, backends
def cli_help_markdown() -> str:
    """``tess --help`` and the help of every sub-command, as produced by the installed parser."""
    import argparse

    os.environ["COLUMNS"] = "100"
    from tess.cli import build_parser

    parser = build_parser()
    parser.prog = "tess"
    blocks = [("tess --help", parser.format_help())]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                blocks.append((f"tess {name} --help", sub.format_help()))
    return "\n".join(f"### `{cmd}`\n\n```text\n{text.rstrip()}\n```\n" for cmd, text in blocks)


def datasets_markdown() -> str:
    """Table of the dataset registry :data:`tess.datasets.DATASETS`."""
    import inspect

    from tess.datasets import DATASETS

    rows = ["| name | loader | summary |", "|---|---|---|"]
    for name, fn in DATASETS.items():
        doc = _plain_roles((inspect.getdoc(fn) or "").split("\n\n")[0].replace("\n", " ")).replace("|", "\\|")
        dotted = f"{fn.__module__}.{fn.__qualname__}"
        # a private loader is no API to point readers at: show the public call instead
        loader = f'tess.datasets.load_dataset("{name}")' if "._" in f".{dotted}" else dotted
        rows.append(f"| `{name}` | `{loader}` | {doc} |")
    return "\n".join(rows) + "\n"


def presets_markdown() -> str:
    """Table of the presets :data:`tess_spec.PRESETS` with their network and T."""
    from tess_spec import PRESETS

    rows = ["| preset | input | classes | blocks | T | factors [λpost, λpre, αpost, αpre] |", "|---|---|---|---|---|---|"]
    for name, factory in PRESETS.items():
        cfg = factory()
        net = cfg.network
        blocks = " → ".join(f"{b.kind}{b.features}" + (f"/{b.pool}" if b.pool else "") for b in net.blocks)
        factors = ", ".join(f"{f:g}" for f in cfg.traces.factors)
        rows.append(f"| `{name}` | {net.input_shape} | {net.n_classes} | {blocks} | {cfg.train.T} | {factors} |")
    return "\n".join(rows) + "\n"


def backends_table_markdown(tree: Path = API_SRC) -> str:
    """Built-in backends: registry name, class, devices (read statically from the class)."""
    from tess.registry import BUILTINS

    pkgs = load_griffe(tree)
    rows = ["| name | install | class | devices | in this checkout |", "|---|---|---|---|---|"]
    for name, b in BUILTINS.items():
        module, _, attr = b.target.partition(":")
        extra = f"`pip install 'tess[{b.extra}]'`" if b.extra else "(always installed)"
        try:
            cls = _get(pkgs, f"{module}.{attr}")
            cls = cls.final_target if cls.is_alias else cls
            devices = cls.members["devices"].value if "devices" in cls.all_members else "(inherited: cpu)"
            rows.append(f"| `{name}` | {extra} | [`{cls.path}`](api/backends.md#{cls.path}) | `{devices}` | yes |")
        except Exception:  # not written yet in this checkout
            rows.append(f"| `{name}` | {extra} | `{b.target}` | — | not present yet |")
    return "\n".join(rows) + "\n"


# --------------------------------------------------------------------------- mkdocs events
MARKERS = {
    "<!-- tess:support-matrix -->": support_matrix_markdown,
    "<!-- tess:benchmarks -->": benchmarks_markdown,
    "<!-- tess:cli-help -->": cli_help_markdown,
    "<!-- tess:datasets -->": datasets_markdown,
    "<!-- tess:presets -->": presets_markdown,
    "<!-- tess:backends-table -->": backends_table_markdown,
}
_API_RE = re.compile(r"<!-- tess:api (\w+) -->")


@event_priority(100)
def on_config(config: Any, **kwargs: Any) -> Any:
    """Refresh the API source tree before mkdocstrings reads it.

    Priority 100 runs this before every plugin's ``on_config``: mkdocstrings checks
    its ``paths`` there, and on a fresh clone the folder does not exist yet (griffe
    would then fall back to the editable install, whose mapped ``tess.backends`` it
    cannot see statically)."""
    build_api_tree()
    return config


def on_files(files: Any, config: Any, **kwargs: Any) -> Any:
    """Add the generated picture, benchmark assets and stubs for pages not written yet."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, BASIS_PNG, content=basis_png()))
    for name, png in figure_pngs().items():
        files.append(File.generated(config, f"{FIGURES_DIR}/{name}", content=png))
    if BENCH_RESULTS.is_dir():
        for f in sorted(BENCH_RESULTS.iterdir()):
            if f.is_file() and f.suffix.lower() in (".png", ".svg", ".csv", ".json"):
                files.append(File.generated(config, f"benchmarks/results/{f.name}", abs_src_path=str(f)))
    for name, text in OWNED_ELSEWHERE.items():
        if files.get_file_from_path(name) is None:
            log.info("%s does not exist yet; using a stub page", name)
            files.append(File.generated(config, name, content=text))
    return files


IFRAME_WORKER_CDN = "https://unpkg.com/iframe-worker/shim"
IFRAME_WORKER_LOCAL = "assets/iframe-worker/shim.js"


def on_post_page(output: str, page: Any, config: Any, **kwargs: Any) -> str:
    """Point mkdocs-material's offline-search shim at the vendored copy instead of a CDN."""
    from mkdocs.utils import get_relative_url

    if IFRAME_WORKER_CDN in output:
        output = output.replace(IFRAME_WORKER_CDN, get_relative_url(IFRAME_WORKER_LOCAL, page.url))
    return output


def on_post_template(output: str, template_name: str, config: Any, **kwargs: Any) -> str:
    """The same for static templates (``404.html``, written at the site's root)."""
    return output.replace(IFRAME_WORKER_CDN, IFRAME_WORKER_LOCAL)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any, **kwargs: Any) -> str:
    """Replace the ``<!-- tess:... -->`` markers with generated Markdown."""
    for marker, fn in MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, fn())
    return _API_RE.sub(lambda m: api_markdown(m.group(1)), markdown)
