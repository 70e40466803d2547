"""Portable checkpoints: one backend-neutral ``.npz`` file per checkpoint.

Layout (``FORMAT = "tess-checkpoint"``, ``FORMAT_VERSION = 1``): a NumPy ``.npz``
(zip) archive, read with ``allow_pickle=False``, holding

- ``__header__``: UTF-8 JSON as a ``uint8`` array — ``format``, ``format_version``,
  ``spec_version``, ``tess_version``, ``config`` (:func:`tess_spec.to_dict`, including
  ``network`` and ``profile``), ``profile``, ``learning_signal`` (the config's, recorded
  also where the config leaves the default ``"lsg"`` out), ``epoch``, ``dtype``, ``backend`` (the one
  that wrote it; informative only), ``schedule`` (``lr``, ``best`` — ``null`` for +∞ —,
  ``bad_epochs``), ``optimizer`` (``name``, ``step``), ``rng`` (the NumPy generator's
  ``bit_generator.state``), ``history`` (per-epoch metrics), ``extra`` (caller data) and
  ``arrays``: for every array its shape, dtype and SHA-256;
- ``params/<name>``: parameters (``blocks.{i}.weight`` …, :func:`tess_spec.param_names`);
- ``opt/<slot>/<name>``: optimiser moments (``m``, ``v`` for Adam; ``buf`` for SGD).

Arrays keep the dtype they were trained in, so a float64 network moved between
backends keeps every bit.  Files are written by :func:`tess_spec.atomic.atomic_write`
(a temporary file in the target folder, flushed, fsynced and moved into place with
:func:`os.replace`): a crash or a full disk never leaves a half-written checkpoint,
and a target that is a symbolic link or not a regular file is refused.  A model
whose parameters or optimiser moments hold NaN or Inf is never saved.  Reading
checks the zip, the header and every array's shape, dtype and checksum; restoring
(:meth:`tess.Model.load_state_dict`) checks every value it restores — finite
parameters and moments, Adam's ``v`` ≥ 0, the step and epoch counters, the
schedule (``lr`` finite and > 0), the generator state, the history — and the
network against the model, before anything is assigned: a corrupt, truncated or
mismatched file raises :class:`tess.errors.CheckpointError` and never yields a
half-loaded model.

:class:`CheckpointLock` keeps two runs from writing one checkpoint folder at once.
"""

from __future__ import annotations

import datetime
import errno
import json
import logging
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tess_spec import SPEC_VERSION, TessConfig, from_dict, to_dict
from tess_spec.errors import CheckpointError, OutputError, TessError

from .archive import read_archive, write_archive
from .backend import Backend
from .model import Model, _network_difference, _validated_state

__all__ = ["save_checkpoint", "read_checkpoint", "load_checkpoint", "restore_checkpoint", "Checkpoint",
           "CheckpointLock", "FORMAT", "FORMAT_VERSION", "LOCK_NAME"]

log = logging.getLogger(__name__)

FORMAT = "tess-checkpoint"
"""The ``format`` value in every checkpoint header."""
FORMAT_VERSION = 1
"""Version of the checkpoint layout this module writes and reads."""



