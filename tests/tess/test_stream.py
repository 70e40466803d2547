"""The streaming learner (tess.stream): step by step it equals train_batch on every engine
backend; its policy (window, application, resets, labels, inference) does what the docs say;
its state survives a power cycle bit for bit; bad input changes nothing."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import tess
from tess.errors import CheckpointError, ConfigError, DataError, DivergenceError, ShapeError, TessError
from tess.stream import Learner, StreamClosedError, read_state, save_state, signal_name
from tess_spec import mlp_events
from tess_spec.config import BlockConfig, LSGConfig, NetworkConfig, TessConfig, TraceConfig, TrainConfig

# An MLP with everything a step can carry: dropout (masks per segment), weight
# standardisation (Ŵ recomputed after each update), biases, a window shorter than T.
MLP = TessConfig(
    network=NetworkConfig((12,), 4, (
        BlockConfig("linear", 9, bias=True, dropout=0.25, weight_std=True),
        BlockConfig("linear", 7, bias=True, psi="fast_sigmoid"),
    )),
    traces=TraceConfig(factors=(0.3, 0.6, 0.7, 1.0)),
    train=TrainConfig(T=5, n_learn=3, batch_size=3, dtype="float64"),
)
CONV = TessConfig(
    network=NetworkConfig((2, 6, 6), 4, (
        BlockConfig("conv", 5, pool="max", weight_std=True, bias=True, dropout=0.3),
        BlockConfig("linear", 7, bias=True),
    )),
    traces=TraceConfig(factors=(0.3, 0.6, 0.7, 1.0)), lsg=LSGConfig(pool_sizes=(2, 7)),
    train=TrainConfig(T=4, n_learn=3, batch_size=3, dtype="float64"),
)
BACKENDS = [pytest.param(name, marks=pytest.mark.skipif(importlib.util.find_spec(name) is None,
                                                        reason=f"{name} is not installed"))
            for name in ("numpy", "torch", "jax")]


def _segments(config: TessConfig, n_segments: int, batch: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = (rng.random((n_segments, batch, config.train.T, *config.network.input_shape)) < 0.4) * 1.5
    return x, rng.integers(0, config.network.n_classes, (n_segments, batch))


def _feed(learner: Learner, x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """Segments back to back, the label with each segment's first frame."""
    out = []
    for xs, ys in zip(x, y):
        for t in range(xs.shape[1]):
            out.append(learner.step(xs[:, t], label=ys if t == 0 else None))
    return out


def _assert_close(got: dict[str, np.ndarray], want: dict[str, np.ndarray], rel: float = 1e-12) -> None:
    assert set(got) == set(want)
    for k in want:
        scale = max(float(np.abs(want[k]).max()), 1e-300)
        err = float(np.abs(np.asarray(got[k], np.float64) - want[k]).max()) / scale
        assert err <= rel, f"{k}: relative difference {err:.3g} > {rel}"


def _snapshot(learner: Learner) -> dict[str, object]:
    return learner.state_dict()


def _assert_same_state(a: dict, b: dict) -> None:
    """Two state_dicts are equal in every array and value."""
    def walk(x, y, where):
        if isinstance(x, dict):
            assert set(x) == set(y), where
            for k in x:
                walk(x[k], y[k], f"{where}.{k}")
        elif isinstance(x, (list, tuple)):
            assert len(x) == len(y), where
            for i, (u, v) in enumerate(zip(x, y)):
                walk(u, v, f"{where}[{i}]")
        elif isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y, err_msg=where)
        else:
            assert x == y, where
    walk(a, b, "state")


