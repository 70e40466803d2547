"""Fuzz: every file tess reads — checkpoints (header and arrays) and each dataset
reader's input (random bytes, truncations, flipped bytes of valid files) — either
loads or raises a :mod:`tess.errors` error.  Zero exceptions of any other type.

Each property runs a few dozen to a few hundred Hypothesis examples on tiny files
(the whole module takes seconds).
"""

from __future__ import annotations

import copy
import io
import json
import pickle
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tess
from tess.checkpoint import load_checkpoint, save_checkpoint
from tess.datasets import events_to_frames
from tess.datasets.cifar import read_cifar_batch
from tess.datasets.dvs_gesture import _read_labels
from tess.datasets.formats import (
    read_aedat2,
    read_aedat31,
    read_events,
    read_events_npz,
    read_tonic_gesture_npy,
    write_aedat2,
    write_aedat31,
    write_events_npz,
    write_tonic_gesture_npy,
)
from tess.datasets.frames import Events
from tess.errors import TessError
from tess_spec import BlockConfig, NetworkConfig, TessConfig, TrainConfig

FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

JSON_SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
                | st.text(max_size=8) | st.sampled_from(["PCG64", "MT19937", "seed", "float32", "adam", ""]))
JSON = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)


# -- checkpoints ----------------------------------------------------------------------
def _tiny_config() -> TessConfig:
    return TessConfig(NetworkConfig((6,), 3, (BlockConfig("linear", 5),)), train=TrainConfig(T=2, batch_size=4))


def _valid_checkpoint() -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    x, y = rng.random((8, 6)), rng.integers(0, 3, 8)
    m = tess.Model(_tiny_config())
    m.fit(type("D", (), {"x": x, "y": y})(), epochs=1)
    with tempfile.TemporaryDirectory() as tmp:
        path = save_checkpoint(m, Path(tmp) / "c.npz")
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
    header = json.loads(arrays.pop("__header__").tobytes())
    return header, arrays


HEADER, ARRAYS = _valid_checkpoint()


