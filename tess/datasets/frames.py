"""Event streams → event frames, vectorised.

An event camera emits events ``(x, y, p, t)``: pixel column ``x``, row ``y``,
polarity ``p`` (OFF = 0, ON = 1) and time ``t`` in microseconds.  The paper's
networks see *frames*: for each of T time bins and each polarity, the number of
events that fell on each (downsampled) pixel,

    frame[k, p, i, j] = #{ events e : bin(e) = k, p_e = p, ⌊y_e·H/H_s⌋ = i, ⌊x_e·W/W_s⌋ = j }

with ``(H_s, W_s)`` the sensor size and ``(H, W)`` the frame size.  The time bin
of an event is either a fixed-width window (``split_by="time"``, e.g. 75 ms per
frame for DVS Gesture: ``bin = ⌊(t - t₀) / Δ⌋``, events with ``bin ≥ T`` dropped)
or an equal share of the events (``split_by="number"``: the i-th of n
time-ordered events goes to ``bin = ⌊i·T / n⌋``).  The count is one
``np.bincount`` over a flat index — no Python loop over events.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tess_spec.errors import ConfigError, DataError

__all__ = ["Events", "events_to_frames", "FRAME_DTYPE"]

FRAME_DTYPE = np.uint16
"""Dtype of event frames (event counts, saturating at 65,535); backends cast to their float dtype."""


@dataclass(frozen=True)
class Events:
    """One event stream as four equally long 1-D arrays.

    Attributes:
        x: pixel column, ``0 ≤ x < W_s`` (int64).
        y: pixel row, ``0 ≤ y < H_s`` (int64).
        p: polarity 0 (OFF) or 1 (ON) (int64).
        t: timestamp in microseconds (int64), non-decreasing in recordings.
    """

    x: np.ndarray
    y: np.ndarray
    p: np.ndarray
    t: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.t)
        for name in ("x", "y", "p"):
            if len(getattr(self, name)) != n:
                raise DataError(f"event arrays differ in length: len(t)={n}, len({name})={len(getattr(self, name))}")

    def __len__(self) -> int:
        return len(self.t)

    def select(self, mask: np.ndarray) -> "Events":
        """The events where the boolean ``mask`` is true."""
        return Events(self.x[mask], self.y[mask], self.p[mask], self.t[mask])


def events_to_frames(
    events: Events,
    *,
    T: int,
    sensor_size: tuple[int, int] = (128, 128),
    frame_size: tuple[int, int] = (32, 32),
    split_by: str = "time",
    bin_us: float | None = None,
    t_start: int | None = None,
) -> np.ndarray:
    """Count events into ``(T, 2, H, W)`` frames (see the module docstring).

    Args:
        events: the stream.
        T: number of frames.
        sensor_size: ``(H_s, W_s)`` of the sensor; events outside are dropped.
        frame_size: ``(H, W)`` of the frames (integer-floor rescaling of coordinates).
        split_by: ``"time"`` (fixed windows of ``bin_us`` µs from ``t_start``; with
            ``bin_us=None`` the span from ``t_start`` to the last event is cut into T
            equal windows) or ``"number"`` (T equal shares of the events in time order).
        bin_us: window length in microseconds for ``split_by="time"``.
        t_start: start of the first window; default the first event's time.

    Returns:
        ``(T, 2, H, W)`` array of :data:`FRAME_DTYPE` event counts (channel 0 = OFF, 1 = ON).
    """
    if not isinstance(T, (int, np.integer)) or T < 1:
        raise ConfigError(f"T={T!r} is invalid: expected a positive integer number of frames")
    if split_by not in ("time", "number"):
        raise ConfigError(f"split_by={split_by!r} is invalid: expected 'time' or 'number'")
    if bin_us is not None and not bin_us > 0:
        raise ConfigError(f"bin_us={bin_us!r} is invalid: expected a positive window length in microseconds")
    Hs, Ws = (int(v) for v in sensor_size)
    H, W = (int(v) for v in frame_size)
    if min(Hs, Ws, H, W) < 1:
        raise ConfigError(f"sensor_size={sensor_size!r} and frame_size={frame_size!r} must be positive")
    out_len = int(T) * 2 * H * W
    if len(events) == 0:
        return np.zeros((T, 2, H, W), FRAME_DTYPE)
    x = np.asarray(events.x, np.int64)
    y = np.asarray(events.y, np.int64)
    p = (np.asarray(events.p) > 0).astype(np.int64)
    t = np.asarray(events.t, np.int64)
    if split_by == "number":
        order = np.argsort(t, kind="stable")
        x, y, p, t = x[order], y[order], p[order], t[order]
        k = np.arange(len(t), dtype=np.int64) * T // len(t)
    else:
        t0 = int(t.min()) if t_start is None else int(t_start)
        lo, hi = int(t.min()) - t0, int(t.max()) - t0  # Python ints: no overflow
        if bin_us is None:
            span = hi + 1
            if lo < 0 or span * int(T) >= 2**63:
                raise DataError(f"event times span {lo}..{hi} µs from t_start={t0}: too long to cut into {T} "
                                "windows (damaged timestamps?)")
            k = (t - t0) * T // max(span, 1)
        else:
            if max(abs(lo), abs(hi)) >= 2**62:
                raise DataError(f"event times {lo}..{hi} µs from t_start={t0} are out of range (damaged timestamps?)")
            k = np.clip(np.floor((t - t0) / float(bin_us)), -1, T).astype(np.int64)
    keep = (k >= 0) & (k < T) & (x >= 0) & (x < Ws) & (y >= 0) & (y < Hs)
    xi = x[keep] * W // Ws
    yi = y[keep] * H // Hs
    flat = ((k[keep] * 2 + p[keep]) * H + yi) * W + xi
    counts = np.bincount(flat, minlength=out_len)
    return np.minimum(counts, np.iinfo(FRAME_DTYPE).max).astype(FRAME_DTYPE).reshape(T, 2, H, W)
