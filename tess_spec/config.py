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
    "LEARNING_SIGNALS",
    "to_dict",
    "from_dict",
]

PROFILES: tuple[str, ...] = ("paper", "reference-code")
"""Names of the two rule profiles of TESS_RULE.md §9."""

PSI_NAMES: tuple[str, ...] = ("triangle", "fast_sigmoid")
"""Names of the selectable surrogate functions ψ (see :mod:`tess_spec.neuron`)."""

LEARNING_SIGNALS: tuple[str, ...] = ("lsg", "readout-backprop", "released")
"""Names of the learning-signal settings (:mod:`tess_spec.signals`, TESS_RULE.md §11):
``"lsg"`` (the paper: each block's own fixed-basis local loss, in the window),
``"readout-backprop"`` (in the window, the readout's per-step error back-propagated
across the later blocks within the step) and ``"released"`` (the public code's loop:
LSG at the steps before the window, readout back-propagation inside it)."""

POOL_NAMES: tuple[str, ...] = ("max", "avg", "global_avg")
BLOCK_KINDS: tuple[str, ...] = ("conv", "linear")
OPTIMIZERS: tuple[str, ...] = ("adam", "sgd")
SCHEDULES: tuple[str, ...] = ("plateau", "none")
DTYPES: tuple[str, ...] = ("float32", "float64")


INT_MAX = 2**31 - 1
"""Largest value of an integer size field (features, T, batch size …); ``seed`` is unbounded."""


def _fail(where: str, name: str, value: Any, expected: str) -> None:
    raise ConfigError(f"{where}.{name}={value!r} is invalid: expected {expected}.")


def _check_choice(where: str, name: str, value: Any, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in choices:
        _fail(where, name, value, "one of " + ", ".join(repr(c) for c in choices))


def _check_bool(where: str, name: str, value: Any) -> None:
    if not isinstance(value, bool):
        _fail(where, name, value, "true or false")


def _as_tuple(where: str, name: str, value: Any, expected: str) -> tuple:
    """``value`` as a tuple if it is a list or tuple, else a ConfigError."""
    if not isinstance(value, (list, tuple)):
        _fail(where, name, value, expected)
    return tuple(value)


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
    unbounded: bool = False,
) -> None:
    kind = "an integer" if integer else "a finite number"
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type:
        _fail(where, name, value, kind)
    if integer and hi is None and not unbounded and value > INT_MAX:
        _fail(where, name, value, f"an integer of at most {INT_MAX} (a size no array can hold)")
    if not integer:
        try:  # a Python int too large for a float (10**400) is not a usable number either
            finite = math.isfinite(float(value))
        except OverflowError:
            finite = False
        if not finite:
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
        _check_bool(w, "weight_std", self.weight_std)
        _check_bool(w, "bias", self.bias)
        if self.psi is not None:
            _check_choice(w, "psi", self.psi, PSI_NAMES)


