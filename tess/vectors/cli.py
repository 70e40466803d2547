"""The ``tess vectors`` subcommand: ``list``, ``export`` and ``check``.

::

    tess vectors list
    tess vectors export DIR [--cases NAME ...] [--dtype float32|float64]
    tess vectors check DIR RESULTS_DIR [--cases NAME ...] [--report PATH] [--name NAME] [--device TEXT]

``check`` exits 0 only if every case passes (1 otherwise, 2 on bad input).
Registered in :data:`tess.cli.SUBCOMMANDS`; imports nothing heavy until it runs.
"""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path
from typing import Any

__all__ = ["register", "list_command", "export_command", "check_command"]


def register(subparsers: Any) -> None:
    """Add ``tess vectors`` and its three commands to the ``tess`` parser."""
    v = subparsers.add_parser(
        "vectors", help="export language-neutral test vectors, check an external implementation's results",
        description="Test vectors for implementations in any language (docs: 'Validate an implementation in "
                    "another language').")
    sub = v.add_subparsers(dest="vectors_command", metavar="{list,export,check}", required=True)
    ls = sub.add_parser("list", help="list the cases, their family and what they exercise")
    ls.set_defaults(handler=list_command)
    ex = sub.add_parser("export", help="write the cases (manifest.json, case.txt, .npy and .bin arrays) to DIR")
    ex.add_argument("dir", type=Path, metavar="DIR", help="output folder (one sub-folder per case)")
    ex.add_argument("--cases", nargs="+", default=None, metavar="NAME",
                    help="case names or shell patterns such as 'linear-*' [all]")
    ex.add_argument("--dtype", choices=("float32", "float64"), default="float64",
                    help="dtype of the inputs and of the implementation under test [float64]")
    ex.set_defaults(handler=export_command)
    ck = sub.add_parser("check", help="judge RESULTS_DIR/<case>/ against the cases in DIR; exit 0 only if all pass")
    ck.add_argument("dir", type=Path, metavar="DIR", help="the exported cases")
    ck.add_argument("results", type=Path, metavar="RESULTS_DIR",
                    help="one folder per case, as the implementation wrote it")
    ck.add_argument("--cases", nargs="+", default=None, metavar="NAME", help="only these cases (names or patterns)")
    ck.add_argument("--report", type=Path, default=None, metavar="PATH",
                    help="write the conformance report (Markdown) here and its JSON sidecar next to it")
    ck.add_argument("--name", default=None, help="the implementation's name in the report [RESULTS_DIR's name]")
    ck.add_argument("--device", default="external", help="what it ran on, for the report [external]")
    ck.add_argument("-q", "--quiet", action="store_true", help="print only failing quantities")
    ck.set_defaults(handler=check_command)


def list_command(args: argparse.Namespace) -> int:
    """Print every case with its family and features."""
    from .cases import CASES, family, features

    for name, case in CASES.items():
        cfg = case.build().config
        print(f"{name:28s} {family(cfg):8s} {' '.join(features(cfg))}")
    return 0


def export_command(args: argparse.Namespace) -> int:
    """``tess vectors export``."""
    from .export import export_vectors

    t0 = time.perf_counter()
    paths = export_vectors(args.dir, args.cases, args.dtype)
    for p in paths:
        size = sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        print(f"wrote {p} ({size / 1024:.0f} KiB)")
    print(f"{len(paths)} case(s), {args.dtype}, in {time.perf_counter() - t0:.1f} s")
    return 0


def check_command(args: argparse.Namespace) -> int:
    """``tess vectors check``."""
    from .check import check_vectors, format_verdicts, report_header, report_rows

    t0 = time.perf_counter()
    verdicts = check_vectors(args.dir, args.results, args.cases)
    print(format_verdicts(verdicts, verbose=not args.quiet))
    ok = all(v.passed for v in verdicts)
    if args.report is not None:
        try:
            from tess.conformance.runner import write_report
        except ImportError as exc:
            from tess.errors import ConfigError

            raise ConfigError(f"--report needs the test extra (pytest): pip install 'tess[test]' ({exc})") from exc
        parts = ["tess", "vectors", "check", str(args.dir), str(args.results)]
        if args.cases:
            parts += ["--cases", *args.cases]
        parts += ["--report", str(args.report)] + (["--name", args.name] if args.name else [])
        command = " ".join(shlex.quote(p) for p in parts)
        header = report_header(verdicts, args.name or Path(args.results).resolve().name, args.device,
                               time.perf_counter() - t0, command)
        md, js = write_report(args.report, header, report_rows(verdicts))
        print(f"report: {md} (+ {js.name})")
    return 0 if ok else 1
