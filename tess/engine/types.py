"""Typed state, parameters and per-step quantities of the engine.

All are ``NamedTuple``s: cheap to build, immutable, and JAX pytrees as they are
(``None`` fields are empty subtrees), so the same step function runs eagerly on
NumPy, PyTorch and CuPy arrays and traced inside ``jax.lax.scan``.  The flat
``blocks.{i}.weight`` names of :func:`tess_spec.param_names` exist only at the
boundary: :func:`params_from_flat` / :func:`params_to_flat` convert.

Glossary (the rule's notation): u membrane, o spikes, q presynaptic trace,
h postsynaptic trace, ψ surrogate, h̃ non-causal trace, m learning signal.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple

from tess_spec.plan import NetworkPlan

__all__ = [
    "BlockState",
    "BlockParams",
    "ReadoutParams",
    "Params",
    "BlockSums",
    "Sums",
    "BlockStep",
    "Context",
    "Totals",
    "params_from_flat",
    "params_to_flat",
    "tree_map",
]


class BlockState(NamedTuple):
    """What a block carries from step to step: ``u, o`` (``(B, *neurons)``), ``q``
    (``(B, *input)``) and ``h`` (``(B, *neurons)``); ``q, h`` are ``None`` in prediction."""

    u: Any
    o: Any
    q: Any = None
    h: Any = None


class BlockParams(NamedTuple):
    """A block's parameters: W, the gain g (weight standardisation) and the bias, or ``None``."""

    weight: Any
    gain: Any = None
    bias: Any = None


class ReadoutParams(NamedTuple):
    """The readout's ``W_r`` and ``b_r`` (or ``None``)."""

    weight: Any
    bias: Any = None


class Params(NamedTuple):
    """Every parameter (also the shape of gradients and optimiser moments)."""

    blocks: tuple[BlockParams, ...]
    readout: ReadoutParams


class BlockSums(NamedTuple):
    """A block's window sums of the update, with respect to Ŵ: the causal and the
    non-causal term of ``G`` (shape of W) and the bias's ``Σ m ⊙ ψ`` (or ``None``)."""

    causal: Any
    noncausal: Any
    bias: Any = None


class Sums(NamedTuple):
    """The accumulators of a mini-batch: per block :class:`BlockSums`, and the readout's
    gradient sums (kept apart from the state: a caller may reset one without the other)."""

    blocks: tuple[BlockSums, ...]
    readout: ReadoutParams


class BlockStep(NamedTuple):
    """What one block computed at one step, kept until the learning signals are formed
    (O(L·n) for all blocks together, independent of T).

    Attributes:
        u, o, q, h: the new state (``q, h`` ``None`` without traces).
        psi: ψ[t] (``None`` without traces).
        h_tilde: h̃[t-1] (``None`` unless the non-causal term is formed this step).
        dropped: ``mask ⊙ o`` (``o`` without dropout).
        x: the block's input, as the block sees it (flattened for a linear block).
        operand: ``x`` as :meth:`~tess.engine.Kernels.current` consumed it (see
            :meth:`~tess.engine.Kernels.operand`).
        out: the block's output, ``pool(dropped)``.
        aux: what :meth:`~tess.engine.Kernels.pool` kept for its VJP (e.g. argmax indices).
    """

    u: Any
    o: Any
    q: Any = None
    h: Any = None
    psi: Any = None
    h_tilde: Any = None
    dropped: Any = None
    x: Any = None
    operand: Any = None
    out: Any = None
    aux: Any = None

    @property
    def state(self) -> BlockState:
        """The block's new :class:`BlockState`."""
        return BlockState(self.u, self.o, self.q, self.h)


class Context(NamedTuple):
    """Per-sequence constants every step reads (built by :func:`tess.engine.prepare`).

    Attributes:
        params: the parameters.
        w_hat: Ŵ of every block (standardised where the block asks for it).
        masks: per block, the dropout mask in the kernels' layout, or ``None``.
        lsg: per block, the fused LSG matrix ``(n_classes, D)`` in the kernels' layout
            (``None`` for prediction).
        onehot: one-hot labels ``(B, n_classes)`` (``None`` for prediction).
        weights: per-sample weights ``(B,)`` (1 real, 0 padding) or ``None`` (all real).
        n: the batch size the means divide by (a number or a 0-d array): the real
            sample count, or the global batch of a data-parallel run.
        static_x: a direct input (the same frame every step) in the kernels' layout, else ``None``.
        static: for a direct input, block 0's ``(operand, current)``, computed once.
    """

    params: Params
    w_hat: tuple[Any, ...]
    masks: tuple[Any, ...]
    lsg: tuple[Any, ...] | None = None
    onehot: Any = None
    weights: Any = None
    n: Any = None
    static_x: Any = None
    static: tuple[Any, Any] | None = None


class Totals(NamedTuple):
    """Sums a mini-batch reports, kept as sums so a data-parallel ``reduce`` can add them:
    the summed cross-entropy of the time-summed logits and the number of correct samples."""

    loss_sum: Any
    n_correct: Any


def tree_map(fn: Callable[..., Any], tree: Any, *rest: Any) -> Any:
    """Apply ``fn`` leaf by leaf over nested (named) tuples, lists and dicts; ``None`` stays ``None``."""
    if tree is None:
        return None
    if isinstance(tree, tuple):
        items = [tree_map(fn, *xs) for xs in zip(tree, *rest)]
        return type(tree)(*items) if hasattr(tree, "_fields") else tuple(items)
    if isinstance(tree, list):
        return [tree_map(fn, *xs) for xs in zip(tree, *rest)]
    if isinstance(tree, dict):
        return {k: tree_map(fn, tree[k], *(r[k] for r in rest)) for k in tree}
    return fn(tree, *rest)


def params_from_flat(plan: NetworkPlan, flat: Mapping[str, Any]) -> Params:
    """:class:`Params` from a dict keyed by :func:`tess_spec.param_names`."""
    blocks = tuple(
        BlockParams(flat[f"blocks.{i}.weight"], flat.get(f"blocks.{i}.gain"), flat.get(f"blocks.{i}.bias"))
        for i in range(len(plan.blocks))
    )
    return Params(blocks, ReadoutParams(flat["readout.weight"], flat.get("readout.bias")))


def params_to_flat(plan: NetworkPlan, params: Params) -> dict[str, Any]:
    """The flat dict of :class:`Params`, in :func:`tess_spec.param_names` order."""
    out: dict[str, Any] = {}
    for i, (bp, p) in enumerate(zip(plan.blocks, params.blocks)):
        out[f"blocks.{i}.weight"] = p.weight
        if bp.weight_std:
            out[f"blocks.{i}.gain"] = p.gain
        if bp.bias:
            out[f"blocks.{i}.bias"] = p.bias
    out["readout.weight"] = params.readout.weight
    if plan.config.network.readout.bias:
        out["readout.bias"] = params.readout.bias
    return out
