"""Event file readers (byte-level, hand-built files) and the frame conversion."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

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
from tess.datasets.frames import Events, events_to_frames
from tess.errors import ConfigError, DataError


def _events(rng: np.random.Generator, n: int = 500, t_max: int = 3_000_000) -> Events:
    return Events(rng.integers(0, 128, n), rng.integers(0, 128, n), rng.integers(0, 2, n),
                  np.sort(rng.integers(0, t_max, n)))


def test_aedat2_decodes_hand_built_dvs128_bytes(tmp_path: Path) -> None:
    # x=5, y=7, ON at 1000 µs; x=127, y=0, OFF at 2000 µs; an external event (bit 15) that must be dropped.
    body = struct.pack(">II", (7 << 8) | (5 << 1) | 1, 1000) + struct.pack(">II", 127 << 1, 2000)
    body += struct.pack(">II", 0x8000, 2500)
    f = tmp_path / "a.aedat"
    f.write_bytes(b"#!AER-DAT2.0\r\n# This is a raw AE data file\r\n" + body + b"\x00\x01\x02")  # 3 stray bytes
    ev = read_events(f)
    assert ev.x.tolist() == [5, 127] and ev.y.tolist() == [7, 0]
    assert ev.p.tolist() == [1, 0] and ev.t.tolist() == [1000, 2000]


def test_aedat31_decodes_hand_built_packets(tmp_path: Path) -> None:
    head = b"#!AER-DAT3.1\r\n#Format: RAW\r\n#!END-HEADER\r\n"
    special = struct.pack("<hhiiiiii", 0, 1, 8, 4, 0, 1, 1, 1) + struct.pack("<Ii", 3, 10)
    # polarity packet with overflow 1: (x=100, y=3, ON, valid), (x=2, y=120, OFF, INVALID), one spare slot
    e1 = (100 << 17) | (3 << 2) | (1 << 1) | 1
    e2 = (2 << 17) | (120 << 2) | 0
    pol = struct.pack("<hhiiiiii", 1, 1, 8, 4, 1, 3, 2, 1) + struct.pack("<IiIiIi", e1, 42, e2, 43, 0, 0)
    f = tmp_path / "user01_led.aedat"
    f.write_bytes(head + special + pol)
    ev = read_events(f)
    assert ev.x.tolist() == [100] and ev.y.tolist() == [3] and ev.p.tolist() == [1]
    assert ev.t.tolist() == [(1 << 31) | 42]


@pytest.mark.parametrize("fmt", ["aedat2", "aedat31", "npz", "tonic"])
def test_writers_and_readers_round_trip(tmp_path: Path, fmt: str) -> None:
    ev = _events(np.random.default_rng(1))
    if fmt == "tonic":
        ev = Events(ev.x, ev.y, ev.p, ev.t // 1000 * 1000)  # tonic stores milliseconds
    path = tmp_path / {"aedat2": "a.aedat", "aedat31": "b.aedat", "npz": "c.npz", "tonic": "3.npy"}[fmt]
    {"aedat2": write_aedat2, "aedat31": lambda p, e: write_aedat31(p, e, packet_size=64),
     "npz": write_events_npz, "tonic": write_tonic_gesture_npy}[fmt](path, ev)
    back = {"aedat2": read_aedat2, "aedat31": read_aedat31, "npz": read_events_npz,
            "tonic": read_tonic_gesture_npy}[fmt](path)
    for k in ("x", "y", "p", "t"):
        np.testing.assert_array_equal(getattr(back, k), getattr(ev, k))
    assert all(getattr(back, k).dtype == np.int64 for k in ("x", "y", "p", "t"))


def test_unreadable_event_files_raise_data_errors(tmp_path: Path) -> None:
    bad = tmp_path / "x.aedat"
    bad.write_bytes(b"#!AER-DAT3.1\r\nno end marker")
    with pytest.raises(DataError, match="END-HEADER"):
        read_events(bad)
    with pytest.raises(DataError, match="unknown event file type"):
        read_events(tmp_path / "x.txt")
    np.save(tmp_path / "1.npy", np.zeros((4, 3)))
    with pytest.raises(DataError, match=r"\(N, 4\)"):
        read_tonic_gesture_npy(tmp_path / "1.npy")
    np.savez(tmp_path / "e.npz", t=np.zeros(2), x=np.zeros(2))
    with pytest.raises(DataError, match="lacks event arrays"):
        read_events_npz(tmp_path / "e.npz")


def _loop_frames(ev: Events, T: int, size: tuple[int, int], bin_us: float, t0: int) -> np.ndarray:
    out = np.zeros((T, 2, *size), np.int64)
    for x, y, p, t in zip(ev.x, ev.y, ev.p, ev.t):
        k = int(np.floor((t - t0) / bin_us))
        if 0 <= k < T:
            out[k, int(p > 0), y * size[0] // 128, x * size[1] // 128] += 1
    return out


def test_time_frames_equal_a_per_event_loop() -> None:
    ev = _events(np.random.default_rng(2), n=2000)
    for size in ((32, 32), (48, 48)):
        got = events_to_frames(ev, T=20, frame_size=size, bin_us=75_000, t_start=100)
        assert got.shape == (20, 2, *size) and got.dtype == np.uint16
        np.testing.assert_array_equal(got, _loop_frames(ev, 20, size, 75_000, 100))


def test_number_split_gives_equal_event_shares() -> None:
    ev = _events(np.random.default_rng(3), n=1000)
    fr = events_to_frames(ev, T=10, frame_size=(48, 48), split_by="number")
    assert fr.shape == (10, 2, 48, 48)
    assert fr.reshape(10, -1).sum(axis=1).tolist() == [100] * 10
    # all events kept; counts are non-negative integers
    assert int(fr.sum()) == 1000 and fr.min() >= 0


def test_whole_span_time_split_keeps_every_event_and_empty_streams_give_zeros() -> None:
    ev = _events(np.random.default_rng(4), n=300)
    assert int(events_to_frames(ev, T=7, frame_size=(16, 16)).sum()) == 300
    empty = Events(*(np.zeros(0, np.int64) for _ in range(4)))
    assert not events_to_frames(empty, T=3).any()


def test_frame_settings_are_validated() -> None:
    ev = _events(np.random.default_rng(5), n=10)
    with pytest.raises(ConfigError, match="T=0"):
        events_to_frames(ev, T=0)
    with pytest.raises(ConfigError, match="split_by"):
        events_to_frames(ev, T=2, split_by="count")
    with pytest.raises(ConfigError, match="bin_us"):
        events_to_frames(ev, T=2, bin_us=0)
    with pytest.raises(DataError, match="differ in length"):
        Events(np.zeros(2), np.zeros(3), np.zeros(2), np.zeros(2))
