"""Portable checkpoints: one backend-neutral ``.npz`` file per checkpoint.

Layout (``FORMAT = "tess-checkpoint"``, ``FORMAT_VERSION = 1``): a NumPy ``.npz``
(zip) archive, read with ``allow_pickle=False``, holding

- ``__header__``: UTF-8 JSON as a ``uint8`` array — ``format``, ``format_version``,
  ``spec_version``, ``tess_version``, ``config`` (:func:`tess_spec.to_dict`, including
  ``network`` and ``profile``), ``profile``, ``epoch``, ``dtype``, ``backend`` (the one
  that wrote it; informative only), ``schedule`` (``lr``, ``best`` — ``null`` for +∞ —,
  ``bad_epochs``), ``optimizer`` (``name``, ``step``), ``rng`` (the NumPy generator's
  ``bit_generator.state``), ``history`` (per-epoch metrics), ``extra`` (caller data) and
  ``arrays``: for every array its shape, dtype and SHA-256;
- ``params/<name>``: parameters (``blocks.{i}.weight`` …, :func:`tess_spec.param_names`);
- ``opt/<slot>/<name>``: optimiser moments (``m``, ``v`` for Adam; ``buf`` for SGD).

Arrays keep the dtype they were trained in, so a float64 network moved between
backends keeps every bit.  Files are written to a temporary file in the target
folder, flushed, fsynced and moved into place with :func:`os.replace`: a crash
never leaves a half-written checkpoint.  Reading checks the zip, the header and
every array's shape, dtype and checksum, and the network against the model,
before anything is assigned: a corrupt, truncated or mismatched file raises
:class:`tess.errors.CheckpointError` and never yields a half-loaded model.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tess_spec import SPEC_VERSION, TessConfig, from_dict, to_dict
from tess_spec.errors import CheckpointError, TessError

from .backend import Backend
from .datasets.cache import atomic_write_npz
from .model import Model

__all__ = ["save_checkpoint", "read_checkpoint", "load_checkpoint", "restore_checkpoint", "Checkpoint",
           "FORMAT", "FORMAT_VERSION"]

FORMAT = "tess-checkpoint"
"""The ``format`` value in every checkpoint header."""
FORMAT_VERSION = 1
"""Version of the checkpoint layout this module writes and reads."""

_HEADER = "__header__"


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


def _sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _json_safe_float(v: float) -> float | None:
    return None if v == float("inf") else float(v)


def save_checkpoint(model: Model, path: str | os.PathLike, *, extra: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s full training state to ``path`` (atomically); returns the path.

    ``extra`` is any JSON-serialisable data stored in the header (e.g. CLI arguments).
    """
    state = model.state_dict()
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
        "epoch": state["epoch"],
        "dtype": state["dtype"],
        "backend": model.backend.name,
        "schedule": {"lr": float(sch["lr"]), "best": _json_safe_float(sch["best"]), "bad_epochs": int(sch["bad_epochs"])},
        "optimizer": {"name": state["config"].optimizer.name, "step": int(opt["step"])},
        "rng": state["rng"],
        "history": state["history"],
        "extra": extra or {},
        "arrays": {k: {"shape": list(v.shape), "dtype": v.dtype.str, "sha256": _sha256(v)} for k, v in arrays.items()},
    }
    try:
        blob = json.dumps(header, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"the checkpoint header is not JSON-serialisable ({exc}); check `extra`") from exc
    arrays[_HEADER] = np.frombuffer(blob, dtype=np.uint8)
    path = Path(path)
    atomic_write_npz(path, arrays)
    return path


def _tess_version() -> str:
    from . import __version__

    return __version__


def read_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read and verify a checkpoint file (zip integrity, header, checksums, config).

    Raises :class:`tess.errors.CheckpointError` naming the file and the problem.
    """
    path = Path(path)
    where = f"checkpoint {str(path)!r}"
    if not path.is_file():
        raise CheckpointError(f"{where} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            names = set(z.files)
            if _HEADER not in names:
                raise CheckpointError(f"{where} has no {_HEADER!r} entry: it is not a tess checkpoint")
            header = json.loads(z[_HEADER].tobytes().decode("utf-8"))
            if not isinstance(header, dict) or header.get("format") != FORMAT:
                raise CheckpointError(f"{where} is not a tess checkpoint (format {header.get('format')!r})"
                                      if isinstance(header, dict) else f"{where} has a malformed header")
            if header.get("format_version") != FORMAT_VERSION:
                raise CheckpointError(f"{where} has format version {header.get('format_version')!r}; this tess "
                                      f"reads version {FORMAT_VERSION}")
            listed = header.get("arrays", {})
            if set(listed) != names - {_HEADER}:
                raise CheckpointError(f"{where} is incomplete: its header lists {len(listed)} arrays, the file "
                                      f"holds {len(names) - 1}")
            arrays: dict[str, np.ndarray] = {}
            for name, meta in listed.items():
                a = z[name]
                if list(a.shape) != meta["shape"] or a.dtype.str != meta["dtype"] or _sha256(a) != meta["sha256"]:
                    raise CheckpointError(f"{where} is corrupt: array {name!r} does not match its recorded "
                                          "shape, dtype or checksum")
                arrays[name] = a
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError, TypeError, UnicodeDecodeError,
            json.JSONDecodeError) as exc:
        raise CheckpointError(f"{where} is corrupt or truncated ({type(exc).__name__}: {exc}); "
                              "use an earlier checkpoint or train anew") from exc
    try:
        config = from_dict(header["config"])
        if header.get("spec_version", "").split(".")[0] != SPEC_VERSION.split(".")[0]:
            raise CheckpointError(f"{where} was written for spec {header.get('spec_version')!r}, "
                                  f"incompatible with this spec {SPEC_VERSION!r}")
        params = {k[len("params/"):]: v for k, v in arrays.items() if k.startswith("params/")}
        opt: dict[str, Any] = {"step": int(header["optimizer"]["step"])}
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
    except (TessError, KeyError, TypeError, ValueError, AttributeError) as exc:
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
    if isinstance(backend, str):
        backend_options.setdefault("dtype", ckpt.state["dtype"])
    model = Model(cfg, backend, params=ckpt.state["params"], **backend_options)
    model.load_state_dict(ckpt.state)
    return model


def restore_checkpoint(model: Model, path: str | os.PathLike) -> Checkpoint:
    """Load ``path`` into an existing ``model`` (all or nothing); returns the checkpoint read."""
    ckpt = read_checkpoint(path)
    model.load_state_dict(ckpt.state)
    return ckpt