@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint read and verified from disk.

    Attributes:
        header: the decoded JSON header.
        state: a :meth:`tess.Model.state_dict`-shaped dict (NumPy arrays, a :class:`TessConfig`).
    """

    header: dict[str, Any]
    state: dict[str, Any]

    @property
    def config(self) -> TessConfig:
        """The config the checkpoint was trained with."""
        return self.state["config"]

    @property
    def epoch(self) -> int:
        """Epochs completed when it was written."""
        return int(self.state["epoch"])


def _json_safe_float(v: float) -> float | None:
    return None if v == float("inf") else float(v)


def save_checkpoint(model: Model, path: str | os.PathLike, *, extra: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s full training state to ``path`` (atomically); returns the path.

    ``extra`` is any JSON-serialisable data stored in the header (e.g. CLI arguments).
    Raises :class:`tess.errors.CheckpointError` (and writes nothing) if the state would
    not load back — e.g. a parameter or optimiser moment holds NaN or Inf — and
    :class:`tess.errors.OutputError` if the file cannot be written.
    """
    state = model.state_dict()
    try:
        _validated_state(model.config, state, state["dtype"])
    except CheckpointError as exc:
        raise CheckpointError(f"refusing to write checkpoint {str(path)!r}: {exc}") from exc
    arrays: dict[str, np.ndarray] = {f"params/{k}": np.ascontiguousarray(v) for k, v in state["params"].items()}
    opt = state["opt_state"]
    for slot, values in opt.items():
        if slot != "step":
            arrays.update({f"opt/{slot}/{k}": np.ascontiguousarray(v) for k, v in values.items()})
    sch = state["schedule"]
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "spec_version": SPEC_VERSION,
        "tess_version": _tess_version(),
        "config": to_dict(state["config"]),
        "profile": state["config"].profile,
        "learning_signal": state["config"].learning_signal,
        "epoch": state["epoch"],
        "dtype": state["dtype"],
        "backend": model.backend.name,
        "schedule": {"lr": float(sch["lr"]), "best": _json_safe_float(sch["best"]), "bad_epochs": int(sch["bad_epochs"])},
        "optimizer": {"name": state["config"].optimizer.name, "step": int(opt["step"])},
        "rng": state["rng"],
        "history": state["history"],
        "extra": extra or {},
    }
    return write_archive(path, header, arrays, what="checkpoint", hint="check `extra`")


def _tess_version() -> str:
    from . import __version__

    return __version__


