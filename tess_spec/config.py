"""Frozen, validated configuration dataclasses of the TESS specification.

Every config validates itself in ``__post_init__`` and raises
:class:`tess_spec.errors.ConfigError` with a message that names the offending
field, the value received and what is expected.  Configs are plain data: they
round-trip through :func:`to_dict` / :func:`from_dict` (JSON-safe), which the
CLI and checkpoints use.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

from .errors import ConfigError

__all__ = [
    "BlockConfig",
    "ReadoutConfig",
    "NetworkConfig",
    "LIFConfig",
    "TraceConfig",
    "LSGConfig",
    "OptimizerConfig",
    "ScheduleConfig",
    "TrainConfig",
    "TessConfig",
    "PROFILES",
    "PSI_NAMES",
    "to_dict",
    "from_dict",
]

PROFILES: tuple[str, ...] = ("paper", "reference-code")
"""Names of the two rule profiles of TESS_RULE.md §9."""

PSI_NAMES: tuple[str, ...] = ("triangle", "fast_sigmoid")
"""Names of the selectable surrogate functions ψ (see :mod:`tess_spec.neuron`)."""

POOL_NAMES: tuple[str, ...] = ("max", "avg", "global_avg")
BLOCK_KINDS: tuple[str, ...] = ("conv", "linear")
OPTIMIZERS: tuple[str, ...] = ("adam", "sgd")
SCHEDULES: tuple[str, ...] = ("plateau", "none")
DTYPES: tuple[str, ...] = ("float32", "float64")


def _fail(where: str, name: str, value: Any, expected: str) -> None:
    raise ConfigError(f"{where}.{name}={value!r} is invalid: expected {expected}.")


def _check_choice(where: str, name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        _fail(where, name, value, "one of " + ", ".join(repr(c) for c in choices))


def _check_number(
    where: str,
    name: str,
    value: Any,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
    integer: bool = False,
) -> None:
    kind = "an integer" if integer else "a finite number"
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or (not integer and not math.isfinite(value)):
        _fail(where, name, value, kind)
    below = lo is not None and (value <= lo if lo_open else value < lo)
    above = hi is not None and (value >= hi if hi_open else value > hi)
    if below or above:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        lo_s = "-inf" if lo is None else repr(lo)
        hi_s = "inf" if hi is None else repr(hi)
        _fail(where, name, value, f"{kind} in {left}{lo_s}, {hi_s}{right}")


@dataclass(frozen=True)
class BlockConfig:
    """One spiking block: synaptic operator → LIF → optional dropout → optional pooling.

    Attributes:
        kind: ``"conv"`` (Conv2d, stride 1, padding ``kernel_size // 2``, no bias
            unless ``bias``) or ``"linear"``.
        features: output channels (conv) or output neurons (linear).
        kernel_size: odd kernel size of a conv block (ignored for linear).
        pool: ``None``, ``"max"``, ``"avg"`` (window = stride = ``pool_size``) or
            ``"global_avg"`` (mean over all positions, conv only).
        pool_size: pooling window of ``"max"``/``"avg"``.
        dropout: dropout probability; the mask is drawn once per sequence.
        weight_std: apply weight standardisation with a learnable gain.
        bias: give the synaptic operator a bias.
        psi: surrogate ψ by name; ``None`` uses :attr:`TraceConfig.psi`.
    """

    kind: Literal["conv", "linear"]
    features: int
    kernel_size: int = 3
    pool: Literal["max", "avg", "global_avg"] | None = None
    pool_size: int = 2
    dropout: float = 0.0
    weight_std: bool = False
    bias: bool = False
    psi: str | None = None

    def __post_init__(self) -> None:
        w = "BlockConfig"
        _check_choice(w, "kind", self.kind, BLOCK_KINDS)
        _check_number(w, "features", self.features, lo=1, integer=True)
        _check_number(w, "kernel_size", self.kernel_size, lo=1, integer=True)
        if self.kind == "conv" and self.kernel_size % 2 == 0:
            _fail(w, "kernel_size", self.kernel_size, "an odd integer (padding keeps the size)")
        if self.pool is not None:
            _check_choice(w, "pool", self.pool, POOL_NAMES)
            if self.kind == "linear":
                _fail(w, "pool", self.pool, "None for a linear block (pooling is spatial)")
        _check_number(w, "pool_size", self.pool_size, lo=1, integer=True)
        _check_number(w, "dropout", self.dropout, lo=0.0, hi=1.0, hi_open=True)
        if self.psi is not None:
            _check_choice(w, "psi", self.psi, PSI_NAMES)


@dataclass(frozen=True)
class ReadoutConfig:
    """The non-spiking linear readout on the last block's globally pooled output."""

    bias: bool = True