# -- equivalence with train_batch ------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_segments_step_by_step_equal_train_batch(backend: str) -> None:
    """Three mini-batches of 3 sequences, fed as 3 streams segment after segment: the same
    parameters, optimiser moments and generator state as Model.train_batch (float64, 1e-12)."""
    x, y = _segments(MLP, 3, 3)
    model = tess.Model(MLP, backend)
    for xs, ys in zip(x, y):
        model.train_batch(xs, ys)
    learner = Learner(MLP, backend, batch=3)
    _feed(learner, x, y)
    assert learner.updates == 3 and learner.optimizer_step == 3 and learner.steps == 15
    _assert_close(learner.numpy_params(), model.numpy_params())
    got = learner.state_dict()["opt_state"]
    want = model.backend.opt_state_to_numpy(model.opt_state)
    for slot in ("m", "v"):
        _assert_close(got[slot], want[slot])
    assert learner.rng.bit_generator.state == model.rng.bit_generator.state  # the same masks were drawn


SIGNAL_SETTINGS = getattr(__import__("tess_spec.config", fromlist=["x"]), "LEARNING_SIGNALS", ("lsg",))


@pytest.mark.parametrize("setting", SIGNAL_SETTINGS)
def test_every_learning_signal_setting_equals_train_batch(setting: str) -> None:
    """The learner follows the config's learning-signal schedule step by step (numpy)."""
    cfg = MLP if setting == "lsg" else MLP.replace(learning_signal=setting)
    assert signal_name(cfg) == setting
    x, y = _segments(cfg, 2, 3)
    model = tess.Model(cfg, "numpy")
    for xs, ys in zip(x, y):
        model.train_batch(xs, ys)
    learner = Learner(cfg, "numpy", batch=3)
    _feed(learner, x, y)
    _assert_close(learner.numpy_params(), model.numpy_params())
    assert learner.last_segment.learned_steps == sum(s is not None for s, _ in learner.schedule)


@pytest.mark.parametrize("backend", [
    *BACKENDS[:2], pytest.param("jax", marks=[*BACKENDS[2].marks, pytest.mark.slow])])  # jax: ~10 s of compiling
def test_conv_network_with_a_power_cycle_equals_train_batch(backend: str, tmp_path) -> None:
    """A conv network (the kernels' layout: NHWC on JAX; max pooling; dropout), its second
    segment interrupted by a save and a restore into a new learner: train_batch's parameters."""
    x, y = _segments(CONV, 2, 3)
    model = tess.Model(CONV, backend)
    for xs, ys in zip(x, y):
        model.train_batch(xs, ys)
    first = Learner(CONV, backend, batch=3)
    _feed(first, x[:1], y[:1])
    for t in range(2):
        first.step(x[1][:, t], label=y[1])
    second = Learner(CONV, backend, batch=3)
    second.load(first.save(tmp_path / "conv.npz"))
    for t in range(2, CONV.train.T):
        second.step(x[1][:, t])
    _assert_close(second.numpy_params(), model.numpy_params())


def test_direct_input_equals_train_batch() -> None:
    """A direct input (train_batch computes block 0's current once) fed as the same frame at
    every step."""
    x, y = _segments(MLP, 2, 3)
    static = x[:, :, 0]  # (segments, B, 12)
    model = tess.Model(MLP, "numpy")
    for xs, ys in zip(static, y):
        model.train_batch(xs, ys)
    learner = Learner(MLP, "numpy", batch=3)
    _feed(learner, np.repeat(static[:, :, None], MLP.train.T, axis=2), y)
    _assert_close(learner.numpy_params(), model.numpy_params())


def test_segment_results_and_predict_step_equal_the_model() -> None:
    """The segment's summed logits are train_batch's (before its update); T predict steps
    give Model.predict's time-summed logits, consume no random numbers and learn nothing."""
    x, y = _segments(MLP, 1, 3)
    model = tess.Model(MLP, "numpy")
    learner = Learner(MLP, "numpy", batch=3)
    before = model.predict(x[0])
    rng_state = learner.rng.bit_generator.state
    for t in range(MLP.train.T):
        learner.predict_step(x[0][:, t])
    np.testing.assert_allclose(learner.last_segment.logits, before, rtol=1e-13, atol=1e-13)
    assert learner.updates == 0 and learner.rng.bit_generator.state == rng_state
    out = model.train_batch(x[0], y[0])
    _feed(learner, x, y)
    seg = learner.last_segment
    assert seg.index == 1 and seg.updated and seg.learned_steps == MLP.train.n_learn
    assert seg.n_correct == out.n_correct and seg.loss == pytest.approx(out.loss, rel=1e-12)
    np.testing.assert_array_equal(seg.labels, y[0])


