"""Bad input never corrupts, never crashes, never yields a silent NaN (issue 12).

:data:`CASES` replays the issue's bad-input cases and more against the CLI and the
Python API.  Each case asserts

- the error type (a :mod:`tess.errors` class; argparse's own usage errors for flags
  argparse parses),
- that the message names the offending value,
- that nothing changed outside the case's temporary directory, and that inside it every
  file that existed before is unchanged (a device node stays a device, a link a link,
  a checkpoint keeps its bytes) and no temporary file is left behind;

and every CLI case is replayed once more through ``tess.cli.main``: exit status 2 and one
``tess: error:`` line on stderr naming the value, never a traceback.  Cases marked
``early`` must fail before the dataset loads (nothing is trained to find out).

Root-only checks (a ``mknod`` device node standing in for ``/dev/full``, a 64 KiB tmpfs
that fills up) skip with the reason when not root.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

import tess
from tess.checkpoint import CheckpointLock, load_checkpoint, read_checkpoint, save_checkpoint
from tess.cli import _ThreadScope, build_parser, eval_command, main, resolve_threads, train_command
from tess.datasets import Dataset, load_digits
from tess.datasets.fake import write_cifar10_dvs
from tess.errors import (
    BackendNotFoundError,
    CheckpointError,
    ConfigError,
    DataError,
    DivergenceError,
    OutputError,
    ShapeError,
    TessError,
)
from tess_spec import LSGConfig, from_dict, mlp_digits, to_dict, vgg9
from tess_spec.atomic import atomic_write

ROOT = Path(__file__).resolve().parents[2]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0

# A tiny network on digits: ~0.1 s per epoch.
TINY = ["--dataset", "digits", "--dtype", "float64", "--no-progress", "--set", "train.T=2",
        "--set", 'network.blocks=[{"kind": "linear", "features": 16}]']


# -- helpers ---------------------------------------------------------------------------
def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def rewrite_checkpoint(path: Path, header_fn: Callable[[dict], Any] | None = None,
                       arrays_fn: Callable[[dict], Any] | None = None) -> None:
    """Edit a checkpoint's header and/or arrays, keeping every checksum consistent (so only
    value validation can catch the edit)."""
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(arrays.pop("__header__").tobytes())
    if arrays_fn is not None:
        arrays_fn(arrays)
        for k, a in arrays.items():
            header["arrays"][k] = {"shape": list(a.shape), "dtype": a.dtype.str, "sha256": _sha(a)}
    if header_fn is not None:
        header_fn(header)
    blob = json.dumps(header).encode()
    buf = io.BytesIO()
    np.savez(buf, __header__=np.frombuffer(blob, np.uint8), **arrays)
    path.write_bytes(buf.getvalue())


def _tree(root: Path) -> dict[str, tuple]:
    """Every entry under ``root`` (not following links): type and content fingerprint."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = os.lstat(p)
            rel = str(p.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISREG(st.st_mode):
                out[rel] = ("file", hashlib.sha256(p.read_bytes()).hexdigest(), stat.S_IMODE(st.st_mode))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir",)
            else:
                out[rel] = ("special", stat.S_IFMT(st.st_mode), st.st_rdev)
    return out


def _outside() -> dict[str, Any]:
    """Names in the places a stray write would land (the repository, its data folders, $HOME)."""
    skip = {"__pycache__", ".pytest_cache", ".hypothesis"}
    snap: dict[str, Any] = {"repo": sorted(p.name for p in ROOT.iterdir() if p.name not in skip),
                            "home": sorted(p.name for p in Path.home().iterdir())}
    for sub in ("data", "tess/data", "tess", "tess_spec"):
        d = ROOT / sub
        if d.is_dir():
            snap[sub] = sorted(p.name for p in d.iterdir() if p.name not in skip)
    return snap


LEFTOVER = (".tess-probe-", ".tess-lock")


def _leftovers(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.name.startswith(LEFTOVER) or p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint folder after 3 epochs of the TINY run (made once; cases copy it)."""
    folder = tmp_path_factory.mktemp("trained") / "ck"
    assert main(["train", *TINY, "--epochs", "3", "--checkpoint-dir", str(folder)]) == 0
    return folder


@dataclass
class Case:
    """One bad input: ``run(ctx)`` must raise ``error`` with ``names`` (``str.format``-ed
    with ``ctx``) in its message."""

    id: str
    error: type[BaseException]
    names: str
    argv: list[str] | None = None  # a CLI case: ``tess`` arguments, ``{tmp}`` … formatted with ctx
    run: Callable[[dict], Any] | None = None  # an API case
    setup: Callable[[Path, dict], None] | None = None
    early: bool = True  # CLI: fails before the dataset loads
    may_create: tuple[str, ...] = ()  # relative paths a failing case may create
    needs: str = ""  # "root" / "nonroot"
    after: Callable[[dict], None] | None = None  # extra checks


def _mk_link(tmp: Path, ctx: dict) -> None:
    (tmp / "target.json").write_text("precious\n")
    os.symlink(tmp / "target.json", tmp / "link.json")
    os.symlink(tmp / "target.png", tmp / "link.png")  # dangling
    os.symlink(tmp / "missing.jsonl", tmp / "link.jsonl")


def _mk_fifo(tmp: Path, ctx: dict) -> None:
    os.mkfifo(tmp / "pipe.json")


def _mk_device(tmp: Path, ctx: dict) -> None:
    os.mknod(tmp / "full.json", 0o666 | stat.S_IFCHR, os.makedev(1, 7))  # what /dev/full is


def _mk_file(tmp: Path, ctx: dict) -> None:
    (tmp / "afile").write_text("x")
    (tmp / "ckfile").write_text("x")
    (tmp / "ck2" / "last.npz").mkdir(parents=True)
    (tmp / "run.json").write_text(json.dumps({"train": {"T": 2}}))


def _mk_readonly(tmp: Path, ctx: dict) -> None:
    (tmp / "ro").mkdir()
    os.chmod(tmp / "ro", 0o500)


def _mk_configs(tmp: Path, ctx: dict) -> None:
    (tmp / "bad.json").write_text("{not json")
    (tmp / "list.json").write_text("[1, 2]")
    (tmp / "bad.toml").write_text("train = = 3")
    (tmp / "net.json").write_text(json.dumps({"network": None}))


def _copy_trained(edit: Callable[[Path], None] | None = None) -> Callable[[Path, dict], None]:
    def setup(tmp: Path, ctx: dict) -> None:
        shutil.copytree(ctx["trained"], tmp / "ck")
        if edit is not None:
            edit(tmp / "ck" / "last.npz")
    return setup


def _set_opt(slot: str, value: float, index: int = 0) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        def arrays_fn(arrays: dict) -> None:
            a = arrays[f"opt/{slot}/blocks.0.weight"].copy()
            a.reshape(-1)[index] = value
            arrays[f"opt/{slot}/blocks.0.weight"] = a
        rewrite_checkpoint(path, arrays_fn=arrays_fn)
    return edit


def _set_param(value: float) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        def arrays_fn(arrays: dict) -> None:
            a = arrays["params/readout.weight"].copy()
            a.reshape(-1)[3] = value
            arrays["params/readout.weight"] = a
        rewrite_checkpoint(path, arrays_fn=arrays_fn)
    return edit


def _header(fn: Callable[[dict], None]) -> Callable[[Path], None]:
    return lambda path: rewrite_checkpoint(path, header_fn=fn)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garbage_ckpt(tmp: Path, ctx: dict) -> None:
    (tmp / "garbage.npz").write_bytes(os.urandom(2000))


def _resume(*extra: str) -> list[str]:
    return ["train", *TINY, "--checkpoint-dir", "{tmp}/ck", "--resume", *extra]


# -- a backend that diverges on a chosen step (for the CLI's last-good-checkpoint case) ---
def _diverging_backend_module() -> str:
    name = "tess_test_diverging_backend"
    if name not in sys.modules:
        base = type(tess.get_backend("numpy"))

        class DivergingBackend(base):  # type: ignore[misc, valid-type]
            """The numpy backend, except that its 48th step (epoch 2, batch 3 of 45) yields NaN weights."""

            name = "diverging"

            def __init__(self, **kw: Any) -> None:
                super().__init__(**kw)
                self.calls = 0

            def train_batch(self, config, params, opt_state, x, y, **kw):  # noqa: ANN001, ANN201
                out = super().train_batch(config, params, opt_state, x, y, **kw)
                self.calls += 1
                if self.calls == 48:
                    w = np.full(np.shape(self.to_numpy(out.params["blocks.0.weight"])), np.nan, self.dtype)
                    out.params = {**out.params, "blocks.0.weight": self.asarray(w)}
                return out

        mod = types.ModuleType(name)
        mod.Backend = DivergingBackend  # type: ignore[attr-defined]
        sys.modules[name] = mod
    return f"{name}:Backend"


def _check_last_good(ctx: dict) -> None:
    ck = read_checkpoint(ctx["tmp"] / "ck" / "last.npz")
    assert ck.epoch == 1
    assert all(np.isfinite(v).all() for v in ck.state["params"].values())
    lines = (ctx["tmp"] / "m.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1]


# -- API cases ----------------------------------------------------------------------------
def _digits_model(dtype: str = "float32") -> tess.Model:
    return tess.Model(mlp_digits().replace(**{"train.dtype": dtype}))


def _overflow(ctx: dict) -> None:
    m = _digits_model()
    before = m.numpy_params()
    try:
        m.train_batch(np.full((4, 64), 1e39), np.array([0, 1, 2, 3]))
    finally:
        after = m.numpy_params()
        assert all(np.array_equal(before[k], after[k]) for k in before)  # nothing was applied
        assert m.rng.bit_generator.state == tess.Model(mlp_digits()).rng.bit_generator.state  # no masks drawn
        save_checkpoint(m, ctx["tmp"] / "ok.npz")  # still a good model
        assert all(np.isfinite(v).all() for v in load_checkpoint(ctx["tmp"] / "ok.npz").numpy_params().values())


def _backend_overflow(ctx: dict) -> None:
    """The backend boundary itself (conformance and third-party callers skip tess.Model)."""
    from tess_spec import init_opt_state, init_params, make_rng

    cfg, b = mlp_digits(), tess.get_backend("numpy", dtype="float32")
    p = init_params(cfg, make_rng(0))
    b.train_batch(cfg, b.params_from_numpy(p), b.opt_state_from_numpy(init_opt_state(cfg, p)),
                  np.full((2, 64), 1e39), Y)


def _backend_predict_overflow(ctx: dict) -> None:
    from tess_spec import init_params, make_rng

    cfg, b = mlp_digits(), tess.get_backend("numpy", dtype="float32")
    x = np.zeros((2, 64))
    x[1, 5] = -1e300
    b.predict(cfg, b.params_from_numpy(init_params(cfg, make_rng(0))), x)


def _fit_mismatch(ctx: dict) -> None:
    x, y = np.zeros((64, 64)), np.zeros(60, np.int64)
    _digits_model().fit(types.SimpleNamespace(x=x, y=y), epochs=1)


def _fit_test_mismatch(ctx: dict) -> None:
    train, _ = load_digits()
    _digits_model().fit(train, types.SimpleNamespace(x=np.zeros((10, 64)), y=np.zeros(7, np.int64)), epochs=1)


def _diverge_api(ctx: dict) -> None:
    train, _ = load_digits()
    m = tess.Model(mlp_digits().replace(**{"optimizer.lr": 1e37}))
    snapshots: list[dict] = []
    m.fit(train, epochs=0)
    orig = m.train_batch

    def spy(x: np.ndarray, y: np.ndarray, **kw: Any) -> Any:
        snapshots.append(m.numpy_params())
        return orig(x, y, **kw)

    m.train_batch = spy  # type: ignore[method-assign]
    try:
        m.fit(train, epochs=1)
    finally:
        now = m.numpy_params()
        assert all(np.array_equal(snapshots[-1][k], now[k]) for k in now)  # the state before the bad step
        assert all(np.isfinite(v).all() for v in now.values())


def _save_nan(ctx: dict) -> None:
    m = _digits_model()
    p = m.numpy_params()
    p["blocks.1.weight"][0, 0] = np.nan
    m.params = m.backend.params_from_numpy(p)
    save_checkpoint(m, ctx["tmp"] / "nan.npz")


def _state_with(change: Callable[[dict], None]) -> Callable[[dict], None]:
    def run(ctx: dict) -> None:
        m = _digits_model("float64")
        state = m.state_dict()
        change(state)
        m.load_state_dict(state)
    return run


def _nan_v(state: dict) -> None:
    state["opt_state"]["v"]["blocks.0.weight"][2, 2] = np.nan


def _neg_v(state: dict) -> None:
    state["opt_state"]["v"]["readout.bias"][1] = -0.5


def _bad_lr(state: dict) -> None:
    state["schedule"]["lr"] = -5.0


def _bad_rng(state: dict) -> None:
    state["rng"] = {"bit_generator": "seed", "state": {}}


def _atomic_symlink(ctx: dict) -> None:
    atomic_write(ctx["tmp"] / "link.txt", "data")


def _mk_atomic(tmp: Path, ctx: dict) -> None:
    os.symlink(tmp / "elsewhere.txt", tmp / "link.txt")
    (tmp / "out.json").write_text("old contents")


def _atomic_full_disk(ctx: dict) -> None:
    import errno

    def writer(fh: Any) -> None:
        fh.write(b"half of it")
        raise OSError(errno.ENOSPC, "No space left on device")

    atomic_write(ctx["tmp"] / "out.json", writer, what="--json")


def _lock_twice(ctx: dict) -> None:
    with CheckpointLock(ctx["tmp"] / "ck"):
        CheckpointLock(ctx["tmp"] / "ck").acquire()


def _garbage_aedat(ctx: dict) -> None:
    root = write_cifar10_dvs(ctx["tmp"] / "dvs", per_class=2, n_events=50)
    bad = sorted((root / "CIFAR10DVS" / "cat").glob("*.aedat"))[0]
    bad.write_bytes(os.urandom(4096))
    ctx["bad"] = bad
    from tess.datasets import load_cifar10_dvs

    load_cifar10_dvs(root, T=2, cache=False)


def _mk_data_files(tmp: Path, ctx: dict) -> None:
    (tmp / "noise.aedat").write_bytes(b"#!AER-DAT2.0\r\n"
                                      + np.random.default_rng(0).integers(0, 256, 8000, np.uint8).tobytes())
    (tmp / "user01_led_labels.csv").write_text("class,startTime_usec,endTime_usec\n3,12,abc\n")
    a = np.zeros((5, 4))
    a[2, 3] = np.nan
    np.save(tmp / "0.npy", a)
    (tmp / "d.aedat").mkdir()


def _aedat_header_then_noise(ctx: dict) -> None:
    from tess.datasets.formats import read_aedat2

    read_aedat2(ctx["tmp"] / "noise.aedat")


def _bad_csv(ctx: dict) -> None:
    from tess.datasets.dvs_gesture import _read_labels

    _read_labels(ctx["tmp"] / "user01_led_labels.csv")


def _bad_cifar(ctx: dict) -> None:
    import pickle

    from tess.datasets.cifar import read_cifar_batch

    read_cifar_batch(pickle.dumps({"data": [[300] * 3072], "labels": [1]}), "labels", "batch_x")


def _nan_npy(ctx: dict) -> None:
    from tess.datasets.formats import read_tonic_gesture_npy

    read_tonic_gesture_npy(ctx["tmp"] / "0.npy")


def _events_dir(ctx: dict) -> None:
    from tess.datasets.formats import read_events

    read_events(ctx["tmp"] / "d.aedat")


def _threads_env(ctx: dict) -> None:
    os.environ["TESS_THREADS"] = "many"
    try:
        resolve_threads(None)
    finally:
        del os.environ["TESS_THREADS"]


X = np.zeros((2, 64))
Y = np.array([0, 1])

CASES: list[Case] = [
    # -- output paths: checked before anything loads or trains ------------------------
    Case("json-device-node", OutputError, "character device", ["train", *TINY, "--json", "{tmp}/full.json"],
         setup=_mk_device, needs="root"),
    Case("json-symlink", OutputError, "symbolic link", ["train", *TINY, "--json", "{tmp}/link.json"], setup=_mk_link),
    Case("metrics-symlink", OutputError, "link.jsonl", ["train", *TINY, "--metrics", "{tmp}/link.jsonl"],
         setup=_mk_link),
    Case("plot-dangling-symlink", OutputError, "symbolic link", ["train", *TINY, "--plot", "{tmp}/link.png"],
         setup=_mk_link),
    Case("json-is-directory", OutputError, "a directory", ["train", *TINY, "--json", "{tmp}"]),
    Case("json-fifo", OutputError, "FIFO", ["train", *TINY, "--json", "{tmp}/pipe.json"], setup=_mk_fifo),
    Case("json-under-a-file", OutputError, "afile", ["train", *TINY, "--json", "{tmp}/afile/x.json"],
         setup=_mk_file),
    Case("json-in-proc", OutputError, "/proc", ["train", *TINY, "--json", "/proc/tess-summary.json"]),
    Case("metrics-in-proc", OutputError, "/proc", ["train", *TINY, "--metrics", "/proc/m.jsonl"]),
    Case("json-readonly-folder", OutputError, "{tmp}/ro", ["train", *TINY, "--json", "{tmp}/ro/s.json"],
         setup=_mk_readonly, needs="nonroot"),
    Case("json-extension", OutputError, ".txt", ["train", *TINY, "--json", "{tmp}/summary.txt"]),
    Case("metrics-extension", OutputError, ".csv", ["train", *TINY, "--metrics", "{tmp}/m.csv"]),
    Case("plot-extension", OutputError, ".doc", ["train", *TINY, "--plot", "{tmp}/curves.doc"]),
    Case("json-empty-path", OutputError, "empty path", ["train", *TINY, "--json", ""]),
    Case("checkpoint-dir-is-a-file", OutputError, "ckfile", ["train", *TINY, "--checkpoint-dir", "{tmp}/ckfile"],
         setup=_mk_file),
    Case("checkpoint-file-is-a-dir", OutputError, "last.npz", ["train", *TINY, "--checkpoint-dir", "{tmp}/ck2"],
         setup=_mk_file),
    Case("checkpoint-dir-in-proc", OutputError, "/proc", ["train", *TINY, "--checkpoint-dir", "/proc/ck"]),
    Case("json-equals-metrics", ConfigError, "same file", ["train", *TINY, "--json", "{tmp}/a.json",
                                                           "--metrics", "{tmp}/a.json"]),
    Case("json-overwrites-config", ConfigError, "--config", ["train", *TINY, "--config", "{tmp}/run.json",
                                                             "--json", "{tmp}/run.json"], setup=_mk_file),
    Case("eval-json-symlink", OutputError, "symbolic link",
         ["eval", "--checkpoint", "{tmp}/ck/last.npz", "--json", "{tmp}/link.json"],
         setup=lambda t, c: (_copy_trained()(t, c), _mk_link(t, c))),
    # -- config shapes and values (the issue's --set list, presets, files) --------------
    Case("set-network-null", ConfigError, "network=None", ["train", "--set", "network=null"]),
    Case("set-blocks-int", ConfigError, "network.blocks=5", ["train", "--set", "network.blocks=5"]),
    Case("set-blocks-empty-block", ConfigError, "['features', 'kind']", ["train", "--set", "network.blocks=[{}]"]),
    Case("set-train-int", ConfigError, "train=5", ["train", "--set", "train=5"]),
    Case("set-unknown-section", ConfigError, "nope", ["train", "--set", "nope.x=1"]),
    Case("set-unknown-field", ConfigError, "lr_max", ["train", "--set", "optimizer.lr_max=1"]),
    Case("set-block-index-out-of-range", ConfigError, "'9'", ["train", "--set", "network.blocks.9.features=3"]),
    Case("set-without-equals", ConfigError, "noequals", ["train", "--set", "noequals"]),
    Case("set-omega-reversed", ConfigError, "600", ["train", "--set", "lsg.omega_min=600"]),
    Case("set-negative-lr", ConfigError, "-5", ["train", "--set", "optimizer.lr=-5"]),
    Case("set-nan-lr", ConfigError, "nan", ["train", "--set", "optimizer.lr=NaN"]),
    Case("set-T-zero", ConfigError, "T=0", ["train", "--set", "train.T=0"]),
    Case("set-dtype-float16", ConfigError, "float16", ["train", "--set", "train.dtype=float16"]),
    Case("set-bias-string", ConfigError, "'yes'", ["train", "--set", "network.blocks.0.bias=yes"]),
    Case("set-huge-features", ConfigError, "100000000000000000000",
         ["train", "--set", "network.blocks.0.features=100000000000000000000"]),
    Case("unknown-preset", ConfigError, "nope", ["train", "--preset", "nope"]),
    Case("width-scale-zero", ConfigError, "width_scale=0", ["train", "--dataset", "cifar10", "--preset-arg",
                                                            "width_scale=0"]),
    Case("width-scale-nan", ConfigError, "nan", ["train", "--dataset", "cifar10", "--preset-arg",
                                                 "width_scale=NaN"]),
    Case("preset-arg-unknown", ConfigError, "bogus", ["train", "--preset-arg", "bogus=1"]),
    Case("preset-arg-without-equals", ConfigError, "width_scale", ["train", "--preset-arg", "width_scale"]),
    Case("config-missing", ConfigError, "missing.json", ["train", "--config", "{tmp}/missing.json"]),
    Case("config-invalid-json", ConfigError, "bad.json", ["train", "--config", "{tmp}/bad.json"],
         setup=_mk_configs),
    Case("config-a-list", ConfigError, "list", ["train", "--config", "{tmp}/list.json"], setup=_mk_configs),
    Case("config-invalid-toml", ConfigError, "bad.toml", ["train", "--config", "{tmp}/bad.toml"],
         setup=_mk_configs),
    Case("config-network-null", ConfigError, "network=None", ["train", "--config", "{tmp}/net.json"],
         setup=_mk_configs),
    Case("unknown-dataset", ConfigError, "nope", ["train", "--dataset", "nope"]),
    Case("unknown-backend", BackendNotFoundError, "nope", ["train", *TINY, "--backend", "nope"]),
    Case("unknown-method", ConfigError, "nope", ["train", *TINY, "--method", "nope"]),
    Case("bad-device", ConfigError, "cuda", ["train", *TINY, "--device", "cuda"]),
    Case("resume-without-dir", ConfigError, "--checkpoint-dir", ["train", *TINY, "--resume"]),
    Case("checkpoint-with-bptt", ConfigError, "bptt", ["train", *TINY, "--method", "bptt", "--checkpoint-dir",
                                                       "{tmp}/ck"]),
    Case("preset-does-not-fit-dataset", ConfigError, "(2, 8, 8)", ["train", "--dataset", "events", "--preset",
                                                                   "cnn_digits", "--T", "8"], early=False),
    Case("events-T-too-short", ConfigError, "T=4", ["train", "--dataset", "events", "--T", "4"], early=False),
    # -- resume: everything restored is validated; the checkpoint is never overwritten ----
    Case("resume-fewer-epochs", ConfigError, "--epochs 2", _resume("--epochs", "2"), setup=_copy_trained()),
    Case("resume-nan-in-adam-v", CheckpointError, "NaN", _resume("--epochs", "4"), setup=_copy_trained(
        _set_opt("v", np.nan))),
    Case("resume-negative-adam-v", CheckpointError, "negative", _resume("--epochs", "4"),
         setup=_copy_trained(_set_opt("v", -1.0, 5))),
    Case("resume-inf-in-adam-m", CheckpointError, "Inf", _resume("--epochs", "4"),
         setup=_copy_trained(_set_opt("m", np.inf))),
    Case("resume-nan-param", CheckpointError, "NaN", _resume("--epochs", "4"), setup=_copy_trained(
        _set_param(np.nan))),
    Case("resume-lr-negative", CheckpointError, "lr=-5", _resume("--epochs", "4"),
         setup=_copy_trained(_header(lambda h: h["schedule"].update(lr=-5)))),
    Case("resume-lr-nan", CheckpointError, "lr=nan", _resume("--epochs", "4"),
         setup=_copy_trained(_header(lambda h: h["schedule"].update(lr=float("nan"))))),
    Case("resume-step-fraction", CheckpointError, "1.5", _resume("--epochs", "4"),
         setup=_copy_trained(_header(lambda h: h["optimizer"].update(step=1.5)))),
    Case("resume-step-negative", CheckpointError, "-1", _resume("--epochs", "4"),
         setup=_copy_trained(_header(lambda h: h["optimizer"].update(step=-1)))),
    Case("resume-epoch-string", CheckpointError, "'3'", _resume("--epochs", "4"),
         setup=_copy_trained(_header(lambda h: h.update(epoch="3")))),
    Case("resume-rng-not-a-generator", CheckpointError, "'seed'", _resume("--epochs", "4"),
         setup=_copy_trained(_header(lambda h: h["rng"].update(bit_generator="seed")))),
    Case("resume-rng-state-garbage", CheckpointError, "random generator", _resume("--epochs", "4"),
         setup=_copy_trained(_header(lambda h: h["rng"].update(state={"state": "x", "inc": 1})))),
    Case("resume-bad-bad-epochs", CheckpointError, "bad_epochs=-2", _resume("--epochs", "4"),
         setup=_copy_trained(_header(lambda h: h["schedule"].update(bad_epochs=-2)))),
    Case("resume-history-wrong", CheckpointError, "history", _resume("--epochs", "4"),
         setup=_copy_trained(_header(lambda h: h["history"].pop()))),
    Case("resume-truncated", CheckpointError, "truncated", _resume("--epochs", "4"),
         setup=_copy_trained(_truncate)),
    Case("resume-other-run", CheckpointError, "optimizer.lr", _resume("--epochs", "4", "--lr", "0.01"),
         setup=_copy_trained()),
    Case("eval-missing-checkpoint", CheckpointError, "nothere.npz", ["eval", "--checkpoint", "{tmp}/nothere.npz"]),
    Case("eval-garbage-checkpoint", CheckpointError, "garbage.npz", ["eval", "--checkpoint", "{tmp}/garbage.npz"],
         setup=_garbage_ckpt),
    Case("eval-wrong-dataset", ConfigError, "T=2", ["eval", "--checkpoint", "{tmp}/ck/last.npz",
                                                          "--dataset", "events"], setup=_copy_trained(), early=False),
    Case("eval-batch-size-zero", ConfigError, "--batch-size 0",
         ["eval", "--checkpoint", "{tmp}/ck/last.npz", "--batch-size", "0"], setup=_copy_trained()),
    Case("eval-nan-checkpoint", CheckpointError, "NaN", ["eval", "--checkpoint", "{tmp}/ck/last.npz"],
         setup=_copy_trained(_set_param(np.nan))),
    Case("divergence-keeps-the-last-good-checkpoint", DivergenceError, "epoch 2, batch 3 of 45",
         ["train", *TINY, "--epochs", "3", "--backend", "{diverging}", "--checkpoint-dir", "{tmp}/ck",
          "--metrics", "{tmp}/m.jsonl"], early=False, may_create=("ck", "ck/last.npz", "m.jsonl"),
         after=_check_last_good),
    # -- argparse-level flags -------------------------------------------------------------
    Case("threads-negative", SystemExit, "-1", ["train", "--threads", "-1"]),
    Case("epochs-not-a-number", SystemExit, "abc", ["train", "--epochs", "abc"]),
    # -- Python API -------------------------------------------------------------------------
    Case("train-batch-overflows-float32", DataError, "1e+39", run=_overflow, may_create=("ok.npz",)),
    Case("backend-train-batch-overflows-float32", DataError, "not finite in float32", run=_backend_overflow),
    Case("backend-predict-overflows-float32", DataError, "-1e+300", run=_backend_predict_overflow),
    Case("fit-64-samples-60-labels", DataError, "64 samples but 60 labels", run=_fit_mismatch),
    Case("fit-test-7-labels", DataError, "10 samples but 7 labels", run=_fit_test_mismatch),
    Case("fit-epochs-bool", ConfigError, "epochs=True",
         run=lambda c: _digits_model().fit(load_digits()[0], epochs=True)),
    Case("training-diverges", DivergenceError, "epoch 1, batch 2 of 45", run=_diverge_api),
    Case("predict-batch-size-0", ConfigError, "batch_size=0", run=lambda c: _digits_model().predict(X, batch_size=0)),
    Case("predict-batch-size-negative", ConfigError, "batch_size=-1",
         run=lambda c: _digits_model().predict(X, batch_size=-1)),
    Case("predict-batch-size-float", ConfigError, "batch_size=2.5",
         run=lambda c: _digits_model().predict(X, batch_size=2.5)),
    Case("evaluate-batch-size-0", ConfigError, "batch_size=0",
         run=lambda c: _digits_model().evaluate(X, Y, batch_size=0)),
    Case("predict-scalar", ShapeError, "3.0", run=lambda c: _digits_model().predict(np.float64(3.0))),
    Case("train-batch-complex", DataError, "complex",
         run=lambda c: _digits_model().train_batch(X.astype(complex), Y)),
    Case("train-batch-bool-labels", DataError, "bool",
         run=lambda c: _digits_model().train_batch(X, np.array([True, False]))),
    Case("vgg9-width-0", ConfigError, "width_scale=0", run=lambda c: vgg9(width_scale=0)),
    Case("vgg9-width-negative", ConfigError, "width_scale=-1", run=lambda c: vgg9(width_scale=-1)),
    Case("vgg9-width-nan", ConfigError, "width_scale=nan", run=lambda c: vgg9(width_scale=float("nan"))),
    Case("vgg9-width-tiny", ConfigError, "width_scale=0.001", run=lambda c: vgg9(width_scale=0.001)),
    Case("lsg-omega-reversed", ConfigError, "omega_min=600", run=lambda c: LSGConfig(omega_min=600, omega_max=512)),
    Case("from-dict-no-network", ConfigError, "'network'", run=lambda c: from_dict({"train": {"T": 3}})),
    Case("from-dict-network-list", ConfigError, "network=[]", run=lambda c: from_dict({"network": []})),
    Case("from-dict-train-int", ConfigError, "train=5",
         run=lambda c: from_dict({**to_dict(mlp_digits()), "train": 5})),
    Case("model-params-wrong-shape", ConfigError, "blocks.0.weight",
         run=lambda c: tess.Model(mlp_digits(), params={**mlp_digits_params(), "blocks.0.weight": np.zeros((3, 3))})),
    Case("save-nan-model", CheckpointError, "NaN", run=_save_nan),
    Case("load-state-nan-v", CheckpointError, "NaN", run=_state_with(_nan_v)),
    Case("load-state-negative-v", CheckpointError, "-0.5", run=_state_with(_neg_v)),
    Case("load-state-lr-negative", CheckpointError, "lr=-5", run=_state_with(_bad_lr)),
    Case("load-state-rng", CheckpointError, "'seed'", run=_state_with(_bad_rng)),
    Case("atomic-write-symlink", OutputError, "link.txt", run=_atomic_symlink, setup=_mk_atomic),
    Case("atomic-write-disk-full", OutputError, "disk is full", run=_atomic_full_disk, setup=_mk_atomic),
    Case("lock-held-twice", CheckpointError, "in use by process", run=_lock_twice, may_create=("ck",)),
    Case("cifar10-dvs-garbage-aedat", DataError, "not an AEDAT 2.0 file", run=_garbage_aedat, may_create=("dvs",)),
    Case("aedat-header-then-noise", DataError, "backwards", run=_aedat_header_then_noise, setup=_mk_data_files),
    Case("gesture-labels-csv-garbage", DataError, "line 2", run=_bad_csv, setup=_mk_data_files),
    Case("cifar-batch-pixel-300", DataError, "0..255", run=_bad_cifar),
    Case("tonic-npy-nan", DataError, "nan", run=_nan_npy, setup=_mk_data_files),
    Case("event-file-is-a-directory", DataError, "d.aedat", run=_events_dir, setup=_mk_data_files),
    Case("tess-threads-env", ConfigError, "many", run=_threads_env),
]


def mlp_digits_params() -> dict[str, np.ndarray]:
    from tess_spec import init_params, make_rng

    return init_params(mlp_digits(), make_rng(0))


def _ctx(tmp: Path, trained: Path) -> dict:
    return {"tmp": tmp, "trained": trained, "diverging": _diverging_backend_module()}


def _fill(text: str, ctx: dict) -> str:
    """``{tmp}`` and ``{diverging}`` replaced (not str.format: the JSON in TINY has braces)."""
    return text.replace("{tmp}", str(ctx["tmp"])).replace("{diverging}", ctx["diverging"])


def _argv(case: Case, ctx: dict) -> list[str]:
    return [_fill(a, ctx) for a in case.argv or []]


def _invoke(argv: list[str]) -> None:
    """A CLI run that lets the exception through (main() would turn it into a line)."""
    args = build_parser().parse_args(argv)
    with _ThreadScope(resolve_threads(args.threads)):
        (train_command if args.command == "train" else eval_command)(args)


def _skip(case: Case) -> None:
    if case.needs == "root" and not IS_ROOT:
        pytest.skip("needs root (mknod of a device node)")
    if case.needs == "nonroot" and IS_ROOT:
        pytest.skip("root may write into a read-only folder, so the case does not apply")


def test_at_least_60_cases() -> None:
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_a_clear_error_that_changes_nothing(case: Case, tmp_path: Path, trained: Path,
                                                         monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    _skip(case)
    monkeypatch.chdir(tmp_path)
    ctx = _ctx(tmp_path, trained)
    if case.setup is not None:
        case.setup(tmp_path, ctx)
    outside, inside = _outside(), _tree(tmp_path)
    with pytest.raises(case.error) as exc:
        _invoke(_argv(case, ctx)) if case.argv is not None else case.run(ctx)  # type: ignore[misc]
    message = capsys.readouterr().err if case.error is SystemExit else str(exc.value)
    names = _fill(case.names, ctx)
    assert names in message, f"{case.id}: {message!r} does not name {names!r}"
    if case.error is not SystemExit:
        assert isinstance(exc.value, TessError)
    if case.argv is not None and case.early:
        assert "tess: method=" not in capsys.readouterr().out, "the error came after the dataset loaded"
    after = _tree(tmp_path)
    for rel, before in inside.items():
        assert after.get(rel) == before, f"{case.id}: {rel} changed: {before} -> {after.get(rel)}"
    new = sorted(set(after) - set(inside))
    unexpected = [p for p in new if not any(p == m or p.startswith(m + os.sep) for m in case.may_create)]
    assert not unexpected, f"{case.id}: created {unexpected}"
    assert not _leftovers(tmp_path), f"{case.id}: left {_leftovers(tmp_path)}"
    assert _outside() == outside, f"{case.id}: something changed outside the temporary folder"
    if case.after is not None:
        case.after(ctx)


CLI_CASES = [c for c in CASES if c.argv is not None and c.error is not SystemExit]


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES])
def test_the_cli_prints_one_error_line_and_exits_2(case: Case, tmp_path: Path, trained: Path,
                                                   monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    _skip(case)
    monkeypatch.chdir(tmp_path)
    ctx = _ctx(tmp_path, trained)
    if case.setup is not None:
        case.setup(tmp_path, ctx)
    assert main(_argv(case, ctx)) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("WARNING ")]
    assert len(lines) == 1 and lines[0].startswith("tess: error: "), err
    assert "Traceback" not in err and _fill(case.names, ctx) in lines[0]


# -- the named checks of the issue -----------------------------------------------------------
@pytest.mark.skipif(not IS_ROOT, reason="needs root: mknod of a character device")
@pytest.mark.parametrize("flag,name", [("--json", "full"), ("--json", "full.json"), ("--metrics", "full.jsonl"),
                                       ("--plot", "full.png")])
def test_train_json_to_a_device_node_leaves_it_a_device(tmp_path: Path, flag: str, name: str, capsys) -> None:
    """`tess train --json /dev/full`, on a throwaway node with /dev/full's numbers (1, 7)."""
    node = tmp_path / name
    os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 7))
    assert main(["train", *TINY, "--epochs", "1", flag, str(node)]) == 2
    err = capsys.readouterr().err
    assert stat.S_ISCHR(os.lstat(node).st_mode) and os.lstat(node).st_rdev == os.makedev(1, 7)
    assert "character device" in err and str(node) in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