@dataclass(frozen=True)
class NetworkConfig:
    """A feed-forward SNN: ``blocks`` followed by a linear readout.

    Attributes:
        input_shape: shape of one input frame, ``(C, H, W)`` or ``(N,)``.
        n_classes: number of classes (>= 2).
        blocks: the spiking blocks, in order.
        readout: readout settings.
    """

    input_shape: tuple[int, ...]
    n_classes: int
    blocks: tuple[BlockConfig, ...]
    readout: ReadoutConfig = field(default_factory=ReadoutConfig)

    def __post_init__(self) -> None:
        w = "NetworkConfig"
        object.__setattr__(self, "input_shape", tuple(self.input_shape))
        object.__setattr__(self, "blocks", tuple(self.blocks))
        if len(self.input_shape) not in (1, 3) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in self.input_shape
        ):
            _fail(w, "input_shape", self.input_shape, "(C, H, W) or (N,) of positive integers")
        _check_number(w, "n_classes", self.n_classes, lo=2, integer=True)
        if not self.blocks:
            _fail(w, "blocks", self.blocks, "at least one block")
        for b in self.blocks:
            if not isinstance(b, BlockConfig):
                _fail(w, "blocks", b, "BlockConfig instances")
        # Shape propagation validates conv-after-linear and vanishing feature maps.
        from .shapes import block_shapes

        block_shapes(self)


@dataclass(frozen=True)
class LIFConfig:
    """Leaky integrate-and-fire neuron (TESS_RULE.md §2).

    Attributes:
        theta: firing threshold θ > 0 (spike when ``u > θ``, strict).
        leak: leak factor γ in (0, 1].
        reset: ``"soft"`` (subtract ``r · o``) or ``"hard"`` (multiply by ``1 - o``).
        reset_amount: soft-reset amount r; ``None`` takes the profile's value
            (see :func:`tess_spec.neuron.reset_amount`).
    """

    theta: float = 0.6
    leak: float = 0.5
    reset: Literal["soft", "hard"] = "soft"
    reset_amount: float | None = None

    def __post_init__(self) -> None:
        w = "LIFConfig"
        _check_number(w, "theta", self.theta, lo=0.0, lo_open=True)
        _check_number(w, "leak", self.leak, lo=0.0, hi=1.0, lo_open=True)
        _check_choice(w, "reset", self.reset, ("soft", "hard"))
        if self.reset_amount is not None:
            _check_number(w, "reset_amount", self.reset_amount, lo=0.0)


@dataclass(frozen=True)
class TraceConfig:
    """Eligibility-trace factors, written ``[λ_post, λ_pre, α_post, α_pre]`` (§3, §5).

    Attributes:
        factors: ``(λ_post, λ_pre, α_post, α_pre)``; λ in [0, 1], α finite.
        psi: default surrogate ψ by name (``"triangle"`` or ``"fast_sigmoid"``).
    """

    factors: tuple[float, float, float, float] = (0.2, 0.5, 0.0, 1.0)
    psi: str = "triangle"

    def __post_init__(self) -> None:
        w = "TraceConfig"
        object.__setattr__(self, "factors", tuple(self.factors))
        if len(self.factors) != 4:
            _fail(w, "factors", self.factors, "four numbers [λ_post, λ_pre, α_post, α_pre]")
        names = ("lambda_post", "lambda_pre", "alpha_post", "alpha_pre")
        for n, v in zip(names[:2], self.factors[:2]):
            _check_number(w, f"factors.{n}", v, lo=0.0, hi=1.0)
        for n, v in zip(names[2:], self.factors[2:]):
            _check_number(w, f"factors.{n}", v)
        _check_choice(w, "psi", self.psi, PSI_NAMES)

    @property
    def lambda_post(self) -> float:
        """Decay λ_post of the postsynaptic trace h."""
        return float(self.factors[0])

    @property
    def lambda_pre(self) -> float:
        """Decay λ_pre of the presynaptic trace q."""
        return float(self.factors[1])

    @property
    def alpha_post(self) -> float:
        """Weight α_post of the non-causal (post-before-pre) term."""
        return float(self.factors[2])

    @property
    def alpha_pre(self) -> float:
        """Weight α_pre of the causal (pre-before-post) term."""
        return float(self.factors[3])


