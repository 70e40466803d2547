"""``python -m tess.conformance``: run the suite on one backend, print a summary,
write a Markdown report and its JSON sidecar, exit 0 only if every required test passed.

The runner calls pytest on this package with a plugin that collects one row per
test: ``{"group", "test", "dtype", "outcome", "reason"}`` (outcome ``passed``,
``failed``, ``error``, ``skipped``, ``xfailed`` or ``xpassed``, as pytest says).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["main", "run", "RowCollector", "write_report", "build_parser"]

PKG_DIR = Path(__file__).resolve().parent


class RowCollector:
    """pytest plugin collecting one row per test (and per collection error)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def pytest_collectreport(self, report: Any) -> None:
        """A module that fails to import is an error row of its group."""
        if report.failed:
            from .plugin import group_of

            self.rows.append({"group": group_of(report.nodeid), "test": "<collection>", "dtype": "",
                              "outcome": "error", "reason": _first_line(str(report.longrepr), 400)})

    def pytest_runtest_logreport(self, report: Any) -> None:
        """Turn a test's reports into a row (setup failures/skips and the call)."""
        from .plugin import group_of, iter_notes

        if report.when == "call" or (report.when == "setup" and not report.passed) or (
                report.when == "teardown" and report.failed):
            name = report.nodeid.split("::", 1)[-1]
            dtype = "float32" if "float32" in name else ("float64" if "float64" in name else "")
            if hasattr(report, "wasxfail"):
                outcome = "xpassed" if report.passed else "xfailed"
                reason = str(report.wasxfail)
            elif report.skipped:
                outcome = "skipped"
                reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
                reason = reason.removeprefix("Skipped: ")
            elif report.failed:
                outcome = "failed" if report.when == "call" else "error"
                crash = getattr(report.longrepr, "reprcrash", None)
                reason = _first_line(crash.message if crash is not None else str(report.longrepr), 600)
            else:
                outcome = "passed"
                reason = "; ".join(iter_notes(report.user_properties))
            listed = [v for k, v in report.user_properties if k == "listed"]
            if listed and outcome == "passed":
                reason = "; ".join([*listed, reason]).strip("; ")
            row = {"group": group_of(report.nodeid), "test": name, "dtype": dtype, "outcome": outcome,
                   "reason": reason, "listed": bool(listed)}
            self.rows = [r for r in self.rows if not (r["group"] == row["group"] and r["test"] == name)]
            self.rows.append(row)


def _first_line(text: str, n: int) -> str:
    text = " ".join(text.strip().split())
    return text if len(text) <= n else text[: n - 1] + "…"


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    p = argparse.ArgumentParser(
        prog="python -m tess.conformance",
        description="Run the TESS conformance suite on one backend; exit 0 only if every required test passes.",
    )
    p.add_argument("--backend", default="numpy",
                   help="backend: a name (see `tess backends`), an entry-point name or module:attribute [numpy]")
    p.add_argument("--dtype", choices=("float32", "float64", "both"), default="both", help="dtype(s) [both]")
    p.add_argument("--device", default=None, help="device, e.g. cuda [backend default]")
    p.add_argument("--profile", choices=("ci", "thorough"), default="ci",
                   help="ci: 20 Hypothesis examples per property, datasets in float32; thorough: 150, both dtypes [ci]")
    p.add_argument("--report", type=Path, default=None,
                   help="write a Markdown report here and its JSON sidecar next to it (suffix .json)")
    p.add_argument("--expectations", default=None, help="extra skip/xfail list file (ACTION PATTERN REASON per line)")
    p.add_argument("--examples", type=int, default=None,
                   help="Hypothesis examples per property test (overrides the profile's 20 / 150)")
    p.add_argument("--oracle", choices=("auto", "autodiff", "finite-differences"), default="auto",
                   help="oracle of the gradient properties: autodiff (torch autograd), finite-differences (NumPy), "
                        "or auto = autodiff when torch is importable; the report names the one used [auto]")
    p.add_argument("--note", default=None,
                   help="a remark for the report header, e.g. why --examples was lowered (shown in the support matrix)")
    p.add_argument("--skip-unavailable", action="store_true",
                   help="exit 0 with a message (instead of 2) when the backend's framework or device is missing")
    p.add_argument("-k", dest="select", default=None, help="only tests matching this pytest -k expression")
    p.add_argument("-v", "--verbose", action="store_true", help="pytest's verbose output")
    return p


