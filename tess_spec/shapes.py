"""Shapes of every block's input, output and state — functions of the network only.

The rule's central claim is that the state TESS carries through time does not
depend on the number of time steps T.  :func:`state_shapes` makes that an API:
it takes the network and the batch size, and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from .config import NetworkConfig

__all__ = ["BlockShapes", "block_shapes", "state_shapes", "state_nbytes", "STATE_NAMES"]

STATE_NAMES: tuple[str, ...] = ("u", "o", "q", "h")
"""Per-block state: membrane u, spikes o, presynaptic trace q, postsynaptic trace h."""


@dataclass(frozen=True)
class BlockShapes:
    """Per-sample shapes of one block.

    Attributes:
        input: the block's input x (flattened for a linear block).
        neurons: the LIF layer (u, o, ψ, h, m).
        output: after dropout and pooling (what the next block and the LSG see).
        weight: the synaptic weight W.
    """

    input: tuple[int, ...]
    neurons: tuple[int, ...]
    output: tuple[int, ...]
    weight: tuple[int, ...]


def block_shapes(network: "NetworkConfig") -> list[BlockShapes]:
    """Propagate shapes through the network; raise ``ConfigError`` if a map vanishes.

    conv: ``(C, H, W) → (F, H, W)`` (stride 1, same padding), then pooling
    ``(F, H // p, W // p)`` or global average ``(F, 1, 1)``.
    linear: ``(N,) → (F,)``; a spatial input is flattened first.
    """
    shapes: list[BlockShapes] = []
    cur = tuple(network.input_shape)
    for i, b in enumerate(network.blocks):
        if b.kind == "conv":
            if len(cur) != 3:
                raise ConfigError(
                    f"block {i} is conv but its input has shape {cur}; a conv block needs "
                    "(C, H, W) input, so it cannot follow a linear block"
                )
            c, hh, ww = cur
            neurons = (b.features, hh, ww)
            if b.pool in ("max", "avg"):
                oh, ow = hh // b.pool_size, ww // b.pool_size
                if oh == 0 or ow == 0:
                    raise ConfigError(
                        f"block {i}: pool_size={b.pool_size} on a {hh}x{ww} feature map makes it "
                        "vanish (0 rows or columns); use a smaller pool or fewer pooling blocks"
                    )
                output = (b.features, oh, ow)
            elif b.pool == "global_avg":
                output = (b.features, 1, 1)
            else:
                output = neurons
            weight = (b.features, c, b.kernel_size, b.kernel_size)
            inp = cur
        else:
            n = 1
            for s in cur:
                n *= s
            inp = (n,)
            neurons = output = (b.features,)
            weight = (b.features, n)
        shapes.append(BlockShapes(inp, neurons, output, weight))
        cur = output
    return shapes


def state_shapes(network: "NetworkConfig", batch: int) -> list[dict[str, tuple[int, ...]]]:
    """Shape of every per-block state array for a batch: ``[{u, o, q, h}, ...]``.

    u, o, h: ``(batch, *neurons)``; q: ``(batch, *input)``.  T is not an argument:
    the state TESS carries through time is independent of the sequence length.
    """
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise ConfigError(f"batch={batch!r} is invalid: expected a positive integer")
    out = []
    for bs in block_shapes(network):
        n = (batch, *bs.neurons)
        out.append({"u": n, "o": n, "q": (batch, *bs.input), "h": n})
    return out


def state_nbytes(network: "NetworkConfig", batch: int, itemsize: int) -> int:
    """Bytes of per-block state (u, o, q, h) the rule needs, for ``itemsize``-byte floats."""
    total = 0
    for d in state_shapes(network, batch):
        for shape in d.values():
            n = 1
            for s in shape:
                n *= s
            total += n * itemsize
    return total