@dataclass(frozen=True)
class LSGConfig:
    """Learning-signal generation (TESS_RULE.md §4).

    Attributes:
        pool_sizes: LSG pool size k per block (conv: k×k adaptive average pool;
            linear: outputs averaged to length k).  ``None`` means k = 1 for conv
            blocks and k = n (no pooling) for linear blocks.
        omega_min: lowest basis frequency ω (radians per index).
        omega_max: highest basis frequency ω.
        temperature: softmax temperature τ > 0.
    """

    pool_sizes: tuple[int, ...] | None = None
    omega_min: float = 50.0
    omega_max: float = 512.0
    temperature: float = 1.0

    def __post_init__(self) -> None:
        w = "LSGConfig"
        if self.pool_sizes is not None:
            object.__setattr__(self, "pool_sizes", tuple(self.pool_sizes))
            for k in self.pool_sizes:
                _check_number(w, "pool_sizes[...]", k, lo=1, integer=True)
        _check_number(w, "omega_min", self.omega_min)
        _check_number(w, "omega_max", self.omega_max)
        _check_number(w, "temperature", self.temperature, lo=0.0, lo_open=True)


@dataclass(frozen=True)
class OptimizerConfig:
    """Per-block optimiser (every block and the readout get their own instance).

    Attributes:
        name: ``"adam"`` or ``"sgd"`` (SGD with momentum, torch semantics).
        lr: initial learning rate.
        betas: Adam's (β1, β2).
        eps: Adam's ε.
        momentum: SGD momentum μ in [0, 1).
        weight_decay: L2 coefficient added to the gradient.
    """

    name: Literal["adam", "sgd"] = "adam"
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    momentum: float = 0.9
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        w = "OptimizerConfig"
        object.__setattr__(self, "betas", tuple(self.betas))
        _check_choice(w, "name", self.name, OPTIMIZERS)
        _check_number(w, "lr", self.lr, lo=0.0, lo_open=True)
        if len(self.betas) != 2:
            _fail(w, "betas", self.betas, "two numbers (β1, β2)")
        for i, b in enumerate(self.betas):
            _check_number(w, f"betas[{i}]", b, lo=0.0, hi=1.0, hi_open=True)
        _check_number(w, "eps", self.eps, lo=0.0, lo_open=True)
        _check_number(w, "momentum", self.momentum, lo=0.0, hi=1.0, hi_open=True)
        _check_number(w, "weight_decay", self.weight_decay, lo=0.0)


