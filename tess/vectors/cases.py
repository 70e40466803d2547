"""The exported cases: one mini-batch of TESS training each, from one LIF neuron to
the golden networks.

A case is a config plus the inputs of one ``train_batch``: initial parameters and
optimiser state, the batch ``x, y`` and the dropout masks.  Everything is drawn
from one seeded generator (or written out by hand), so a case is the same on every
machine.  The expected outputs are not stored here: :mod:`tess.vectors.export`
computes them with the spec's float64 reference.

Families (read from the config by :func:`family`): ``linear`` (only linear blocks,
no weight standardisation, no dropout — what ``examples/c_linear`` implements) and
``general`` (anything else: conv blocks, pooling, weight standardisation, dropout).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from tess_spec import golden as G
from tess_spec.config import (
    BlockConfig,
    LIFConfig,
    LSGConfig,
    NetworkConfig,
    OptimizerConfig,
    TessConfig,
    TraceConfig,
    TrainConfig,
)
from tess_spec.init import init_opt_state, init_params, make_rng

__all__ = ["CaseInputs", "VectorCase", "CASES", "case_names", "select_cases", "family", "features",
           "learning_signal_of", "VECTOR_SEED"]

VECTOR_SEED = 19
"""Seed of the generator behind every hand-built case's parameters, state and batch."""


@dataclass
class CaseInputs:
    """What one ``train_batch`` of a case starts from (float64; rounded on export).

    Attributes:
        config: the case's config.
        params: parameters before the step, by canonical name.
        opt_state: optimiser state before the step (``step`` and ``m``/``v`` or ``buf``).
        x: the batch, ``(batch, T, *input_shape)``.
        y: integer labels ``(batch,)``.
        masks: per block a dropout mask ``(batch, *neurons)`` or ``None``.
    """

    config: TessConfig
    params: dict[str, np.ndarray]
    opt_state: dict[str, Any]
    x: np.ndarray
    y: np.ndarray
    masks: list[np.ndarray | None]


@dataclass(frozen=True)
class VectorCase:
    """A named case: what it exercises and how its inputs are built.

    Attributes:
        name: directory name of the case.
        description: one paragraph saying what the case pins.
        build: returns the case's :class:`CaseInputs`.
        exact: record quantities computed without any rounding (dyadic numbers), which
            must be equal bit for bit in every dtype: no spike band applies to them.
    """

    name: str
    description: str
    build: Callable[[], CaseInputs]
    exact: tuple[str, ...] = ()


def _warm_state(config: TessConfig, params: dict[str, np.ndarray], rng: np.random.Generator, steps: int) -> dict:
    """An optimiser state as after ``steps`` earlier steps: moments drawn, not zero, so that
    an implementation must read the state and apply bias correction at step ``steps + 1``."""
    opt = init_opt_state(config, params)
    opt["step"] = steps
    for mom in [k for k in opt if k != "step"]:
        for name, p in params.items():
            scale = 0.05 * (np.abs(p).max() + 1e-3)
            draw = rng.normal(0.0, scale, size=p.shape)
            opt[mom][name] = draw * draw * 40 if mom == "v" else draw
    return opt


def _events(rng: np.random.Generator, batch: int, T: int, shape: tuple[int, ...], density: float) -> np.ndarray:
    return (rng.random((batch, T, *shape)) < density).astype(np.float64)