# -- the policy --------------------------------------------------------------------------------
def test_from_model_continues_a_model() -> None:
    """A model trained on two mini-batches, continued on a stream, equals three mini-batches."""
    x, y = _segments(MLP, 3, 3)
    model = tess.Model(MLP, "numpy")
    for xs, ys in zip(x[:2], y[:2]):
        model.train_batch(xs, ys)
    learner = Learner.from_model(model, batch=3)
    assert learner.optimizer_step == 2 and learner.updates == 0
    model.train_batch(x[2], y[2])
    _feed(learner, x[2:], y[2:])
    _assert_close(learner.numpy_params(), model.numpy_params())
    assert learner.rng.bit_generator.state == model.rng.bit_generator.state


def test_apply_every_and_manual_apply() -> None:
    x, y = _segments(MLP, 2, 3)
    every_window = Learner(MLP, "numpy", batch=3, apply_every=MLP.train.n_learn)
    default = Learner(MLP, "numpy", batch=3)
    _feed(every_window, x, y)
    _feed(default, x, y)
    _assert_close(every_window.numpy_params(), default.numpy_params(), rel=0)

    every_step = Learner(MLP, "numpy", batch=3, apply_every=1)
    _feed(every_step, x, y)
    assert every_step.updates == 2 * MLP.train.n_learn

    across = Learner(MLP, "numpy", batch=3, apply_every=2 * MLP.train.n_learn)  # one update per two segments
    _feed(across, x[:1], y[:1])
    assert across.updates == 0 and across.pending_steps == MLP.train.n_learn
    _feed(across, x[1:], y[1:])
    assert across.updates == 1 and across.pending_steps == 0
    assert not across.apply()


def test_labels_belong_to_their_segment() -> None:
    x, y = _segments(MLP, 1, 3)
    late = Learner(MLP, "numpy", batch=3)
    for t in range(MLP.train.T):  # the label arrives at the window's second step
        late.step(x[0][:, t], label=y[0] if t == MLP.train.window_start + 1 else None)
    assert late.last_segment.learned_steps == MLP.train.n_learn - 1 and late.updates == 1

    unlabelled = Learner(MLP, "numpy", batch=3)
    for t in range(MLP.train.T):
        unlabelled.step(x[0][:, t])
    assert unlabelled.updates == 0 and unlabelled.last_segment.n_correct is None

    one = Learner(mlp_events(), "numpy")  # one stream: unbatched frames, an integer label
    logits = one.step(np.zeros(128, np.float32), label=3)
    assert logits.shape == (6,) and one.segment_label.tolist() == [3]
    one.step(np.zeros((1, 128), np.float32), label=3)  # the same label again: fine


def test_resets() -> None:
    x, y = _segments(MLP, 2, 3)

    def twice(learner: Learner) -> tuple[np.ndarray, np.ndarray]:
        out = []
        for _ in range(2):
            for t in range(MLP.train.T):
                learner.predict_step(x[0][:, t])
            out.append(learner.last_segment.logits)
        return out[0], out[1]

    first, again = twice(Learner(MLP, "numpy", batch=3))
    np.testing.assert_array_equal(again, first)  # auto_reset="segment": each segment from zero state
    first, carried = twice(Learner(MLP, "numpy", batch=3, auto_reset="never"))
    assert not np.array_equal(carried, first)

    learner = Learner(MLP, "numpy", batch=3)
    for t in range(MLP.train.T - 1):
        learner.step(x[0][:, t], label=y[0])
    assert learner.pending_steps == MLP.train.n_learn - 1
    learner.reset()
    assert learner.step_in_segment == 0 and learner.segment_label is None and learner.segments == 0
    assert all(not np.asarray(d["u"]).any() for d in learner.state_dict()["state"])
    assert learner.pending_steps == MLP.train.n_learn - 1  # kept for the next application
    learner.reset(discard_pending=True)
    assert learner.pending_steps == 0 and learner.updates == 0