@dataclass(frozen=True)
class ReadoutConfig:
    """The non-spiking linear readout on the last block's globally pooled output."""

    bias: bool = True

    def __post_init__(self) -> None:
        _check_bool("ReadoutConfig", "bias", self.bias)


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
        object.__setattr__(self, "input_shape", _as_tuple(w, "input_shape", self.input_shape,
                                                          "(C, H, W) or (N,) of positive integers"))
        object.__setattr__(self, "blocks", _as_tuple(w, "blocks", self.blocks, "a list of blocks"))
        if len(self.input_shape) not in (1, 3) or not all(
            isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= INT_MAX for s in self.input_shape
        ):
            _fail(w, "input_shape", self.input_shape, "(C, H, W) or (N,) of positive integers")
        _check_number(w, "n_classes", self.n_classes, lo=2, integer=True)
        if not self.blocks:
            _fail(w, "blocks", self.blocks, "at least one block")
        for b in self.blocks:
            if not isinstance(b, BlockConfig):
                _fail(w, "blocks", b, "BlockConfig instances")
        if not isinstance(self.readout, ReadoutConfig):
            _fail(w, "readout", self.readout, "a ReadoutConfig")
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
        object.__setattr__(self, "factors", _as_tuple(w, "factors", self.factors,
                                                      "four numbers [λ_post, λ_pre, α_post, α_pre]"))
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
            object.__setattr__(self, "pool_sizes", _as_tuple(w, "pool_sizes", self.pool_sizes,
                                                             "null or one positive integer per block"))
            for k in self.pool_sizes:
                _check_number(w, "pool_sizes[...]", k, lo=1, integer=True)
        _check_number(w, "omega_min", self.omega_min)
        _check_number(w, "omega_max", self.omega_max)
        if not self.omega_min < self.omega_max:
            _fail(w, "omega_min", self.omega_min,
                  f"a number below omega_max={self.omega_max!r} (the basis frequencies run from omega_min up to "
                  "omega_max; equal or reversed bounds give classes the same or a reversed basis)")
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
        object.__setattr__(self, "betas", _as_tuple(w, "betas", self.betas, "two numbers (β1, β2)"))
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
        _check_number(w, "seed", self.seed, lo=0, integer=True, unbounded=True)
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
        learning_signal: where each block's learning signal m comes from, orthogonal
            to the profile (:data:`LEARNING_SIGNALS`, :mod:`tess_spec.signals`):
            ``"lsg"`` (default, the paper), ``"readout-backprop"`` or ``"released"``.
            :func:`to_dict` writes it only when it is not ``"lsg"``, so every config
            written before the setting existed serialises exactly as it did.
    """

    network: NetworkConfig
    lif: LIFConfig = field(default_factory=LIFConfig)
    traces: TraceConfig = field(default_factory=TraceConfig)
    lsg: LSGConfig = field(default_factory=LSGConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    profile: Literal["paper", "reference-code"] = "paper"
    learning_signal: Literal["lsg", "readout-backprop", "released"] = "lsg"

    def __post_init__(self) -> None:
        w = "TessConfig"
        for name, cls in (("network", NetworkConfig), ("lif", LIFConfig), ("traces", TraceConfig),
                          ("lsg", LSGConfig), ("optimizer", OptimizerConfig), ("schedule", ScheduleConfig),
                          ("train", TrainConfig)):
            if not isinstance(getattr(self, name), cls):
                _fail(w, name, getattr(self, name), f"a {cls.__name__}")
        _check_choice(w, "profile", self.profile, PROFILES)
        _check_choice(w, "learning_signal", self.learning_signal, LEARNING_SIGNALS)
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
        d["learning_signal"] = self.learning_signal  # (to_dict leaves the default out)
        if "train.T" in changes and "train.n_learn" not in changes and self.train.n_learn == self.train.T:
            # A full-sequence window stays a full-sequence window when T changes.
            d["train"]["n_learn"] = None
        return from_dict(_apply_overrides(d, changes))


def _names(keys: Any) -> list[str]:
    """Keys as sorted strings (JSON keys are strings; a Python dict may hold anything)."""
    return sorted(k if isinstance(k, str) else repr(k) for k in keys)


def _apply_overrides(d: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """Set dotted ``changes`` (``"train.T"``, ``"network.blocks.0.features"``) in the plain dict ``d``.

    A whole section (``"train"``) may be replaced by a mapping, a list (``"network.blocks"``)
    by a list; list items are addressed by their index.  Raises :class:`ConfigError`
    for an unknown field, an index out of range, or a section set to a non-mapping.
    """
    for key, value in changes.items():
        if not isinstance(key, str) or not key or "" in key.split("."):
            raise ConfigError(f"config field {key!r} is invalid: expected a dotted field name such as 'train.T'")
        parts = key.split(".")
        node: Any = d
        for depth, p in enumerate(parts):
            here = ".".join(parts[:depth]) or "the config"
            last = depth == len(parts) - 1
            if isinstance(node, dict):
                if p not in node:
                    raise ConfigError(f"unknown config field {key!r}: {here} has no field {p!r}; "
                                      f"known: {_names(node)}")
                if last:
                    break
                node = node[p]
            elif isinstance(node, list):
                if not p.isdigit() or int(p) >= len(node):
                    raise ConfigError(f"unknown config field {key!r}: {here} is a list of {len(node)} items; "
                                      f"expected an index 0..{len(node) - 1}, got {p!r}")
                if last:
                    p = int(p)  # type: ignore[assignment]
                    break
                node = node[int(p)]
            else:
                raise ConfigError(f"cannot set {key!r}: {here} is {node!r}, not a section of fields")
        new = to_dict(value) if dataclasses.is_dataclass(value) and not isinstance(value, type) else value
        old = node[p]  # type: ignore[index]
        if isinstance(old, dict) and not isinstance(new, dict):
            raise ConfigError(f"{key}={new!r} is invalid: {key!r} is a section of fields; expected a mapping "
                              f"such as {{{next(iter(old), 'field')!r}: ...}}, or set one field as "
                              f"'{key}.{next(iter(old), 'field')}=VALUE'")
        if isinstance(old, list) and old and isinstance(old[0], dict) and not isinstance(new, (list, tuple)):
            raise ConfigError(f"{key}={new!r} is invalid: expected a list of mappings "
                              f"(e.g. [{{\"kind\": \"linear\", \"features\": 64}}])")
        node[p] = new  # type: ignore[index]
    return d


def to_dict(obj: Any) -> Any:
    """Convert a config (or nested configs) to JSON-safe dicts and lists.

    A :class:`TessConfig`'s ``learning_signal`` is written only when it is not the
    default ``"lsg"``: configs, golden traces and checkpoints made before the setting
    existed keep exactly their dict (and :func:`from_dict` restores the default)."""
    if isinstance(obj, TessConfig):
        d = {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        if d["learning_signal"] == "lsg":
            del d["learning_signal"]
        return d
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (tuple, list)):
        return [to_dict(v) for v in obj]
    return obj


def _tuplify(v: Any) -> Any:
    return tuple(_tuplify(x) for x in v) if isinstance(v, list) else v


def _build(cls: type, d: Any, where: str) -> Any:
    if not isinstance(d, Mapping):
        raise ConfigError(f"{where}={d!r} is invalid: expected a mapping of {cls.__name__} fields "
                          f"{_names(f.name for f in dataclasses.fields(cls))}, got {type(d).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = [k for k in d if k not in names]
    if unknown:
        raise ConfigError(
            f"unknown field(s) {_names(unknown)} in {where} ({cls.__name__}); known: {sorted(names)}"
        )
    required = {f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    missing = required - set(d)
    if missing:
        raise ConfigError(f"{where} lacks the required field(s) {sorted(missing)} of {cls.__name__}")
    return cls(**{k: _tuplify(v) for k, v in d.items()})


_MALFORMED = "config is malformed"


def from_dict(d: Mapping[str, Any]) -> TessConfig:
    """Rebuild a :class:`TessConfig` from :func:`to_dict` output (validating it).

    Any value that is not a valid config — of any JSON type, at any depth — raises
    :class:`ConfigError` naming the field; nothing else is raised.
    """
    try:
        return _from_dict(d)
    except ConfigError:
        raise
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError, RecursionError) as exc:
        # A safety net: every value should be caught above with a precise message.
        raise ConfigError(f"{_MALFORMED} ({type(exc).__name__}: {exc})") from exc


def _from_dict(d: Any) -> TessConfig:
    if not isinstance(d, Mapping):
        raise ConfigError(f"a config is a mapping of fields (a JSON object), got {type(d).__name__} {d!r}")
    d = dict(d)
    if "network" not in d:
        raise ConfigError(f"the config lacks its 'network' section (fields: {_names(d)}); every config needs "
                          "network.input_shape, network.n_classes and network.blocks")
    net = d.pop("network")
    if not isinstance(net, Mapping):
        raise ConfigError(f"network={net!r} is invalid: expected a mapping with input_shape, n_classes and blocks, "
                          f"got {type(net).__name__}")
    net = dict(net)
    if "blocks" in net:
        blocks = net["blocks"]
        if not isinstance(blocks, (list, tuple)):
            raise ConfigError(f"network.blocks={blocks!r} is invalid: expected a list of blocks, e.g. "
                              '[{"kind": "linear", "features": 64}]')
        net["blocks"] = tuple(_build(BlockConfig, b, f"network.blocks[{i}]") for i, b in enumerate(blocks))
    if "readout" in net:
        net["readout"] = _build(ReadoutConfig, net["readout"], "network.readout")
    parts: dict[str, Any] = {"network": _build(NetworkConfig, net, "network")}
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
            parts[key] = _build(cls, d.pop(key), key)
    for key in ("profile", "learning_signal"):
        if key in d:
            parts[key] = d.pop(key)
    if d:
        raise ConfigError(f"unknown TessConfig field(s) {_names(d)}; known: "
                          f"{sorted(f.name for f in dataclasses.fields(TessConfig))}")
    return TessConfig(**parts)
