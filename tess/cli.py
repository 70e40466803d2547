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
line per epoch, ``--plot PATH`` draws the curves with matplotlib.  Every output
path is checked before any data loads or training starts (a known extension, a
regular file or absent — never a symbolic link or a device —, a writable folder),
and every file is written atomically by :func:`tess_spec.atomic.atomic_write`.
A checkpoint folder is locked while a run writes it (:class:`tess.checkpoint.CheckpointLock`).

``tess eval --checkpoint PATH`` reports a checkpoint's accuracy and loss on a
dataset split; ``tess --version`` prints the versions.  BLAS/OpenMP run on one
thread unless ``--threads N`` (or ``$TESS_THREADS``, or ``OMP_NUM_THREADS``) says
otherwise (:func:`resolve_threads`).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from tess_spec import LEARNING_SIGNALS, TessConfig, get_preset, to_dict
from tess_spec.atomic import atomic_write, check_output_dir, check_output_path
from tess_spec.errors import CheckpointError, ConfigError, DivergenceError, OutputError, TessError

__all__ = ["main", "build_parser", "make_config", "train_command", "eval_command", "read_config_file",
           "plot_history", "pyplot", "save_figure", "check_outputs", "resolve_threads", "DATASET_PRESETS", "METHODS", "CHECKPOINT_NAME",
           "THREAD_ENV", "JSON_EXTENSIONS", "METRICS_EXTENSIONS"]

DATASET_PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "digits": ("mlp_digits", {"shape": "flat"}),
    "events": ("mlp_events", {"shape": "flat"}),
    "order": ("mlp_order", {"shape": "flat"}),
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
    "stream": "tess.stream.cli:register",
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


