"""Command-line interface: ``tess train ...`` and ``tess backends``.

Run ``tess --help`` or ``tess train --help`` for every option.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from typing import Any, Sequence

import numpy as np

from tess_spec import TessConfig, get_preset
from tess_spec.errors import ConfigError, TessError

__all__ = ["main", "build_parser", "train_command", "DATASET_PRESETS", "METHODS"]

DATASET_PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "digits": ("mlp_digits", {"shape": "flat"}),
    "events": ("mlp_events", {"shape": "flat"}),
}
"""Dataset name → (default preset, loader keyword arguments)."""

METHODS: dict[str, str] = {"bptt": "tess.bptt:train_cli"}
"""Training methods besides ``tess``: name → ``"module:function"`` of
``fn(config, backend_name, backend_options, train, test, on_batch) -> list[dict]`` (epoch metric dicts,
the keys of :class:`tess.EpochMetrics`), imported on use."""


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``tess`` command."""
    p = argparse.ArgumentParser(
        prog="tess",
        description="TESS: train spiking neural networks with a temporally and spatially local learning rule.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    t = sub.add_parser("train", help="train a network and report accuracy",
                       description="Train a network with TESS on a dataset and report train/test accuracy.")
    t.add_argument("--backend", default="numpy", help="backend name (see `tess backends`) [numpy]")
    t.add_argument("--device", default=None, help="backend device, e.g. cpu or cuda [backend default]")
    t.add_argument("--dataset", default="digits", help="dataset name [digits]")
    t.add_argument("--preset", default=None, help="network/config preset [the dataset's default]")
    t.add_argument("--method", default="tess", help="training method: tess (or one registered, e.g. bptt) [tess]")
    t.add_argument("--epochs", type=int, default=None, help="epochs [preset: 10 for digits]")
    t.add_argument("--seed", type=int, default=0, help="seed of the single RNG [0]")
    t.add_argument("--dtype", choices=("float32", "float64"), default=None, help="float dtype [float32]")
    t.add_argument("--T", type=int, default=None, help="time steps per sequence [preset]")
    t.add_argument("--n-learn", type=int, default=None, help="learning window length [T]")
    t.add_argument("--batch-size", type=int, default=None, help="mini-batch size [preset]")
    t.add_argument("--lr", type=float, default=None, help="initial learning rate [1e-3]")
    t.add_argument("--profile", choices=("paper", "reference-code"), default=None, help="rule profile [paper]")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="override any config field, e.g. --set traces.factors=[0.2,0.5,0,1] (repeatable)")
    t.add_argument("--json", dest="json_path", default=None, metavar="PATH",
                   help="write a JSON summary (accuracies, epochs, seconds, backend, dataset, history)")
    t.add_argument("--no-progress", action="store_true", help="no progress bars")
    t.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")

    sub.add_parser("backends", help="list backends and whether they can run here")
    return p


def make_config(args: argparse.Namespace) -> TessConfig:
    """The run's config: the preset, then the explicit flags, then ``--set`` overrides."""
    if args.dataset not in DATASET_PRESETS:
        raise ConfigError(f"unknown dataset {args.dataset!r}; available: {sorted(DATASET_PRESETS)}")
    preset = args.preset or DATASET_PRESETS[args.dataset][0]
    cfg = get_preset(preset)
    changes: dict[str, Any] = {"train.seed": args.seed}
    for flag, key in (("epochs", "train.epochs"), ("dtype", "train.dtype"), ("T", "train.T"),
                      ("n_learn", "train.n_learn"), ("batch_size", "train.batch_size"),
                      ("lr", "optimizer.lr"), ("profile", "profile")):
        value = getattr(args, flag)
        if value is not None:
            changes[key] = value
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r} is invalid: expected FIELD=VALUE")
        changes[key.strip()] = _parse_value(value)
    return cfg.replace(**changes)


class _Progress:
    """A tqdm bar per epoch on stderr (or nothing)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty() or (enabled and os.environ.get("TESS_PROGRESS") == "1")
        self.bar: Any = None
        self.epoch = 0

    def batch(self, done: int, total: int, out: Any) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.epoch += 1
            self.bar = tqdm(total=total, desc=f"epoch {self.epoch}", unit="sample", leave=False, file=sys.stderr)
        self.bar.update(done - self.bar.n)
        self.bar.set_postfix(loss=f"{out.loss:.3f}")
        if done >= total:
            self.bar.close()
            self.bar = None


def _write_json(path: str, payload: dict[str, Any]) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tess-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh, indent=2)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def train_command(args: argparse.Namespace) -> dict[str, Any]:
    """Run ``tess train`` and return the summary written by ``--json``."""
    from tess import Model
    from tess.datasets import load_dataset

    cfg = make_config(args)
    train, test = load_dataset(args.dataset, **DATASET_PRESETS[args.dataset][1])
    options: dict[str, Any] = {"dtype": cfg.train.dtype}
    if args.device:
        options["device"] = args.device
    progress = _Progress(not args.no_progress)
    print(f"tess: method={args.method} backend={args.backend} dataset={args.dataset} "
          f"train={len(train)} test={len(test)} T={cfg.train.T} epochs={cfg.train.epochs} seed={cfg.train.seed}")
    t0 = time.perf_counter()
    if args.method == "tess":
        model = Model(cfg, args.backend, **options)

        def on_epoch(m: Any) -> None:
            print(f"epoch {m.epoch:3d}  loss {m.train_loss:.4f}  train {100 * m.train_accuracy:6.2f}%  "
                  f"test {100 * (m.test_accuracy or 0):6.2f}%  lr {m.lr:.2e}  {m.seconds:.1f}s", flush=True)

        history = [m.to_dict() for m in model.fit(train, test, on_batch=progress.batch, on_epoch=on_epoch)]
        backend_name = model.backend.name
    elif args.method in METHODS:
        import importlib

        module_name, _, fn_name = METHODS[args.method].partition(":")
        fn = getattr(importlib.import_module(module_name), fn_name)
        history = fn(cfg, args.backend, options, train, test, progress.batch)
        backend_name = args.backend
    else:
        raise ConfigError(f"unknown method {args.method!r}; available: {['tess', *sorted(METHODS)]}")
    seconds = time.perf_counter() - t0
    last = history[-1] if history else {}
    summary = {
        "method": args.method,
        "backend": backend_name,
        "dataset": args.dataset,
        "epochs": len(history),
        "seed": cfg.train.seed,
        "dtype": cfg.train.dtype,
        "test_accuracy": last.get("test_accuracy"),
        "train_accuracy": last.get("train_accuracy"),
        "seconds": seconds,
        "history": history,
    }
    acc = summary["test_accuracy"]
    print(f"done: test accuracy {100 * acc:.2f}% after {len(history)} epochs in {seconds:.1f}s"
          if acc is not None else f"done: {len(history)} epochs in {seconds:.1f}s")
    if args.json_path:
        _write_json(args.json_path, summary)
    return summary


def backends_command() -> int:
    """Print every known backend and whether it can be created here."""
    from tess import get_backend, list_backends

    for name in list_backends():
        try:
            b = get_backend(name)
            status = f"ok ({b.device})"
        except TessError as exc:
            status = f"unavailable: {exc}"
        print(f"{name:8s} {status}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tess`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "train":
            train_command(args)
            return 0
        return backends_command()
    except TessError as exc:
        print(f"tess: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