def _linear(name_seed: int, *, n_in: int, widths: tuple[int, ...], n_classes: int, T: int, n_learn: int,
            batch: int, lsg: tuple[int, ...], psi: tuple[str, ...], bias: tuple[bool, ...], profile: str,
            factors: tuple[float, float, float, float], optimizer: OptimizerConfig, reset: str = "soft",
            warm_steps: int = 0, density: float = 0.4) -> CaseInputs:
    blocks = tuple(BlockConfig("linear", w, psi=p, bias=b) for w, p, b in zip(widths, psi, bias))
    config = TessConfig(
        network=NetworkConfig((n_in,), n_classes, blocks),
        lif=LIFConfig(reset=reset),
        traces=TraceConfig(factors=factors),
        lsg=LSGConfig(pool_sizes=lsg),
        optimizer=optimizer,
        train=TrainConfig(T=T, n_learn=n_learn, batch_size=batch, epochs=1, seed=VECTOR_SEED, dtype="float64"),
        profile=profile,
    )
    rng = make_rng(VECTOR_SEED + name_seed)
    params = init_params(config, rng)
    for i, b in enumerate(blocks):
        if b.bias:  # a non-zero bias, so that an implementation that drops it is seen
            params[f"blocks.{i}.bias"] = rng.normal(0.0, 0.1, size=b.features)
    opt = _warm_state(config, params, rng, warm_steps) if warm_steps else init_opt_state(config, params)
    x = _events(rng, batch, T, (n_in,), density)
    y = rng.integers(0, n_classes, size=batch).astype(np.int64)
    return CaseInputs(config, params, opt, x, y, [None] * len(blocks))


def _lif_neuron() -> CaseInputs:
    config = TessConfig(
        network=NetworkConfig((1,), 2, (BlockConfig("linear", 1),)),
        traces=TraceConfig(factors=(0.2, 0.5, 1.0, 1.0)),
        optimizer=OptimizerConfig(name="sgd", lr=0.1, momentum=0.9),
        train=TrainConfig(T=8, n_learn=5, batch_size=2, epochs=1, seed=VECTOR_SEED, dtype="float64"),
    )
    rng = make_rng(VECTOR_SEED)
    params = init_params(config, rng)
    params["blocks.0.weight"] = np.ones((1, 1))  # the input is the synaptic current
    x = np.array([[0.5, 0.4, 0.9, 0.1, 0.7, 0.0, 1.2, 0.3],
                  [0.7, 0.7, 0.7, 0.7, 0.2, 0.2, 0.9, 0.0]])[:, :, None]
    y = np.array([0, 1], dtype=np.int64)
    return CaseInputs(config, params, init_opt_state(config, params), x, y, [None])


def _threshold_ties(reset: str) -> Callable[[], CaseInputs]:
    def build() -> CaseInputs:
        blocks = (BlockConfig("linear", 6, psi="triangle"), BlockConfig("linear", 4, psi="fast_sigmoid", bias=True))
        config = TessConfig(
            network=NetworkConfig((8,), 3, blocks),
            lif=LIFConfig(theta=0.5, leak=0.5, reset=reset),
            traces=TraceConfig(factors=(0.5, 0.5, 1.0, 1.0)),
            lsg=LSGConfig(pool_sizes=(3, 2)),
            optimizer=OptimizerConfig(name="sgd", lr=0.125, momentum=0.5),
            train=TrainConfig(T=6, n_learn=4, batch_size=3, epochs=1, seed=VECTOR_SEED, dtype="float64"),
        )
        rng = make_rng(VECTOR_SEED + (110 if reset == "hard" else 105))  # draws with ties in both blocks
        grid = np.array([-0.5, -0.25, 0.0, 0.25, 0.5])  # dyadic: every membrane value is exact in float32
        params = {
            "blocks.0.weight": rng.choice(grid, size=(6, 8)),
            "blocks.1.weight": rng.choice(grid, size=(4, 6)),
            "blocks.1.bias": rng.choice(np.array([0.0, 0.25]), size=4),
            "readout.weight": rng.choice(grid, size=(3, 4)),
            "readout.bias": np.zeros(3),
        }
        x = _events(rng, 3, 6, (8,), 0.5)
        y = np.array([0, 2, 1], dtype=np.int64)
        return CaseInputs(config, params, init_opt_state(config, params), x, y, [None, None])

    return build


