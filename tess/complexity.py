"""The cost of one training step, counted from the config alone: multiply-accumulates
(MACs) and bytes, per block and per phase, for TESS (TESS_RULE.md §2–§7) and for the
BPTT baseline (§10).

One *training step* is one mini-batch of ``batch`` sequences of ``T`` steps: the
forward pass over all T steps, the learning (TESS: traces, learning signal and
weight-gradient correlations in the learning window; BPTT: the backward pass
through time) and one optimiser step.

**MACs.** One MAC is one multiply and one add.  Convolutions and matrix products
count ``outputs × fan-in`` MACs (the count :mod:`torch.utils.flop_counter` reports
as ``2 × MACs`` FLOPs; :attr:`Complexity.product_macs` is that part alone).
Element-wise updates count their multiply-adds, one per element and operation as
listed per phase below; comparisons (spike, max pool, clamps) and sign/abs count
zero.  The element-wise terms are approximate by nature; for VGG-9 they are below
1% of a training step's total.

Phases (the same names for both methods):

| phase | group | what is counted |
|---|---|---|
| `forward` | inference | synaptic current `Ŵ·x[t]` (conv or linear) at every step; weight standardisation once per batch |
| `neuron` | inference | LIF update (2 per neuron), bias, dropout mask, average pooling |
| `readout` | inference | the readout logits at every step and their time sum |
| `traces` | credit | ψ (1 per neuron), presynaptic q (1 per input), postsynaptic h (1 per neuron) — TESS, every step |
| `learning_signal` | credit | TESS: at every step that learns (`tess_spec.signals.step_signal`), the LSG (adaptive pool, `z = B̃a`, softmax, `B̃ᵀ(p − y)`, pull-back through pooling) or, with `learning_signal="readout-backprop"` (and in the released loop's window), the readout error back-propagated within the step (the readout's input gradient, pooling, mask and ψ, the input-gradient products of blocks 2…L); BPTT: back-propagating the error through time and blocks (spike, LIF and pool backward, the input-gradient convolutions of blocks 2…L, the readout's input gradient) |
| `weight_update` | credit | weight-gradient correlations (TESS: the causal term and, when α_post ≠ 0, the non-causal one, at every step that learns; BPTT: one per step), their factors `m⊙ψ`, `m⊙h̃`, accumulation over steps, the chain through weight standardisation |
| `optimizer` | optimizer | Adam (≈10 per parameter) or SGD (3 per parameter) |

Bytes — what is held at the peak of the step (`itemsize` from `train.dtype`):

| category | group | what is counted |
|---|---|---|
| `parameters` | inference | W, gain, bias, and the standardised Ŵ |
| `neuron_state` | inference | TESS: u and o of the current step (BPTT keeps them among its activations) |
| `traces` | credit | TESS: q (one per input element) and h (one per neuron) |
| `lsg_basis` | credit | TESS: the fixed basis B̃ (`n_classes × D`), or the fused pool-and-basis matrix (`n_classes × outputs`) |
| `activations` | credit | BPTT: what autograd keeps for the backward pass at every step — u (for ψ), the spikes (the next operator's or the pool's input), the pooled output (the next block's input), max-pool indices (int64) — plus the stacked logits and weight standardisation's centred weights |
| `gradients` | credit | one gradient-sized buffer per parameter |
| `optimizer_state` | optimizer | Adam's two moments (SGD: one buffer) |
| `work` | transient | the largest block's per-step temporaries (TESS: current, ψ, m, m⊙ψ, output; BPTT: the step's error buffers and input gradient); only the largest counts in the total |

The input sequence (data, O(T) for event frames) is not counted, as in
``python -m benchmarks memory``.  Neither are framework workspaces (im2col buffers,
allocator caches) nor a functional optimiser's copies of the parameters.

    >>> import tess
    >>> from tess_spec import vgg9
    >>> cfg = vgg9("dvs_gesture")                     # T = 20, batch 16
    >>> t, b = tess.complexity(cfg), tess.complexity(cfg, method="bptt")
    >>> round(b.total_macs / t.total_macs, 2), round(b.total_bytes / t.total_bytes, 2)
    (1.5, 4.74)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Mapping

from tess_spec import TessConfig, block_shapes
from tess_spec.errors import ConfigError
from tess_spec.signals import signal_schedule

__all__ = [
    "METHODS",
    "PHASES",
    "PHASE_GROUPS",
    "BYTE_CATEGORIES",
    "BYTE_GROUPS",
    "LSG_FORMS",
    "BlockCost",
    "Complexity",
    "complexity",
    "compare",
    "ACCOUNTINGS",
    "paper_comparison",
    "PAPER_CONFIGS",
    "PAPER_CLAIMS",
]

METHODS: tuple[str, ...] = ("tess", "bptt")
"""Training methods :func:`complexity` accounts for."""

PHASES: tuple[str, ...] = (
    "forward", "neuron", "readout", "traces", "learning_signal", "weight_update", "optimizer",
)
"""MAC phases, in execution order."""

PHASE_GROUPS: dict[str, str] = {
    "forward": "inference", "neuron": "inference", "readout": "inference",
    "traces": "credit", "learning_signal": "credit", "weight_update": "credit",
    "optimizer": "optimizer",
}
"""Phase → group: ``inference`` (what prediction alone needs), ``credit`` (what the
learning rule adds: credit assignment), ``optimizer``."""

BYTE_CATEGORIES: tuple[str, ...] = (
    "parameters", "neuron_state", "traces", "lsg_basis", "activations", "gradients", "optimizer_state", "work",
)
"""Byte categories of :class:`BlockCost`."""

BYTE_GROUPS: dict[str, str] = {
    "parameters": "inference", "neuron_state": "inference",
    "traces": "credit", "lsg_basis": "credit", "activations": "credit", "gradients": "credit",
    "optimizer_state": "optimizer", "work": "transient",
}
"""Byte category → group (``transient`` buffers live one block at a time)."""

LSG_FORMS: tuple[str, ...] = ("pooled", "fused")
"""How the learning signal is formed: ``pooled`` (the spec's equations: adaptive
average pool to ``D = C·k²``, then ``B̃``) or ``fused`` (one ``n_classes × outputs``
matrix, pool and basis composed — what the NumPy and PyTorch backends run)."""

ADAM_OPS = 10
"""Element-wise operations per parameter of one Adam step (moments 2 + 3, bias
corrections 2, square root and ε 1, division and update 2)."""
SGD_OPS = 3
"""Element-wise operations per parameter of one SGD-with-momentum step."""
WS_FORWARD_OPS = 4
"""Operations per weight of weight standardisation (mean, centre, variance, scale)."""
WS_VJP_OPS = 6
"""Operations per weight of the chain through weight standardisation."""


@dataclass(frozen=True)
class BlockCost:
    """MACs per phase and bytes per category of one block (or of the readout).

    Attributes:
        name: ``"block 1"`` … ``"block L"`` or ``"readout"``.
        kind: ``"conv"``, ``"linear"`` or ``"readout"``.
        neurons: neurons per sample (``F·H·W`` or ``F``; the readout's classes).
        fan_in: inputs per neuron of the synaptic operator (``C·k²`` or ``N``).
        macs: phase → MACs (keys of :data:`PHASES`).
        products: phase → the part of ``macs`` done by convolutions and matrix
            products (what a FLOP counter such as :mod:`torch.utils.flop_counter`
            sees, as ``2 ×`` this); the rest is element-wise.
        bytes: category → bytes (keys of :data:`BYTE_CATEGORIES`).
    """

    name: str
    kind: str
    neurons: int
    fan_in: int
    macs: Mapping[str, int]
    products: Mapping[str, int]
    bytes: Mapping[str, int]

    @property
    def total_macs(self) -> int:
        """All MACs of this block."""
        return sum(self.macs.values())

    @property
    def credit_macs(self) -> int:
        """MACs of credit assignment (phase group ``credit``)."""
        return sum(v for k, v in self.macs.items() if PHASE_GROUPS[k] == "credit")


@dataclass(frozen=True)
class Complexity:
    """The account of one training step (returned by :func:`complexity`).

    Attributes:
        method: ``"tess"`` or ``"bptt"``.
        T: time steps per sequence.
        n_learn: learning-window length (TESS; BPTT learns from every step).
        batch: sequences per mini-batch.
        itemsize: bytes per float.
        lsg: the learning-signal form (:data:`LSG_FORMS`).
        direct_input: the first block's current was counted once per sequence.
        blocks: one :class:`BlockCost` per block, then the readout.
    """

    method: str
    T: int
    n_learn: int
    batch: int
    itemsize: int
    lsg: str
    direct_input: bool
    blocks: tuple[BlockCost, ...] = field(repr=False)

    def macs_by_phase(self) -> dict[str, int]:
        """Phase → MACs summed over blocks (every phase of :data:`PHASES`)."""
        return {p: sum(b.macs.get(p, 0) for b in self.blocks) for p in PHASES}

    def products_by_phase(self) -> dict[str, int]:
        """Phase → MACs done by convolutions and matrix products, summed over blocks."""
        return {p: sum(b.products.get(p, 0) for b in self.blocks) for p in PHASES}

    @property
    def product_macs(self) -> int:
        """All MACs done by convolutions and matrix products (``FLOPs / 2`` of a FLOP counter)."""
        return sum(self.products_by_phase().values())

    def bytes_by_category(self) -> dict[str, int]:
        """Category → bytes over blocks; ``work`` is the largest block's (one block at a time)."""
        out = {c: sum(b.bytes.get(c, 0) for b in self.blocks) for c in BYTE_CATEGORIES}
        out["work"] = max((b.bytes.get("work", 0) for b in self.blocks), default=0)
        return out

    def macs_by_group(self) -> dict[str, int]:
        """``inference`` / ``credit`` / ``optimizer`` → MACs."""
        out = {"inference": 0, "credit": 0, "optimizer": 0}
        for p, v in self.macs_by_phase().items():
            out[PHASE_GROUPS[p]] += v
        return out

    def bytes_by_group(self) -> dict[str, int]:
        """``inference`` / ``credit`` / ``optimizer`` / ``transient`` → bytes."""
        out = {"inference": 0, "credit": 0, "optimizer": 0, "transient": 0}
        for c, v in self.bytes_by_category().items():
            out[BYTE_GROUPS[c]] += v
        return out

    @property
    def total_macs(self) -> int:
        """MACs of the whole training step."""
        return sum(self.macs_by_phase().values())

    @property
    def credit_macs(self) -> int:
        """MACs of credit assignment: traces, learning signal, weight-gradient correlations."""
        return self.macs_by_group()["credit"]

    @property
    def inference_macs(self) -> int:
        """MACs of the forward pass alone (what prediction costs)."""
        return self.macs_by_group()["inference"]

    @property
    def total_bytes(self) -> int:
        """Peak bytes of the step (every category; the largest block's work buffers)."""
        return sum(self.bytes_by_category().values())

    @property
    def credit_bytes(self) -> int:
        """Bytes credit assignment holds: traces, basis, saved activations, gradients."""
        return self.bytes_by_group()["credit"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form: settings, per-block MACs and bytes, totals by phase/category/group."""
        return {
            "method": self.method, "T": self.T, "n_learn": self.n_learn, "batch": self.batch,
            "itemsize": self.itemsize, "lsg": self.lsg, "direct_input": self.direct_input,
            "blocks": [
                {"name": b.name, "kind": b.kind, "neurons": b.neurons, "fan_in": b.fan_in,
                 "macs": dict(b.macs), "products": dict(b.products), "bytes": dict(b.bytes)}
                for b in self.blocks
            ],
            "macs": {**self.macs_by_phase(), **{f"group:{k}": v for k, v in self.macs_by_group().items()},
                     "total": self.total_macs},
            "products": {**self.products_by_phase(), "total": self.product_macs},
            "bytes": {**self.bytes_by_category(), **{f"group:{k}": v for k, v in self.bytes_by_group().items()},
                      "total": self.total_bytes},
        }


def _prod(shape: Iterable[int]) -> int:
    return math.prod(int(s) for s in shape)


def _check(config: Any, method: str, T: int | None, batch: int | None, lsg: str) -> tuple[int, int, int]:
    if not isinstance(config, TessConfig):
        raise ConfigError(f"config must be a tess_spec.TessConfig, got {type(config).__name__}; "
                          "build one with tess_spec.get_preset(...) or tess_spec.vgg9(...)")
    if method not in METHODS:
        raise ConfigError(f"method={method!r} is invalid: expected one of {', '.join(map(repr, METHODS))}")
    if lsg not in LSG_FORMS:
        raise ConfigError(f"lsg={lsg!r} is invalid: expected one of {', '.join(map(repr, LSG_FORMS))}")
    for name, value in (("T", T), ("batch", batch)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"{name}={value!r} is invalid: expected a positive integer (or None for the config's)")
    T_ = config.train.T if T is None else T
    if T is None:
        n_learn = config.train.n_learn
    elif config.train.n_learn == config.train.T:
        n_learn = T_  # a full-sequence window stays one (as TessConfig.replace does)
    else:
        n_learn = min(config.train.n_learn, T_)
    assert n_learn is not None
    return T_, n_learn, config.train.batch_size if batch is None else batch


def _signal_steps(config: TessConfig, T: int, W: int) -> tuple[int, int]:
    """``(LSG steps, readout-back-propagation steps)`` of one TESS sequence of ``T`` steps with
    a learning window of ``W``: the spec's schedule (:func:`tess_spec.signals.signal_schedule`)."""
    schedule = signal_schedule(config.replace(**{"train.T": T, "train.n_learn": W}))
    return schedule.count("lsg"), schedule.count("readout-backprop")


def complexity(
    config: TessConfig,
    method: Literal["tess", "bptt"] = "tess",
    T: int | None = None,
    batch: int | None = None,
    *,
    lsg: Literal["pooled", "fused"] = "pooled",
    direct_input: bool = False,
    detach_reset: bool = False,
) -> Complexity:
    """Count the MACs and bytes of one training step of ``config`` (see the module docs).

    Args:
        config: the run's config (network, trace factors, profile, optimiser, dtype).
        method: ``"tess"`` (the rule) or ``"bptt"`` (backpropagation through time, as
            :mod:`tess.bptt` runs it: loss on the time-summed logits, every step learns).
        T: time steps; default ``config.train.T`` (a full-sequence window follows T).
        batch: sequences per mini-batch; default ``config.train.batch_size``.
        lsg: ``"pooled"`` (the spec's LSG equations, the default) or ``"fused"`` (one
            pool-and-basis matrix per block, as the NumPy and PyTorch backends form it).
        direct_input: count the first block's current once per sequence (a static
            image repeated T times, as the TESS backends do); BPTT always recomputes it.
        detach_reset: BPTT with the reset treated as a constant (one backward term fewer).

    Returns:
        a :class:`Complexity`; ``.total_macs``, ``.credit_macs``, ``.total_bytes``,
        ``.macs_by_phase()``, ``.bytes_by_category()``, ``.to_dict()``.

    Raises:
        ConfigError: an unknown method or LSG form, or a non-positive T or batch.
    """
    T, W, B = _check(config, method, T, batch, lsg)
    net, tc = config.network, config.traces
    s = 8 if config.train.dtype == "float64" else 4
    idx = 8  # int64 max-pool indices
    nc = net.n_classes
    bptt = method == "bptt"
    opt_ops = ADAM_OPS if config.optimizer.name == "adam" else SGD_OPS
    opt_buffers = 2 if config.optimizer.name == "adam" else 1
    shapes = block_shapes(net)
    # TESS: the steps each learning signal drives (TESS_RULE.md §10–§11); the window W for the
    # paper's LSG and readout back-propagation, every step of T for the released loop
    n_lsg, n_rb = _signal_steps(config, T, W)
    n_sig = n_lsg + n_rb
    costs: list[BlockCost] = []
    for i, (b, bs) in enumerate(zip(net.blocks, shapes)):
        N, X, O = _prod(bs.neurons), _prod(bs.input), _prod(bs.output)
        n_w = _prod(bs.weight)
        K = n_w // b.features
        k = config.lsg_pool(i)
        D = b.features * k * k if b.kind == "conv" else k
        n_params = n_w + (b.features if b.weight_std else 0) + (b.features if b.bias else 0)
        pool_fwd = N if b.pool in ("avg", "global_avg") else 0  # adds (max pooling only compares)
        pool_bwd = N if b.pool in ("avg", "global_avg") else 0  # scale by 1/window (max only routes)
        drop = N if b.dropout > 0 else 0
        syn = N * K  # one synaptic operator application, per sample
        ws_f = WS_FORWARD_OPS * n_w if b.weight_std else 0
        ws_b = WS_VJP_OPS * n_w if b.weight_std else 0
        fwd_steps = 1 if (direct_input and i == 0 and not bptt) else T
        macs = dict.fromkeys(PHASES, 0)
        prods = dict.fromkeys(PHASES, 0)
        prods["forward"] = fwd_steps * B * syn
        macs["forward"] = prods["forward"] + ws_f
        macs["neuron"] = T * B * (2 * N + (N if b.bias else 0) + drop + pool_fwd)
        macs["optimizer"] = opt_ops * n_params
        by = dict.fromkeys(BYTE_CATEGORIES, 0)
        by["parameters"] = (n_params + (n_w if b.weight_std else 0)) * s
        by["optimizer_state"] = opt_buffers * n_params * s
        by["gradients"] = n_params * s
        if not bptt:
            macs["traces"] = T * B * (N + X + N)
            # z = B̃·a and B̃ᵀ(p - y): two products; pooled adds the adaptive pool and its pull-back
            basis_cols = D if lsg == "pooled" else O
            # readout back-propagation within a step: pooling, mask and ψ, and (blocks 2…L) Ŵᵀ(·)
            rb_prods = syn if i > 0 else 0
            rb_elem = pool_bwd + ((drop + N) if i > 0 else 0)
            prods["learning_signal"] = n_lsg * B * 2 * nc * basis_cols + n_rb * B * rb_prods
            extra = (2 * O if lsg == "pooled" else 0) + 3 * nc + pool_bwd + drop
            macs["learning_signal"] = prods["learning_signal"] + n_lsg * B * extra + n_rb * B * rb_elem
            terms = (tc.alpha_pre != 0) + (tc.alpha_post != 0)
            prods["weight_update"] = n_sig * B * terms * syn
            elem = N  # m ⊙ ψ
            if tc.alpha_post != 0:
                elem += N + (N if config.profile == "paper" else 0)  # m ⊙ h̃ (and h̃ = λ_post·h)
            if b.bias:
                elem += N
            macs["weight_update"] = prods["weight_update"] + n_sig * B * elem + ws_b
            by["neuron_state"] = 2 * B * N * s
            by["traces"] = B * (X + N) * s
            by["lsg_basis"] = nc * basis_cols * s if n_lsg else 0
            by["work"] = B * (4 * N + O) * s + (B * O * idx if b.pool == "max" else 0)
        else:
            reset_terms = 0 if detach_reset else 1
            elem = (2 + 1 + reset_terms) * N + pool_bwd + drop  # ψ and g·ψ, leak, reset; pool, mask
            prods["learning_signal"] = T * B * (syn if i > 0 else 0)  # input gradient (none for the data)
            macs["learning_signal"] = prods["learning_signal"] + T * B * elem
            prods["weight_update"] = T * B * syn
            macs["weight_update"] = prods["weight_update"] + T * n_w + ws_b + (T * B * N if b.bias else 0)
            chain = N if b.pool in (None, "max", "avg") else 0  # spikes kept as an input of the next op
            pooled = O if b.pool is not None else 0  # the pooled output, the next block's/readout's input
            saved = B * (N + chain + pooled) * s + (B * O * idx if b.pool == "max" else 0)
            by["activations"] = T * saved + (n_w * s if b.weight_std else 0)
            by["work"] = B * (3 * N + X) * s
        costs.append(BlockCost(f"block {i + 1}", b.kind, N, K, macs, prods, by))

    # readout: logits[t] = W_r · mean(out_L[t]) + b_r
    last = shapes[-1].output
    F_L = net.blocks[-1].features
    feat_ops = _prod(last) if len(last) == 3 and _prod(last[1:]) > 1 else 0  # global mean if still spatial
    has_b = net.readout.bias
    n_ro = nc * F_L + (nc if has_b else 0)
    ro = nc * F_L
    macs = dict.fromkeys(PHASES, 0)
    prods = dict.fromkeys(PHASES, 0)
    prods["readout"] = T * B * ro
    macs["readout"] = prods["readout"] + T * B * (feat_ops + (nc if has_b else 0) + nc)  # + the time sum
    macs["optimizer"] = opt_ops * n_ro
    by = dict.fromkeys(BYTE_CATEGORIES, 0)
    by["parameters"] = n_ro * s
    by["optimizer_state"] = opt_buffers * n_ro * s
    by["gradients"] = n_ro * s
    if not bptt:
        prods["learning_signal"] = n_rb * B * ro  # readout back-propagation: err · W_r at each such step
        macs["learning_signal"] = W * B * 3 * nc + prods["learning_signal"] + n_rb * B * feat_ops
        prods["weight_update"] = W * B * ro
        macs["weight_update"] = prods["weight_update"] + W * B * (nc if has_b else 0)
        by["neuron_state"] = B * nc * s  # the time-summed logits
        by["work"] = B * (F_L + 3 * nc) * s
    else:
        prods["learning_signal"] = T * B * ro  # the readout's input gradient at every step
        macs["learning_signal"] = prods["learning_signal"] + B * 3 * nc + T * B * feat_ops
        prods["weight_update"] = T * B * ro
        macs["weight_update"] = prods["weight_update"] + T * B * (nc if has_b else 0) + T * n_ro
        by["activations"] = T * B * nc * s  # the stacked per-step logits
        by["work"] = B * (F_L + 3 * nc) * s
    costs.append(BlockCost("readout", "readout", nc, F_L, macs, prods, by))
    return Complexity(method, T, W if not bptt else T, B, s, lsg, bool(direct_input), tuple(costs))


ACCOUNTINGS: dict[str, str] = {
    "total_macs": "MACs of the whole training step (forward, credit assignment, optimiser)",
    "credit_macs": "MACs of credit assignment only (TESS: traces, LSG, weight-gradient correlations; "
                   "BPTT: the backward pass through time)",
    "learning_signal_macs": "MACs of the learning signal only (TESS: the LSG; BPTT: back-propagating the "
                            "error through time and blocks, without the weight gradients)",
    "total_bytes": "bytes held at the peak of the training step",
    "credit_bytes": "bytes credit assignment holds (TESS: traces, basis, gradients; BPTT: saved "
                    "activations, gradients)",
    "state_bytes": "bytes of per-block state (TESS: u, o, q, h; BPTT: the activations kept for T steps)",
    "per_neuron_values": "values kept per neuron (BPTT: one per step, T; TESS: its two traces, 2)",
}
"""The accountings :func:`compare` reports, key → what is compared (BPTT / TESS)."""


def compare(config: TessConfig, T: int | None = None, batch: int | None = None, **kwargs: Any) -> dict[str, float]:
    """BPTT / TESS ratios of one training step under each accounting of :data:`ACCOUNTINGS`.

    ``kwargs`` go to :func:`complexity` (``direct_input`` to the TESS account only:
    BPTT recomputes every step's current)."""
    t = complexity(config, "tess", T, batch, **kwargs)
    b = complexity(config, "bptt", T, batch, **{k: v for k, v in kwargs.items() if k != "direct_input"})
    tp, bp = t.macs_by_phase(), b.macs_by_phase()
    tb, bb = t.bytes_by_category(), b.bytes_by_category()
    neurons = sum(blk.neurons for blk in t.blocks if blk.kind != "readout")
    return {
        "total_macs": b.total_macs / t.total_macs,
        "credit_macs": b.credit_macs / t.credit_macs,
        "learning_signal_macs": bp["learning_signal"] / tp["learning_signal"],
        "total_bytes": b.total_bytes / t.total_bytes,
        "credit_bytes": b.credit_bytes / t.credit_bytes,
        "state_bytes": bb["activations"] / (tb["neuron_state"] + tb["traces"]),
        "per_neuron_values": (b.T * neurons) / (2 * neurons),
    }


PAPER_CONFIGS: tuple[str, ...] = ("dvs_gesture", "cifar10_dvs", "cifar10", "cifar100")
"""The published VGG-9 configurations (TESS_RULE.md §8), as :func:`tess_spec.vgg9` datasets."""

PAPER_CLAIMS: dict[str, tuple[float, float]] = {"macs": (205.0, 661.0), "memory": (3.0, 10.0)}
"""The paper's reported ranges of BPTT / TESS: MACs 205–661×, memory 3–10×."""


def paper_comparison(**kwargs: Any) -> list[dict[str, Any]]:
    """For each published VGG-9 configuration (its T, window, batch, factors): both
    accounts (``to_dict``), :func:`compare`'s ratios, and the ratios with the fused LSG
    (``ratios_fused_lsg``); ``kwargs`` go to :func:`complexity`.

    CIFAR10/100 are counted as direct input (the image repeated over T) for TESS."""
    from tess_spec import vgg9

    rows = []
    for name in PAPER_CONFIGS:
        cfg = vgg9(name)
        kw = {"direct_input": name in ("cifar10", "cifar100"), **kwargs}
        t = complexity(cfg, "tess", **kw)
        b = complexity(cfg, "bptt", **{k: v for k, v in kw.items() if k != "direct_input"})
        rows.append({
            "dataset": name, "T": cfg.train.T, "n_learn": cfg.train.n_learn, "batch": cfg.train.batch_size,
            "n_classes": cfg.network.n_classes, "input_shape": list(cfg.network.input_shape),
            "tess": t.to_dict(), "bptt": b.to_dict(), "ratios": compare(cfg, **kw),
            "ratios_fused_lsg": compare(cfg, **{**kw, "lsg": "fused"}),
        })
    return rows
