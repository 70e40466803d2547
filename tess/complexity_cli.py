"""``tess complexity``: the MAC and byte account of one training step (:mod:`tess.complexity`)
on the command line.

    tess complexity --preset vgg9 --dataset cifar10          # TESS and BPTT, per block and phase
    tess complexity --dataset dvs_gesture --T 100 --method bptt
    tess complexity --paper --markdown benchmarks/results/complexity.md --json benchmarks/results/complexity.json

The config is resolved as for ``tess train`` (preset, ``--preset-arg``, ``--config``,
the flags, ``--set``); ``--preset vgg9 --dataset NAME`` names the VGG-9 preset of a
published dataset.  ``--paper`` reports the four published VGG-9 configurations with
the BPTT / TESS ratio of every accounting next to the paper's ranges.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any, Sequence

from tess_spec import TessConfig
from tess_spec.errors import ConfigError

from .complexity import (
    ACCOUNTINGS,
    BYTE_CATEGORIES,
    PAPER_CLAIMS,
    PHASES,
    Complexity,
    compare,
    complexity,
    paper_comparison,
)

__all__ = ["register", "run", "resolve_config", "config_report", "paper_markdown", "PAPER_COMMAND",
           "DIRECT_INPUT_DATASETS"]

PAPER_COMMAND = ("tess complexity --paper --json benchmarks/results/complexity.json "
                 "--markdown benchmarks/results/complexity.md")
"""The command that writes the committed paper table (``benchmarks/results/complexity.md``)."""

DIRECT_INPUT_DATASETS: tuple[str, ...] = ("digits", "cifar10", "cifar100")
"""Datasets whose samples are static (one frame repeated over T): ``--direct-input auto`` counts
the first block's current once per sequence for TESS, as the backends compute it."""

DATASET_LABELS = {"dvs_gesture": "DVS Gesture", "cifar10_dvs": "CIFAR10-DVS", "cifar10": "CIFAR10",
                  "cifar100": "CIFAR100"}


def register(subparsers: Any) -> None:
    """Add the ``complexity`` subcommand (``handler`` = :func:`run`)."""
    p = subparsers.add_parser(
        "complexity", help="count MACs and bytes of one training step, TESS and BPTT",
        description="Count the multiply-accumulates and bytes of one training step (one mini-batch of "
                    "T steps) per block and phase, for TESS and for BPTT, from the config alone.")
    p.add_argument("--preset", default=None,
                   help="preset, e.g. vgg9 (with --dataset), vgg9_cifar10, mlp_digits [the dataset's default]")
    p.add_argument("--dataset", default=None,
                   help="dataset whose preset and settings to use: digits, events, dvs_gesture, cifar10_dvs, "
                        "cifar10, cifar100 [digits]")
    p.add_argument("--preset-arg", dest="preset_args", action="append", default=[], metavar="KEY=VALUE",
                   help="argument of the preset, e.g. width_scale=0.25 (repeatable)")
    p.add_argument("--config", dest="config_file", default=None, metavar="FILE",
                   help="JSON or TOML file overriding config fields")
    p.add_argument("--T", type=int, default=None, help="time steps per sequence [preset]")
    p.add_argument("--n-learn", type=int, default=None, help="learning window length [T]")
    p.add_argument("--batch-size", type=int, default=None, help="mini-batch size [preset]")
    p.add_argument("--dtype", choices=("float32", "float64"), default=None, help="float dtype [float32]")
    p.add_argument("--profile", choices=("paper", "reference-code"), default=None, help="rule profile [paper]")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="override any config field (repeatable)")
    p.add_argument("--method", choices=("tess", "bptt", "both"), default="both", help="what to count [both]")
    p.add_argument("--lsg", choices=("pooled", "fused"), default="pooled",
                   help="learning-signal form: the spec's pooled LSG, or the backends' fused matrix [pooled]")
    p.add_argument("--direct-input", choices=("auto", "yes", "no"), default="auto",
                   help="count TESS's first-block current once per sequence (static input); auto: yes for "
                        f"{', '.join(DIRECT_INPUT_DATASETS)} [auto]")
    p.add_argument("--paper", action="store_true",
                   help="the four published VGG-9 configurations against the paper's ranges (ignores the config flags)")
    p.add_argument("--json", dest="json_path", default=None, metavar="PATH", help="write the account as JSON")
    p.add_argument("--markdown", dest="markdown_path", default=None, metavar="PATH",
                   help="write the tables as Markdown")
    p.set_defaults(handler=run)