def _threads_arg(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid thread count {text!r}: expected an integer >= 0") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"invalid thread count {n}: expected an integer >= 0")
    return n


def _add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=_threads_arg, default=None, metavar="N",
                   help="BLAS/OpenMP threads (0: the libraries' own default) [$TESS_THREADS, else 1 unless "
                        "OMP_NUM_THREADS is set]; XLA's CPU thread pool (jax) does not follow it: pin the "
                        "process instead (taskset -c 0 tess ...)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``tess`` command."""
    from tess import SPEC_VERSION, __version__

    p = argparse.ArgumentParser(
        prog="tess",
        description="TESS: train spiking neural networks with a temporally and spatially local learning rule.",
    )
    p.add_argument("--version", action="version", version=f"tess {__version__} (TESS spec {SPEC_VERSION})")
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
    t.add_argument("--learning-signal", choices=LEARNING_SIGNALS, default=None,
                   help="TESS's learning signal: lsg (the paper: each block's local loss), readout-backprop (the "
                        "readout error back-propagated across blocks within each step), released (the public "
                        "code's loop: LSG before the window, readout-backprop in it) [lsg]")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="override any config field, e.g. --set traces.factors=[0.2,0.5,0,1] (repeatable)")
    t.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    t.add_argument("--json", dest="json_path", default=None, metavar="PATH",
                   help="write a JSON summary (accuracies, epochs, seconds, backend, dataset, history) to a .json file")
    t.add_argument("--metrics", dest="metrics_path", default=None, metavar="PATH",
                   help="write per-epoch metrics as JSON lines to a .jsonl/.ndjson/.json file (kept consistent "
                        "on --resume)")
    t.add_argument("--plot", dest="plot_path", default=None, metavar="PATH",
                   help="plot loss and accuracy curves to an image, e.g. curves.png or .pdf/.svg (needs matplotlib)")
    t.add_argument("--checkpoint-dir", default=None, metavar="DIR",
                   help=f"write the full training state to DIR/{CHECKPOINT_NAME} after every epoch (DIR is locked "
                        "while the run lasts)")
    t.add_argument("--resume", action="store_true",
                   help=f"continue from DIR/{CHECKPOINT_NAME} of --checkpoint-dir if it exists (same config; "
                        "--epochs at least the checkpoint's)")
    t.add_argument("--nproc", type=int, default=None, metavar="N",
                   help="data-parallel training on N workers: torch, N local processes (torch.distributed, gloo on "
                        "the CPU, NCCL on CUDA); jax, N devices of this process. The global batch is split; the "
                        "result equals one worker's up to summation order (docs: Scaling out) [one worker]")
    _add_threads(t)
    t.add_argument("--no-progress", action="store_true", help="no progress bars")
    t.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")

    e = sub.add_parser("eval", help="evaluate a checkpoint on a dataset (accuracy and loss)",
                       description="Load a checkpoint written by `tess train --checkpoint-dir` (or "
                                   "tess.checkpoint.save_checkpoint) and report accuracy and loss on a dataset split.")
    e.add_argument("--checkpoint", required=True, metavar="PATH", help="checkpoint file, e.g. DIR/last.npz")
    e.add_argument("--dataset", default=None,
                   help="dataset name [the one the checkpoint was trained on, if it says; else digits]")
    e.add_argument("--data-dir", default=None, metavar="DIR",
                   help="folder with the dataset's files [$TESS_DATA_DIR or ./data]")
    e.add_argument("--split", choices=("test", "train"), default="test", help="which split [test]")
    e.add_argument("--backend", default="numpy", help="backend name [numpy]")
    e.add_argument("--device", default=None, help="backend device [backend default]")
    e.add_argument("--dtype", choices=("float32", "float64"), default=None, help="float dtype [the checkpoint's]")
    e.add_argument("--batch-size", type=int, default=256, help="samples per forward pass [256]")
    e.add_argument("--json", dest="json_path", default=None, metavar="PATH", help="write the result to a .json file")
    _add_threads(e)
    e.add_argument("--no-progress", action="store_true", help="no progress bars")
    e.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")

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
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
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
    cfg = get_preset(preset, **preset_kwargs)
    changes: dict[str, Any] = {}
    if getattr(args, "config_file", None):
        changes.update(read_config_file(args.config_file))
    for flag, key in (("seed", "train.seed"), ("epochs", "train.epochs"), ("dtype", "train.dtype"), ("T", "train.T"),
                      ("n_learn", "train.n_learn"), ("batch_size", "train.batch_size"),
                      ("lr", "optimizer.lr"), ("profile", "profile"), ("learning_signal", "learning_signal")):
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


# -- threads ------------------------------------------------------------------------
THREAD_ENV: tuple[str, ...] = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
"""Environment variables that set BLAS/OpenMP thread counts; ``--threads N`` sets them all."""


def resolve_threads(threads: int | None) -> int | None:
    """The thread count a run uses: ``threads`` if given (0 means the libraries' own
    default: ``None``), else ``$TESS_THREADS``, else ``None`` when one of
    :data:`THREAD_ENV` is set (the user chose), else 1.

    One thread is the default because the networks tess trains on a CPU multiply
    small matrices: threaded BLAS gains nothing on an idle machine and, on a busy one,
    spinning threads that wait for a core made ``tess train --epochs 10`` up to 29×
    slower (docs/datasets-cli.md has the figures).
    """
    if threads is None:
        env = os.environ.get("TESS_THREADS")
        if env:
            try:
                threads = int(env)
            except ValueError:
                raise ConfigError(f"TESS_THREADS={env!r} is invalid: expected an integer >= 0") from None
            if threads < 0:
                raise ConfigError(f"TESS_THREADS={env!r} is invalid: expected an integer >= 0")
        elif any(os.environ.get(v) for v in THREAD_ENV):
            return None
        else:
            threads = 1
    return None if threads == 0 else threads


