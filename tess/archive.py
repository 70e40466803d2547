"""The verified ``.npz`` archive that checkpoints and stream states are written in.

One file: every array under its name, plus a JSON header (entry ``__header__``, UTF-8 bytes)
that records the file's format and version and, per array, its shape, dtype and SHA-256.
:func:`write_archive` writes it atomically (:func:`tess_spec.atomic.atomic_write`);
:func:`read_archive` checks the zip, the format, the version, that the header lists exactly
the arrays the file holds, and every array against its record, before anything is used.
:mod:`tess.checkpoint` (training state) and :mod:`tess.stream.io` (a streaming learner's
state) differ only in the header's content.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from tess_spec.atomic import atomic_write
from tess_spec.errors import CheckpointError

__all__ = ["HEADER", "sha256", "write_archive", "read_archive"]

HEADER = "__header__"
"""The archive entry holding the JSON header."""


def sha256(a: np.ndarray) -> str:
    """Hex SHA-256 of ``a``'s bytes in C order (what the header records per array)."""
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def write_archive(path: str | os.PathLike, header: dict[str, Any], arrays: dict[str, np.ndarray], *,
                  what: str, hint: str = "") -> Path:
    """Write ``arrays`` and ``header`` (plus each array's shape, dtype and checksum, under
    ``"arrays"``) to ``path`` atomically; ``what`` names the file in errors ("checkpoint"),
    ``hint`` is appended to the error of a header that is not JSON-serialisable.

    Raises :class:`tess.errors.CheckpointError` (nothing written) if the header is not
    JSON-serialisable, :class:`tess.errors.OutputError` if the file cannot be written."""
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    header = {**header, "arrays": {k: {"shape": list(v.shape), "dtype": v.dtype.str, "sha256": sha256(v)}
                                   for k, v in arrays.items()}}
    try:
        blob = json.dumps(header, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"the {what} header is not JSON-serialisable ({exc})" + (f"; {hint}" if hint else "")) \
            from exc
    arrays[HEADER] = np.frombuffer(blob, dtype=np.uint8)
    path = Path(path)
    atomic_write(path, lambda fh: np.savez(fh, **arrays), what=what)
    return path


def read_archive(path: str | os.PathLike, *, fmt: str, version: int, what: str,
                 advice: str = "") -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(header, arrays)`` of an archive :func:`write_archive` wrote with ``header["format"] ==
    fmt`` and ``header["format_version"] == version``, every array verified.

    ``what`` names the file in messages ("checkpoint", "stream state"); ``advice`` is appended
    to the message of a corrupt or truncated file.  Raises :class:`tess.errors.CheckpointError`
    naming the file and the problem."""
    path = Path(path)
    where = f"{what} {str(path)!r}"
    if not path.is_file():
        raise CheckpointError(f"{where} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            names = set(z.files)
            if HEADER not in names:
                raise CheckpointError(f"{where} has no {HEADER!r} entry: it is not a tess {what}")
            header = json.loads(z[HEADER].tobytes().decode("utf-8"))
            if not isinstance(header, dict):
                raise CheckpointError(f"{where} has a malformed header")
            if header.get("format") != fmt:
                raise CheckpointError(f"{where} is not a tess {what} (format {header.get('format')!r})")
            if header.get("format_version") != version:
                raise CheckpointError(f"{where} has format version {header.get('format_version')!r}; this tess "
                                      f"reads version {version}")
            listed = header.get("arrays", {})
            if set(listed) != names - {HEADER}:
                raise CheckpointError(f"{where} is incomplete: its header lists {len(listed)} arrays, the file "
                                      f"holds {len(names) - 1}")
            arrays: dict[str, np.ndarray] = {}
            for name, meta in listed.items():
                a = z[name]
                if list(a.shape) != meta["shape"] or a.dtype.str != meta["dtype"] or sha256(a) != meta["sha256"]:
                    raise CheckpointError(f"{where} is corrupt: array {name!r} does not match its recorded "
                                          "shape, dtype or checksum")
                arrays[name] = a
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError, TypeError, AttributeError,
            UnicodeDecodeError, json.JSONDecodeError, MemoryError) as exc:
        raise CheckpointError(f"{where} is corrupt or truncated ({type(exc).__name__}: {exc})"
                              + (f"; {advice}" if advice else "")) from exc
    return header, arrays