def _versions(backend: Any) -> dict[str, str]:
    import tess
    from tess_spec import SPEC_VERSION

    v = {"tess": tess.__version__, "spec": SPEC_VERSION, "python": platform.python_version(), "numpy": np.__version__}
    try:
        import hypothesis
        import pytest

        v.update(pytest=pytest.__version__, hypothesis=hypothesis.__version__)
    except ImportError:  # pragma: no cover
        pass
    if backend is not None:
        v.update({k: str(x) for k, x in backend.info().items() if k not in ("backend", "dtype", "device")})
    return v


def _machine() -> str:
    """``platform.machine()``, the CPU model (Linux) and its core count, for the report header."""
    model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return f"{platform.machine()}, {model or 'unknown CPU'}, {os.cpu_count()} cores"


def _hypothesis_profile() -> str | None:
    if "hypothesis" not in sys.modules:
        return None
    from hypothesis import settings

    getter = getattr(settings, "get_current_profile_name", None)
    return getter() if getter is not None else "default"


def _restore_hypothesis_profile(name: str | None) -> None:
    if "hypothesis" in sys.modules:
        from hypothesis import settings

        settings.load_profile(name or "default")


def run(backend: str, *, dtype: str = "both", device: str | None = None, profile: str = "ci",
        expectations: str | None = None, select: str | None = None, verbose: bool = False,
        examples: int | None = None, oracle: str = "auto") -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
    """Run the suite; returns ``(exit_code, header, rows)``.  ``oracle``: ``auto``,
    ``autodiff`` or ``finite-differences`` (BackendUnavailableError: autodiff without torch)."""
    import pytest

    from tess import get_backend

    from tess_spec.errors import BackendUnavailableError, ConfigError

    from . import oracles

    try:
        chosen = oracles.select(oracle)
    except BackendUnavailableError as exc:  # a missing oracle is not a missing backend (--skip-unavailable)
        raise ConfigError(str(exc)) from None

    opts: dict[str, Any] = {"dtype": "float64" if dtype == "both" else dtype}
    if device is not None:
        opts["device"] = device
    be = get_backend(backend, **opts)  # fails early, with the registry's message, if unavailable
    header = {"backend": backend, "dtype": "float32,float64" if dtype == "both" else dtype, "device": be.device,
              "versions": {}, "profile": profile,
              "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "oracle": oracles.ORACLES[chosen], "machine": _machine(),
              "command": "python -m tess.conformance " + " ".join(sys.argv[1:]) if sys.argv else ""}
    args = [str(PKG_DIR), "-c", str(PKG_DIR / "pytest.ini"), "--rootdir", str(PKG_DIR),
            "--tess-backend", backend, "--tess-dtype", dtype, "--tess-profile", profile, "--tess-oracle", chosen,
            "-p", "no:cacheprovider", "-rfEs", "-v" if verbose else "-q"]
    if device is not None:
        args += ["--tess-device", device]
    if expectations:
        args += ["--tess-expectations", expectations]
    if select:
        args += ["-k", select]
    if examples is not None:
        args += ["--tess-examples", str(examples)]
        header["examples"] = examples
    collector = RowCollector()
    t0 = time.perf_counter()
    previous = _hypothesis_profile()
    try:
        code = int(pytest.main(args, plugins=[collector]))
    finally:
        _restore_hypothesis_profile(previous)  # an in-process run must not leak its profile
    header["seconds"] = round(time.perf_counter() - t0, 1)
    header["versions"] = _versions(be)  # after pytest.main, so that pytest can rewrite hypothesis' asserts
    from .plugin import REQUIRED_GROUPS  # (imports hypothesis: only after pytest has started)

    rows = collector.rows
    bad = [r for r in rows if r["outcome"] in ("failed", "error")]
    listed_required = [r for r in rows if r.get("listed") and r["group"] in REQUIRED_GROUPS
                       and r["outcome"] != "passed"]
    ok = code in (0,) and not bad and not listed_required and bool(rows)
    header["passed"] = ok
    return (0 if ok else 1), header, rows


