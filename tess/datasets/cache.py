"""On-disk cache of converted frames, written atomically, and the progress bar of
conversions.

A cache entry is one ``.npz`` named by a hash of the loader, its parameters and
the source files' names, sizes and modification times, so any change of the
inputs or of the conversion settings makes a new entry.  Entries are written with
:func:`tess_spec.atomic.atomic_write` (a temporary file in the same folder moved
into place with :func:`os.replace`): an interrupted conversion never leaves a
half-written cache file.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence, TypeVar

import numpy as np

from tess_spec.atomic import atomic_write

__all__ = ["cache_key", "load_cached", "save_cached", "progress_iter", "atomic_write_npz", "CACHE_FORMAT"]

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
"""Version of the cache layout; bump it when the conversion changes."""

_T = TypeVar("_T")


def cache_key(loader: str, params: dict[str, Any], files: Sequence[Path], root: Path) -> str:
    """A hex digest of the loader name, its parameters and ``(relative path, size, mtime)`` of each file."""
    h = hashlib.sha256()
    h.update(json.dumps({"format": CACHE_FORMAT, "loader": loader, "params": params}, sort_keys=True).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(root).as_posix()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def atomic_write_npz(path: Path, arrays: dict[str, np.ndarray], *, what: str = "cache file") -> None:
    """Write ``arrays`` to ``path`` as ``.npz`` with :func:`tess_spec.atomic.atomic_write`
    (temporary file, fsync, ``os.replace``; non-regular targets refused; every
    ``OSError`` becomes :class:`tess.errors.OutputError`)."""
    atomic_write(path, lambda fh: np.savez(fh, **arrays), what=what)


def load_cached(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of a cache entry, or ``None`` if absent or unreadable (then it is rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as exc:  # a damaged cache entry is rebuilt, never trusted
        log.warning("ignoring unreadable cache file %s (%s); converting again", path, exc)
        return None


def save_cached(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Store a cache entry; a failure (read-only folder, full disk) is logged, not raised."""
    try:
        atomic_write_npz(path, arrays)
        log.info("cached converted frames in %s", path)
    except OSError as exc:
        log.warning("could not write the frame cache %s (%s); continuing without it", path, exc)


def progress_iter(items: Iterable[_T], *, total: int | None = None, desc: str = "",
                  enabled: bool | None = None) -> Iterator[_T]:
    """Iterate with a tqdm bar on stderr: ``enabled=None`` shows it only on a terminal."""
    from tqdm import tqdm

    yield from tqdm(items, total=total, desc=desc, unit="file", disable=None if enabled is None else not enabled,
                    leave=False)
