"""A synthetic event dataset in which only the ORDER of events decides the class.

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

__all__ = ["load_synthetic_events", "ORDERS", "make_patterns", "generate_events"]

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
