"""IBM DVS Gesture (Amir et al., CVPR 2017) from local files: 11 classes, 128×128
events → ``(T, 2, 32, 32)`` frames of 75 ms (T = 20 in the paper: the first 1.5 s
of each gesture), as TESS_RULE.md §8 uses it.

Two on-disk layouts are read (tess never downloads):

(a) **tonic's preprocessed release** — ``<data_dir>/ibmGestureTrain/userNN_<light>/<label>.npy``
    and ``<data_dir>/ibmGestureTest/...`` (also under ``<data_dir>/DVSGesture/``), one
    sample per file, an ``(N, 4)`` array ``x, y, p, t[ms]``; the label is the file
    name (0–10).  These are the archives ``ibmGestureTrain.tar.gz`` and
    ``ibmGestureTest.tar.gz`` that ``tonic.datasets.DVSGesture`` fetches from
    https://www.neuromorphic-vision.com/public/downloads/ — unpack them into the folder.
(b) **IBM's original release** (``DvsGesture.tar.gz``, https://research.ibm.com/interactive/dvsgesture/) —
    ``<data_dir>/DvsGesture/userNN_<light>.aedat`` (AEDAT 3.1), each with
    ``userNN_<light>_labels.csv`` (``class,startTime_usec,endTime_usec``, classes 1–11)
    and the split lists ``trials_to_train.txt`` / ``trials_to_test.txt`` (without them:
    users 1–23 train, 24–29 test, the published split).  Each labelled interval is one sample.

The ``tonic`` package itself is *not* needed and not imported: tonic is GPL-3.0
licensed and tess is MIT, so tess reads the files tonic downloads with its own
readers (:mod:`tess.datasets.formats`).  Installing tonic (extra ``data``) is only
a convenient way to download; mind its licence if you redistribute.

Frames count events per polarity on 4×4 pixel blocks in 75 ms windows from the
sample's start (:func:`tess.datasets.frames.events_to_frames`); the converted
arrays are cached under ``<data_dir>/.tess-cache`` (atomic writes).
"""

from __future__ import annotations

import csv
import logging
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from tess_spec.errors import DataError

from .base import Dataset, data_root
from .cache import cache_key, load_cached, progress_iter, save_cached
from .formats import read_aedat31, read_tonic_gesture_npy
from .frames import FRAME_DTYPE, events_to_frames

__all__ = ["load_dvs_gesture", "GESTURE_CLASSES", "find_dvs_gesture"]

log = logging.getLogger(__name__)

GESTURE_CLASSES: tuple[str, ...] = (
    "hand_clapping", "right_hand_wave", "left_hand_wave", "right_arm_clockwise",
    "right_arm_counter_clockwise", "left_arm_clockwise", "left_arm_counter_clockwise",
    "arm_roll", "air_drums", "air_guitar", "other_gestures",
)
"""The 11 classes, in label order (label = CSV class − 1 = tonic file name)."""

SENSOR = (128, 128)


def _natural(p: Path) -> tuple:
    return tuple(int(s) if s.isdigit() else s for s in re.split(r"(\d+)", p.as_posix()))


def _missing(root: Path) -> DataError:
    return DataError(
        f"DVS Gesture files not found under {str(root)!r}. Put one of these layouts there "
        "(tess never downloads data):\n"
        f"  (a) tonic's preprocessed release: {root}/ibmGestureTrain/userNN_<light>/<label>.npy and "
        f"{root}/ibmGestureTest/userNN_<light>/<label>.npy, unpacked from ibmGestureTrain.tar.gz and "
        "ibmGestureTest.tar.gz (https://www.neuromorphic-vision.com/public/downloads/, the files "
        "tonic.datasets.DVSGesture downloads);\n"
        f"  (b) IBM's original release: {root}/DvsGesture/userNN_<light>.aedat with userNN_<light>_labels.csv "
        "and trials_to_train.txt / trials_to_test.txt, unpacked from DvsGesture.tar.gz "
        "(https://research.ibm.com/interactive/dvsgesture/).\n"
        "Pass the folder with --data-dir (CLI), data_dir= (Python) or $TESS_DATA_DIR."
    )


def find_dvs_gesture(root: Path) -> tuple[str, Path]:
    """``("tonic", folder)`` or ``("ibm", folder)`` for the layout found under ``root``."""
    for base in (root, root / "DVSGesture"):
        if (base / "ibmGestureTrain").is_dir() and (base / "ibmGestureTest").is_dir():
            return "tonic", base
    for base in (root, root / "DvsGesture", root / "DVSGesture" / "DvsGesture"):
        if base.is_dir() and any(base.glob("user*.aedat")):
            return "ibm", base
    raise _missing(root)


def _ibm_split(base: Path) -> tuple[list[Path], list[Path]]:
    files = sorted(base.glob("user*.aedat"), key=_natural)
    lists = {}
    for split in ("train", "test"):
        f = base / f"trials_to_{split}.txt"
        if f.is_file():
            try:
                lists[split] = [ln.strip() for ln in f.read_text(encoding="utf-8").splitlines() if ln.strip()]
            except (OSError, UnicodeDecodeError) as exc:
                raise DataError(f"cannot read the split list {str(f)!r}: {exc}") from exc
    if len(lists) == 2:
        by_name = {f.name: f for f in files}
        out: list[list[Path]] = []
        for split in ("train", "test"):
            missing = [n for n in lists[split] if n not in by_name]
            if missing:
                raise DataError(f"{base / f'trials_to_{split}.txt'} lists {missing[0]!r}, which is not in {base}")
            out.append([by_name[n] for n in lists[split]])
        return out[0], out[1]

    def user(f: Path) -> int:
        m = re.match(r"user(\d+)", f.name)
        return int(m.group(1)) if m else 0

    return [f for f in files if user(f) <= 23], [f for f in files if user(f) > 23]


