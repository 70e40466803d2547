"""Synthetic event datasets in which only the timing of events decides the class.

* ``events`` (:func:`load_synthetic_events`): the order of three patterns.
* ``order`` (:func:`load_temporal_order`): the order and spacing of two pulses — the
  temporal-order task of the accuracy benchmark.

The ``events`` task, in detail:

Three fixed spatial patterns A, B, C (sets of pixels in the ON channel) each
fire once, as a burst of ``burst`` consecutive frames, one after another; the
class is the permutation (6 classes: ABC, ACB, BAC, BCA, CAB, CBA).  Every
sample therefore contains the same events up to timing, so its time-collapsed
input carries no information about the class beyond noise: a model fed
``Σ_t x[t]`` stays near chance (1/6), while a network with temporal dynamics
can learn the order.  Pixel dropout, background noise events in both
channels and a random onset jitter make samples differ.

Everything is generated offline from the spec's single NumPy generator.
"""

from __future__ import annotations

import itertools

import numpy as np

from tess_spec.errors import ConfigError

from . import Dataset

__all__ = ["load_synthetic_events", "ORDERS", "make_patterns", "generate_events", "ORDER_FRAME_SHAPE", "ORDER_GAPS",
           "ORDER_CLASSES", "order_patterns", "generate_temporal_order", "load_temporal_order"]

ORDERS: tuple[tuple[int, int, int], ...] = tuple(itertools.permutations(range(3)))  # type: ignore[assignment]
"""Class c ↔ the order in which patterns A=0, B=1, C=2 fire."""

FRAME_SHAPE = (2, 8, 8)
PATTERN_SEED = 7
"""The three patterns are fixed across splits and seeds (drawn from this seed)."""


def make_patterns(pixels: int = 10) -> np.ndarray:
    """Three disjoint boolean ``8×8`` patterns of ``pixels`` pixels each, ``(3, 8, 8)``."""
    rng = np.random.default_rng(PATTERN_SEED)
    chosen = rng.permutation(64)[: 3 * pixels].reshape(3, pixels)
    pats = np.zeros((3, 64), dtype=bool)
    for i in range(3):
        pats[i, chosen[i]] = True
    return pats.reshape(3, 8, 8)