# -- checkpoints mid-stream ----------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_power_cycle_mid_segment_continues_bit_for_bit(backend: str, tmp_path) -> None:
    """Stop 2.4 segments in (mid-window, masks drawn, sums pending), write the state, restore
    it into a new learner and continue: every logit and parameter equals the uninterrupted run."""
    cfg = MLP.replace(**{"train.dtype": "float32"})
    x, y = _segments(cfg, 4, 3)
    flat = x.transpose(0, 2, 1, 3).reshape(-1, 3, 12)  # (steps, B, 12)
    labels = np.repeat(y, cfg.train.T, axis=0)
    cut = 2 * cfg.train.T + 3
    whole = Learner(cfg, backend, batch=3)
    want = [whole.step(flat[i], label=labels[i]) for i in range(len(flat))]

    first = Learner(cfg, backend, batch=3)
    got = [first.step(flat[i], label=labels[i]) for i in range(cut)]
    assert first.pending_steps > 0 and first.step_in_segment == 3
    path = save_state(first, tmp_path / "stream.npz")
    first.close()
    second = Learner(cfg, backend, batch=3, params={k: v * 0 for k, v in first.numpy_params().items()})
    second.load(path)
    got += [second.step(flat[i], label=labels[i]) for i in range(cut, len(flat))]
    for i, (a, b) in enumerate(zip(got, want)):
        np.testing.assert_array_equal(a, b, err_msg=f"step {i}")
    _assert_same_state(second.state_dict(), whole.state_dict())


def test_state_validation_leaves_the_learner_untouched(tmp_path) -> None:
    x, y = _segments(MLP, 1, 3)
    learner = Learner(MLP, "numpy", batch=3)
    for t in range(3):
        learner.step(x[0][:, t], label=y[0])
    good = learner.state_dict()
    target = Learner(MLP, "numpy", batch=3)
    before = target.state_dict()

    def broken(edit):
        s = learner.state_dict()
        edit(s)
        return s

    cases = {
        "nan parameter": lambda s: s["params"]["blocks.0.weight"].__setitem__((0, 0), np.nan),
        "negative v": lambda s: s["opt_state"]["v"]["readout.bias"].__setitem__(0, -1.0),
        "spike 2": lambda s: s["state"][1]["o"].__setitem__((0, 0), 2.0),
        "t out of range": lambda s: s["segment"].__setitem__("t", MLP.train.T),
        "label out of range": lambda s: s["segment"].__setitem__("labels", np.array([0, 9, 1])),
        "missing mask": lambda s: s["segment"]["masks"].__setitem__(0, None),
        "wrong sums shape": lambda s: s["sums"].__setitem__("readout.bias", np.zeros(5)),
        "bad rng": lambda s: s.__setitem__("rng", {"bit_generator": "nope"}),
        "bad lr": lambda s: s.__setitem__("lr", 0.0),
        "other network": lambda s: s.__setitem__("config", mlp_events()),
        "other window": lambda s: s.__setitem__("config", MLP.replace(**{"train.n_learn": 2})),
        "other batch": lambda s: s.__setitem__("batch", 2),
        "other policy": lambda s: s["policy"].__setitem__("apply_every", 2),
    }
    for name, edit in cases.items():
        with pytest.raises(CheckpointError):
            target.load_state_dict(broken(edit))
        _assert_same_state(target.state_dict(), before)
    target.load_state_dict(good)
    _assert_same_state(target.state_dict(), good)

    path = save_state(learner, tmp_path / "s.npz")
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (tmp_path / "bad.npz").write_bytes(bytes(raw))
    with pytest.raises(CheckpointError):
        read_state(tmp_path / "bad.npz")
    with pytest.raises(CheckpointError):
        read_state(tmp_path / "absent.npz")


