"""``tess stream``: replay a dataset as one continuous stream and learn on it online.

    tess stream --dataset events --backend numpy
    tess stream --dataset events --plot online.png --json online.json --save-state learner.npz
    tess stream --dataset digits --batch 4 --apply-every 3 --test-mode learn

The training split is fed as one stream, its samples' segments back to back (``T``
frames each; a direct-input sample's image repeated ``T`` times), each label given with
its segment's first frame; a :class:`tess.stream.Learner` learns on it as it goes.  The
*online accuracy* of a segment is its prediction (the time-summed logits) made before
the update it triggers — a test on data the learner has not trained on yet.  Then the
test split is streamed: inference only (``--test-mode predict``, default), learning on
as well (``learn``), or not at all (``skip``).  With ``--batch B`` the split is cut into
``B`` contiguous parts, one per independent stream, stepped together (a leftover of
fewer than ``B`` samples is not streamed).

The config is resolved as for ``tess train`` (the dataset's preset, ``--preset-arg``,
``--config``, the flags, ``--set``).  Every output path is checked before any data loads
and every file is written atomically.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from tess_spec.errors import ConfigError

__all__ = ["register", "run", "stream_command", "plot_curve", "TEST_MODES", "STATE_EXTENSIONS"]

TEST_MODES: tuple[str, ...] = ("predict", "learn", "skip")
"""What ``--test-mode`` does with the test split: stream it for inference only, stream it
learning on as well, or leave it out."""
STATE_EXTENSIONS: tuple[str, ...] = (".npz",)
"""Extensions accepted for ``--save-state``."""


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: expected a positive integer") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"invalid count {n}: expected a positive integer")
    return n


def register(subparsers: Any) -> None:
    """Add the ``stream`` subcommand (``handler`` = :func:`run`)."""
    from ..cli import _add_threads
    from .learner import AUTO_RESETS

    p = subparsers.add_parser(
        "stream", help="learn online on a dataset replayed as one continuous stream",
        description="Replay the training split of a dataset as one stream, one time step at a time, learning "
                    "online (tess.stream.Learner), then stream the test split; print the online accuracy over "
                    "time.")
    p.add_argument("--backend", default="numpy", help="backend name (numpy, torch, jax, cupy) [numpy]")
    p.add_argument("--device", default=None, help="backend device, e.g. cpu or cuda [backend default]")
    p.add_argument("--dataset", default="events", help="dataset name: events, digits, … [events]")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="folder with the dataset's files (never downloaded) [$TESS_DATA_DIR or ./data]")
    p.add_argument("--preset", default=None, help="network/config preset [the dataset's default]")
    p.add_argument("--preset-arg", dest="preset_args", action="append", default=[], metavar="KEY=VALUE",
                   help="argument of the preset (repeatable)")
    p.add_argument("--config", dest="config_file", default=None, metavar="FILE",
                   help="JSON or TOML file overriding any config field")
    p.add_argument("--seed", type=int, default=None, help="seed of the single RNG [0]")
    p.add_argument("--dtype", choices=("float32", "float64"), default=None, help="float dtype [float32]")
    p.add_argument("--T", type=int, default=None, help="time steps per segment [preset]")
    p.add_argument("--n-learn", type=int, default=None, help="learning window length [T]")
    p.add_argument("--lr", type=float, default=None, help="learning rate (constant) [1e-3]")
    p.add_argument("--profile", choices=("paper", "reference-code"), default=None, help="rule profile [paper]")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="override any config field (repeatable)")
    p.add_argument("--batch", type=_positive, default=1, metavar="B", help="independent streams stepped together [1]")
    p.add_argument("--apply-every", type=_positive, default=None, metavar="K",
                   help="apply the optimiser every K learning steps [at the end of every segment]")
    p.add_argument("--auto-reset", choices=AUTO_RESETS, default="segment",
                   help="zero the neuron state at every segment start, or never [segment]")
    p.add_argument("--train-limit", type=_positive, default=None, metavar="N",
                   help="stream only the first N training samples [all]")
    p.add_argument("--test-limit", type=_positive, default=None, metavar="N",
                   help="stream only the first N test samples [all]")
    p.add_argument("--test-mode", choices=TEST_MODES, default="predict",
                   help="test split: inference only, learning on as well, or skip it [predict]")
    p.add_argument("--points", type=_positive, default=10, metavar="N",
                   help="points of the printed online-accuracy curve per split [10]")
    p.add_argument("--json", dest="json_path", default=None, metavar="PATH",
                   help="write the summary and the curve to a .json file")
    p.add_argument("--plot", dest="plot_path", default=None, metavar="PATH",
                   help="draw the online accuracy curve to an image, e.g. online.png (needs matplotlib)")
    p.add_argument("--save-state", dest="state_path", default=None, metavar="PATH",
                   help="write the learner's state (tess.stream.save_state) to a .npz file at the end")
    _add_threads(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``tess stream`` (within ``--threads``); returns the exit status."""
    from ..cli import _ThreadScope, resolve_threads

    with _ThreadScope(resolve_threads(args.threads)):
        stream_command(args)
    return 0