def generate_events(
    n: int,
    rng: np.random.Generator,
    *,
    T: int = 8,
    burst: int = 2,
    keep: float = 0.8,
    noise: float = 0.02,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` samples ``(n, T, 2, 8, 8)`` float32 in {0, 1} and labels ``(n,)``.

    Pattern ``ORDERS[y][k]`` fires in the ON channel during frames
    ``s + k·burst … s + (k+1)·burst - 1`` with onset ``s`` uniform in
    ``[0, T - 3·burst]``; each of its pixels is present with probability ``keep``
    per frame; background events appear with probability ``noise`` per pixel,
    channel and frame.
    """
    if T < 3 * burst:
        raise ConfigError(f"T={T} is too short: three bursts of {burst} frames need T >= {3 * burst}")
    pats = make_patterns()
    y = rng.integers(0, len(ORDERS), size=n)
    onset = rng.integers(0, T - 3 * burst + 1, size=n)
    order = np.asarray(ORDERS)[y]  # (n, 3)
    t = np.arange(T)
    slot = (t[None, :] - onset[:, None]) // burst  # (n, T): which burst is active
    active = (slot >= 0) & (slot < 3)
    which = np.take_along_axis(order, np.clip(slot, 0, 2), axis=1)  # (n, T) pattern index
    frames = np.zeros((n, T, *FRAME_SHAPE), dtype=np.float32)
    on = pats[which] & active[:, :, None, None]  # (n, T, 8, 8)
    on &= rng.random(on.shape) < keep
    frames[:, :, 0] = on
    frames = np.maximum(frames, (rng.random(frames.shape) < noise).astype(np.float32))
    return frames, y.astype(np.int64)


def load_synthetic_events(
    *,
    shape: str = "flat",
    n_train: int = 1200,
    n_test: int = 300,
    T: int = 8,
    seed: int = 0,
) -> tuple[Dataset, Dataset]:
    """``(train, test)`` of the order-coded event dataset, as sequences.

    ``shape="flat"``: ``x`` is ``(N, T, 128)``; ``"image"``: ``(N, T, 2, 8, 8)``.
    """
    if shape not in ("flat", "image"):
        raise ConfigError(f"shape={shape!r} is invalid: expected 'flat' or 'image'")
    rng = np.random.default_rng(seed)
    xtr, ytr = generate_events(n_train, rng, T=T)
    xte, yte = generate_events(n_test, rng, T=T)
    if shape == "flat":
        xtr, xte = xtr.reshape(n_train, T, -1), xte.reshape(n_test, T, -1)
    return (
        Dataset(xtr, ytr, len(ORDERS), "events/train", sequence=True),
        Dataset(xte, yte, len(ORDERS), "events/test", sequence=True),
    )


# --------------------------------------------------------------------------- temporal order
ORDER_FRAME_SHAPE = (2, 4, 4)
"""Frame shape of the temporal-order task (32 inputs: two channels of 4×4)."""
ORDER_GAPS = (2, 5)
"""The two spacings (frames from the first pulse's onset to the second's) of the temporal-order task."""
ORDER_CLASSES: tuple[tuple[int, int], ...] = ((0, 0), (0, 1), (1, 0), (1, 1))
"""Class c ↔ ``(first, gap)``: which pulse comes first (0: A then B, 1: B then A) and which
of :data:`ORDER_GAPS` separates them."""
ORDER_PATTERN_SEED = 11
"""The two pulse patterns are fixed across splits and seeds (drawn from this seed)."""


def order_patterns(pixels: int = 8) -> np.ndarray:
    """The two disjoint boolean pulse patterns A, B of the temporal-order task,
    ``(2, *ORDER_FRAME_SHAPE)``, ``pixels`` input elements each."""
    rng = np.random.default_rng(ORDER_PATTERN_SEED)
    size = int(np.prod(ORDER_FRAME_SHAPE))
    chosen = rng.permutation(size)[: 2 * pixels].reshape(2, pixels)
    pats = np.zeros((2, size), dtype=bool)
    for i in range(2):
        pats[i, chosen[i]] = True
    return pats.reshape(2, *ORDER_FRAME_SHAPE)


def generate_temporal_order(
    n: int,
    rng: np.random.Generator,
    *,
    T: int = 12,
    gaps: tuple[int, int] = ORDER_GAPS,
    keep: float = 0.9,
    noise: float = 0.02,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` samples ``(n, T, 2, 4, 4)`` float32 in {0, 1} and labels ``(n,)`` of the
    temporal-order task: the class is the ORDER and the SPACING of two one-frame pulses.

    Sample of class ``(first, g) = ORDER_CLASSES[y]``: pulse ``first`` (pattern A or B,
    :func:`order_patterns`) at frame ``s``, the other pulse at frame ``s + gaps[g]``, onset
    ``s`` uniform in ``[0, T - 1 - max(gaps)]``; each pulse's pixels are present with
    probability ``keep`` (drawn once per pulse), and background events appear with
    probability ``noise`` per element and frame.  Every sample holds one pulse of each
    pattern, drawn alike whatever the class, so the time-summed input ``Σ_t x[t]`` has the
    same distribution in every class: it carries no information about the class, and a
    classifier of it stays at chance (1/4).
    """
    lo, hi = sorted(int(g) for g in gaps)
    if not 1 <= lo < hi:
        raise ConfigError(f"gaps={gaps!r} is invalid: expected two different spacings of at least one frame")
    if T < hi + 1:
        raise ConfigError(f"T={T} is too short: a spacing of {hi} frames needs T >= {hi + 1}")
    if not 0 < keep <= 1 or not 0 <= noise < 1:
        raise ConfigError(f"keep={keep!r}, noise={noise!r} are invalid: expected 0 < keep <= 1 and 0 <= noise < 1")
    pats = order_patterns()
    y = rng.integers(0, len(ORDER_CLASSES), size=n)
    first = np.asarray([ORDER_CLASSES[c][0] for c in range(len(ORDER_CLASSES))])[y]
    gap = np.asarray(gaps)[np.asarray([ORDER_CLASSES[c][1] for c in range(len(ORDER_CLASSES))])[y]]
    onset = rng.integers(0, T - hi, size=n)
    present = rng.random((n, 2, *ORDER_FRAME_SHAPE)) < keep  # per pulse, its pixels present
    frames = np.zeros((n, T, *ORDER_FRAME_SHAPE), dtype=np.float32)
    rows = np.arange(n)
    for k, when in ((0, onset), (1, onset + gap)):  # the k-th pulse of each sample
        which = first if k == 0 else 1 - first
        frames[rows, when] = np.maximum(frames[rows, when], pats[which] & present[rows, k])
    frames = np.maximum(frames, (rng.random(frames.shape) < noise).astype(np.float32))
    return frames, y.astype(np.int64)


def load_temporal_order(
    *,
    shape: str = "flat",
    n_train: int = 1200,
    n_test: int = 400,
    T: int = 12,
    seed: int = 0,
) -> tuple[Dataset, Dataset]:
    """``(train, test)`` of the temporal-order task (:func:`generate_temporal_order`), as
    sequences: 4 classes, the order and spacing of two pulses; its time-summed input is at chance.

    ``shape="flat"``: ``x`` is ``(N, T, 32)``; ``"image"``: ``(N, T, 2, 4, 4)``.
    """
    if shape not in ("flat", "image"):
        raise ConfigError(f"shape={shape!r} is invalid: expected 'flat' or 'image'")
    rng = np.random.default_rng(seed)
    xtr, ytr = generate_temporal_order(n_train, rng, T=T)
    xte, yte = generate_temporal_order(n_test, rng, T=T)
    if shape == "flat":
        xtr, xte = xtr.reshape(n_train, T, -1), xte.reshape(n_test, T, -1)
    return (
        Dataset(xtr, ytr, len(ORDER_CLASSES), "order/train", sequence=True),
        Dataset(xte, yte, len(ORDER_CLASSES), "order/test", sequence=True),
    )
