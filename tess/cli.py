"""Command-line interface: ``tess train ...`` and ``tess backends``.

Run ``tess --help`` or ``tess train --help`` for every option.

The run's config is built in this order, each step overriding the previous:
the dataset's preset (``--preset``, with ``--preset-arg KEY=VALUE`` arguments such
as ``width_scale=0.125``), the config file (``--config FILE``, JSON or TOML), the
explicit flags (``--epochs``, ``--T`` …) and finally ``--set FIELD=VALUE``.

A config file holds any subset of the config's fields, nested or dotted::

    # run.toml
    profile = "reference-code"
    [train]
    T = 8
    batch_size = 32
    [traces]
    factors = [0.2, 0.5, 1.0, 1.0]

With ``--checkpoint-dir DIR`` the full training state is written to
``DIR/last.npz`` after every epoch (atomically); ``--resume`` continues from it,
and the result equals an uninterrupted run.  ``--metrics PATH`` appends one JSON
line per epoch, ``--plot PATH`` draws the curves with matplotlib.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from tess_spec import TessConfig, get_preset, to_dict
from tess_spec.errors import CheckpointError, ConfigError, TessError

__all__ = ["main", "build_parser", "make_config", "train_command", "read_config_file", "plot_history",
           "DATASET_PRESETS", "METHODS", "CHECKPOINT_NAME"]

DATASET_PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "digits": ("mlp_digits", {"shape": "flat"}),
    "events": ("mlp_events", {"shape": "flat"}),
    "dvs_gesture": ("vgg9_dvs_gesture", {}),
    "cifar10_dvs": ("vgg9_cifar10_dvs", {}),
    "cifar10": ("vgg9_cifar10", {}),
    "cifar100": ("vgg9_cifar100", {}),
}
"""Dataset name → (default preset, loader keyword arguments)."""

PAPER_DATASETS: tuple[str, ...] = ("dvs_gesture", "cifar10_dvs", "cifar10", "cifar100")
"""Datasets read from ``--data-dir`` with the published VGG-9 settings (TESS_RULE.md §8)."""

METHODS: dict[str, str] = {"bptt": "tess.bptt:train_cli"}
"""Training methods besides ``tess``: name → ``"module:function"`` of
``fn(config, backend_name, backend_options, train, test, on_batch) -> list[dict]`` (epoch metric dicts,
the keys of :class:`tess.EpochMetrics`), imported on use."""

CHECKPOINT_NAME = "last.npz"
"""File name of the per-epoch checkpoint inside ``--checkpoint-dir``."""

SUBCOMMANDS: dict[str, str] = {
    "vectors": "tess.vectors.cli:register",
    "complexity": "tess.complexity_cli:register",
    "export": "tess.export_cli:register",
}
"""Further ``tess`` subcommands: name → ``"module:register"``.  ``register(subparsers)``
adds the subcommand's parser and sets its ``handler`` default to a function
``handler(args) -> int`` (the exit status); modules are imported when the parser is
built, so they must import no framework at module level."""


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
    t.add_argument("--dataset", default="digits",
                   help="dataset name: digits, events, dvs_gesture, cifar10_dvs, cifar10, cifar100 [digits]")
    t.add_argument("--data-dir", default=None, metavar="DIR",
                   help="folder with the dataset's files (never downloaded) [$TESS_DATA_DIR or ./data]")
    t.add_argument("--preset", default=None, help="network/config preset [the dataset's default]")
    t.add_argument("--preset-arg", dest="preset_args", action="append", default=[], metavar="KEY=VALUE",
                   help="argument of the preset, e.g. width_scale=0.125 for a narrower VGG-9 (repeatable)")
    t.add_argument("--config", dest="config_file", default=None, metavar="FILE",
                   help="JSON or TOML file overriding any config field (nested or dotted keys)")
    t.add_argument("--method", default="tess", help="training method: tess (or one registered, e.g. bptt) [tess]")
    t.add_argument("--epochs", type=int, default=None, help="epochs [preset: 10 for digits]")
    t.add_argument("--seed", type=int, default=None, help="seed of the single RNG [0]")
    t.add_argument("--dtype", choices=("float32", "float64"), default=None, help="float dtype [float32]")
    t.add_argument("--T", type=int, default=None, help="time steps per sequence [preset]")
    t.add_argument("--n-learn", type=int, default=None, help="learning window length [T]")
    t.add_argument("--batch-size", type=int, default=None, help="mini-batch size [preset]")
    t.add_argument("--lr", type=float, default=None, help="initial learning rate [1e-3]")
    t.add_argument("--profile", choices=("paper", "reference-code"), default=None, help="rule profile [paper]")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="override any config field, e.g. --set traces.factors=[0.2,0.5,0,1] (repeatable)")
    t.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    t.add_argument("--json", dest="json_path", default=None, metavar="PATH",
                   help="write a JSON summary (accuracies, epochs, seconds, backend, dataset, history)")
    t.add_argument("--metrics", dest="metrics_path", default=None, metavar="PATH",
                   help="write per-epoch metrics as JSON lines (kept consistent on --resume)")
    t.add_argument("--plot", dest="plot_path", default=None, metavar="PATH",
                   help="plot loss and accuracy curves to an image (needs matplotlib, extra 'data')")
    t.add_argument("--checkpoint-dir", default=None, metavar="DIR",
                   help=f"write the full training state to DIR/{CHECKPOINT_NAME} after every epoch")
    t.add_argument("--resume", action="store_true",
                   help="continue from DIR/last.npz of --checkpoint-dir if it exists (same config; more epochs allowed)")
    t.add_argument("--no-progress", action="store_true", help="no progress bars")
    t.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")

    sub.add_parser("backends", help="list backends and whether they can run here")
    for name, target in SUBCOMMANDS.items():
        module_name, _, fn_name = target.partition(":")
        getattr(importlib.import_module(module_name), fn_name)(sub)
    return p


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Dotted-key overrides from a JSON (``.json``) or TOML (``.toml``) config file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc}") from exc
    try:
        if path.suffix.lower() == ".toml":
            try:
                import tomllib  # Python >= 3.11
            except ModuleNotFoundError:  # pragma: no cover - Python 3.10
                try:
                    import tomli as tomllib  # type: ignore[no-redef]
                except ModuleNotFoundError:
                    raise ConfigError("reading TOML on Python 3.10 needs `pip install tomli`; or use JSON") from None
            data = tomllib.loads(raw.decode("utf-8"))
        else:
            data = json.loads(raw.decode("utf-8"))
    except ConfigError:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid {'TOML' if path.suffix.lower() == '.toml' else 'JSON'}: "
                          f"{exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of config fields, got {type(data).__name__}")
    return _flatten(data)


def make_config(args: argparse.Namespace) -> TessConfig:
    """The run's config: the preset, the config file, the explicit flags, then ``--set`` overrides."""
    if args.dataset not in DATASET_PRESETS and args.preset is None:
        from tess.datasets import DATASETS

        hint = " (pass --preset for it)" if args.dataset in DATASETS else ""
        raise ConfigError(f"unknown dataset {args.dataset!r}{hint}; available: {sorted(DATASET_PRESETS)}")
    preset = args.preset or DATASET_PRESETS[args.dataset][0]
    preset_kwargs: dict[str, Any] = {}
    for item in getattr(args, "preset_args", []):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--preset-arg {item!r} is invalid: expected KEY=VALUE, e.g. width_scale=0.125")
        preset_kwargs[key.strip()] = _parse_value(value)
    try:
        cfg = get_preset(preset, **preset_kwargs)
    except TypeError as exc:
        raise ConfigError(f"preset {preset!r} does not accept {sorted(preset_kwargs)}: {exc}") from exc
    changes: dict[str, Any] = {}
    if getattr(args, "config_file", None):
        changes.update(read_config_file(args.config_file))
    for flag, key in (("seed", "train.seed"), ("epochs", "train.epochs"), ("dtype", "train.dtype"), ("T", "train.T"),
                      ("n_learn", "train.n_learn"), ("batch_size", "train.batch_size"),
                      ("lr", "optimizer.lr"), ("profile", "profile")):
        value = getattr(args, flag, None)
        if value is not None:
            changes[key] = value
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r} is invalid: expected FIELD=VALUE")
        changes[key.strip()] = _parse_value(value)
    if "train.seed" not in changes:
        changes["train.seed"] = 0
    return cfg.replace(**changes)