def _outputs(args: argparse.Namespace) -> dict[str, Path]:
    from tess_spec.atomic import check_output_path

    from ..cli import check_outputs

    out = check_outputs(args)
    if args.state_path is not None:
        path = check_output_path(args.state_path, what="--save-state", extensions=STATE_EXTENSIONS)
        real = os.path.realpath(path)
        for flag, other in out.items():
            if os.path.realpath(other) == real:
                raise ConfigError(f"--save-state {str(path)!r} is the same file as {flag}; give each output its "
                                  "own path")
        if args.config_file and os.path.realpath(args.config_file) == real:
            raise ConfigError(f"--save-state {str(path)!r} is the same file as --config")
        out["--save-state"] = path
    return out


def _frames(split: Any, idx: np.ndarray, t: int) -> np.ndarray:
    """Frame ``t`` of the samples ``idx``: ``x[idx, t]`` of a sequence, ``x[idx]`` of a direct input."""
    return split.x[idx, t] if getattr(split, "sequence", False) else split.x[idx]


class _Bar:
    """A tqdm bar over segments on stderr, or nothing (as ``tess train`` shows its bars)."""

    def __init__(self, enabled: bool, total: int, desc: str) -> None:
        self.bar: Any = None
        if enabled and (sys.stderr.isatty() or os.environ.get("TESS_PROGRESS") == "1"):
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="sample", leave=False, file=sys.stderr)

    def update(self, n: int, accuracy: float) -> None:
        if self.bar is not None:
            self.bar.update(n)
            self.bar.set_postfix(online=f"{100 * accuracy:.1f}%")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _stream_split(learner: Any, split: Any, name: str, *, limit: int | None, learn: bool, points: int,
                  progress: bool) -> dict[str, Any]:
    """Stream ``split`` through ``learner``: per segment (B samples) T steps, the label with the
    first frame when learning; returns the split's summary with its online-accuracy curve."""
    B, T = learner.batch, learner.T
    n = len(split) if limit is None else min(limit, len(split))
    segments = n // B
    correct = np.zeros(segments, dtype=np.int64)
    every = max(1, math.ceil(segments / points))
    curve: list[dict[str, Any]] = []
    bar = _Bar(progress, segments * B, name)
    steps0, t0 = learner.steps, time.perf_counter()
    try:
        for s in range(segments):
            idx = np.arange(s, segments * B, segments)[:B] if B > 1 else np.array([s])
            y = np.asarray(split.y[idx])
            for t in range(T):
                x_t = _frames(split, idx, t)
                if learn:
                    learner.step(x_t, label=y if t == 0 else None)
                else:
                    learner.predict_step(x_t)
            correct[s] = int((learner.last_segment.predictions == y).sum())
            done = s + 1
            bar.update(B, correct[:done].sum() / (done * B))
            if done % every == 0 or done == segments:
                lo = (len(curve) and curve[-1]["segments"]) or 0
                window = correct[lo:done].sum() / ((done - lo) * B)
                point = {"segments": done, "samples": done * B, "accuracy_window": float(window),
                         "accuracy_cumulative": float(correct[:done].sum() / (done * B))}
                curve.append(point)
                print(f"{name:5s} {done * B:7d}/{segments * B} samples  online accuracy {100 * window:6.2f}% "
                      f"(samples {lo * B + 1}-{done * B})  {100 * point['accuracy_cumulative']:6.2f}% (all so far)",
                      flush=True)
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    steps = learner.steps - steps0
    tail = correct[int(0.8 * segments):] if segments else correct
    return {
        "samples": segments * B,
        "segments": segments,
        "skipped": n - segments * B,
        "learning": learn,
        "accuracy": float(correct.sum() / (segments * B)) if segments else None,
        "accuracy_last_20pct": float(tail.sum() / (len(tail) * B)) if len(tail) else None,
        "curve": curve,
        "steps": steps,
        "seconds": seconds,
        "us_per_step": 1e6 * seconds / steps if steps else None,
    }


