"""Readers (and writers, for tests and fixtures) of the on-disk event formats the
paper's datasets ship in.  Every reader decodes with vectorised NumPy; the only
Python loop is over AEDAT 3.1 *packets* (thousands per file), never over events.

Formats:

- **AEDAT 2.0, DVS128 addresses** (CIFAR10-DVS as published on figshare; jAER):
  ASCII header lines starting with ``#`` (the first is ``#!AER-DAT2.0``), then
  8-byte big-endian events ``uint32 address, uint32 timestamp [µs]``.  A DVS128
  address holds ``polarity = a & 1``, ``x = (a >> 1) & 0x7F``, ``y = (a >> 8) & 0x7F``;
  addresses with bit 15 set are external/special events and are dropped.
  Coordinates are returned as stored (jAER displays them mirrored; the network
  does not care, and no flip is applied).
- **AEDAT 3.1** (the original IBM DVS Gesture recordings, ``userNN_<light>.aedat``):
  header lines up to ``#!END-HEADER\\r\\n``, then packets of a 28-byte little-endian
  header ``int16 type, int16 source, int32 event_size, int32 ts_offset,
  int32 ts_overflow, int32 capacity, int32 number, int32 valid`` followed by
  ``capacity × event_size`` bytes.  Polarity packets (type 1) hold 8-byte events
  ``uint32 data, int32 timestamp``: ``valid = data & 1``, ``polarity = (data >> 1) & 1``,
  ``y = (data >> 2) & 0x7FFF``, ``x = (data >> 17) & 0x7FFF``, time
  ``(ts_overflow << 31) | timestamp`` µs.  Other packet types are skipped.
- **tonic's preprocessed DVS Gesture** (``ibmGestureTrain/userNN_<light>/<label>.npy``):
  an ``(N, 4)`` array with columns ``x, y, p, t`` and ``t`` in *milliseconds*.
- **NumPy event archives** (``.npz`` with arrays ``t, x, y, p``, t in µs — the layout
  SpikingJelly's ``events_np`` folders use, and what :func:`write_events_npz` writes).
"""

from __future__ import annotations

import io
import logging
import os
import struct
from pathlib import Path

import numpy as np

from tess_spec.errors import DataError

from .frames import Events

__all__ = [
    "read_aedat2",
    "write_aedat2",
    "read_aedat31",
    "write_aedat31",
    "read_tonic_gesture_npy",
    "write_tonic_gesture_npy",
    "read_events_npz",
    "write_events_npz",
    "read_events",
    "MAX_BACKWARD_FRACTION",
]

log = logging.getLogger(__name__)

AEDAT31_PACKET_HEADER = struct.Struct("<hhiiiiii")
"""The 28-byte AEDAT 3.1 packet header."""
AEDAT31_POLARITY = 1
"""AEDAT 3.1 event type of polarity events."""


def _skip_ascii_header(buf: bytes, end_marker: bytes | None = None) -> int:
    """Offset of the first byte after the ``#``-prefixed header lines (or after ``end_marker``)."""
    if end_marker is not None:
        i = buf.find(end_marker)
        if i < 0:
            raise DataError(f"AEDAT header end marker {end_marker!r} not found")
        return i + len(end_marker)
    pos = 0
    while pos < len(buf) and buf[pos : pos + 1] == b"#":
        nl = buf.find(b"\n", pos)
        if nl < 0:
            return len(buf)
        pos = nl + 1
    return pos


def _read_bytes(path: str | os.PathLike) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read event file {os.fspath(path)!r}: {exc}") from exc


MAX_BACKWARD_FRACTION = 0.25
"""An event file whose timestamps step *backwards* between more than this share of
consecutive events is not a recording (real recordings are time-ordered; random
bytes step back about half the time) and is refused."""

_T_LIMIT = 2**62
"""Largest |timestamp| (µs) accepted: far beyond any recording, and safe from int64 overflow."""


def _check_time_order(t: np.ndarray, where: str) -> None:
    if len(t) > 16:
        back = float(np.mean(np.diff(t) < 0))
        if back > MAX_BACKWARD_FRACTION:
            raise DataError(f"{where}: timestamps step backwards between {100 * back:.0f}% of consecutive events; "
                            "this is not an event recording (damaged or not an AEDAT file?) — replace the file")


def _column(a: np.ndarray, name: str, where: str, scale: float = 1.0) -> np.ndarray:
    """One event column as int64, after checking it is a finite 1-D number array in range."""
    a = np.asarray(a)
    if a.ndim != 1 or a.dtype.kind not in "biuf":
        raise DataError(f"{where}: event column {name!r} must be a 1-D array of numbers, got {a.dtype} {a.shape}")
    if a.size == 0:
        return np.zeros(0, np.int64)
    if a.dtype.kind == "f":
        a = np.asarray(a, np.float64) * scale
        if not np.isfinite(a).all():
            bad = int(np.flatnonzero(~np.isfinite(a))[0])
            raise DataError(f"{where}: event column {name!r} holds {a[bad]} at index {bad}; expected finite numbers")
        a = np.rint(a) if scale != 1.0 else a
    lo, hi = a.min(), a.max()
    if hi > _T_LIMIT or lo < -_T_LIMIT:
        raise DataError(f"{where}: event column {name!r} holds {hi if hi > _T_LIMIT else lo}, outside ±2**62")
    return a.astype(np.int64)