def _conv_block() -> CaseInputs:
    config = TessConfig(
        network=NetworkConfig((2, 6, 6), 3, (BlockConfig("conv", 3, pool="max", pool_size=2, weight_std=True),)),
        traces=TraceConfig(factors=(0.2, 0.5, 1.0, 1.0)),
        lsg=LSGConfig(pool_sizes=(2,)),
        optimizer=OptimizerConfig(lr=5e-3),
        train=TrainConfig(T=5, n_learn=3, batch_size=3, epochs=1, seed=VECTOR_SEED, dtype="float64"),
    )
    rng = make_rng(VECTOR_SEED + 200)
    params = init_params(config, rng)
    params["blocks.0.gain"] = 1.0 + 0.25 * rng.standard_normal(3)  # not all 1: the gain must be applied
    opt = _warm_state(config, params, rng, 1)
    x = _events(rng, 3, 5, (2, 6, 6), 0.35)
    y = np.array([2, 0, 1], dtype=np.int64)
    return CaseInputs(config, params, opt, x, y, [None])


def _golden(name: str) -> Callable[[], CaseInputs]:
    def build() -> CaseInputs:
        config = G.golden_config(name)
        arrays = G.generate(name)
        L = len(config.network.blocks)
        params = {k[len("init/params/"):]: v for k, v in arrays.items() if k.startswith("init/params/")}
        opt: dict[str, Any] = {"step": int(arrays["init/opt/step"])}
        for key, v in arrays.items():
            if key.startswith("init/opt/") and key != "init/opt/step":
                mom, pname = key[len("init/opt/"):].split("/", 1)
                opt.setdefault(mom, {})[pname] = v
        masks = [arrays.get(f"step0/mask/{i}") for i in range(L)]
        return CaseInputs(config, params, opt, arrays["step0/x"], arrays["step0/y"], masks)

    return build


def _hand_cases() -> list[VectorCase]:
    adam = OptimizerConfig(lr=5e-3)
    return [
        VectorCase("lif-neuron", (
            "One LIF neuron (weight 1, so the input is the synaptic current) over 8 steps, window 5, soft reset, "
            "triangle ψ, both traces; SGD with momentum. With one neuron the LSG basis is its column j = 0, "
            "which is 0: m and the block's update are 0 by construction; the readout still learns."), _lif_neuron),
        VectorCase("linear-block", (
            "One linear block of 6 neurons with a bias on 10 event inputs, fast-sigmoid ψ, LSG pool k = 3, paper "
            "profile, both update terms; Adam from a non-zero state at step 2."),
            lambda: _linear(1, n_in=10, widths=(6,), n_classes=3, T=6, n_learn=4, batch=4, lsg=(3,),
                            psi=("fast_sigmoid",), bias=(True,), profile="paper", factors=(0.2, 0.5, 1.0, 1.0),
                            optimizer=adam, warm_steps=2)),
        VectorCase("linear-two-blocks", (
            "Two linear blocks (8 neurons with triangle ψ, then 5 with fast-sigmoid ψ and a bias), reference-code "
            "profile (h̃[t-1] = h[t-1]), factors of the released event-data runs (α_post = 0); SGD with momentum "
            "from a non-zero buffer."),
            lambda: _linear(2, n_in=12, widths=(8, 5), n_classes=4, T=7, n_learn=7, batch=3, lsg=(4, 5),
                            psi=("triangle", "fast_sigmoid"), bias=(False, True), profile="reference-code",
                            factors=(0.2, 0.5, 0.0, 1.0), optimizer=OptimizerConfig(name="sgd", lr=0.05),
                            warm_steps=3)),
        VectorCase("linear-hard-reset", (
            "One linear block of 7 neurons with hard reset, triangle ψ, and an LSG pool k = 3 whose bins overlap "
            "(7 outputs to 3: torch's adaptive-pool rule); Adam from zero."),
            lambda: _linear(3, n_in=9, widths=(7,), n_classes=3, T=6, n_learn=5, batch=4, lsg=(3,),
                            psi=("triangle",), bias=(False,), profile="paper", factors=(0.2, 0.5, 1.0, 1.0),
                            optimizer=adam, reset="hard", density=0.5)),
        VectorCase("linear-threshold-ties", (
            "Two linear blocks on dyadic numbers (θ = 0.5, γ = 0.5, weights in {0, ±0.25, ±0.5}, binary input): "
            "membranes land exactly on θ, so the strict inequality u > θ and the soft reset are pinned exactly "
            "(an implementation firing at u >= θ fails, in float32 too: u and o are exact)."),
            _threshold_ties("soft"), exact=("u", "o")),
        VectorCase("linear-threshold-ties-hard", (
            "The exact-threshold-tie network with hard reset: pins u > θ and the hard reset exactly."),
            _threshold_ties("hard"), exact=("u", "o")),
        VectorCase("conv-block", (
            "One conv block (3×3, 3 channels) on 2×6×6 event frames with 2×2 max pooling and weight "
            "standardisation with a non-unit gain, LSG pool 2×2; Adam from a non-zero state."), _conv_block),
    ]