def plot_curve(summary: dict[str, Any], path: str | os.PathLike, *, what: str = "--plot") -> None:
    """Draw the online accuracy curves of a :func:`stream_command` summary (train, and test
    if streamed) against the samples seen, with the chance level; written atomically."""
    from ..cli import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    try:
        offset = 0
        for name, style in (("train", "o-"), ("test", "s-")):
            part = summary.get(name)
            if not part or not part["curve"]:
                continue
            xs = [offset + p["samples"] for p in part["curve"]]
            label = f"{name} ({'learning' if part['learning'] else 'inference'}), per window"
            ax.plot(xs, [100 * p["accuracy_window"] for p in part["curve"]], style, label=label)
            offset += part["samples"]
        ax.axhline(100 * summary["chance"], color="grey", ls="--", lw=1, label="chance")
        ax.set(xlabel="samples streamed", ylabel="online accuracy (%)", ylim=(0, 103),
               title=f"tess stream · {summary['backend']} · {summary['dataset']} · batch {summary['batch']}")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize="small")
        fig.tight_layout()
        save_figure(fig, path, what=what)
    finally:
        plt.close(fig)


def stream_command(args: argparse.Namespace) -> dict[str, Any]:
    """Run ``tess stream`` and return its summary (what ``--json`` writes).

    Checked before any data loads, in this order: the config, every output path, the
    backend and the learner's options; then the dataset is loaded and streamed."""
    import json

    from tess_spec.atomic import atomic_write

    from ..cli import _load_data, make_config
    from .learner import Learner

    ns = argparse.Namespace(**vars(args))
    ns.epochs, ns.batch_size = None, None
    cfg = make_config(ns)
    outputs = _outputs(args)
    options: dict[str, Any] = {"dtype": cfg.train.dtype}
    if args.device:
        options["device"] = args.device
    learner = Learner(cfg, args.backend, batch=args.batch, apply_every=args.apply_every, auto_reset=args.auto_reset,
                      **options)
    train, test = _load_data(ns, cfg)
    print(f"tess stream: backend={learner.backend.name} dataset={args.dataset} train={len(train)} test={len(test)} "
          f"T={cfg.train.T} n_learn={cfg.train.n_learn} batch={args.batch} lr={learner.lr:g} "
          f"signal={learner.signal} seed={cfg.train.seed}", flush=True)
    t0 = time.perf_counter()
    with learner:
        tr = _stream_split(learner, train, "train", limit=args.train_limit, learn=True, points=args.points,
                           progress=not args.no_progress)
        te = None
        if args.test_mode != "skip":
            te = _stream_split(learner, test, "test", limit=args.test_limit, learn=args.test_mode == "learn",
                               points=args.points, progress=not args.no_progress)
        if "--save-state" in outputs:
            learner.save(outputs["--save-state"])
        summary = {
            "dataset": args.dataset,
            "backend": learner.backend.name,
            "dtype": learner.backend.dtype,
            "batch": learner.batch,
            "T": cfg.train.T,
            "n_learn": cfg.train.n_learn,
            "lr": learner.lr,
            "apply_every": learner.apply_every,
            "auto_reset": learner.auto_reset,
            "signal": learner.signal,
            "seed": cfg.train.seed,
            "chance": 1.0 / cfg.network.n_classes,
            "train": tr,
            "test": te,
            "steps": learner.steps,
            "updates": learner.updates,
            "compile_seconds": learner.compile_seconds,
            "seconds": time.perf_counter() - t0,
        }
    last = tr["accuracy_last_20pct"]
    line = (f"done: online accuracy {100 * (tr['accuracy'] or 0):.2f}% over the training stream, "
            f"{100 * (last or 0):.2f}% over its last 20% (chance {100 * summary['chance']:.1f}%)")
    if te is not None:
        line += f"; test {100 * (te['accuracy'] or 0):.2f}% ({args.test_mode})"
    print(f"{line}; {summary['steps']} steps, {summary['updates']} updates, "
          f"{tr['us_per_step'] or 0:.0f} µs per step, {summary['seconds']:.1f}s", flush=True)
    if "--json" in outputs:
        atomic_write(outputs["--json"], json.dumps(summary, indent=2) + "\n", what="--json")
    if "--plot" in outputs:
        plot_curve(summary, outputs["--plot"])
    return summary
