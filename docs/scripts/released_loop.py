"""Draw ``docs/assets/released-loop.svg``: which learning signal reaches the blocks at which
step, in the public code's released loop and in the paper's, for every released
configuration — computed by the spec's schedule (:func:`tess_spec.signals.signal_schedule`),
not typed by hand.

    python docs/scripts/released_loop.py            # rewrite the SVG
    python docs/scripts/released_loop.py --check    # exit 1 if the committed SVG is stale

Plain SVG text in a generic sans-serif font (no emoji, no web font); the test
``tests/docs/test_released_loop.py`` checks the committed file is this script's output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parents[2]
SVG = ROOT / "docs" / "assets" / "released-loop.svg"

RELEASED = (
    # label, preset dataset, T the loop runs, n_learn equivalent, how the public code gets there
    ("CIFAR10 / CIFAR100", "cifar10", 6, 6, "T = 6, --delay-ls 6, data.size(0) = 1"),
    ("CIFAR10-DVS", "cifar10_dvs", 10, 10, "T = 10, --delay-ls 10, data.size(0) = 10"),
    ("DVS Gesture (training slice)", "dvs_gesture", 21, 20, "21 frames, --delay-ls 20, data.size(0) = 21"),
)
"""The released configurations (``script.sh``; TESS_RULE.md §11).  The public loop's window is
the steps with ``data.size(0) - t <= delay_ls``: every step for a static image
(``data.size(0) = 1``) and for CIFAR10-DVS; all but step 0 for a 21-frame Gesture slice."""

COLORS = {"lsg": "#f2a541", "readout-backprop": "#3a7dc9", None: "#e4e4e4"}
LETTERS = {"lsg": "L", "readout-backprop": "R", None: "·"}
TEXT = {"lsg": "#1d1d1d", "readout-backprop": "#ffffff", None: "#6b6b6b"}


def schedules() -> list[tuple[str, str, list[tuple[str, tuple[str | None, ...]]]]]:
    """Per released configuration: its label, its note, and ``(row label, per-step signal)``
    for the public code's loop (``learning_signal="released"``) and the paper's (``"lsg"``)."""
    from tess_spec import vgg9
    from tess_spec.signals import signal_schedule

    out = []
    for label, dataset, T, n_learn, note in RELEASED:
        cfg = vgg9(dataset).replace(**{"train.T": T, "train.n_learn": n_learn})
        rows = [("public code (released loop)", signal_schedule(cfg.replace(learning_signal="released"))),
                ("paper (lsg)", signal_schedule(cfg.replace(learning_signal="lsg")))]
        out.append((label, note, rows))
    return out


def render() -> str:
    """The SVG document."""
    cell, gap, left, top = 26, 2, 330, 72
    data = schedules()
    steps = max(len(s) for _, _, rows in data for _, s in rows)
    width = left + steps * (cell + gap) + 20
    parts: list[str] = []
    y = top
    for label, note, rows in data:
        parts.append(f'<text x="10" y="{y + 14}" class="h">{escape(label)}</text>')
        parts.append(f'<text x="10" y="{y + 30}" class="n">{escape(note)}</text>')
        y += 40
        for row_label, sched in rows:
            parts.append(f'<text x="24" y="{y + 18}" class="r">{escape(row_label)}</text>')
            for t, sig in enumerate(sched):
                x = left + t * (cell + gap)
                parts.append(f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" rx="3" fill="{COLORS[sig]}"/>')
                parts.append(f'<text x="{x + cell / 2}" y="{y + 18}" class="c" style="fill:{TEXT[sig]}">{LETTERS[sig]}</text>')
            y += cell + gap
        y += 14
    head = [f'<text x="{left + t * (cell + gap) + cell / 2}" y="{top - 8}" class="t">{t}</text>'
            for t in range(steps)]
    head.append(f'<text x="10" y="{top - 8}" class="n">step t →</text>')
    legend_y = y + 6
    legend = []
    x = 10
    for sig, text in (("lsg", "L: LSG — each block's own local loss (spatially local)"),
                      ("readout-backprop", "R: readout error back-propagated across blocks within step t"),
                      (None, "·: no learning signal")):
        legend.append(f'<rect x="{x}" y="{legend_y}" width="16" height="16" rx="3" fill="{COLORS[sig]}"/>')
        legend.append(f'<text x="{x + 22}" y="{legend_y + 13}" class="n">{escape(text)}</text>')
        x += 22 + int(6.2 * len(text)) + 28
    height = legend_y + 30
    width = max(width, x)
    title = "The learning signal every block receives at each step t"
    subtitle = ("The readout learns from its own per-step error at every step of the window: the R steps of the "
                "public loop, the L steps of the paper's.")
    style = ("<style>text{font-family:'DejaVu Sans',Arial,Helvetica,sans-serif;font-size:12px;fill:#1d1d1d}"
             ".h{font-weight:bold;font-size:13px}.n{font-size:11px;fill:#555}.r{font-size:12px}"
             ".c{text-anchor:middle;font-weight:bold;font-size:12px}.t{text-anchor:middle;font-size:10px;fill:#555}"
             ".title{font-size:13px;font-weight:bold}</style>")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">\n'
            f"{style}\n<title>{escape(title)}</title>\n"
            f'<text x="10" y="20" class="title">{escape(title)}</text>\n'
            f'<text x="10" y="38" class="n">{escape(subtitle)}</text>\n'
            + "\n".join(head + parts + legend) + "\n</svg>\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Write the SVG, or with ``--check`` compare it with the committed one."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="exit 1 if the committed SVG differs from a fresh render")
    args = p.parse_args(argv)
    text = render()
    if args.check:
        ok = SVG.is_file() and SVG.read_text(encoding="utf-8") == text
        print(f"{SVG}: {'up to date' if ok else 'STALE (run python docs/scripts/released_loop.py)'}")
        return 0 if ok else 1
    SVG.write_text(text, encoding="utf-8")
    print(f"wrote {SVG}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