@contextlib.contextmanager
def _tiny_tmpfs(where: Path, size: str = "64k"):  # noqa: ANN202
    where.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)


@pytest.mark.skipif(not IS_ROOT, reason="needs root: mounts a 64 KiB tmpfs to fill it")
def test_a_full_disk_is_one_clear_line_and_nothing_half_written(tmp_path: Path, capsys) -> None:
    with _tiny_tmpfs(tmp_path / "small") as small:
        (small / "summary.json").write_text("previous summary")
        # the checkpoint (~0.1 MB) does not fit in 64 KiB: fails after epoch 1's training
        assert main(["train", *TINY, "--epochs", "2", "--set", 'network.blocks=[{"kind":"linear","features":64}]',
                     "--checkpoint-dir", str(small / "ck"), "--json", str(small / "summary.json")]) == 2
        err = capsys.readouterr().err
        assert "No space left on device" in err and str(small / "ck" / "last.npz") in err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert (small / "summary.json").read_text() == "previous summary"
        assert sorted(p.name for p in (small / "ck").iterdir()) == []  # no half file, no temp file, no lock


def test_resume_from_nan_adam_v_is_refused_and_the_checkpoint_kept(tmp_path: Path, trained: Path, capsys) -> None:
    """The issue's case: NaN in Adam's v with consistent checksums; the message says NaN."""
    _copy_trained(_set_opt("v", np.nan, 7))(tmp_path, {"trained": trained})
    before = (tmp_path / "ck" / "last.npz").read_bytes()
    assert main([a.replace("{tmp}", str(tmp_path)) for a in _resume("--epochs", "5")]) == 2
    err = capsys.readouterr().err
    assert "NaN" in err and "optimiser state 'v'" in err and "blocks.0.weight" in err
    assert (tmp_path / "ck" / "last.npz").read_bytes() == before