def _sha(a: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _write(header: Any, arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    blob = json.dumps(header).encode("utf-8")  # NaN/Infinity allowed: a hand-edited header may hold them
    np.savez(buf, __header__=np.frombuffer(blob, np.uint8), **arrays)
    return buf.getvalue()


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, prefix + (i,))
    return out


def _load_bytes(data: bytes, suffix: str, reader: Callable[[Path], Any]) -> Any:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"f{suffix}"
        path.write_bytes(data)
        try:
            return reader(path)
        except TessError:
            return None


@FUZZ
@given(st.data())
def test_a_checkpoint_with_any_header_value_loads_or_raises_a_tess_error(data: st.DataObject) -> None:
    header = copy.deepcopy(HEADER)
    skip_arrays = [p for p in _paths(header)[1:] if p[0] != "arrays" or len(p) <= 2]
    for _ in range(data.draw(st.integers(1, 2))):
        path = data.draw(st.sampled_from([p for p in skip_arrays if _reachable(header, p)] or [()]))
        value = data.draw(JSON)
        if not path:
            header = value
            break
        node = header
        for p in path[:-1]:
            node = node[p]
        if data.draw(st.booleans()) or not isinstance(node, dict):
            node[path[-1]] = value
        else:
            del node[path[-1]]
    model = _load_bytes(_write(header, ARRAYS), ".npz", load_checkpoint)
    if model is not None:  # whatever loads is usable: finite, trainable
        for v in model.numpy_params().values():
            assert np.isfinite(v).all()


def _reachable(root: Any, path: tuple) -> bool:
    node = root
    for p in path:
        try:
            node = node[p]
        except (KeyError, IndexError, TypeError):
            return False
    return True


BAD_VALUES = st.sampled_from([np.nan, np.inf, -np.inf, -1.0, 1e39])


@FUZZ
@given(st.sampled_from(sorted(ARRAYS)), BAD_VALUES, st.integers(0, 10**6),
       st.sampled_from(["float32", "float64", "float16", "int64", "complex64"]))
def test_a_checkpoint_with_bad_array_values_and_valid_checksums_is_refused(name: str, bad: float, where: int,
                                                                             dtype: str) -> None:
    arrays = dict(ARRAYS)
    with np.errstate(over="ignore", invalid="ignore"):
        a = np.array(arrays[name], dtype=np.float64)
        a.reshape(-1)[where % a.size] = bad
        a = a.astype(dtype)
    arrays[name] = a
    header = copy.deepcopy(HEADER)
    header["arrays"][name] = {"shape": list(a.shape), "dtype": a.dtype.str, "sha256": _sha(a)}
    model = _load_bytes(_write(header, arrays), ".npz", load_checkpoint)
    if model is not None:  # only -1.0 in a parameter or m (not v), or 1e39 read into float64, may load
        state = model.state_dict()
        for v in [*state["params"].values(), *state["opt_state"]["m"].values(), *state["opt_state"]["v"].values()]:
            assert np.isfinite(v).all()
        assert all((v >= 0).all() for v in state["opt_state"]["v"].values())


VALID_CKPT = _write(HEADER, ARRAYS)


@FUZZ
@given(st.integers(0, len(VALID_CKPT)), st.lists(st.tuples(st.integers(0, len(VALID_CKPT) - 1),
                                                          st.integers(0, 255)), max_size=4))
def test_a_truncated_or_damaged_checkpoint_loads_or_raises_a_tess_error(cut: int, flips: list) -> None:
    data = bytearray(VALID_CKPT[:cut])
    for pos, byte in flips:
        if pos < len(data):
            data[pos] = byte
    _load_bytes(bytes(data), ".npz", load_checkpoint)


# -- dataset readers ---------------------------------------------------------------------
def _events(n: int = 200) -> Events:
    rng = np.random.default_rng(1)
    return Events(rng.integers(0, 128, n), rng.integers(0, 128, n), rng.integers(0, 2, n),
                  np.sort(rng.integers(0, 10**6, n)))


def _file_bytes(writer: Callable[[Path, Events], None], suffix: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"f{suffix}"
        writer(path, _events())
        return path.read_bytes()


def _cifar_batch() -> bytes:
    rng = np.random.default_rng(2)
    return pickle.dumps({"data": rng.integers(0, 256, (3, 3072)).astype(np.uint8), "labels": [1, 2, 3]}, protocol=2)


def _csv_reader(path: Path) -> Any:
    return _read_labels(path)


def _as_events(reader: Callable[[Path], Events]) -> Callable[[Path], Any]:
    def run(path: Path) -> Any:
        ev = reader(path)
        assert isinstance(ev, Events) and len(ev.x) == len(ev.y) == len(ev.p) == len(ev.t)
        for a in (ev.x, ev.y, ev.p, ev.t):
            assert a.dtype == np.int64 and a.ndim == 1
        for split_by in ("time", "number"):  # whatever a reader returns can be framed
            frames = events_to_frames(ev, T=3, split_by=split_by)
            assert frames.shape == (3, 2, 32, 32)
        events_to_frames(ev, T=3, bin_us=1000.0, t_start=0)
        return ev
    return run


READERS: dict[str, tuple[str, Callable[[Path], Any], bytes]] = {
    "aedat2": (".aedat", _as_events(read_aedat2), _file_bytes(write_aedat2, ".aedat")),
    "aedat31": (".aedat", _as_events(read_aedat31), _file_bytes(write_aedat31, ".aedat")),
    "read_events(.aedat)": (".aedat", _as_events(read_events), _file_bytes(write_aedat31, ".aedat")),
    "tonic npy": (".npy", _as_events(read_tonic_gesture_npy), _file_bytes(write_tonic_gesture_npy, ".npy")),
    "events npz": (".npz", _as_events(read_events_npz), _file_bytes(write_events_npz, ".npz")),
    "read_events(.npz)": (".npz", _as_events(read_events), _file_bytes(write_events_npz, ".npz")),
    "cifar batch": (".bin", lambda p: read_cifar_batch(p.read_bytes(), "labels", str(p)), _cifar_batch()),
    "gesture labels csv": (".csv", _csv_reader, b"class,startTime_usec,endTime_usec\n1,0,100\n11,100,900\n"),
}


@pytest.mark.parametrize("name", sorted(READERS))
@FUZZ
@given(data=st.binary(max_size=400))
def test_a_reader_of_random_bytes_returns_or_raises_a_tess_error(name: str, data: bytes) -> None:
    suffix, reader, valid = READERS[name]
    _load_bytes(data, suffix, reader)
    _load_bytes(valid[:16] + data, suffix, reader)  # a valid start (magic, header) then garbage


@pytest.mark.parametrize("name", sorted(READERS))
@FUZZ
@given(data=st.data())
def test_a_reader_of_a_truncated_or_damaged_file_returns_or_raises_a_tess_error(name: str,
                                                                                data: st.DataObject) -> None:
    suffix, reader, valid = READERS[name]
    cut = data.draw(st.integers(0, len(valid)))
    buf = bytearray(valid[:cut])
    for pos, byte in data.draw(st.lists(st.tuples(st.integers(0, max(len(valid) - 1, 0)), st.integers(0, 255)),
                                        max_size=6)):
        if pos < len(buf):
            buf[pos] = byte
    _load_bytes(bytes(buf), suffix, reader)


@FUZZ
@given(st.lists(st.integers(-2**63, 2**63 - 1), min_size=1, max_size=30), st.integers(1, 12),
       st.sampled_from(["time", "number"]), st.one_of(st.none(), st.floats(1e-3, 1e12)),
       st.one_of(st.none(), st.integers(-2**63, 2**63 - 1)))
def test_frames_of_any_timestamps_are_frames_or_a_tess_error(t: list, T: int, split_by: str, bin_us: float | None,
                                                             t_start: int | None) -> None:
    n = len(t)
    ev = Events(np.arange(n) % 128, np.arange(n) % 128, np.arange(n) % 2, np.asarray(t, np.int64))
    try:
        frames = events_to_frames(ev, T=T, split_by=split_by, bin_us=bin_us, t_start=t_start)
    except TessError:
        return
    assert frames.shape == (T, 2, 32, 32) and int(frames.sum()) <= n