# -- bad input ----------------------------------------------------------------------------------
def test_bad_steps_raise_and_change_nothing() -> None:
    """Wrong shape, label out of range or contradicting the segment's, NaN/Inf, a float64 value
    that overflows float32, non-integer labels: a tess.errors error, and the state is unchanged."""
    cfg = mlp_events()
    learner = Learner(cfg, "numpy", batch=2)
    x = np.zeros((2, 128), np.float32)
    learner.step(x, label=[1, 2])
    learner.step(x)
    before = learner.state_dict()
    nan = x.copy()
    nan[1, 5] = np.nan
    cases = [
        (ShapeError, dict(x_t=np.zeros((2, 64)))),
        (ShapeError, dict(x_t=np.zeros((3, 128)))),
        (ShapeError, dict(x_t=np.zeros((2, 8, 128)))),  # a whole sequence
        (DataError, dict(x_t=nan)),
        (DataError, dict(x_t=np.full((2, 128), np.inf))),
        (DataError, dict(x_t=np.full((2, 128), 1e39))),  # finite in float64, inf in float32
        (DataError, dict(x_t=np.array([["a"] * 128] * 2))),
        (DataError, dict(x_t=x, label=[1, 6])),
        (DataError, dict(x_t=x, label=-1)),
        (DataError, dict(x_t=x, label=[1.0, 2.0])),
        (ShapeError, dict(x_t=x, label=[1, 2, 3])),
        (DataError, dict(x_t=x, label=[2, 1])),  # contradicts the segment's label
    ]
    for error, kwargs in cases:
        with pytest.raises(error) as info:
            learner.step(**kwargs)
        assert isinstance(info.value, TessError) and str(info.value)
        _assert_same_state(learner.state_dict(), before)
    with pytest.raises(ShapeError):
        learner.predict_step(np.zeros(128))
    _assert_same_state(learner.state_dict(), before)

    learner.close()
    for call in (lambda: learner.step(x), lambda: learner.predict_step(x), learner.reset, learner.apply,
                 lambda: learner.load_state_dict(before)):
        with pytest.raises(StreamClosedError, match="closed"):
            call()
    assert isinstance(StreamClosedError("x"), ConfigError)
    _assert_same_state(learner.state_dict(), before)


def test_bad_options() -> None:
    for kwargs in (dict(batch=0), dict(batch=True), dict(apply_every=0), dict(auto_reset="sometimes"),
                   dict(lr=-1.0), dict(lr=float("nan")), dict(learn="yes")):
        with pytest.raises(ConfigError):
            Learner(MLP, "numpy", **kwargs)
    with pytest.raises(ConfigError):
        Learner("mlp_events", "numpy")  # type: ignore[arg-type]
    if importlib.util.find_spec("torch") is not None:
        with pytest.raises(ConfigError, match="TESS"):
            Learner(MLP, tess.get_backend("torch", method="bptt"))


def test_divergence_keeps_the_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = _segments(MLP, 1, 3)
    learner = Learner(MLP, "numpy", batch=3)
    before = learner.numpy_params()
    real = learner._prog.apply

    def poisoned(params, moments, sums, lr, corrections):
        new, mom = real(params, moments, sums, lr, corrections)
        w = new.blocks[0].weight.copy()
        w[0, 0] = np.inf
        return new._replace(blocks=(new.blocks[0]._replace(weight=w), *new.blocks[1:])), mom

    monkeypatch.setattr(learner._prog, "apply", poisoned)
    with pytest.raises(DivergenceError, match="blocks.0.weight"):
        _feed(learner, x, y)
    _assert_close(learner.numpy_params(), before, rel=0)
    assert learner.updates == 0 and learner.pending_steps == 0 and learner.segments == 1