def _read_labels(csv_path: Path) -> list[tuple[int, int, int]]:
    if not csv_path.is_file():
        raise DataError(f"label file {str(csv_path)!r} is missing (every userNN_<light>.aedat needs its _labels.csv)")
    rows = []
    try:
        with open(csv_path, newline="", encoding="utf-8") as fh:
            for line, row in enumerate(csv.reader(fh), 1):
                if not row or not row[0].strip().lstrip("-").isdigit():
                    continue  # header line
                try:
                    c, start, end = (int(v) for v in row[:3])
                except ValueError:
                    raise DataError(f"{csv_path}, line {line}: expected 'class,startTime_usec,endTime_usec' "
                                    f"(three integers), got {row!r}") from None
                if not 1 <= c <= len(GESTURE_CLASSES):
                    raise DataError(f"{csv_path}, line {line}: class {c} is outside 1..{len(GESTURE_CLASSES)}")
                if not -2**62 < start <= end < 2**62:
                    raise DataError(f"{csv_path}, line {line}: the interval {start}..{end} µs is empty or out of "
                                    "range (start must not exceed end)")
                rows.append((c - 1, start, end))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read the label file {str(csv_path)!r}: {exc}") from exc
    return rows


def _convert(files: list[Path], layout: str, T: int, bin_us: float, frame_size: tuple[int, int],
             progress: bool | None, desc: str) -> tuple[np.ndarray, np.ndarray]:
    xs: list[np.ndarray] = []
    ys: list[int] = []
    for f in progress_iter(files, total=len(files), desc=desc, enabled=progress):
        if layout == "tonic":
            if not f.stem.isdigit():
                raise DataError(f"{f}: tonic's DVS Gesture files are named by their label (0.npy ... "
                                f"{len(GESTURE_CLASSES) - 1}.npy), not {f.name!r}")
            label = int(f.stem)
            if not 0 <= label < len(GESTURE_CLASSES):
                raise DataError(f"{f}: label {label} (the file name) is outside 0..{len(GESTURE_CLASSES) - 1}")
            ev = read_tonic_gesture_npy(f)
            xs.append(events_to_frames(ev, T=T, sensor_size=SENSOR, frame_size=frame_size, bin_us=bin_us))
            ys.append(label)
        else:
            ev = read_aedat31(f)
            for label, start, end in _read_labels(f.with_name(f.stem + "_labels.csv")):
                seg = ev.select((ev.t >= start) & (ev.t < end))
                xs.append(events_to_frames(seg, T=T, sensor_size=SENSOR, frame_size=frame_size,
                                           bin_us=bin_us, t_start=start))
                ys.append(label)
    x = np.stack(xs) if xs else np.zeros((0, T, 2, *frame_size), FRAME_DTYPE)
    return x, np.asarray(ys, np.int64)


def load_dvs_gesture(
    data_dir: str | os.PathLike | None = None,
    *,
    T: int = 20,
    bin_ms: float = 75.0,
    frame_size: tuple[int, int] = (32, 32),
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    progress: bool | None = None,
) -> tuple[Dataset, Dataset]:
    """DVS Gesture as ``(train, test)`` sequences ``(N, T, 2, H, W)`` of ``uint16`` event counts.

    Args:
        data_dir: folder holding layout (a) or (b) of the module docstring
            (default ``$TESS_DATA_DIR`` or ``./data``).
        T: frames per sample (paper: 20).
        bin_ms: frame length in milliseconds (paper: 75).
        frame_size: ``(H, W)`` of the frames (paper: 32×32, i.e. 4×4 pixel blocks).
        cache: read/write converted frames under ``cache_dir``.
        cache_dir: default ``<data_dir>/.tess-cache``.
        progress: tqdm bar while converting (``None``: only on a terminal).
    """
    root = data_root(data_dir)
    layout, base = find_dvs_gesture(root)
    if layout == "tonic":
        splits = {s: sorted((base / f"ibmGesture{s.title()}").rglob("*.npy"), key=_natural) for s in ("train", "test")}
        deps = splits["train"] + splits["test"]
    else:
        tr, te = _ibm_split(base)
        splits = {"train": tr, "test": te}
        deps = tr + te + [f.with_name(f.stem + "_labels.csv") for f in tr + te if f.with_name(f.stem + "_labels.csv").exists()]
    if not splits["train"] or not splits["test"]:
        raise _missing(root)
    params: dict[str, Any] = {"T": int(T), "bin_ms": float(bin_ms), "frame_size": list(frame_size), "layout": layout}
    cache_path = Path(cache_dir) if cache_dir is not None else root / ".tess-cache"
    cache_file = cache_path / f"dvs_gesture-{cache_key('dvs_gesture', params, deps, root)}.npz"
    arrays = load_cached(cache_file) if cache else None
    if arrays is None:
        arrays = {}
        for s in ("train", "test"):
            x, y = _convert(splits[s], layout, int(T), float(bin_ms) * 1000.0, tuple(frame_size), progress,
                            f"DVS Gesture {s}")
            arrays[f"x_{s}"], arrays[f"y_{s}"] = x, y
        if cache:
            save_cached(cache_file, arrays)
    n = len(GESTURE_CLASSES)
    return (
        Dataset(arrays["x_train"], arrays["y_train"].astype(np.int64), n, "dvs_gesture/train", sequence=True),
        Dataset(arrays["x_test"], arrays["y_test"].astype(np.int64), n, "dvs_gesture/test", sequence=True),
    )