def test_a_crashed_runs_lock_is_not_stale(tmp_path: Path) -> None:
    """A run killed with SIGKILL leaves its lock file; the next run takes it over."""
    code = ("import sys, os; from tess.checkpoint import CheckpointLock; "
            "CheckpointLock(sys.argv[1]).acquire(); os.kill(os.getpid(), 9)")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "ck")], check=False)
    assert (tmp_path / "ck" / ".tess-lock").exists()  # the dead run's file is still there
    with CheckpointLock(tmp_path / "ck") as lock:
        assert lock.held and json.loads((tmp_path / "ck" / ".tess-lock").read_text())["pid"] == os.getpid()
    assert not (tmp_path / "ck" / ".tess-lock").exists()


def test_a_second_writer_gets_a_clear_error_naming_the_first(tmp_path: Path, capsys) -> None:
    code = ("import sys, time; from tess.checkpoint import CheckpointLock; "
            "CheckpointLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "ck")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        assert main(["train", *TINY, "--epochs", "1", "--checkpoint-dir", str(tmp_path / "ck")]) == 2
        err = capsys.readouterr().err
        assert f"in use by process {holder.pid}" in err and "another --checkpoint-dir" in err
    finally:
        holder.kill()
        holder.wait()


def test_cnn_digits_preset_trains_on_digits(tmp_path: Path, capsys) -> None:
    assert main(["train", "--dataset", "digits", "--preset", "cnn_digits", "--epochs", "1", "--no-progress",
                 "--set", "train.T=2", "--json", str(tmp_path / "s.json")]) == 0
    assert json.loads((tmp_path / "s.json").read_text())["epochs"] == 1


def test_eval_reports_the_checkpoints_accuracy(tmp_path: Path, trained: Path, capsys) -> None:
    assert main(["eval", "--checkpoint", str(trained / "last.npz"), "--json", str(tmp_path / "e.json")]) == 0
    res = json.loads((tmp_path / "e.json").read_text())
    model = load_checkpoint(trained / "last.npz")
    _, test = load_digits()
    loss, acc = model.evaluate(test.x, test.y)
    assert res["dataset"] == "digits" and res["epoch"] == 3 and res["samples"] == len(test)
    assert res["accuracy"] == pytest.approx(acc) and res["loss"] == pytest.approx(loss) and acc > 0.3
    assert f"{100 * acc:.2f}%" in capsys.readouterr().out


def test_resume_with_as_many_epochs_trains_nothing_more(tmp_path: Path, trained: Path, capsys) -> None:
    shutil.copytree(trained, tmp_path / "ck")
    assert main(["train", *TINY, "--epochs", "3", "--checkpoint-dir", str(tmp_path / "ck"), "--resume",
                 "--json", str(tmp_path / "s.json")]) == 0
    assert json.loads((tmp_path / "s.json").read_text())["epochs"] == 3


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == \
        f"tess {tess.__version__} (TESS spec {tess.SPEC_VERSION})"


def test_thread_choice() -> None:
    env = {k: os.environ.pop(k, None) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                                 "TESS_THREADS")}
    try:
        assert resolve_threads(None) == 1 and resolve_threads(3) == 3 and resolve_threads(0) is None
        os.environ["OMP_NUM_THREADS"] = "4"
        assert resolve_threads(None) is None  # the user's environment decides
        del os.environ["OMP_NUM_THREADS"]
        os.environ["TESS_THREADS"] = "2"
        assert resolve_threads(None) == 2
        del os.environ["TESS_THREADS"]
        with _ThreadScope(2):
            assert os.environ["OPENBLAS_NUM_THREADS"] == "2" and os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
            from threadpoolctl import threadpool_info

            assert all(p["num_threads"] == 2 for p in threadpool_info() if p["user_api"] == "blas")
        assert "OPENBLAS_NUM_THREADS" not in os.environ and "OMP_WAIT_POLICY" not in os.environ
    finally:
        for k, v in env.items():
            if v is not None:
                os.environ[k] = v