def resolve_config(args: argparse.Namespace) -> tuple[TessConfig, str]:
    """The config of ``args`` (as ``tess train`` builds it) and the dataset it is for
    (``--dataset``, else the dataset the preset is made for)."""
    from .cli import DATASET_PRESETS, make_config

    preset, dataset = args.preset, args.dataset
    if preset == "vgg9":
        if dataset is None:
            raise ConfigError("--preset vgg9 needs --dataset: one of dvs_gesture, cifar10_dvs, cifar10, cifar100")
        preset = f"vgg9_{dataset}"
    if dataset is None and preset is not None:  # the dataset a preset is made for (for --direct-input auto)
        dataset = next((d for d, (p, _) in DATASET_PRESETS.items() if p == preset),
                       "digits" if preset.endswith("_digits") else preset)
    ns = argparse.Namespace(
        dataset=dataset or "digits", preset=preset, preset_args=args.preset_args, config_file=args.config_file,
        overrides=args.overrides, seed=None, epochs=None, dtype=args.dtype, T=args.T, n_learn=args.n_learn,
        batch_size=args.batch_size, lr=None, profile=args.profile,
    )
    return make_config(ns), ns.dataset


def _g(macs: float) -> str:
    g = macs / 1e9
    return f"{g:,.0f}" if g >= 100 else (f"{g:.1f}" if g >= 1 else f"{g:.3f}")


def _mib(n: float) -> str:
    return f"{n / 2**20:,.1f}" if n >= 2**20 else f"{n / 2**20:.3f}"


def _times(v: float) -> str:
    return f"{v:,.0f}×" if v >= 100 else f"{v:.3g}×"


def _ratio(a: float, b: float) -> str:
    return "—" if not a or not b else _times(a / b)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], markdown: bool) -> str:
    cells = [[str(c) for c in r] for r in rows]
    if markdown:
        numeric = [all(c[:1].isdigit() or c[:1] in "—-" for c in (r[i] for r in cells)) for i in range(len(headers))]
        out = ["| " + " | ".join(headers) + " |", "|" + "|".join("--:" if n else ":--" for n in numeric) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in cells]
        return "\n".join(out) + "\n"
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    numeric = [all(c[:1].isdigit() or c[:1] in "—-" for c in (r[i] for r in cells)) for i in range(len(headers))]
    fmt = lambda r: "  ".join(c.rjust(w) if numeric[i] else c.ljust(w)  # noqa: E731
                              for i, (c, w) in enumerate(zip(r, widths))).rstrip()
    return "\n".join([fmt(headers), "  ".join("-" * w for w in widths), *(fmt(r) for r in cells)]) + "\n"


