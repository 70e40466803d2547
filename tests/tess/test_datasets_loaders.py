"""The paper's dataset loaders, on tiny files written in each real on-disk format and
read through the real readers (no mocks)."""

from __future__ import annotations

import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

import tess
from tess.datasets import (
    CropFlip,
    DATASETS,
    fake,
    load_cifar10,
    load_cifar10_dvs,
    load_cifar100,
    load_dataset,
    load_dvs_gesture,
)
from tess.datasets.cifar import CIFAR10_MEAN, CIFAR10_STD, read_cifar_batch
from tess.datasets.formats import read_tonic_gesture_npy
from tess.datasets.frames import events_to_frames
from tess.errors import DataError


def test_all_paper_datasets_are_registered() -> None:
    for name in ("digits", "dvs_gesture", "cifar10_dvs", "cifar10", "cifar100"):
        assert name in DATASETS


@pytest.mark.parametrize("layout", ["tonic", "ibm"])
def test_dvs_gesture_frames_shapes_ranges_and_labels(tmp_path: Path, layout: str) -> None:
    fake.write_dvs_gesture(tmp_path, layout=layout, users=(1, 2, 24), n_events=400, duration_ms=1600)
    train, test = load_dvs_gesture(tmp_path, progress=False)
    assert train.x.shape == (22, 20, 2, 32, 32) and test.x.shape == (11, 20, 2, 32, 32)
    assert train.sequence and train.n_classes == 11 and train.x.dtype == np.uint16
    assert train.y.tolist() == list(range(11)) * 2 and test.y.tolist() == list(range(11))
    # 400 events spread over 1.6 s: the 20 × 75 ms = 1.5 s window holds most, never more
    counts = train.x.reshape(len(train), -1).sum(axis=1)
    assert np.all(counts <= 400) and np.all(counts > 300)
    assert train.x.min() == 0 and train.x.max() >= 1
    # events of class c cluster around a class-dependent position: class means differ
    centres = [np.argwhere(train.x[i].sum(axis=(0, 1)) > 0).mean(axis=0) for i in range(11)]
    assert len({tuple(np.round(c)) for c in centres}) == 11


def test_dvs_gesture_tonic_sample_matches_direct_conversion(tmp_path: Path) -> None:
    fake.write_dvs_gesture(tmp_path, layout="tonic", users=(3, 25))
    train, _ = load_dvs_gesture(tmp_path, T=8, bin_ms=50, frame_size=(16, 16), cache=False, progress=False)
    ev = read_tonic_gesture_npy(tmp_path / "ibmGestureTrain" / "user03_fluorescent" / "4.npy")
    want = events_to_frames(ev, T=8, sensor_size=(128, 128), frame_size=(16, 16), bin_us=50_000)
    np.testing.assert_array_equal(train.x[list(train.y).index(4)], want)


def test_dvs_gesture_cache_is_written_atomically_and_reused(tmp_path: Path) -> None:
    fake.write_dvs_gesture(tmp_path, layout="ibm", users=(1, 24))
    a, _ = load_dvs_gesture(tmp_path, progress=False)
    cache = list((tmp_path / ".tess-cache").glob("dvs_gesture-*.npz"))
    assert len(cache) == 1 and not list((tmp_path / ".tess-cache").glob("*.tmp"))
    # a poisoned cache entry with the same key is what a second load returns: proof it is read
    with np.load(cache[0]) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["x_train"] = arrays["x_train"] + 1
    np.savez(cache[0], **arrays)
    b, _ = load_dvs_gesture(tmp_path, progress=False)
    np.testing.assert_array_equal(b.x, a.x + 1)
    # other settings → another entry; a corrupt entry is rebuilt, not trusted
    load_dvs_gesture(tmp_path, T=10, progress=False)
    assert len(list((tmp_path / ".tess-cache").glob("dvs_gesture-*.npz"))) == 2
    cache[0].write_bytes(b"garbage")
    c, _ = load_dvs_gesture(tmp_path, progress=False)
    np.testing.assert_array_equal(c.x, a.x)


def test_dvs_gesture_missing_files_say_where_and_from_where(tmp_path: Path) -> None:
    with pytest.raises(DataError) as exc:
        load_dvs_gesture(tmp_path / "nowhere")
    msg = str(exc.value)
    for part in ("ibmGestureTrain", "ibmGestureTest", "DvsGesture", "_labels.csv", "trials_to_train.txt",
                 "neuromorphic-vision.com", "research.ibm.com", "--data-dir", str(tmp_path / "nowhere")):
        assert part in msg


@pytest.mark.parametrize("fmt", ["aedat", "npz"])
def test_cifar10_dvs_frames_split_and_labels(tmp_path: Path, fmt: str) -> None:
    fake.write_cifar10_dvs(tmp_path, per_class=10, fmt=fmt, n_events=300)
    train, test = load_cifar10_dvs(tmp_path, progress=False)
    assert train.x.shape == (90, 10, 2, 48, 48) and test.x.shape == (10, 10, 2, 48, 48)
    assert train.x.dtype == np.uint16 and train.n_classes == 10 and train.sequence
    assert np.bincount(train.y).tolist() == [9] * 10 and np.bincount(test.y).tolist() == [1] * 10
    # split by event count: every frame of every sample holds 30 of its 300 events
    per_frame = train.x.reshape(90, 10, -1).sum(axis=2)
    assert np.all(per_frame == 30)
    # the test sample of each class is the last file in natural order (cifar10_<class>_9)
    assert test.y.tolist() == list(range(10))