class _ThreadScope:
    """Limit BLAS/OpenMP threads for the duration of a command, then restore them.

    Sets :data:`THREAD_ENV` (read by libraries loaded later: torch, CuPy's host BLAS),
    ``OMP_WAIT_POLICY=PASSIVE`` when more than one thread (idle OpenMP threads sleep
    instead of spinning on a shared machine), limits the libraries already loaded
    (NumPy's OpenBLAS) with threadpoolctl, and torch's intra-op pool if torch is loaded.
    """

    def __init__(self, threads: int | None) -> None:
        self.threads = threads
        self._env: dict[str, str | None] = {}
        self._limits: Any = None
        self._torch: int | None = None

    def __enter__(self) -> "_ThreadScope":
        n = self.threads
        if n is None:
            return self
        names = list(THREAD_ENV) + (["OMP_WAIT_POLICY"] if n > 1 and "OMP_WAIT_POLICY" not in os.environ else [])
        self._env = {k: os.environ.get(k) for k in names}
        for k in THREAD_ENV:
            os.environ[k] = str(n)
        if n > 1 and "OMP_WAIT_POLICY" in names:
            os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        try:
            from threadpoolctl import threadpool_limits

            self._limits = threadpool_limits(limits=n)
        except ImportError:  # pragma: no cover - threadpoolctl is a dependency
            logging.getLogger(__name__).info("threadpoolctl is missing: only libraries loaded later get %d threads", n)
        torch = sys.modules.get("torch")
        if torch is not None:
            self._torch = torch.get_num_threads()
            torch.set_num_threads(n)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._limits is not None:
            self._limits.restore_original_limits()
        if self._torch is not None:
            sys.modules["torch"].set_num_threads(self._torch)
        for k, v in self._env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


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


# -- outputs --------------------------------------------------------------------------
JSON_EXTENSIONS: tuple[str, ...] = (".json",)
"""Extensions accepted for ``--json``."""
METRICS_EXTENSIONS: tuple[str, ...] = (".jsonl", ".ndjson", ".json")
"""Extensions accepted for ``--metrics`` (JSON lines)."""