def config_report(accounts: dict[str, Complexity], ratios: dict[str, float] | None, title: str,
                  markdown: bool = False) -> str:
    """Per-block MACs, MACs per phase, bytes per category (each method of ``accounts``) and the ratios."""
    methods = list(accounts)
    label = {"tess": "TESS", "bptt": "BPTT"}
    first = accounts[methods[0]]
    out = [f"{title}", "", f"One training step: one mini-batch of {first.batch} sequences, T = {first.T}"
           + (f", learning window {accounts['tess'].n_learn}" if "tess" in accounts else "")
           + f"; {8 * first.itemsize}-bit floats; LSG {first.lsg}. MACs in G (10^9), bytes in MiB.", ""]
    rows = []
    for i, blk in enumerate(first.blocks):
        row: list[Any] = [blk.name, blk.kind, f"{blk.neurons:,}", f"{blk.fan_in:,}"]
        for m in methods:
            b = accounts[m].blocks[i]
            row += [_g(b.credit_macs), _g(b.total_macs)]
        rows.append(row)
    heads = ["block", "kind", "neurons", "fan-in"]
    for m in methods:
        heads += [f"{label[m]} credit", f"{label[m]} total"]
    out += ["MACs per block", "", _table(heads, rows, markdown)]
    both = len(methods) == 2
    ph = {m: accounts[m].macs_by_phase() for m in methods}
    rows = []
    for p in PHASES:
        rows.append([p, *(_g(ph[m][p]) for m in methods), *([_ratio(ph["bptt"][p], ph["tess"][p])] if both else [])])
    rows.append(["**total**" if markdown else "total", *(_g(accounts[m].total_macs) for m in methods),
                 *([_ratio(accounts["bptt"].total_macs, accounts["tess"].total_macs)] if both else [])])
    out += ["MACs per phase", "", _table(["phase", *(label[m] for m in methods), *(["BPTT/TESS"] if both else [])],
                                         rows, markdown)]
    cat = {m: accounts[m].bytes_by_category() for m in methods}
    rows = [[c, *(_mib(cat[m][c]) for m in methods), *([_ratio(cat["bptt"][c], cat["tess"][c])] if both else [])]
            for c in BYTE_CATEGORIES]
    rows.append(["**total**" if markdown else "total", *(_mib(accounts[m].total_bytes) for m in methods),
                 *([_ratio(accounts["bptt"].total_bytes, accounts["tess"].total_bytes)] if both else [])])
    out += ["Bytes per category (MiB)", "",
            _table(["category", *(label[m] for m in methods), *(["BPTT/TESS"] if both else [])], rows, markdown)]
    if ratios:
        rows = [[k, _times(v), ACCOUNTINGS[k]] for k, v in ratios.items()]
        out += ["BPTT / TESS by accounting", "", _table(["accounting", "ratio", "what is compared"], rows, markdown)]
    return "\n".join(out)


MAC_ROWS = ("total_macs", "credit_macs", "learning_signal_macs")
BYTE_ROWS = ("total_bytes", "credit_bytes", "state_bytes", "per_neuron_values")
SHORT = {
    "total_macs": "whole training step",
    "credit_macs": "credit assignment",
    "learning_signal_macs": "learning signal only",
    "learning_signal_macs_fused": "learning signal only, fused LSG",
    "total_bytes": "whole training step",
    "credit_bytes": "credit assignment",
    "state_bytes": "per-block state",
    "per_neuron_values": "values kept per neuron",
}


def _within(values: Sequence[float], claim: tuple[float, float]) -> str:
    lo, hi = min(values), max(values)
    inside = all(claim[0] * 0.95 <= v <= claim[1] * 1.05 for v in values)
    spans = lo <= claim[0] * 1.05 and hi >= claim[1] * 0.95
    if inside and spans:
        return "yes"
    if hi < claim[0] or lo > claim[1]:
        return "no"
    return "partly"