class _Progress:
    """A tqdm bar per epoch on stderr (or nothing)."""

    def __init__(self, enabled: bool, first_epoch: int = 0) -> None:
        self.enabled = enabled and sys.stderr.isatty() or (enabled and os.environ.get("TESS_PROGRESS") == "1")
        self.bar: Any = None
        self.epoch = first_epoch

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


def _atomic_text(path: str | os.PathLike, text: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tess-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _write_json(path: str, payload: dict[str, Any]) -> None:
    _atomic_text(path, json.dumps(payload, indent=2))


def _load_data(args: argparse.Namespace, cfg: TessConfig) -> tuple[Any, Any]:
    from tess.datasets import DATASETS, load_dataset

    if args.dataset not in DATASETS:
        raise ConfigError(f"unknown dataset {args.dataset!r}; available: {sorted(DATASETS)}")
    kwargs = dict(DATASET_PRESETS.get(args.dataset, ("", {}))[1])
    try:
        accepted = set(inspect.signature(DATASETS[args.dataset]).parameters)
    except (TypeError, ValueError):  # pragma: no cover - builtins without signatures
        accepted = set()
    if "data_dir" in accepted:
        kwargs["data_dir"] = args.data_dir
    if "progress" in accepted:
        kwargs["progress"] = False if args.no_progress else None
    if args.dataset in PAPER_DATASETS and "T" in accepted:
        kwargs["T"] = cfg.train.T
    return load_dataset(args.dataset, **kwargs)


def _run_differences(a: TessConfig, b: TessConfig) -> list[str]:
    da, db = _flatten(to_dict(a)), _flatten(to_dict(b))
    return sorted(k for k in set(da) | set(db) if k != "train.epochs" and da.get(k) != db.get(k))


def plot_history(history: Sequence[Mapping[str, Any]], path: str | os.PathLike, title: str = "") -> None:
    """Plot loss and accuracy per epoch (train and, when present, test) to an image file."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ConfigError("--plot needs matplotlib: pip install 'tess[data]' (or matplotlib)") from exc
    ep = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax1.plot(ep, [h["train_loss"] for h in history], "o-", label="train")
    if any(h.get("test_loss") is not None for h in history):
        ax1.plot(ep, [np.nan if h.get("test_loss") is None else h["test_loss"] for h in history], "s-", label="test")
    ax2.plot(ep, [100 * h["train_accuracy"] for h in history], "o-", label="train")
    if any(h.get("test_accuracy") is not None for h in history):
        ax2.plot(ep, [np.nan if h.get("test_accuracy") is None else 100 * h["test_accuracy"] for h in history],
                 "s-", label="test")
    ax1.set(xlabel="epoch", ylabel="loss (time-summed logits)")
    ax2.set(xlabel="epoch", ylabel="accuracy (%)")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tess-plot-", suffix=path.suffix or ".png")
    os.close(fd)
    try:
        fig.savefig(tmp)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)


def train_command(args: argparse.Namespace) -> dict[str, Any]:
    """Run ``tess train`` and return the summary written by ``--json``."""
    from tess import Model

    cfg = make_config(args)
    if args.print_config:
        print(json.dumps(to_dict(cfg), indent=2))
        return {"config": to_dict(cfg)}
    if (args.checkpoint_dir or args.resume) and args.method != "tess":
        raise ConfigError(f"--checkpoint-dir/--resume are supported for --method tess, not {args.method!r}")
    if args.resume and not args.checkpoint_dir:
        raise ConfigError("--resume needs --checkpoint-dir DIR (the folder holding last.npz)")
    train, test = _load_data(args, cfg)
    options: dict[str, Any] = {"dtype": cfg.train.dtype}
    if args.device:
        options["device"] = args.device
    print(f"tess: method={args.method} backend={args.backend} dataset={args.dataset} "
          f"train={len(train)} test={len(test)} T={cfg.train.T} epochs={cfg.train.epochs} seed={cfg.train.seed}")
    run_info = {"method": args.method, "backend": args.backend, "dataset": args.dataset, "seed": cfg.train.seed}

    def metrics_line(m: Mapping[str, Any]) -> None:
        if args.metrics_path:
            with open(args.metrics_path, "a") as fh:
                fh.write(json.dumps({**run_info, **m}) + "\n")
                fh.flush()

    t0 = time.perf_counter()
    if args.method == "tess":
        from tess.checkpoint import read_checkpoint, save_checkpoint

        model = Model(cfg, args.backend, **options)
        ckpt_path = Path(args.checkpoint_dir) / CHECKPOINT_NAME if args.checkpoint_dir else None
        if args.resume and ckpt_path is not None and ckpt_path.exists():
            ckpt = read_checkpoint(ckpt_path)
            diff = _run_differences(cfg, ckpt.config)
            if diff:
                raise CheckpointError(f"{ckpt_path} belongs to a different run (fields {diff} differ); resume with "
                                      "the same settings (only --epochs may change) or use another --checkpoint-dir")
            model.load_state_dict(ckpt.state)
            print(f"resuming from {ckpt_path} after epoch {model.epoch}")
        elif args.resume:
            print(f"no checkpoint at {ckpt_path}; starting from scratch")
        elif ckpt_path is not None and ckpt_path.exists():
            print(f"note: {ckpt_path} exists and will be overwritten (pass --resume to continue from it)")
        if args.metrics_path:
            kept = []
            if model.epoch and os.path.exists(args.metrics_path):
                for line in Path(args.metrics_path).read_text().splitlines():
                    try:
                        if json.loads(line).get("epoch", 0) <= model.epoch:
                            kept.append(line + "\n")
                    except json.JSONDecodeError:
                        continue
            _atomic_text(args.metrics_path, "".join(kept))
        progress = _Progress(not args.no_progress, model.epoch)

        def on_epoch(m: Any) -> None:
            print(f"epoch {m.epoch:3d}  loss {m.train_loss:.4f}  train {100 * m.train_accuracy:6.2f}%  "
                  f"test {100 * (m.test_accuracy or 0):6.2f}%  lr {m.lr:.2e}  {m.seconds:.1f}s", flush=True)
            metrics_line(m.to_dict())
            if ckpt_path is not None:
                save_checkpoint(model, ckpt_path, extra={"run": run_info})

        remaining = max(cfg.train.epochs - model.epoch, 0)
        model.fit(train, test, epochs=remaining, on_batch=progress.batch, on_epoch=on_epoch)
        history = [m.to_dict() for m in model.history]
        backend_name = model.backend.name
    elif args.method in METHODS:
        module_name, _, fn_name = METHODS[args.method].partition(":")
        fn = getattr(importlib.import_module(module_name), fn_name)
        if args.metrics_path:
            _atomic_text(args.metrics_path, "")
        history = fn(cfg, args.backend, options, train, test, _Progress(not args.no_progress).batch)
        for m in history:
            metrics_line(m)
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
    if args.plot_path and history:
        plot_history(history, args.plot_path, title=f"{args.method} · {backend_name} · {args.dataset}")
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
        handler = getattr(args, "handler", None)
        if handler is not None:
            return int(handler(args))
        return backends_command()
    except TessError as exc:
        print(f"tess: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = " (continue with the same command plus --resume)" if getattr(args, "checkpoint_dir", None) else ""
        print(f"tess: interrupted{hint}", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
