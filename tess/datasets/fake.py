"""Small fake datasets written in the *real* on-disk formats and layouts, for tests,
smoke runs and trying the CLI without the real data:

    >>> from tess.datasets import fake, load_dvs_gesture
    >>> fake.write_dvs_gesture("/tmp/dvs", layout="tonic")       # doctest: +SKIP
    >>> train, test = load_dvs_gesture("/tmp/dvs")              # doctest: +SKIP

The files go through exactly the readers used for the real datasets.  Every
random number comes from the generator passed in (default ``make_rng(0)``).
Events of class c cluster around a class-dependent pixel, so a network can learn
something from them.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

from tess_spec import make_rng

from .cifar10_dvs import CIFAR10_DVS_CLASSES
from .dvs_gesture import GESTURE_CLASSES
from .formats import write_aedat2, write_aedat31, write_events_npz, write_tonic_gesture_npy
from .frames import Events

__all__ = ["make_events", "write_dvs_gesture", "write_cifar10_dvs", "write_cifar"]


def make_events(label: int, n_classes: int, n_events: int, duration_us: int, rng: np.random.Generator,
                t0: int = 0) -> Events:
    """``n_events`` time-sorted events on a 128×128 sensor in ``[t0, t0 + duration_us)``,
    clustered around a pixel that depends on ``label``."""
    angle = 2 * np.pi * label / n_classes
    cx, cy = 64 + 40 * np.cos(angle), 64 + 40 * np.sin(angle)
    x = np.clip(np.rint(rng.normal(cx, 12, n_events)), 0, 127).astype(np.int64)
    y = np.clip(np.rint(rng.normal(cy, 12, n_events)), 0, 127).astype(np.int64)
    p = rng.integers(0, 2, n_events)
    t = np.sort(rng.integers(t0, t0 + duration_us, n_events))
    return Events(x, y, p, t)


def write_dvs_gesture(root: str | os.PathLike, *, layout: str = "tonic", users: tuple[int, ...] = (1, 2, 24),
                      n_events: int = 400, duration_ms: int = 1600,
                      rng: np.random.Generator | None = None) -> Path:
    """Write a fake DVS Gesture: for each user, one recording of all 11 gestures.

    ``layout="tonic"``: ``ibmGesture{Train,Test}/userNN_fluorescent/<label>.npy``;
    ``layout="ibm"``: ``DvsGesture/userNN_fluorescent.aedat`` (AEDAT 3.1) +
    ``_labels.csv`` + ``trials_to_{train,test}.txt``.  Users ≤ 23 train, others test.
    Returns ``root``.
    """
    rng = make_rng(0) if rng is None else rng
    root = Path(root)
    n = len(GESTURE_CLASSES)
    dur = duration_ms * 1000
    if layout == "tonic":
        for u in users:
            folder = root / ("ibmGestureTrain" if u <= 23 else "ibmGestureTest") / f"user{u:02d}_fluorescent"
            folder.mkdir(parents=True, exist_ok=True)
            for c in range(n):
                write_tonic_gesture_npy(folder / f"{c}.npy", make_events(c, n, n_events, dur, rng, t0=1000))
    elif layout == "ibm":
        base = root / "DvsGesture"
        base.mkdir(parents=True, exist_ok=True)
        lists: dict[str, list[str]] = {"train": [], "test": []}
        for u in users:
            name = f"user{u:02d}_fluorescent"
            parts, rows, t = [], ["class,startTime_usec,endTime_usec"], 5_000_000
            for c in range(n):
                parts.append(make_events(c, n, n_events, dur, rng, t0=t))
                rows.append(f"{c + 1},{t},{t + dur}")
                t += dur + 200_000
            ev = Events(*(np.concatenate([getattr(e, k) for e in parts]) for k in ("x", "y", "p", "t")))
            write_aedat31(base / f"{name}.aedat", ev, packet_size=1000)
            (base / f"{name}_labels.csv").write_text("\n".join(rows) + "\n")
            lists["train" if u <= 23 else "test"].append(f"{name}.aedat")
        for split, names in lists.items():
            (base / f"trials_to_{split}.txt").write_text("\n".join(names) + "\n")
    else:
        raise ValueError(f"layout={layout!r}: expected 'tonic' or 'ibm'")
    return root


def write_cifar10_dvs(root: str | os.PathLike, *, per_class: int = 10, fmt: str = "aedat", n_events: int = 300,
                      rng: np.random.Generator | None = None) -> Path:
    """Write a fake CIFAR10-DVS: ``CIFAR10DVS/<class>/cifar10_<class>_<i>.aedat`` (AEDAT 2.0,
    DVS128 addresses) or ``.npz`` (``fmt="npz"``).  Returns ``root``."""
    rng = make_rng(0) if rng is None else rng
    root = Path(root)
    for c, name in enumerate(CIFAR10_DVS_CLASSES):
        folder = root / "CIFAR10DVS" / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            ev = make_events(c, len(CIFAR10_DVS_CLASSES), n_events, 1_300_000, rng)
            if fmt == "aedat":
                write_aedat2(folder / f"cifar10_{name}_{i}.aedat", ev)
            else:
                write_events_npz(folder / f"cifar10_{name}_{i}.npz", ev)
    return root


def write_cifar(root: str | os.PathLike, *, variant: str = "cifar10", n_train: int = 20, n_test: int = 10,
                rng: np.random.Generator | None = None, bytes_keys: bool = False) -> Path:
    """Write fake CIFAR python batches (pickle protocol 2, the published layout):
    ``cifar-10-batches-py/data_batch_1..5, test_batch, batches.meta`` (``n_train`` images spread
    over the five batches) or ``cifar-100-python/train, test, meta``.  Returns ``root``."""
    rng = make_rng(0) if rng is None else rng
    root = Path(root)
    n_classes = 10 if variant == "cifar10" else 100

    def key(k: str) -> str | bytes:
        return k.encode() if bytes_keys else k

    def batch(n: int, label: str) -> dict:
        y = rng.integers(0, n_classes, n)
        data = rng.integers(0, 256, (n, 3072)).astype(np.uint8)
        d = {key("batch_label"): label, key("data"): data, key("filenames"): [f"img_{i}.png" for i in range(n)]}
        if variant == "cifar10":
            d[key("labels")] = [int(v) for v in y]
        else:
            d[key("fine_labels")] = [int(v) for v in y]
            d[key("coarse_labels")] = [int(v) // 5 for v in y]
        return d

    def dump(path: Path, obj: dict) -> None:
        with open(path, "wb") as fh:
            pickle.dump(obj, fh, protocol=2)

    if variant == "cifar10":
        folder = root / "cifar-10-batches-py"
        folder.mkdir(parents=True, exist_ok=True)
        sizes = np.diff(np.linspace(0, n_train, 6).astype(int))
        for i, s in enumerate(sizes, 1):
            dump(folder / f"data_batch_{i}", batch(int(s), f"training batch {i} of 5"))
        dump(folder / "test_batch", batch(n_test, "testing batch 1 of 1"))
        dump(folder / "batches.meta", {key("label_names"): list(CIFAR10_DVS_CLASSES)})
    elif variant == "cifar100":
        folder = root / "cifar-100-python"
        folder.mkdir(parents=True, exist_ok=True)
        dump(folder / "train", batch(n_train, "training batch 1 of 1"))
        dump(folder / "test", batch(n_test, "testing batch 1 of 1"))
        dump(folder / "meta", {key("fine_label_names"): [f"class_{i}" for i in range(100)]})
    else:
        raise ValueError(f"variant={variant!r}: expected 'cifar10' or 'cifar100'")
    return root