def _golden_cases() -> list[VectorCase]:
    out = []
    for name, what in G.GOLDEN_CASES.items():
        desc = ", ".join(f"{k}={v!r}" for k, v in what.items()) if isinstance(what, dict) else str(what)
        out.append(VectorCase(f"golden-{name}", (
            f"The golden network {name!r} of tess_spec.golden (two conv blocks, the second max-pooled, a linear "
            f"block with a bias; {desc}), its first mini-batch from the golden's initial parameters."),
            _golden(name), tuple(getattr(G, "EXACT_QUANTITIES", ())) if isinstance(what, dict) and what.get("exact")
            else ()))
    return out


CASES: dict[str, VectorCase] = {c.name: c for c in (*_hand_cases(), *_golden_cases())}
"""Every exportable case by name, small to large; ``golden-*`` follow ``tess_spec.golden.GOLDEN_CASES``."""


def case_names() -> list[str]:
    """The names of :data:`CASES`, in order."""
    return list(CASES)


def select_cases(patterns: list[str] | None) -> list[str]:
    """Case names matching any of ``patterns`` (exact names or shell patterns such as
    ``linear-*``), in :data:`CASES` order; all cases for ``None`` or an empty list.

    Raises :class:`tess.errors.ConfigError` for a pattern that matches nothing."""
    import fnmatch

    from tess.errors import ConfigError

    if not patterns:
        return case_names()
    chosen: set[str] = set()
    for p in patterns:
        hit = [n for n in CASES if fnmatch.fnmatchcase(n, p)]
        if not hit:
            raise ConfigError(f"no vector case matches {p!r}; available: {', '.join(CASES)}")
        chosen.update(hit)
    return [n for n in CASES if n in chosen]


def family(config: TessConfig) -> str:
    """``"linear"`` when every block is linear without weight standardisation or dropout
    (what a minimal implementation such as ``examples/c_linear`` supports), else ``"general"``."""
    simple = all(b.kind == "linear" and not b.weight_std and b.dropout == 0 for b in config.network.blocks)
    return "linear" if simple else "general"


def learning_signal_of(config: TessConfig) -> str:
    """The config's learning-signal setting (a field named ``learning_signal`` or ``signal``,
    at the top or one level down), or ``"lsg"`` where the config has no such field."""
    for key in ("learning_signal", "signal"):
        if hasattr(config, key):
            return str(getattr(config, key))
    for part in ("lsg", "train", "traces"):
        sub = getattr(config, part, None)
        for key in ("learning_signal", "signal"):
            if sub is not None and hasattr(sub, key):
                return str(getattr(sub, key))
    return "lsg"


def features(config: TessConfig) -> list[str]:
    """The rule's features a case exercises, sorted (e.g. ``linear``, ``conv``, ``max_pool``,
    ``weight_std``, ``dropout``, ``bias``, ``soft_reset``, ``psi:triangle``, ``adam``,
    ``profile:paper``): what an implementation must support to run it."""
    out = {f"{config.lif.reset}_reset", config.optimizer.name, f"profile:{config.profile}",
           f"learning_signal:{learning_signal_of(config)}"}
    for i, b in enumerate(config.network.blocks):
        out.add(b.kind)
        out.add(f"psi:{config.psi_name(i)}")
        if b.pool:
            out.add(f"{b.pool}_pool")
        if b.weight_std:
            out.add("weight_std")
        if b.dropout:
            out.add("dropout")
        if b.bias:
            out.add("bias")
    if config.network.readout.bias:
        out.add("readout_bias")
    return sorted(out)