def _plot_formats() -> tuple[str, ...]:
    """Image extensions matplotlib's Agg canvas writes (``.png``, ``.pdf``, ``.svg`` …)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ConfigError("--plot needs matplotlib: pip install 'tess[data]' (or matplotlib)") from exc
    return tuple(sorted("." + ext for ext in Figure().canvas.get_supported_filetypes()))


def check_outputs(args: argparse.Namespace) -> dict[str, Path]:
    """Validate every output path of a ``tess train`` / ``tess eval`` run before any work.

    Returns ``{flag: path}``.  Each file must have a known extension and be absent or
    a regular file (a symbolic link, device, directory, FIFO or socket is refused),
    its folder must be writable, no two outputs (or an output and ``--config``) may be
    the same file, and ``--checkpoint-dir`` must be a writable folder (or absent).
    Raises :class:`tess.errors.OutputError` / :class:`tess.errors.ConfigError`.
    """
    wanted = [("--json", getattr(args, "json_path", None), JSON_EXTENSIONS),
              ("--metrics", getattr(args, "metrics_path", None), METRICS_EXTENSIONS)]
    if getattr(args, "plot_path", None):
        wanted.append(("--plot", args.plot_path, _plot_formats()))
    out: dict[str, Path] = {}
    for flag, value, extensions in wanted:
        if value is not None:
            out[flag] = check_output_path(value, what=flag, extensions=extensions)
    ckdir = getattr(args, "checkpoint_dir", None)
    if ckdir is not None:
        out["--checkpoint-dir"] = check_output_dir(ckdir, what="--checkpoint-dir")
        out["checkpoint"] = check_output_path(Path(ckdir) / CHECKPOINT_NAME, what="checkpoint")
    seen: dict[str, str] = {}
    config_file = getattr(args, "config_file", None)
    if config_file:
        seen[os.path.realpath(config_file)] = "--config"
    for flag, path in out.items():
        if flag == "--checkpoint-dir":
            continue
        real = os.path.realpath(path)
        if real in seen:
            raise ConfigError(f"{flag} {str(path)!r} is the same file as {seen[real]}; give each output its own path")
        seen[real] = flag
    return out


def _write_json(path: str | os.PathLike, payload: dict[str, Any], what: str = "--json") -> None:
    atomic_write(path, json.dumps(payload, indent=2) + "\n", what=what)


def _loader_kwargs(args: argparse.Namespace, cfg: TessConfig, loader: Any) -> dict[str, Any]:
    kwargs = dict(DATASET_PRESETS.get(args.dataset, ("", {}))[1])
    try:
        accepted = set(inspect.signature(loader).parameters)
    except (TypeError, ValueError):  # pragma: no cover - builtins without signatures
        accepted = set()
    if "shape" in accepted:  # digits / events: flat vectors for an MLP, images for a CNN
        kwargs["shape"] = "flat" if len(cfg.network.input_shape) == 1 else "image"
    if "data_dir" in accepted:
        kwargs["data_dir"] = args.data_dir
    if "progress" in accepted:
        kwargs["progress"] = False if args.no_progress else None
    if "T" in accepted and (args.dataset in PAPER_DATASETS or args.dataset in ("events", "order")):
        kwargs["T"] = cfg.train.T
    return kwargs


def _load_data(args: argparse.Namespace, cfg: TessConfig) -> tuple[Any, Any]:
    """``(train, test)`` of ``args.dataset`` shaped for ``cfg``'s network, or a ConfigError
    saying why the network cannot read them."""
    from tess.datasets import DATASETS, load_dataset

    if args.dataset not in DATASETS:
        raise ConfigError(f"unknown dataset {args.dataset!r}; available: {sorted(DATASETS)}")
    train, test = load_dataset(args.dataset, **_loader_kwargs(args, cfg, DATASETS[args.dataset]))
    for split in (train, test):
        frame = tuple(getattr(split, "frame_shape", ()))
        if frame != tuple(cfg.network.input_shape):
            raise ConfigError(
                f"dataset {args.dataset!r} gives frames of shape {frame}, but the network expects "
                f"{tuple(cfg.network.input_shape)}: choose a preset for this dataset (its default is "
                f"{DATASET_PRESETS.get(args.dataset, ('?',))[0]!r}) or set network.input_shape")
        if getattr(split, "sequence", False) and split.x.shape[1] != cfg.train.T:
            raise ConfigError(f"dataset {args.dataset!r} has sequences of {split.x.shape[1]} frames but train.T is "
                              f"{cfg.train.T}; pass --T {split.x.shape[1]}")
    return train, test


def _run_differences(a: TessConfig, b: TessConfig) -> list[str]:
    da, db = _flatten(to_dict(a)), _flatten(to_dict(b))
    return sorted(k for k in set(da) | set(db) if k != "train.epochs" and da.get(k) != db.get(k))


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the ``Agg`` backend (no display needed); a
    :class:`tess.errors.ConfigError` naming the extra to install when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ConfigError("--plot needs matplotlib: pip install 'tess[data]' (or matplotlib)") from exc
    return plt


def save_figure(fig: Any, path: str | os.PathLike, *, what: str = "plot") -> None:
    """Write ``fig`` to ``path`` atomically (:func:`tess_spec.atomic.atomic_write`), in the format
    its extension names (``.png`` if none); an unknown format is an :class:`tess.errors.OutputError`."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".") or "png"
    try:
        atomic_write(path, lambda fh: fig.savefig(fh, format=fmt), what=what)
    except ValueError as exc:  # matplotlib: unknown format
        raise OutputError(f"cannot write {what} {str(path)!r}: {exc}") from exc