def test_cifar10_dvs_missing_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"CIFAR10DVS/<class>/\*\.aedat.*figshare"):
        load_cifar10_dvs(tmp_path)


def test_cifar10_and_100_from_pickle_batches(tmp_path: Path) -> None:
    fake.write_cifar(tmp_path, variant="cifar10", n_train=25, n_test=7)
    fake.write_cifar(tmp_path, variant="cifar100", n_train=12, n_test=5, bytes_keys=True)
    tr, te = load_cifar10(tmp_path)
    assert tr.x.shape == (25, 3, 32, 32) and te.x.shape == (7, 3, 32, 32) and tr.x.dtype == np.float32
    assert not tr.sequence and tr.n_classes == 10 and isinstance(tr.transform, CropFlip) and te.transform is None
    raw, labels = read_cifar_batch((tmp_path / "cifar-10-batches-py" / "test_batch").read_bytes(), "labels", "t")
    np.testing.assert_array_equal(te.y, labels)
    want = (raw[:, 0] / 255.0 - CIFAR10_MEAN[0]) / CIFAR10_STD[0]
    np.testing.assert_allclose(te.x[:, 0], want, rtol=1e-5, atol=1e-5)
    lo = (0 - np.array(CIFAR10_MEAN)) / np.array(CIFAR10_STD)
    hi = (1 - np.array(CIFAR10_MEAN)) / np.array(CIFAR10_STD)
    assert np.all(tr.x.min(axis=(0, 2, 3)) >= lo - 1e-5) and np.all(tr.x.max(axis=(0, 2, 3)) <= hi + 1e-5)
    tr100, te100 = load_cifar100(tmp_path, augment=False)
    assert tr100.n_classes == 100 and tr100.x.shape == (12, 3, 32, 32) and tr100.transform is None
    assert tr100.y.max() < 100 and te100.y.shape == (5,)


def test_cifar_reads_the_tarball_when_not_unpacked(tmp_path: Path) -> None:
    src = fake.write_cifar(tmp_path / "src", n_train=10, n_test=5)
    data = tmp_path / "data"
    data.mkdir()
    with tarfile.open(data / "cifar-10-python.tar.gz", "w:gz") as tf:
        tf.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    a_tr, a_te = load_cifar10(data)
    b_tr, b_te = load_cifar10(src)
    np.testing.assert_array_equal(a_tr.x, b_tr.x)
    np.testing.assert_array_equal(a_te.y, b_te.y)


def test_cifar_missing_files_and_malicious_pickles(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"cifar-10-batches-py.*cifar-10-python\.tar\.gz.*cs\.toronto\.edu"):
        load_cifar10(tmp_path)
    with pytest.raises(DataError, match="cifar-100-python"):
        load_cifar100(tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with pytest.raises(DataError, match="refusing to unpickle"):
        read_cifar_batch(pickle.dumps({"data": Evil()}, protocol=2), "labels", "evil")


def test_crop_flip_uses_only_the_given_generator() -> None:
    x = np.random.default_rng(0).standard_normal((6, 3, 32, 32)).astype(np.float32)
    aug = CropFlip(fill=(-9.0, -9.0, -9.0))
    a = aug(x, np.random.default_rng(7))
    np.random.seed(123)  # the global generator must not matter
    b = aug(x, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert a.shape == x.shape and a.dtype == x.dtype
    rng = np.random.default_rng(7)
    off = rng.integers(0, 9, size=(2, 6))
    flip = rng.random(6) < 0.5
    for i in range(6):
        padded = np.full((3, 40, 40), -9.0, np.float32)
        padded[:, 4:36, 4:36] = x[i]
        crop = padded[:, off[0, i]:off[0, i] + 32, off[1, i]:off[1, i] + 32]
        np.testing.assert_array_equal(a[i], crop[:, :, ::-1] if flip[i] else crop)


def test_fit_applies_the_augmentation_with_the_model_generator(tmp_path: Path) -> None:
    fake.write_cifar(tmp_path, n_train=6, n_test=2)
    train, test = load_cifar10(tmp_path)
    seen: list[np.ndarray] = []

    def spy(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        seen.append(x.copy())
        return train.transform(x, rng)

    from dataclasses import replace

    cfg = tess.presets.vgg9("cifar10", width_scale=0.0625).replace(**{"train.batch_size": 3, "train.dtype": "float64"})
    runs = []
    for _ in range(2):
        m = tess.Model(cfg)
        m.fit(replace(train, transform=spy), epochs=1)
        runs.append(m.numpy_params()["readout.weight"])
    assert len(seen) == 4 and all(s.shape == (3, 3, 32, 32) for s in seen)
    np.testing.assert_array_equal(runs[0], runs[1])


def test_load_dataset_forwards_to_the_paper_loaders(tmp_path: Path) -> None:
    fake.write_cifar(tmp_path, variant="cifar100", n_train=4, n_test=2)
    tr, te = load_dataset("cifar100", data_dir=tmp_path)
    assert len(tr) == 4 and len(te) == 2


def test_data_dir_defaults_to_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake.write_cifar(tmp_path, n_train=5, n_test=5)
    monkeypatch.setenv("TESS_DATA_DIR", str(tmp_path))
    tr, _ = load_cifar10()
    assert len(tr) == 5