def read_aedat2(path: str | os.PathLike) -> Events:
    """Events of an AEDAT 2.0 file with DVS128 addresses (see the module docstring).

    Raises :class:`tess.errors.DataError` for a file that does not start with
    ``#!AER-DAT2`` or whose timestamps are not (mostly) increasing.
    """
    buf = _read_bytes(path)
    where = repr(os.fspath(path))
    if not buf.startswith(b"#!AER-DAT2"):
        first = buf[:16]
        raise DataError(f"{where} is not an AEDAT 2.0 file: it starts with {first!r}, not '#!AER-DAT2.0' "
                        "(damaged download? the CIFAR10-DVS files of figshare are AEDAT 2.0)")
    start = _skip_ascii_header(buf)
    n_bytes = len(buf) - start
    if n_bytes % 8:
        log.warning("%s: %d trailing bytes after the last whole event are ignored", path, n_bytes % 8)
    raw = np.frombuffer(buf, dtype=">u4", count=(n_bytes // 8) * 2, offset=start).reshape(-1, 2)
    addr = raw[:, 0].astype(np.int64)
    t = raw[:, 1].astype(np.int64)
    dvs = (addr & 0x8000) == 0
    addr, t = addr[dvs], t[dvs]
    _check_time_order(t, where)
    return Events(x=(addr >> 1) & 0x7F, y=(addr >> 8) & 0x7F, p=addr & 1, t=t)


def write_aedat2(path: str | os.PathLike, events: Events) -> None:
    """Write ``events`` (x, y < 128) as an AEDAT 2.0 DVS128 file (for tests and fixtures)."""
    x, y, p, t = (np.asarray(a, np.int64) for a in (events.x, events.y, events.p, events.t))
    if len(x) and (x.min() < 0 or x.max() > 127 or y.min() < 0 or y.max() > 127):
        raise DataError("DVS128 AEDAT 2.0 holds coordinates 0..127 only")
    addr = (y << 8) | (x << 1) | (p > 0)
    body = np.stack([addr, t], axis=1).astype(">u4").tobytes()
    header = b"#!AER-DAT2.0\r\n# This is a raw AE data file - do not edit\r\n# written by tess\r\n"
    Path(path).write_bytes(header + body)


def read_aedat31(path: str | os.PathLike) -> Events:
    """Polarity events of an AEDAT 3.1 file (see the module docstring), in file order."""
    buf = _read_bytes(path)
    if not buf.startswith(b"#!AER-DAT3"):
        raise DataError(f"{os.fspath(path)!r} is not an AEDAT 3.x file (no '#!AER-DAT3' on the first line)")
    pos = _skip_ascii_header(buf, b"#!END-HEADER\r\n")
    chunks: list[np.ndarray] = []
    hsize = AEDAT31_PACKET_HEADER.size
    while pos + hsize <= len(buf):
        etype, _src, esize, _off, overflow, capacity, number, _valid = AEDAT31_PACKET_HEADER.unpack_from(buf, pos)
        pos += hsize
        nbytes = capacity * esize
        if esize <= 0 or capacity < 0 or not 0 <= number <= capacity or overflow < 0 or pos + nbytes > len(buf):
            log.warning("%s: truncated or malformed packet at byte %d; the rest of the file is ignored", path, pos - hsize)
            break
        if etype == AEDAT31_POLARITY and esize == 8 and number > 0:
            raw = np.frombuffer(buf, dtype="<u4", count=number * 2, offset=pos).reshape(-1, 2)
            data = raw[:, 0].astype(np.int64)
            ts = raw[:, 1].astype(np.int64) & 0x7FFFFFFF
            ok = (data & 1) == 1
            chunk = np.stack([(data >> 17) & 0x7FFF, (data >> 2) & 0x7FFF, (data >> 1) & 1,
                              (int(overflow) << 31) | ts], axis=0)
            chunks.append(chunk[:, ok])
        pos += nbytes
    if not chunks:
        return Events(*(np.zeros(0, np.int64) for _ in range(4)))
    allev = np.concatenate(chunks, axis=1)
    _check_time_order(allev[3], repr(os.fspath(path)))
    return Events(x=allev[0], y=allev[1], p=allev[2], t=allev[3])


def write_aedat31(path: str | os.PathLike, events: Events, *, packet_size: int = 4096,
                  with_special_packet: bool = True) -> None:
    """Write polarity ``events`` as an AEDAT 3.1 file, ``packet_size`` events per packet
    (for tests and fixtures); optionally starts with a (skipped) special-event packet."""
    x, y, p, t = (np.asarray(a, np.int64) for a in (events.x, events.y, events.p, events.t))
    out = io.BytesIO()
    out.write(b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#Start-Time: tess fixture\r\n#!END-HEADER\r\n")
    if with_special_packet:
        out.write(AEDAT31_PACKET_HEADER.pack(0, 1, 8, 4, 0, 1, 1, 1))
        out.write(struct.pack("<Ii", 0x3, 0))
    for s in range(0, len(t), packet_size):
        sl = slice(s, s + packet_size)
        tt = t[sl]
        overflow = int(tt[0] >> 31)
        if np.any((tt >> 31) != overflow):
            raise DataError("a packet may not cross a timestamp overflow; use a smaller packet_size")
        data = (x[sl] << 17) | (y[sl] << 2) | ((p[sl] > 0).astype(np.int64) << 1) | 1
        n = len(tt)
        out.write(AEDAT31_PACKET_HEADER.pack(AEDAT31_POLARITY, 1, 8, 4, overflow, n, n, n))
        out.write(np.stack([data, tt & 0x7FFFFFFF], axis=1).astype("<u4").tobytes())
    Path(path).write_bytes(out.getvalue())


def read_tonic_gesture_npy(path: str | os.PathLike) -> Events:
    """Events of one of tonic's preprocessed DVS Gesture samples: ``(N, 4)`` columns
    ``x, y, p, t[ms]``; times are returned in µs."""
    where = repr(os.fspath(path))
    try:
        a = np.load(path, allow_pickle=False)
    except Exception as exc:  # any decoding failure of a damaged file (zip, header, pickle refusal)
        raise DataError(f"cannot read {where} as a .npy event array: {type(exc).__name__}: {exc}") from exc
    if not isinstance(a, np.ndarray):  # an .npz archive under a .npy name
        getattr(a, "close", lambda: None)()
        raise DataError(f"{where} is not a .npy array (it is {type(a).__name__}); expected an (N, 4) array")
    if a.ndim != 2 or a.shape[1] != 4:
        raise DataError(f"{where}: expected an (N, 4) array of x, y, p, t[ms], got shape {a.shape}")
    return Events(x=_column(a[:, 0], "x", where), y=_column(a[:, 1], "y", where), p=_column(a[:, 2], "p", where),
                  t=_column(a[:, 3], "t", where, scale=1000.0))


def write_tonic_gesture_npy(path: str | os.PathLike, events: Events) -> None:
    """Write ``events`` in tonic's DVS Gesture ``.npy`` layout (t rounded to ms)."""
    a = np.stack([events.x, events.y, events.p, np.asarray(events.t) / 1000.0], axis=1).astype(np.float64)
    np.save(path, a)


def read_events_npz(path: str | os.PathLike) -> Events:
    """Events of an ``.npz`` archive with arrays ``t, x, y, p`` (t in µs)."""
    where = repr(os.fspath(path))
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as exc:  # any decoding failure of a damaged file
        raise DataError(f"cannot read {where} as an .npz event archive: {type(exc).__name__}: {exc}") from exc
    if not hasattr(z, "files"):
        raise DataError(f"{where} is not an .npz archive (it holds a single array); expected arrays t, x, y, p")
    with z:
        missing = {"t", "x", "y", "p"} - set(z.files)
        if missing:
            raise DataError(f"{where} lacks event arrays {sorted(missing)} (expected t, x, y, p)")
        try:
            cols = {k: z[k] for k in ("x", "y", "p", "t")}
        except Exception as exc:  # a damaged member
            raise DataError(f"cannot read {where} as an .npz event archive: {type(exc).__name__}: {exc}") from exc
    return Events(**{k: _column(v, k, where) for k, v in cols.items()})


def write_events_npz(path: str | os.PathLike, events: Events) -> None:
    """Write ``events`` as an ``.npz`` archive with arrays ``t, x, y, p``."""
    np.savez(path, t=np.asarray(events.t, np.int64), x=np.asarray(events.x, np.int16),
             y=np.asarray(events.y, np.int16), p=np.asarray(events.p, np.int8))


def read_events(path: str | os.PathLike) -> Events:
    """Read an event file by extension: ``.aedat`` (AEDAT 2.0 or 3.1 by its first line),
    ``.npz`` (t, x, y, p) or ``.npy`` (tonic's DVS Gesture layout)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".aedat":
        try:
            with open(path, "rb") as fh:
                first = fh.read(12)
        except OSError as exc:
            raise DataError(f"cannot read event file {str(path)!r}: {exc}") from exc
        return read_aedat31(path) if first.startswith(b"#!AER-DAT3") else read_aedat2(path)
    if suffix == ".npz":
        return read_events_npz(path)
    if suffix == ".npy":
        return read_tonic_gesture_npy(path)
    raise DataError(f"unknown event file type {path.name!r}: expected .aedat, .npz or .npy")