def plot_history(history: Sequence[Mapping[str, Any]], path: str | os.PathLike, title: str = "", *,
                 what: str = "plot") -> None:
    """Plot loss and accuracy per epoch (train and, when present, test) to an image file.

    The format follows the extension (``.png``, ``.pdf``, ``.svg`` …); the file is
    written atomically (:func:`tess_spec.atomic.atomic_write`).
    """
    plt = pyplot()
    ep = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    try:
        ax1.plot(ep, [h["train_loss"] for h in history], "o-", label="train")
        if any(h.get("test_loss") is not None for h in history):
            ax1.plot(ep, [np.nan if h.get("test_loss") is None else h["test_loss"] for h in history], "s-",
                     label="test")
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
        save_figure(fig, path, what=what)
    finally:
        plt.close(fig)


# -- commands -------------------------------------------------------------------------
def _check_method_and_backend(args: argparse.Namespace, options: dict[str, Any]) -> Any:
    """The backend object (or, for a registered method, its name checked), before any data loads."""
    from tess import get_backend

    if args.method != "tess" and args.method not in METHODS:
        raise ConfigError(f"unknown method {args.method!r}; available: {['tess', *sorted(METHODS)]}")
    backend = get_backend(args.backend, **options)
    return backend if args.method == "tess" else args.backend


def train_command(args: argparse.Namespace) -> dict[str, Any]:
    """Run ``tess train`` and return the summary written by ``--json``.

    Everything that can be checked without training is checked first, in this
    order: the config, the flags, every output path (and the checkpoint folder's
    lock), the method and backend, a checkpoint to resume — then the dataset is
    loaded and training starts.
    """
    from tess import Model

    cfg = make_config(args)
    if args.print_config:
        print(json.dumps(to_dict(cfg), indent=2))
        return {"config": to_dict(cfg)}
    if (args.checkpoint_dir or args.resume) and args.method != "tess":
        raise ConfigError(f"--checkpoint-dir/--resume are supported for --method tess, not {args.method!r}")
    if args.method != "tess" and cfg.learning_signal != "lsg":
        raise ConfigError(f"learning_signal={cfg.learning_signal!r} selects TESS's learning signal; --method "
                          f"{args.method!r} trains by its own gradient: drop --learning-signal or use --method tess")
    if args.resume and not args.checkpoint_dir:
        raise ConfigError("--resume needs --checkpoint-dir DIR (the folder holding last.npz)")
    from tess.distributed import parallel_run

    par = parallel_run(args, cfg)  # None: one worker; else --nproc N or a torchrun worker (tess.distributed)
    if par is not None:
        par.prepare_worker(args)
    outputs = check_outputs(args) if par is None or par.writer else {}
    options: dict[str, Any] = {"dtype": cfg.train.dtype}
    if args.device:
        options["device"] = args.device
    backend = _check_method_and_backend(args, options) if par is None else par.make_backend(options)
    lock = None
    if args.checkpoint_dir and (par is None or par.locks):
        from tess.checkpoint import CheckpointLock

        lock = CheckpointLock(args.checkpoint_dir)
        lock.acquire()
    try:
        if par is not None and par.launcher:
            return par.launch(args)
        summary = _train(args, cfg, outputs, backend, options, Model)
        if par is not None:
            par.finish(summary)
        return summary
    finally:
        if lock is not None:
            lock.release()


