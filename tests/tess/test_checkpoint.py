"""Portable checkpoints: exact round trip and resume, corrupt/truncated/mismatched files,
atomic writes, and moving a float64 network between backends."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

import tess
from tess.checkpoint import FORMAT, load_checkpoint, read_checkpoint, restore_checkpoint, save_checkpoint
from tess.datasets import Dataset, load_digits
from tess.errors import BackendUnavailableError, CheckpointError
from tess_spec import BlockConfig, NetworkConfig, TessConfig, TraceConfig, TrainConfig


def _cfg(dropout: float = 0.2, epochs: int = 4, features: int = 48) -> TessConfig:
    return TessConfig(
        network=NetworkConfig((64,), 10, (BlockConfig("linear", features, dropout=dropout),
                                          BlockConfig("linear", 32))),
        traces=TraceConfig(factors=(0.2, 0.5, 1.0, 1.0)),
        train=TrainConfig(T=4, epochs=epochs, batch_size=32, dtype="float64"),
    ).replace(**{"schedule.patience": 0})  # let the plateau schedule act within a few epochs


@pytest.fixture(scope="module")
def digits() -> tuple[Dataset, Dataset]:
    train, test = load_digits()
    return Dataset(train.x[:256], train.y[:256], 10, "d/train"), Dataset(test.x[:64], test.y[:64], 10, "d/test")


def _assert_same_state(a: tess.Model, b: tess.Model) -> None:
    pa, pb = a.numpy_params(), b.numpy_params()
    assert pa.keys() == pb.keys()
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k], err_msg=k)
    oa, ob = a.backend.opt_state_to_numpy(a.opt_state), b.backend.opt_state_to_numpy(b.opt_state)
    assert oa["step"] == ob["step"]
    for slot in ("m", "v"):
        for k in oa[slot]:
            np.testing.assert_array_equal(oa[slot][k], ob[slot][k])
    assert a.schedule == b.schedule and a.epoch == b.epoch
    assert a.rng.bit_generator.state == b.rng.bit_generator.state


def test_round_trip_keeps_every_bit(tmp_path: Path, digits) -> None:
    train, test = digits
    m = tess.Model(_cfg())
    m.fit(train, test, epochs=2)
    path = save_checkpoint(m, tmp_path / "ck.npz", extra={"note": "hi"})
    ck = read_checkpoint(path)
    assert ck.header["format"] == FORMAT and ck.header["spec_version"] == tess.SPEC_VERSION
    assert ck.header["epoch"] == 2 and ck.header["profile"] == "paper" and ck.header["extra"] == {"note": "hi"}
    assert ck.header["config"]["network"]["blocks"][0]["features"] == 48
    m2 = load_checkpoint(path)
    _assert_same_state(m, m2)
    assert [h.train_loss for h in m2.history] == [h.train_loss for h in m.history]
    np.testing.assert_array_equal(m2.predict(test.x), m.predict(test.x))
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".ck.npz*"))


def test_interrupt_and_resume_equals_an_uninterrupted_run(tmp_path: Path, digits) -> None:
    train, test = digits
    straight = tess.Model(_cfg(epochs=4))
    straight.fit(train, test)

    first = tess.Model(_cfg(epochs=4))
    first.fit(train, test, epochs=2, on_epoch=lambda m: save_checkpoint(first, tmp_path / "last.npz"))

    class Interrupt(Exception):
        pass

    def boom(done: int, total: int, out) -> None:
        if done >= 96:
            raise Interrupt  # dies in the middle of epoch 3, after changing params and the RNG

    with pytest.raises(Interrupt):
        first.fit(train, test, epochs=1, on_batch=boom)
    assert first.epoch == 2  # epoch 3 never finished
    resumed = tess.Model(_cfg(epochs=4))
    restore_checkpoint(resumed, tmp_path / "last.npz")
    resumed.fit(train, test, epochs=4 - resumed.epoch)
    _assert_same_state(straight, resumed)
    assert [h.to_dict() | {"seconds": 0} for h in resumed.history] == \
           [h.to_dict() | {"seconds": 0} for h in straight.history]


def _write(tmp_path: Path, digits) -> tuple[tess.Model, Path]:
    m = tess.Model(_cfg())
    m.fit(digits[0], epochs=1)
    return m, save_checkpoint(m, tmp_path / "ck.npz")


def test_truncated_and_corrupt_files_raise_checkpoint_error(tmp_path: Path, digits) -> None:
    _, path = _write(tmp_path, digits)
    blob = path.read_bytes()
    cases = {
        "truncated": blob[: len(blob) // 2],
        "empty": b"",
        "garbage": b"not a zip at all" * 10,
    }
    flipped = bytearray(blob)
    flipped[len(blob) // 3] ^= 0xFF  # inside the stored arrays: zip CRC or our checksum catches it
    cases["bit-flip"] = bytes(flipped)
    for name, data in cases.items():
        bad = tmp_path / f"{name}.npz"
        bad.write_bytes(data)
        with pytest.raises(CheckpointError, match=str(bad.name)):
            read_checkpoint(bad)
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "absent.npz")


def test_tampered_array_or_header_is_detected(tmp_path: Path, digits) -> None:
    _, path = _write(tmp_path, digits)
    with np.load(path) as z:
        good = {k: z[k] for k in z.files}
    # a rewritten archive (valid zip CRCs) with a changed weight: only our checksum can tell
    arrays = {**good, "params/readout.bias": good["params/readout.bias"] + 1.0}
    np.savez(tmp_path / "tampered.npz", **arrays)
    with pytest.raises(CheckpointError, match="corrupt: array 'params/readout.bias'"):
        read_checkpoint(tmp_path / "tampered.npz")
    arrays = {k: v for k, v in good.items() if k != "opt/m/readout.bias"}
    np.savez(tmp_path / "missing.npz", **arrays)
    with pytest.raises(CheckpointError, match="incomplete"):
        read_checkpoint(tmp_path / "missing.npz")
    header = json.loads(good["__header__"].tobytes())
    for change, match in (({"format": "other"}, "not a tess checkpoint"), ({"format_version": 99}, "format version 99"),
                          ({"spec_version": "9.0.0"}, "incompatible"), ({"config": {"x": 1}}, "invalid header")):
        h = {**header, **change}
        np.savez(tmp_path / "h.npz", **{**good, "__header__": np.frombuffer(json.dumps(h).encode(), np.uint8)})
        with pytest.raises(CheckpointError, match=match):
            read_checkpoint(tmp_path / "h.npz")
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    with pytest.raises(CheckpointError, match="not a tess checkpoint"):
        read_checkpoint(tmp_path / "plain.npz")


def test_mismatched_network_never_half_loads(tmp_path: Path, digits) -> None:
    _, path = _write(tmp_path, digits)
    other = tess.Model(_cfg(features=40))
    before = other.numpy_params()
    rng_before = other.rng.bit_generator.state
    with pytest.raises(CheckpointError, match=r"network\.blocks\[0\]\.features: checkpoint 48 vs model 40"):
        restore_checkpoint(other, path)
    after = other.numpy_params()
    for k in before:
        np.testing.assert_array_equal(before[k], after[k])
    assert other.rng.bit_generator.state == rng_before and other.epoch == 0
    with pytest.raises(CheckpointError, match="different network"):
        load_checkpoint(path, config=_cfg(features=40))
    # a state whose optimiser slot has the wrong shape is refused before anything is assigned
    state = read_checkpoint(path).state
    state["opt_state"]["v"]["readout.bias"] = np.zeros(3)
    same = tess.Model(_cfg())
    with pytest.raises(CheckpointError, match="optimiser state 'v'"):
        same.load_state_dict(state)
    assert same.epoch == 0 and same.backend.opt_state_to_numpy(same.opt_state)["step"] == 0


def test_a_failed_save_leaves_the_previous_checkpoint_intact(tmp_path: Path, digits, monkeypatch) -> None:
    m, path = _write(tmp_path, digits)
    before = path.read_bytes()

    def failing_savez(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(m, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.npz"]
    assert zipfile.is_zipfile(path)


def _available_backends() -> dict[str, str | None]:
    """name → None if it runs here in float64, else the reason it does not."""
    out: dict[str, str | None] = {}
    for name in tess.list_backends():
        try:
            tess.get_backend(name, dtype="float64")
            out[name] = None
        except (BackendUnavailableError, ImportError, tess.errors.TessError) as exc:
            out[name] = f"{type(exc).__name__}: {exc}"
    return out


BACKENDS = _available_backends()


@pytest.mark.parametrize("source", sorted(BACKENDS))
def test_a_float64_network_moves_between_backends(tmp_path: Path, digits, source: str) -> None:
    if BACKENDS[source] is not None:
        pytest.skip(f"backend {source!r} is unavailable here: {BACKENDS[source]}")
    train, test = digits
    m = tess.Model(_cfg(), source)
    m.fit(train, test, epochs=1)
    path = save_checkpoint(m, tmp_path / f"{source}.npz")
    assert read_checkpoint(path).header["backend"] == source
    ref = m.predict(test.x)
    targets = [n for n, why in BACKENDS.items() if why is None]
    assert "numpy" in targets
    for target in targets:
        loaded = load_checkpoint(path, target)
        assert loaded.backend.name == target and loaded.backend.dtype == "float64"
        for k, v in m.numpy_params().items():
            np.testing.assert_array_equal(loaded.numpy_params()[k], v, err_msg=f"{source}->{target} {k}")
        got = loaded.predict(test.x)
        np.testing.assert_array_equal(got.argmax(axis=1), ref.argmax(axis=1), err_msg=f"{source}->{target}")
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-10, err_msg=f"{source}->{target}")
        if target == source:
            np.testing.assert_array_equal(got, ref)


def test_train_on_torch_then_numpy_and_jax_predict_identically(tmp_path: Path, digits) -> None:
    """The issue's named case: train on torch, load on numpy and jax, float64 digits."""
    for name in ("torch", "numpy", "jax"):
        if BACKENDS.get(name, "not registered") is not None:
            pytest.skip(f"backend {name!r} is unavailable here: {BACKENDS.get(name, 'not registered')}")
    train, test = load_digits()
    m = tess.Model(tess.presets.mlp_digits(epochs=1).replace(**{"train.dtype": "float64"}), "torch")
    m.fit(train, test)
    path = save_checkpoint(m, tmp_path / "torch.npz")
    preds = {name: load_checkpoint(path, name).predict(test.x) for name in ("numpy", "jax")}
    ref = m.predict(test.x)
    for name, p in preds.items():
        np.testing.assert_array_equal(p.argmax(axis=1), ref.argmax(axis=1), err_msg=name)
        np.testing.assert_allclose(p, ref, rtol=1e-10, atol=1e-10, err_msg=name)
    assert (ref.argmax(axis=1) == test.y).mean() > 0.5