def write_report(path: Path, header: dict[str, Any], rows: list[dict[str, Any]]) -> tuple[Path, Path]:
    """Write the Markdown report at ``path`` and the JSON sidecar at ``path.with_suffix('.json')``."""
    from . import tolerances as tol
    from .plugin import GROUPS, REQUIRED_GROUPS

    order = {g: i for i, g in enumerate(GROUPS)}
    rows = sorted(rows, key=lambda r: (order.get(r["group"], 99), r["test"]))
    counts: dict[str, dict[str, int]] = {}
    for r in rows:
        counts.setdefault(r["group"], {}).setdefault(r["outcome"], 0)
        counts[r["group"]][r["outcome"]] += 1
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = [
        f"# Conformance report: backend `{header['backend']}`",
        "",
        f"**Result: {'PASS' if header.get('passed') else 'FAIL'}** — profile `{header['profile']}`, "
        f"dtype {header['dtype']}, device `{header['device']}`, {header.get('seconds', '?')} s, {header.get('date', '')}.",
        "",
        f"Oracle of the gradient properties: **{header.get('oracle', '?')}**"
        + (f". Hypothesis examples per property test: {header['examples']} (set by `--examples`)"
           if header.get("examples") else "") + ".",
        "",
        f"Command: `{header.get('command', '')}` on {header.get('machine', '?')}.",
        "",
        *([f"Notes: {header['notes']}", ""] if header.get("notes") else []),
        "Versions: " + ", ".join(f"{k} {v}" for k, v in header["versions"].items()) + ".",
        "",
        "## Summary",
        "",
        "| group | required | passed | failed | error | skipped | xfailed |",
        "|---|---|---|---|---|---|---|",
    ]
    for g in sorted(counts, key=lambda g: order.get(g, 99)):
        c = counts[g]
        lines.append(f"| {g} | {'yes' if g in REQUIRED_GROUPS else 'no'} | {c.get('passed', 0)} | {c.get('failed', 0)} | "
                     f"{c.get('error', 0)} | {c.get('skipped', 0)} | {c.get('xfailed', 0)} |")
    lines += ["", "## Tests", "", "| group | test | outcome | reason / notes |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['group']} | `{esc(r['test'])}` | {r['outcome']} | {esc(r['reason'])} |")
    dtypes = [d for d in ("float32", "float64") if d in header["dtype"]]
    lines += ["", "## Tolerances used", "",
              "Match when |a − r| ≤ rtol·|r| + atol·max|r| (r: the spec in float64 on the same rounded inputs). "
              "Spikes: exact; float32 flips allowed only within "
              + ", ".join(f"{d}: ±{tol.SPIKE_BAND[d]:g}·max(1, θ)" for d in dtypes) + " of θ, and reported.", "",
              "| quantity | " + " | ".join(f"{d} rtol | {d} atol" for d in dtypes) + " |",
              "|---|" + "---|---|" * len(dtypes)]
    for q in tol.QUANTITIES:
        cells = " | ".join(f"{tol.TOLERANCES[d][q].rtol:g} | {tol.TOLERANCES[d][q].atol:g}" for d in dtypes)
        lines.append(f"| {q} ({esc(tol.QUANTITIES[q])}) | {cells} |")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    side = path.with_suffix(".json")
    hdr = {k: header[k] for k in ("backend", "dtype", "device", "versions", "profile")}
    hdr.update({k: header[k] for k in ("passed", "seconds", "date", "oracle", "examples", "command", "machine",
                                       "notes") if k in header})
    side.write_text(json.dumps({"header": hdr, "rows": [
        {k: r[k] for k in ("group", "test", "outcome", "reason", "dtype")} for r in rows]}, indent=1) + "\n",
        encoding="utf-8")
    return path, side


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m tess.conformance``."""
    args = build_parser().parse_args(argv)
    from tess.errors import BackendUnavailableError, TessError

    try:
        code, header, rows = run(args.backend, dtype=args.dtype, device=args.device, profile=args.profile,
                                 expectations=args.expectations, select=args.select, verbose=args.verbose,
                                 examples=args.examples, oracle=args.oracle)
    except BackendUnavailableError as exc:
        if args.skip_unavailable:
            print(f"tess.conformance: skipping backend {args.backend!r}: {exc}")
            return 0
        print(f"tess.conformance: cannot test backend {args.backend!r}: {exc}", file=sys.stderr)
        return 2
    except TessError as exc:
        print(f"tess.conformance: cannot test backend {args.backend!r}: {exc}", file=sys.stderr)
        return 2
    if args.note:
        header["notes"] = args.note
    n = {o: sum(r["outcome"] == o for r in rows) for o in ("passed", "failed", "error", "skipped", "xfailed", "xpassed")}
    print(f"tess.conformance: backend {args.backend!r} ({header['dtype']}, {header['device']}, profile "
          f"{args.profile}, oracle: {header['oracle']}): {'PASS' if code == 0 else 'FAIL'} — "
          + ", ".join(f"{v} {k}" for k, v in n.items() if v) + f" in {header['seconds']} s")
    if args.report is not None:
        md, js = write_report(args.report, header, rows)
        print(f"report: {md} (+ {js.name})")
    return code