def read_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read and verify a checkpoint file (zip integrity, header, checksums, config).

    Raises :class:`tess.errors.CheckpointError` naming the file and the problem.
    """
    where = f"checkpoint {str(path)!r}"
    header, arrays = read_archive(path, fmt=FORMAT, version=FORMAT_VERSION, what="checkpoint",
                                  advice="use an earlier checkpoint or train anew")
    try:
        config = from_dict(header["config"])
        if header.get("spec_version", "").split(".")[0] != SPEC_VERSION.split(".")[0]:
            raise CheckpointError(f"{where} was written for spec {header.get('spec_version')!r}, "
                                  f"incompatible with this spec {SPEC_VERSION!r}")
        params = {k[len("params/"):]: v for k, v in arrays.items() if k.startswith("params/")}
        opt: dict[str, Any] = {"step": header["optimizer"]["step"]}
        for k, v in arrays.items():
            if k.startswith("opt/"):
                _, slot, name = k.split("/", 2)
                opt.setdefault(slot, {})[name] = v
        sch = header["schedule"]
        state = {
            "config": config,
            "params": params,
            "opt_state": opt,
            "schedule": {"lr": sch["lr"], "best": float("inf") if sch["best"] is None else sch["best"],
                         "bad_epochs": sch["bad_epochs"]},
            "epoch": header["epoch"],
            "rng": header["rng"],
            "history": header.get("history", []),
            "dtype": header.get("dtype", "float64"),
        }
    except CheckpointError:
        raise
    except (TessError, KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise CheckpointError(f"{where} has an invalid header ({type(exc).__name__}: {exc})") from exc
    return Checkpoint(header, state)


def load_checkpoint(path: str | os.PathLike, backend: Backend | str = "numpy", *,
                    config: TessConfig | None = None, **backend_options: Any) -> Model:
    """A :class:`tess.Model` on ``backend`` restored from ``path``, ready to predict or train on.

    ``config`` (default: the checkpoint's) may change training settings such as
    ``train.epochs`` but must describe the same network.  With a backend name the
    dtype defaults to the checkpoint's.
    """
    ckpt = read_checkpoint(path)
    cfg = ckpt.config if config is None else config
    diff = _network_difference(cfg, ckpt.config)
    if diff:
        raise CheckpointError(f"checkpoint {str(path)!r} was made for a different network ({diff}); load it "
                              "without config= (it carries its own) or train anew")
    if isinstance(backend, str):
        dtype = ckpt.state["dtype"]
        backend_options.setdefault("dtype", dtype if dtype in ("float32", "float64") else "float64")
    model = Model(cfg, backend, **backend_options)
    model.load_state_dict(ckpt.state)  # validates every value before assigning anything
    return model


def restore_checkpoint(model: Model, path: str | os.PathLike) -> Checkpoint:
    """Load ``path`` into an existing ``model`` (all or nothing); returns the checkpoint read."""
    ckpt = read_checkpoint(path)
    model.load_state_dict(ckpt.state)
    return ckpt


LOCK_NAME = ".tess-lock"
"""Name of the lock file :class:`CheckpointLock` keeps in a checkpoint folder."""


class CheckpointLock:
    """An exclusive lock on a checkpoint folder, held while a run writes it.

    ``with CheckpointLock(folder): ...`` creates ``folder/.tess-lock`` holding the
    owner's pid, host, start time and command line, and takes an exclusive
    ``flock`` on it.  A second process (or a second lock in this one) gets
    :class:`tess.errors.CheckpointError` naming the owner.  The kernel releases the
    ``flock`` when the owner exits in any way — even ``kill -9`` or a power cut of a
    local disk — so a crashed run never leaves a stale lock: the next run finds the
    file unlocked and takes it over (the old pid is only shown in messages).
    Where ``flock`` is unsupported (some network file systems) the lock falls back to
    checking whether the recorded pid still runs on this host.  The lock file is
    removed on release.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> "CheckpointLock":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def _owner(self) -> dict[str, Any]:
        try:
            info = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError, UnicodeDecodeError):
            return {}
        return info if isinstance(info, dict) else {}

    def _busy(self, info: dict[str, Any]) -> CheckpointError:
        who = (f"process {info.get('pid', '?')} on {info.get('host', '?')} (started {info.get('started', '?')}: "
               f"{info.get('command', '?')})") if info else "another process"
        return CheckpointError(
            f"checkpoint folder {str(self.folder)!r} is in use by {who}; two runs writing one folder would overwrite "
            f"each other's checkpoints and metrics. Wait for that run, or pass another --checkpoint-dir. (The lock "
            f"{str(self.path)!r} is released automatically when its process ends.)"
        )

    def acquire(self) -> None:
        """Take the lock or raise :class:`tess.errors.CheckpointError` naming its holder."""
        if self._fd is not None:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create checkpoint folder {str(self.folder)!r}: {exc.strerror or exc}") from exc
        for _ in range(10):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise OutputError(f"cannot create the lock file {str(self.path)!r}: {exc.strerror or exc}") from exc
            try:
                locked = _flock(fd)
            except BaseException:
                os.close(fd)
                raise
            if locked is False:
                os.close(fd)
                raise self._busy(self._owner())
            if locked is None and _pid_alive(self._owner()):  # no flock here: fall back to the recorded pid
                os.close(fd)
                raise self._busy(self._owner())
            try:  # the file we locked must still be the one at the path (not unlinked by a releasing owner)
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            stale = self._owner()
            if stale.get("pid") not in (None, os.getpid()):
                log.warning("taking over %s from process %s, which no longer holds it (it ended without "
                            "releasing the lock)", self.path, stale.get("pid"))
            info = {"pid": os.getpid(), "host": socket.gethostname(), "start": _start_time(os.getpid()),
                    "started": datetime.datetime.now().isoformat(timespec="seconds"),
                    "command": " ".join(sys.argv)[:300]}
            try:
                os.ftruncate(fd, 0)
                os.write(fd, json.dumps(info).encode("utf-8"))
            except OSError as exc:
                os.close(fd)
                raise OutputError(f"cannot write the lock file {str(self.path)!r}: {exc.strerror or exc}") from exc
            self._fd = fd
            return
        raise self._busy(self._owner())  # pragma: no cover - ten lost races in a row

    def release(self) -> None:
        """Remove the lock file and release the lock (no-op if not held)."""
        if self._fd is None:
            return
        try:
            if os.fstat(self._fd).st_ino == os.stat(self.path).st_ino:
                os.unlink(self.path)
        except OSError:
            pass
        finally:
            os.close(self._fd)
            self._fd = None


def _flock(fd: int) -> bool | None:
    """``True`` if an exclusive flock was taken, ``False`` if another holds it, ``None``
    if this platform or file system has no flock."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        return None  # ENOLCK / EOPNOTSUPP: no locks on this file system
    return True


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _pid_alive(info: dict[str, Any]) -> bool:
    """Whether the lock owner recorded in ``info`` still runs (used only without flock)."""
    pid = info.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    if info.get("host") != socket.gethostname():
        return True  # cannot tell: assume it runs
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    start = info.get("start")
    return start is None or _start_time(pid) in (None, start)