def paper_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The committed comparison (``--paper --markdown``): BPTT/TESS ratios per accounting for the
    four published configurations, the paper's ranges, and the absolute counts."""
    heads = ["BPTT / TESS", *(f"{DATASET_LABELS[r['dataset']]}<br>T = {r['T']}" for r in rows), "paper", "reproduced"]
    lines = ["Analytic count (`tess.complexity`) of one training step (one mini-batch) of the published VGG-9 "
             "configurations: their T, learning window, batch, trace factors and classes; float32. "
             "TESS counts the first block's current once per sequence for the static CIFAR images; "
             "BPTT is `tess.bptt` (loss on the time-summed logits, every step back-propagated). "
             "“reproduced”: yes when all four ratios lie in the paper's range (±5%) and span it, "
             "partly when some do, no when none does.\n",
             "**MACs**\n"]
    mac = []
    for k in (*MAC_ROWS, "learning_signal_macs_fused"):
        vals = [r["ratios_fused_lsg"]["learning_signal_macs"] if k.endswith("_fused") else r["ratios"][k] for r in rows]
        mac.append([SHORT[k], *(_times(v) for v in vals), "205–661×", _within(vals, PAPER_CLAIMS["macs"])])
    lines.append(_table(heads, mac, markdown=True))
    lines.append("**Memory**\n")
    mem = []
    for k in BYTE_ROWS:
        vals = [r["ratios"][k] for r in rows]
        mem.append([SHORT[k], *(_times(v) for v in vals), "3–10×", _within(vals, PAPER_CLAIMS["memory"])])
    lines.append(_table(heads, mem, markdown=True))
    lines.append("**Absolute counts** (MACs in G = 10^9, bytes in MiB)\n")
    absr = []
    for label, method, key, unit in (
        ("TESS MACs", "tess", "total", "g"), ("BPTT MACs", "bptt", "total", "g"),
        ("TESS credit MACs", "tess", "group:credit", "g"), ("BPTT credit MACs", "bptt", "group:credit", "g"),
        ("TESS LSG MACs", "tess", "learning_signal", "g"), ("BPTT error back-prop. MACs", "bptt", "learning_signal", "g"),
        ("TESS MiB", "tess", "total", "b"), ("BPTT MiB", "bptt", "total", "b"),
    ):
        field = "macs" if unit == "g" else "bytes"
        absr.append([label, *((_g if unit == "g" else _mib)(r[method][field][key]) for r in rows)])
    lines.append(_table(["quantity", *(f"{DATASET_LABELS[r['dataset']]}<br>batch {r['batch']}" for r in rows)],
                        absr, markdown=True))
    lines.append(f"\n_Command: `{PAPER_COMMAND}`._\n")
    return "\n".join(lines)


def _atomic_write(path: str, text: str) -> None:
    from tess_spec.atomic import atomic_write

    atomic_write(path, text, what="--json/--markdown output")


def run(args: argparse.Namespace) -> int:
    """The handler of ``tess complexity``: print the account, write ``--json`` / ``--markdown``."""
    if args.paper:
        rows = paper_comparison()
        text = paper_markdown(rows)
        print(text)
        if args.json_path:
            _atomic_write(args.json_path, json.dumps({"command": PAPER_COMMAND, "claims": PAPER_CLAIMS,
                                                      "configs": rows}, indent=1) + "\n")
        if args.markdown_path:
            _atomic_write(args.markdown_path, text)
        return 0
    cfg, dataset = resolve_config(args)
    direct = {"auto": dataset in DIRECT_INPUT_DATASETS, "yes": True, "no": False}[args.direct_input]
    methods = ("tess", "bptt") if args.method == "both" else (args.method,)
    accounts = {m: complexity(cfg, m, lsg=args.lsg, **({"direct_input": direct} if m == "tess" else {}))
                for m in methods}
    ratios = compare(cfg, lsg=args.lsg, direct_input=direct) if len(methods) == 2 else None
    name = f"vgg9_{dataset}" if args.preset == "vgg9" else (args.preset or f"{dataset} preset")
    net = cfg.network
    title = (f"tess complexity: {name} — {len(net.blocks)} blocks on {tuple(net.input_shape)}, {net.n_classes} classes"
             + ("; direct input (TESS counts the first block's current once)" if direct else ""))
    print(config_report(accounts, ratios, title))
    if args.json_path:
        payload = {"config": name, "direct_input": direct, **{m: a.to_dict() for m, a in accounts.items()},
                   **({"ratios": ratios} if ratios else {})}
        _atomic_write(args.json_path, json.dumps(payload, indent=1) + "\n")
    if args.markdown_path:
        _atomic_write(args.markdown_path, config_report(accounts, ratios, f"**{title}**", markdown=True))
    return 0


if __name__ == "__main__":  # pragma: no cover
    import sys

    from .cli import main

    sys.exit(main(["complexity", *sys.argv[1:]]))