@dataclass(frozen=True)
class ScheduleConfig:
    """Learning-rate schedule: reduce-on-plateau of the monitored (train) loss.

    Attributes:
        name: ``"plateau"`` or ``"none"``.
        factor: multiply the rate by this when the loss has plateaued.
        patience: epochs without improvement tolerated before reducing.
        threshold: relative improvement that counts (torch ``rel`` mode).
        min_lr: the rate never goes below this.
    """

    name: Literal["plateau", "none"] = "plateau"
    factor: float = 0.5
    patience: int = 5
    threshold: float = 1e-4
    min_lr: float = 0.0

    def __post_init__(self) -> None:
        w = "ScheduleConfig"
        _check_choice(w, "name", self.name, SCHEDULES)
        _check_number(w, "factor", self.factor, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
        _check_number(w, "patience", self.patience, lo=0, integer=True)
        _check_number(w, "threshold", self.threshold, lo=0.0)
        _check_number(w, "min_lr", self.min_lr, lo=0.0)


@dataclass(frozen=True)
class TrainConfig:
    """Training loop settings.

    Attributes:
        T: time steps per sequence.
        n_learn: length of the learning window (the last ``n_learn`` steps);
            ``None`` means ``T``.
        epochs: passes over the training set.
        batch_size: samples per mini-batch (one optimiser step each).
        seed: seed of the single NumPy generator behind all randomness.
        dtype: ``"float32"`` (default) or ``"float64"``.
    """

    T: int = 6
    n_learn: int | None = None
    epochs: int = 10
    batch_size: int = 32
    seed: int = 0
    dtype: Literal["float32", "float64"] = "float32"

    def __post_init__(self) -> None:
        w = "TrainConfig"
        _check_number(w, "T", self.T, lo=1, integer=True)
        if self.n_learn is None:
            object.__setattr__(self, "n_learn", self.T)
        _check_number(w, "n_learn", self.n_learn, lo=1, hi=self.T, integer=True)
        _check_number(w, "epochs", self.epochs, lo=0, integer=True)
        _check_number(w, "batch_size", self.batch_size, lo=1, integer=True)
        _check_number(w, "seed", self.seed, lo=0, integer=True)
        _check_choice(w, "dtype", self.dtype, DTYPES)

    @property
    def window_start(self) -> int:
        """First step of the learning window, ``T - n_learn``."""
        assert self.n_learn is not None
        return self.T - self.n_learn


@dataclass(frozen=True)
class TessConfig:
    """Everything that defines a TESS run.

    Attributes:
        network: the architecture.
        lif: neuron parameters.
        traces: trace factors and default ψ.
        lsg: learning-signal generation.
        optimizer: per-block optimiser.
        schedule: learning-rate schedule.
        train: loop settings (T, learning window, epochs, batch, seed, dtype).
        profile: ``"paper"`` or ``"reference-code"`` (TESS_RULE.md §9).
    """

    network: NetworkConfig
    lif: LIFConfig = field(default_factory=LIFConfig)
    traces: TraceConfig = field(default_factory=TraceConfig)
    lsg: LSGConfig = field(default_factory=LSGConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    profile: Literal["paper", "reference-code"] = "paper"

    def __post_init__(self) -> None:
        w = "TessConfig"
        _check_choice(w, "profile", self.profile, PROFILES)
        if self.lsg.pool_sizes is not None and len(self.lsg.pool_sizes) != len(self.network.blocks):
            _fail(
                w,
                "lsg.pool_sizes",
                self.lsg.pool_sizes,
                f"one pool size per block ({len(self.network.blocks)} blocks)",
            )
        if self.lsg.pool_sizes is not None:
            from .shapes import block_shapes

            for i, (k, bs) in enumerate(zip(self.lsg.pool_sizes, block_shapes(self.network))):
                out = bs.output
                if len(out) == 1 and k > out[0]:
                    _fail(w, f"lsg.pool_sizes[{i}]", k, f"at most the block's {out[0]} outputs")

    def lsg_pool(self, index: int) -> int:
        """The LSG pool size k of block ``index`` (resolving the ``None`` default)."""
        if self.lsg.pool_sizes is not None:
            return self.lsg.pool_sizes[index]
        from .shapes import block_shapes

        out = block_shapes(self.network)[index].output
        return out[0] if len(out) == 1 else 1

    def psi_name(self, index: int) -> str:
        """The ψ function name used by block ``index``."""
        return self.network.blocks[index].psi or self.traces.psi

    def replace(self, **changes: Any) -> "TessConfig":
        """Return a copy with top-level fields replaced; nested fields via ``"train.T"`` keys.

        Example: ``cfg.replace(**{"train.T": 8, "profile": "reference-code"})``.
        """
        d = to_dict(self)
        if "train.T" in changes and "train.n_learn" not in changes and self.train.n_learn == self.train.T:
            # A full-sequence window stays a full-sequence window when T changes.
            d["train"]["n_learn"] = None
        return from_dict(_apply_overrides(d, changes))


def _apply_overrides(d: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in changes.items():
        parts = key.split(".")
        node: Any = d
        for p in parts[:-1]:
            if not isinstance(node, dict) or p not in node:
                raise ConfigError(f"unknown config field {key!r}: {p!r} does not exist")
            node = node[p]
        if not isinstance(node, dict) or parts[-1] not in node:
            raise ConfigError(f"unknown config field {key!r}")
        node[parts[-1]] = to_dict(value) if dataclasses.is_dataclass(value) else value
    return d


def to_dict(obj: Any) -> Any:
    """Convert a config (or nested configs) to JSON-safe dicts and lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (tuple, list)):
        return [to_dict(v) for v in obj]
    return obj


def _tuplify(v: Any) -> Any:
    return tuple(_tuplify(x) for x in v) if isinstance(v, list) else v


def _build(cls: type, d: Mapping[str, Any]) -> Any:
    if not isinstance(d, Mapping):
        raise ConfigError(f"{cls.__name__} expects a mapping, got {type(d).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ConfigError(
            f"unknown field(s) {sorted(unknown)} for {cls.__name__}; known: {sorted(names)}"
        )
    return cls(**{k: _tuplify(v) for k, v in d.items()})


def from_dict(d: Mapping[str, Any]) -> TessConfig:
    """Rebuild a :class:`TessConfig` from :func:`to_dict` output (validating it)."""
    d = dict(d)
    net = dict(d.pop("network"))
    net["blocks"] = tuple(_build(BlockConfig, b) for b in net.get("blocks", ()))
    if "readout" in net:
        net["readout"] = _build(ReadoutConfig, net["readout"])
    parts: dict[str, Any] = {"network": _build(NetworkConfig, net)}
    sub = {
        "lif": LIFConfig,
        "traces": TraceConfig,
        "lsg": LSGConfig,
        "optimizer": OptimizerConfig,
        "schedule": ScheduleConfig,
        "train": TrainConfig,
    }
    for key, cls in sub.items():
        if key in d:
            value = d.pop(key)
            if key == "train" and isinstance(value, Mapping):
                value = dict(value)
            parts[key] = _build(cls, value)
    if "profile" in d:
        parts["profile"] = d.pop("profile")
    if d:
        raise ConfigError(f"unknown TessConfig field(s) {sorted(d)}")
    return TessConfig(**parts)