def _train(args: argparse.Namespace, cfg: TessConfig, outputs: dict[str, Path], backend: Any,
           options: dict[str, Any], Model: Any) -> dict[str, Any]:
    run_info = {"method": args.method, "backend": args.backend, "dataset": args.dataset, "seed": cfg.train.seed}
    metrics_path = outputs.get("--metrics")
    metric_lines: list[str] = []

    def metrics_line(m: Mapping[str, Any]) -> None:
        if metrics_path is not None:
            metric_lines.append(json.dumps({**run_info, **m}) + "\n")
            atomic_write(metrics_path, "".join(metric_lines), what="--metrics")

    model = None
    ckpt_path = outputs.get("checkpoint")
    if args.method == "tess":
        from tess.checkpoint import read_checkpoint

        model = Model(cfg, backend)
        if args.resume and ckpt_path is not None and ckpt_path.exists():
            ckpt = read_checkpoint(ckpt_path)
            diff = _run_differences(cfg, ckpt.config)
            if diff:
                raise CheckpointError(f"{ckpt_path} belongs to a different run (fields {diff} differ); resume with "
                                      "the same settings (only --epochs may change) or use another --checkpoint-dir")
            if cfg.train.epochs < ckpt.epoch:
                raise ConfigError(f"--epochs {cfg.train.epochs} is fewer than the {ckpt.epoch} epochs {ckpt_path} "
                                  f"already holds; pass --epochs {ckpt.epoch} or more (equal: no further training), "
                                  f"or evaluate it with `tess eval --checkpoint {ckpt_path}`")
            model.load_state_dict(ckpt.state)
            print(f"resuming from {ckpt_path} after epoch {model.epoch}")
        elif args.resume:
            print(f"no checkpoint at {ckpt_path}; starting from scratch")
        elif ckpt_path is not None and ckpt_path.exists():
            print(f"note: {ckpt_path} exists and will be overwritten (pass --resume to continue from it)")
    train, test = _load_data(args, cfg)
    if model is not None and hasattr(backend, "synchronize"):  # data-parallel workers: rank 0's state, same data
        backend.synchronize(model, train)
    signal = cfg.learning_signal if args.method == "tess" else None
    print(f"tess: method={args.method}" + (f" signal={signal}" if signal else "") + f" backend={args.backend} "
          f"dataset={args.dataset} "
          f"train={len(train)} test={len(test)} T={cfg.train.T} epochs={cfg.train.epochs} seed={cfg.train.seed}")
    t0 = time.perf_counter()
    if model is not None:
        from tess.checkpoint import save_checkpoint

        if metrics_path is not None:
            if model.epoch and metrics_path.exists():
                try:
                    old = metrics_path.read_text(encoding="utf-8").splitlines()
                except (OSError, UnicodeDecodeError) as exc:
                    raise OutputError(f"cannot read --metrics {str(metrics_path)!r} to continue it: {exc}") from exc
                for line in old:
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    if isinstance(rec, dict) and isinstance(rec.get("epoch"), int) and rec["epoch"] <= model.epoch:
                        metric_lines.append(line + "\n")
            atomic_write(metrics_path, "".join(metric_lines), what="--metrics")
        progress = _Progress(not args.no_progress, model.epoch)
        saved = {"epoch": model.epoch if ckpt_path is not None and ckpt_path.exists() and args.resume else None}

        def on_epoch(m: Any) -> None:
            print(f"epoch {m.epoch:3d}  loss {m.train_loss:.4f}  train {100 * m.train_accuracy:6.2f}%  "
                  f"test {100 * (m.test_accuracy or 0):6.2f}%  lr {m.lr:.2e}  {m.seconds:.1f}s", flush=True)
            metrics_line(m.to_dict())
            if ckpt_path is not None:
                save_checkpoint(model, ckpt_path, extra={"run": run_info})
                saved["epoch"] = m.epoch

        remaining = max(cfg.train.epochs - model.epoch, 0)
        try:
            model.fit(train, test, epochs=remaining, on_batch=progress.batch, on_epoch=on_epoch)
        except DivergenceError as exc:
            where = (f" The last good checkpoint, {str(ckpt_path)!r}, holds epoch {saved['epoch']}."
                     if saved["epoch"] is not None else " No checkpoint was written.")
            raise DivergenceError(f"{exc}{where}") from exc
        history = [m.to_dict() for m in model.history]
        backend_name = model.backend.name
    else:
        module_name, _, fn_name = METHODS[args.method].partition(":")
        fn = getattr(importlib.import_module(module_name), fn_name)
        if metrics_path is not None:
            atomic_write(metrics_path, "", what="--metrics")
        history = fn(cfg, args.backend, options, train, test, _Progress(not args.no_progress).batch)
        for m in history:
            metrics_line(m)
        backend_name = args.backend
    seconds = time.perf_counter() - t0
    last = history[-1] if history else {}
    summary = {
        "method": args.method,
        "learning_signal": signal,
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
    summary.update(getattr(backend, "run_summary", dict)())  # data-parallel: "workers" (torch: "replicas")
    acc = summary["test_accuracy"]
    print(f"done: test accuracy {100 * acc:.2f}% after {len(history)} epochs in {seconds:.1f}s"
          if acc is not None else f"done: {len(history)} epochs in {seconds:.1f}s")
    if "--json" in outputs:
        _write_json(outputs["--json"], summary)
    if "--plot" in outputs and history:
        plot_history(history, outputs["--plot"], title=f"{args.method} · {backend_name} · {args.dataset}",
                     what="--plot")
    return summary


def eval_command(args: argparse.Namespace) -> dict[str, Any]:
    """Run ``tess eval``: accuracy and loss of a checkpoint on a dataset split; returns the result."""
    from tess.checkpoint import load_checkpoint, read_checkpoint

    outputs = check_outputs(args)
    if isinstance(args.batch_size, bool) or args.batch_size < 1:
        raise ConfigError(f"--batch-size {args.batch_size} is invalid: expected a positive integer")
    header = read_checkpoint(args.checkpoint).header
    run = header.get("extra", {}).get("run", {}) if isinstance(header.get("extra"), dict) else {}
    dataset = args.dataset or (run.get("dataset") if isinstance(run, dict) else None) or "digits"
    options: dict[str, Any] = {}
    if args.dtype:
        options["dtype"] = args.dtype
    if args.device:
        options["device"] = args.device
    model = load_checkpoint(args.checkpoint, args.backend, **options)
    data_args = argparse.Namespace(dataset=dataset, data_dir=args.data_dir, no_progress=args.no_progress)
    train, test = _load_data(data_args, model.config)
    split = test if args.split == "test" else train
    if len(split) == 0:
        raise ConfigError(f"the {args.split} split of {dataset!r} is empty")
    loss, acc = model.evaluate(split.x, split.y, batch_size=args.batch_size)
    result = {"checkpoint": str(args.checkpoint), "epoch": model.epoch, "dataset": dataset, "split": args.split,
              "samples": len(split), "loss": loss, "accuracy": acc, "backend": model.backend.name,
              "dtype": model.backend.dtype}
    print(f"eval: {args.checkpoint} (epoch {model.epoch}) on {dataset}/{args.split}: {len(split)} samples, "
          f"accuracy {100 * acc:.2f}%, loss {loss:.4f}")
    if "--json" in outputs:
        _write_json(outputs["--json"], result)
    return result


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
    """Entry point of the ``tess`` command; returns the exit status.

    Exit status: 0 success, 2 a :mod:`tess.errors` error (bad input, config, data,
    output path, checkpoint, divergence) printed as one ``tess: error:`` line, 1 any
    other operating-system or memory error (also one line), 130 interrupted.
    """
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what `--nproc N` starts its workers with
    logging.basicConfig(level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command in ("train", "eval"):
            with _ThreadScope(resolve_threads(args.threads)):
                if args.command == "train":
                    train_command(args)
                else:
                    eval_command(args)
            return 0
        handler = getattr(args, "handler", None)
        if handler is not None:
            return int(handler(args))
        return backends_command()
    except TessError as exc:
        print(f"tess: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        name = f" {exc.filename!r}" if getattr(exc, "filename", None) else ""
        print(f"tess: error:{name} {exc.strerror or exc}", file=sys.stderr)
        return 1
    except MemoryError as exc:
        print(f"tess: error: out of memory ({exc or 'MemoryError'}); use a smaller network "
              "(e.g. --preset-arg width_scale=0.125), batch size or T", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        hint = " (continue with the same command plus --resume)" if getattr(args, "checkpoint_dir", None) else ""
        print(f"tess: interrupted{hint}", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
