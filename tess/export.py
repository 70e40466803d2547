"""Interoperability through NIR, the Neuromorphic Intermediate Representation.

:func:`to_nir` turns a tess network (a :class:`~tess_spec.TessConfig` and its
parameters) into a ``nir.NIRGraph`` that other SNN frameworks (snnTorch, Norse,
SpikingJelly, Rockpool, Lava, hardware toolchains) load; :func:`from_nir` turns
the feed-forward subset of NIR that TESS can train back into a config and initial
parameters.  :func:`write_nir` / :func:`read_nir` store graphs in NIR's HDF5
files (written atomically).  The ``nir`` package is needed (``pip install
'tess[nir]'``); importing this module does not import it.

What maps to what (one NIR node per operator, in a chain):

| tess | NIR |
|---|---|
| frame input ``(C, H, W)`` / ``(N,)`` | ``Input`` |
| conv block's operator | ``Conv2d`` (stride 1, padding k//2, bias or 0) |
| linear block's operator | ``Linear`` (``Affine`` with a bias), after ``Flatten(0, -1)`` if the input is spatial |
| weight standardisation | folded: the exported weight is Ŵ = g·(W - mean)/s |
| LIF (θ, γ, hard reset) | ``LIF``: τ = dt/(1-γ), R = τ/dt, v_leak = 0, v_threshold = θ, v_reset = 0 (γ = 1: ``IF``, R = 1/dt) |
| LIF soft reset | not expressible: the same ``LIF`` (reset to 0), with a :class:`NIRExportWarning` |
| avg pool ``p`` / global average pool | ``AvgPool2d(p, p)`` / ``AvgPool2d(H×W)`` |
| max pool ``p`` (binary spikes) | ``SumPool2d(p, p)`` then a memoryless ``LIF`` (τ = dt, R = 1, threshold 0.5), or ``Threshold(0.5)`` with ``max_pool="threshold"`` |
| readout | [``AvgPool2d(H×W)``] ``Flatten`` ``Affine`` (``Linear`` without bias) → ``Output`` |

NIR's neurons are continuous-time; the parameters above are chosen so that the
forward-Euler step with ``dt`` (what snnTorch's importer computes, with its fixed
``dt = 1e-4``, :data:`DEFAULT_DT`; other importers take dt as an argument),
``v[t] = v[t-1] + dt/τ·(v_leak - v[t-1] + R·I[t])``, is exactly
``u[t] = γ·u[t-1] + I[t]`` with a spike when ``u[t] > θ`` (strict, as in NIR) and
a reset to 0 after it, i.e. TESS's hard reset.  The graph computes one time step;
run it for T steps and take ``argmax Σ_t output[t]`` (tess's time-summed readout).

Every graph :func:`to_nir` writes also carries the exact tess description in
NIR's ``metadata`` fields (the config as JSON, dt, and for weight-standardised
blocks the raw W and gain g), so that :func:`from_nir` of an unedited tess graph
restores the very same network and parameters, soft reset included.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from tess_spec import SPEC_VERSION, TessConfig, from_dict, to_dict
from tess_spec.config import BlockConfig, LIFConfig, NetworkConfig, ReadoutConfig
from tess_spec.errors import BackendUnavailableError, ConfigError, ShapeError
from tess_spec.init import param_shapes
from tess_spec.neuron import reset_amount
from tess_spec.shapes import block_shapes
from tess_spec.weight_std import standardize

__all__ = [
    "DEFAULT_DT",
    "MAX_POOL_FORMS",
    "NIR_FORMAT",
    "NIR_FORMAT_VERSION",
    "NIRExportWarning",
    "to_nir",
    "from_nir",
    "write_nir",
    "read_nir",
    "lif_parameters",
]

log = logging.getLogger(__name__)

DEFAULT_DT = 1e-4
"""Default time step (seconds) of the exported neurons: the ``dt`` that snnTorch's
NIR importer and exporter assume (fixed in snnTorch 1.0).  Import with the same dt."""

MAX_POOL_FORMS: tuple[str, ...] = ("lif", "threshold")
"""How a max pool of spikes is written (NIR has no max pool; on binary spikes the
window's max is "at least one spike"): ``"lif"`` (default: ``SumPool2d`` → a memoryless
``LIF`` with τ = dt, R = 1, threshold 0.5 — exact at the export's dt and loadable by
importers without ``Threshold``, such as snnTorch 1.0's) or ``"threshold"``
(``SumPool2d`` → ``Threshold(0.5)``: exact in NIR's own semantics, at any dt)."""

NIR_FORMAT = "tess-nir"
"""The ``tess_format`` value in the metadata of every graph :func:`to_nir` writes."""

NIR_FORMAT_VERSION = 1
"""Version of the tess metadata layout inside NIR graphs."""


class NIRExportWarning(UserWarning):
    """A tess network was exported to NIR in a form that other frameworks will not
    run exactly as tess does (e.g. the soft reset, which NIR's neurons cannot
    express).  The message names the block and what differs."""


def _nir() -> Any:
    try:
        import nir
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise BackendUnavailableError(
            "NIR export and import need the 'nir' package: pip install 'tess[nir]' (or pip install nir)"
        ) from exc
    return nir


# --------------------------------------------------------------------------- export
def lif_parameters(leak: float, theta: float, dt: float = DEFAULT_DT) -> dict[str, float]:
    """NIR ``LIF`` parameters whose forward-Euler step with ``dt`` is tess's LIF.

    ``v[t] = v[t-1] + dt/τ·(v_leak - v[t-1] + R·I[t]) = (1 - dt/τ)·v[t-1] + (R·dt/τ)·I[t]``,
    so τ = dt / (1 - γ) and R = τ / dt give ``v[t] = γ·v[t-1] + I[t]``; v_leak = 0,
    v_threshold = θ, v_reset = 0.  For γ = 1 (no leak) the node is an ``IF`` with
    R = 1/dt.  Returns ``{"tau", "r", "v_leak", "v_threshold", "v_reset"}`` (``tau`` is
    ``inf`` for γ = 1).
    """
    _check_dt(dt)
    if leak >= 1.0:
        return {"tau": math.inf, "r": 1.0 / dt, "v_leak": 0.0, "v_threshold": float(theta), "v_reset": 0.0}
    tau = dt / (1.0 - leak)
    return {"tau": tau, "r": tau / dt, "v_leak": 0.0, "v_threshold": float(theta), "v_reset": 0.0}


def _check_dt(dt: Any) -> None:
    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not math.isfinite(dt) or dt <= 0:
        raise ConfigError(f"dt={dt!r} is invalid: expected a positive time step in seconds, e.g. {DEFAULT_DT}")


def _check_params(config: TessConfig, params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    if not isinstance(config, TessConfig):
        raise ConfigError(f"config must be a tess_spec.TessConfig, got {type(config).__name__}")
    shapes = param_shapes(config)
    if set(params) != set(shapes):
        missing, extra = sorted(set(shapes) - set(params)), sorted(set(params) - set(shapes))
        raise ShapeError(f"the parameters do not belong to this config: missing {missing}, unexpected {extra}")
    out = {}
    for k, shp in shapes.items():
        a = np.asarray(params[k])
        if a.shape != shp or not np.issubdtype(a.dtype, np.floating):
            raise ShapeError(f"parameter {k!r}: expected floats of shape {shp}, got {a.dtype} {a.shape}")
        out[k] = a
    return out


def _full(shape: tuple[int, ...], value: float) -> np.ndarray:
    return np.full(shape, value, dtype=np.float64)


def _neuron_node(nir: Any, shape: tuple[int, ...], leak: float, theta: float, dt: float,
                 metadata: dict[str, Any]) -> Any:
    p = lif_parameters(leak, theta, dt)
    if leak >= 1.0:
        return nir.IF(r=_full(shape, p["r"]), v_threshold=_full(shape, theta), v_reset=_full(shape, 0.0),
                      metadata=metadata)
    return nir.LIF(tau=_full(shape, p["tau"]), r=_full(shape, p["r"]), v_leak=_full(shape, 0.0),
                   v_threshold=_full(shape, theta), v_reset=_full(shape, 0.0), metadata=metadata)


def to_nir(
    config: TessConfig,
    params: Mapping[str, Any],
    *,
    dt: float = DEFAULT_DT,
    max_pool: str = "lif",
    tess_metadata: bool = True,
) -> Any:
    """The network of ``config`` with ``params`` as a ``nir.NIRGraph`` (one time step).

    Args:
        config: the network's config (only ``network``, ``lif``, ``profile`` and
            ``train.T`` matter for the graph).
        params: its parameters (NumPy arrays, e.g. :meth:`tess.Model.numpy_params` or a
            checkpoint's); their dtype is kept.  Weight standardisation is folded in:
            the exported weight is Ŵ computed by :func:`tess_spec.weight_std.standardize`.
        dt: time step the neuron parameters are written for (:func:`lif_parameters`).
        max_pool: :data:`MAX_POOL_FORMS` — how max pooling of spikes is written.
        tess_metadata: store the exact tess description in the nodes' ``metadata``
            (the config, dt, raw W and gain) so that :func:`from_nir` restores it.

    Nodes are named ``input``, ``block{i}_flatten``, ``block{i}_conv`` /
    ``block{i}_linear``, ``block{i}_lif``, ``block{i}_pool``, ``block{i}_pool_spike``,
    ``readout_pool``, ``readout_flatten``, ``readout``, ``output``; edges form a chain.
    Dropout is not exported (inference uses none).  Emits a :class:`NIRExportWarning`
    for what NIR cannot express exactly (the soft reset).
    """
    nir = _nir()
    if max_pool not in MAX_POOL_FORMS:
        raise ConfigError(f"max_pool={max_pool!r} is invalid: expected one of {list(MAX_POOL_FORMS)}")
    _check_dt(dt)
    p = _check_params(config, params)
    net, lif = config.network, config.lif
    nodes: dict[str, Any] = {"input": nir.Input(input_type=np.array(net.input_shape))}
    chain = ["input"]

    def add(name: str, node: Any) -> None:
        nodes[name] = node
        chain.append(name)

    cur: tuple[int, ...] = tuple(net.input_shape)
    soft = list(range(len(net.blocks))) if lif.reset == "soft" else []
    for i, (b, bs) in enumerate(zip(net.blocks, block_shapes(net))):
        w = p[f"blocks.{i}.weight"]
        w_hat = standardize(w, p[f"blocks.{i}.gain"]) if b.weight_std else w
        bias = p.get(f"blocks.{i}.bias")
        wmeta: dict[str, Any] = {"tess_block": i}
        if b.weight_std and tess_metadata:
            wmeta.update(tess_weight=np.array(w), tess_gain=np.array(p[f"blocks.{i}.gain"]))
        if b.kind == "conv":
            pad = b.kernel_size // 2
            add(f"block{i}_conv", nir.Conv2d(
                input_shape=tuple(cur[1:]), weight=np.array(w_hat), stride=(1, 1), padding=(pad, pad),
                dilation=(1, 1), groups=1,
                bias=np.array(bias) if bias is not None else np.zeros(b.features, dtype=w_hat.dtype),
                metadata=wmeta if tess_metadata else {}))
        else:
            if len(cur) == 3:
                add(f"block{i}_flatten", nir.Flatten(input_type=np.array(cur), start_dim=0, end_dim=-1))
            op = (nir.Affine(weight=np.array(w_hat), bias=np.array(bias)) if bias is not None
                  else nir.Linear(weight=np.array(w_hat)))
            op.metadata = wmeta if tess_metadata else {}
            add(f"block{i}_linear", op)
        amount = reset_amount(lif, config.profile, b.kind)
        nmeta = ({"tess_block": i, "tess_leak": float(lif.leak), "tess_threshold": float(lif.theta),
                  "tess_reset": lif.reset, "tess_reset_amount": float(amount), "dt": float(dt)}
                 if tess_metadata else {})
        add(f"block{i}_lif", _neuron_node(nir, bs.neurons, lif.leak, lif.theta, dt, nmeta))
        if b.pool is not None:
            c, hh, ww = bs.neurons
            if b.pool == "global_avg":
                k = np.array([hh, ww])
                add(f"block{i}_pool", nir.AvgPool2d(kernel_size=k, stride=k, padding=np.array([0, 0])))
            elif b.pool == "avg":
                k = np.array([b.pool_size, b.pool_size])
                add(f"block{i}_pool", nir.AvgPool2d(kernel_size=k, stride=k, padding=np.array([0, 0])))
            else:
                k = np.array([b.pool_size, b.pool_size])
                add(f"block{i}_pool", nir.SumPool2d(kernel_size=k, stride=k, padding=np.array([0, 0])))
                if max_pool == "threshold":
                    add(f"block{i}_pool_spike", nir.Threshold(threshold=_full(bs.output, 0.5)))
                else:
                    add(f"block{i}_pool_spike", nir.LIF(
                        tau=_full(bs.output, dt), r=_full(bs.output, 1.0), v_leak=_full(bs.output, 0.0),
                        v_threshold=_full(bs.output, 0.5), v_reset=_full(bs.output, 0.0)))
        cur = bs.output
    if len(cur) == 3:
        if cur[1:] != (1, 1):
            k = np.array(cur[1:])
            add("readout_pool", nir.AvgPool2d(kernel_size=k, stride=k, padding=np.array([0, 0])))
        add("readout_flatten", nir.Flatten(input_type=np.array((cur[0], 1, 1)), start_dim=0, end_dim=-1))
    rw, rb = p["readout.weight"], p.get("readout.bias")
    add("readout", nir.Affine(weight=np.array(rw), bias=np.array(rb)) if rb is not None
        else nir.Linear(weight=np.array(rw)))
    add("output", nir.Output(output_type=np.array([net.n_classes])))

    meta: dict[str, Any] = {}
    if tess_metadata:
        from . import __version__

        meta = {
            "tess_format": NIR_FORMAT,
            "tess_format_version": NIR_FORMAT_VERSION,
            "tess_version": __version__,
            "spec_version": SPEC_VERSION,
            "tess_config": json.dumps(to_dict(config), sort_keys=True),
            "dt": float(dt),
            "max_pool": max_pool,
            "time_steps": int(config.train.T),
            "readout": "prediction = argmax over classes of the output summed over the T time steps",
        }
    graph = nir.NIRGraph(nodes=nodes, edges=list(zip(chain[:-1], chain[1:])), metadata=meta)
    if soft:
        r = {reset_amount(lif, config.profile, net.blocks[i].kind) for i in soft}
        warnings.warn(
            f"blocks {soft}: tess's soft reset u[t] = γ·(u[t-1] - r·o[t-1]) + I[t] (r = "
            f"{', '.join(f'{v:g}' for v in sorted(r))}) has no NIR neuron equivalent (NIR's LIF and IF reset "
            "to v_reset); exported as a reset to 0, which other frameworks will run, so their spikes and "
            "predictions can differ from tess's. The exact dynamics are kept in the nodes' metadata (read by "
            "tess.export.from_nir). Train with lif.reset='hard' for a network that NIR expresses exactly.",
            NIRExportWarning, stacklevel=2)
    return graph


# --------------------------------------------------------------------------- files
def write_nir(graph: Any, path: str | os.PathLike) -> Path:
    """Write ``graph`` to the NIR (HDF5) file ``path`` atomically; returns the path.

    The file is built in memory and written with tess's one atomic writer
    (:func:`tess_spec.atomic.atomic_write`: a temporary file in the target folder,
    fsynced, moved into place with :func:`os.replace`), so a crash never leaves a
    half-written graph.  A path that is a folder, a link or a device, or an OS
    failure, raises :class:`tess.errors.OutputError` naming the path.
    """
    from tess_spec.atomic import atomic_write

    nir = _nir()
    buf = io.BytesIO()
    nir.write(buf, graph)
    return atomic_write(Path(path), buf.getvalue(), what="NIR file")


def read_nir(path: str | os.PathLike) -> Any:
    """Read a ``nir.NIRGraph`` from a NIR (HDF5) file; a missing or unreadable file
    raises :class:`tess.errors.ConfigError` naming it."""
    nir = _nir()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"NIR file {str(path)!r} does not exist")
    try:
        return nir.read(path)
    except Exception as exc:  # h5py / nir raise OSError, KeyError, ValueError, AssertionError ...
        raise ConfigError(f"NIR file {str(path)!r} cannot be read ({type(exc).__name__}: {exc})") from exc


# --------------------------------------------------------------------------- import
def _where(name: str, node: Any) -> str:
    return f"NIR node {name!r} ({type(node).__name__})"


def _chain(nir: Any, graph: Any) -> list[tuple[str, Any]]:
    """The graph's nodes from its Input to its Output, or a ConfigError naming the node
    that makes it not a feed-forward chain (subgraph, cycle, branch)."""
    if not isinstance(graph, nir.NIRGraph):
        raise ConfigError(f"from_nir expects a nir.NIRGraph, got {type(graph).__name__}")
    nodes, edges = graph.nodes, [tuple(e) for e in graph.edges]
    for name, node in nodes.items():
        if isinstance(node, nir.NIRGraph):
            raise ConfigError(f"{_where(name, node)} is a subgraph (how NIR writes a recurrent layer such as "
                              "snnTorch's RLeaky); TESS trains feed-forward networks only")
    for a, b in edges:
        if a not in nodes or b not in nodes:
            raise ConfigError(f"edge ({a!r}, {b!r}) names a node the graph does not have")
    succ: dict[str, list[str]] = {k: [] for k in nodes}
    pred: dict[str, list[str]] = {k: [] for k in nodes}
    for a, b in edges:
        succ[a].append(b)
        pred[b].append(a)
    inputs = [k for k, n in nodes.items() if isinstance(n, nir.Input)]
    outputs = [k for k, n in nodes.items() if isinstance(n, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ConfigError(f"the graph has {len(inputs)} Input and {len(outputs)} Output nodes; TESS needs one of each")
    order, cur, seen = [], inputs[0], set()
    while True:
        if cur in seen:
            raise ConfigError(f"{_where(cur, nodes[cur])} lies on a cycle (a recurrent connection); "
                              "TESS trains feed-forward networks only")
        seen.add(cur)
        order.append((cur, nodes[cur]))
        if cur == outputs[0]:
            break
        if len(succ[cur]) != 1:
            what = "has no successor" if not succ[cur] else f"feeds {len(succ[cur])} nodes {sorted(succ[cur])}"
            raise ConfigError(f"{_where(cur, nodes[cur])} {what}; TESS needs a chain from Input to Output")
        nxt = succ[cur][0]
        if len(pred[nxt]) != 1:
            raise ConfigError(f"{_where(nxt, nodes[nxt])} has {len(pred[nxt])} inputs {sorted(pred[nxt])}; "
                              "TESS needs a chain (no skip or recurrent connections)")
        cur = nxt
    rest = sorted(set(nodes) - seen)
    if rest:
        raise ConfigError(f"{_where(rest[0], nodes[rest[0]])} is not on the path from Input to Output")
    return order


def _uniform(name: str, node: Any, field: str) -> float:
    a = np.asarray(getattr(node, field), dtype=np.float64)
    if a.size == 0 or not np.all(np.isfinite(a) | np.isinf(a)):
        raise ConfigError(f"{_where(name, node)}: {field} is empty or NaN")
    vals = np.unique(a)
    if vals.size != 1:
        raise ConfigError(f"{_where(name, node)}: {field} differs between neurons ({vals.min():g} … {vals.max():g}); "
                          "TESS uses one value for every neuron")
    return float(vals[0])


def _snap(value: float, dtype: np.dtype) -> float:
    """A float32 value as the shortest decimal that rounds to it (0.6, not 0.6000000238):
    a float32 array cannot have meant more digits, and in float32 both are the same."""
    if np.dtype(dtype) == np.float32:
        return float(np.format_float_positional(np.float32(value)))
    return float(value)


def _neuron(nir: Any, name: str, node: Any, dt: float, memoryless: bool = False) -> dict[str, Any]:
    """``{leak, theta, scale}`` of a LIF/IF node read with ``dt`` (scale: R·dt/τ, the
    factor on the input current, folded into the synaptic weights).  ``memoryless``
    admits γ = 0 (a pool's binariser)."""
    if isinstance(node, nir.LIF):
        tau = np.asarray(node.tau)
        dtype = tau.dtype if np.issubdtype(tau.dtype, np.floating) else np.float64
        if not np.allclose(np.asarray(node.v_leak, np.float64), 0.0, rtol=0, atol=0):
            raise ConfigError(f"{_where(name, node)}: v_leak must be 0 (TESS's LIF has no resting potential), "
                              f"got {np.unique(node.v_leak)[:3]}")
        tau_v = _uniform(name, node, "tau")
        step = np.asarray(dt, dtype) / np.asarray(tau_v, dtype)
        leak = float(np.asarray(1, dtype) - step)
        scale = float(np.asarray(_uniform(name, node, "r"), dtype) * step)
    elif isinstance(node, nir.IF):
        dtype = np.asarray(node.r).dtype
        dtype = dtype if np.issubdtype(dtype, np.floating) else np.float64
        leak, scale = 1.0, float(np.asarray(_uniform(name, node, "r"), dtype) * np.asarray(dt, dtype))
    else:  # pragma: no cover - callers check
        raise ConfigError(f"{_where(name, node)} is not a LIF or IF neuron")
    if not np.allclose(np.asarray(node.v_reset, np.float64), 0.0, rtol=0, atol=0):
        raise ConfigError(f"{_where(name, node)}: v_reset must be 0 (TESS's hard reset sets u to 0), "
                          f"got {np.unique(node.v_reset)[:3]}")
    if memoryless and abs(leak) <= 4 * np.finfo(dtype).eps:
        leak = 0.0
    elif not 0.0 < leak <= 1.0:
        raise ConfigError(f"{_where(name, node)}: τ = {_uniform(name, node, 'tau'):g} read with dt = {dt:g} gives the "
                          f"leak γ = 1 - dt/τ = {leak:g}, outside (0, 1]; pass the dt the graph was written for "
                          "(from_nir(graph, dt=...))")
    eps = 4 * np.finfo(dtype).eps
    if abs(scale - 1.0) <= eps:
        scale = 1.0
    if not (math.isfinite(scale) and scale > 0):
        raise ConfigError(f"{_where(name, node)}: the input scale R·dt/τ = {scale!r} must be a positive number")
    theta = _uniform(name, node, "v_threshold")
    if theta <= 0 and not memoryless:
        raise ConfigError(f"{_where(name, node)}: v_threshold = {theta:g}; TESS needs a positive threshold")
    return {"leak": _snap(leak, dtype), "theta": _snap(theta, np.asarray(node.v_threshold).dtype), "scale": scale}


def _pool_binariser(nir: Any, name: str, node: Any, dt: float, limit: float) -> bool:
    """Whether ``node`` (after a pool) turns the pooled spikes into 'any spike in the
    window' (a max pool): a Threshold or a memoryless LIF with threshold in [0, limit)."""
    if isinstance(node, nir.Threshold):
        t = _uniform(name, node, "threshold")
        return 0.0 <= t < limit
    if isinstance(node, nir.LIF):
        n = _neuron(nir, name, node, dt, memoryless=True)
        return n["leak"] == 0.0 and n["scale"] == 1.0 and 0.0 <= n["theta"] < limit
    return False


def _pair(v: Any, name: str, node: Any, field: str) -> tuple[int, int]:
    a = np.atleast_1d(np.asarray(v)).astype(np.int64).ravel()
    if a.size == 1:
        a = np.repeat(a, 2)
    if a.size != 2:
        raise ConfigError(f"{_where(name, node)}: {field}={v!r} is not one or two integers")
    return int(a[0]), int(a[1])


def _plain(nir: Any, graph: Any, dt: float) -> tuple[NetworkConfig, LIFConfig, dict[str, np.ndarray]]:
    """Network, LIF settings and float64 parameters of a feed-forward NIR chain."""
    order = _chain(nir, graph)
    in_name, in_node = order[0]
    shape = tuple(int(s) for s in np.asarray(in_node.input_type["input"]).ravel())
    if len(shape) not in (1, 3):
        raise ConfigError(f"{_where(in_name, in_node)}: input shape {shape}; TESS takes (C, H, W) frames or (N,) vectors")
    items = order[1:-1]
    blocks: list[BlockConfig] = []
    params: dict[str, np.ndarray] = {}
    neuron_params: list[tuple[str, Any, dict[str, Any]]] = []
    cur = shape
    pos = 0

    def peek(k: int = 0) -> tuple[str, Any] | tuple[None, None]:
        return items[pos + k] if pos + k < len(items) else (None, None)

    neuron_types = (nir.LIF, nir.IF)
    while pos < len(items):
        name, node = items[pos]
        if isinstance(node, nir.Flatten):
            if len(cur) == 1:
                pos += 1
                continue
            if int(node.start_dim) != 0 or int(node.end_dim) not in (-1, len(cur) - 1):
                raise ConfigError(f"{_where(name, node)}: Flatten(start_dim={node.start_dim}, end_dim={node.end_dim}) "
                                  f"on a {cur} map; TESS flattens all of (C, H, W) (start_dim=0, end_dim=-1)")
            nxt_name, nxt = peek(1)
            if not isinstance(nxt, (nir.Affine, nir.Linear)):
                raise ConfigError(f"{_where(name, node)} is followed by {nxt_name!r}; in TESS a flatten only precedes "
                                  "a linear block or the readout")
            if not isinstance(peek(2)[1], neuron_types) and cur[1:] != (1, 1):
                raise ConfigError(
                    f"{_where(nxt_name, nxt)} reads a flattened {cur} map as the readout; TESS's readout reads the "
                    "globally average-pooled map: end the last spiking block with AvgPool2d over the whole map, or "
                    "add a linear block")
            cur = (int(np.prod(cur)),)
            pos += 1
            continue
        if isinstance(node, (nir.AvgPool2d, nir.SumPool2d)):
            # Only the readout's own global average may stand here (a block's pool directly
            # follows its neurons and is consumed with the block).
            k = _pair(node.kernel_size, name, node, "kernel_size")
            rest = [type(n) for _, n in items[pos + 1:]]
            readout_next = rest[:1] in ([nir.Affine], [nir.Linear]) or rest[:2] in (
                [nir.Flatten, nir.Affine], [nir.Flatten, nir.Linear])
            if (isinstance(node, nir.AvgPool2d) and blocks and len(cur) == 3 and k == tuple(cur[1:])
                    and readout_next and len(rest) <= 2):
                cur = (cur[0], 1, 1)
                pos += 1
                continue
            raise ConfigError(f"{_where(name, node)} pools outside a block; TESS pools a conv block's spikes right "
                              "after its neurons (or, before the readout, averages the whole map)")
        if isinstance(node, (nir.Affine, nir.Linear, nir.Conv2d)):
            nxt_name, nxt = peek(1)
            is_readout = nxt is None
            w = np.asarray(node.weight)
            bias = np.asarray(node.bias) if isinstance(node, (nir.Affine, nir.Conv2d)) else None
            if isinstance(node, nir.Conv2d):
                if is_readout:
                    raise ConfigError(f"{_where(name, node)} ends the graph; TESS's readout is a linear layer")
                if len(cur) != 3 or w.ndim != 4:
                    raise ConfigError(f"{_where(name, node)} gets a {cur} input; a conv block needs (C, H, W)")
                f_, c_, kh, kw = w.shape
                if kh != kw or kh % 2 == 0:
                    raise ConfigError(f"{_where(name, node)}: kernel {kh}x{kw}; TESS's conv kernels are square and odd")
                pad_ok = (isinstance(node.padding, str) and node.padding == "same") or (
                    not isinstance(node.padding, str) and _pair(node.padding, name, node, "padding") == (kh // 2,) * 2)
                if (_pair(node.stride, name, node, "stride") != (1, 1) or not pad_ok
                        or _pair(node.dilation, name, node, "dilation") != (1, 1) or int(node.groups) != 1):
                    raise ConfigError(f"{_where(name, node)}: stride {node.stride}, padding {node.padding}, dilation "
                                      f"{node.dilation}, groups {node.groups}; TESS's conv is stride 1, padding "
                                      f"{kh // 2} ('same'), dilation 1, groups 1")
                if c_ != cur[0]:
                    raise ConfigError(f"{_where(name, node)}: weight expects {c_} input channels, the input has {cur[0]}")
                kind, features = "conv", int(f_)
            else:
                if w.ndim != 2:
                    raise ConfigError(f"{_where(name, node)}: weight of shape {w.shape}; expected (out, in)")
                if len(cur) != 1:
                    if cur[1:] == (1, 1):
                        cur = (cur[0],)
                    else:
                        raise ConfigError(f"{_where(name, node)} reads a {cur} map without a Flatten before it")
                if w.shape[1] != cur[0]:
                    raise ConfigError(f"{_where(name, node)}: weight expects {w.shape[1]} inputs, gets {cur[0]}")
                kind, features = "linear", int(w.shape[0])
            if is_readout:
                if kind != "linear" or not blocks:
                    raise ConfigError(f"{_where(name, node)}: TESS needs at least one spiking block before the readout")
                if features < 2:
                    raise ConfigError(f"{_where(name, node)}: a readout of {features} output; TESS needs >= 2 classes")
                params["readout.weight"] = w.astype(np.float64)
                if bias is not None:
                    params["readout.bias"] = bias.astype(np.float64).reshape(features)
                pos += 1
                continue
            if not isinstance(nxt, neuron_types):
                raise ConfigError(f"{_where(name, node)} is followed by {_where(nxt_name, nxt)}; in TESS a synaptic "
                                  "operator feeds LIF neurons (or, as the readout, the Output)")
            neuron = _neuron(nir, nxt_name, nxt, dt)
            i = len(blocks)
            w = w.astype(np.float64)
            b_arr = None if bias is None else bias.astype(np.float64).reshape(features)
            if neuron["scale"] != 1.0:
                w = w * neuron["scale"]
                b_arr = None if b_arr is None else b_arr * neuron["scale"]
                log.info("%s: input scale R·dt/τ = %g folded into the weights of %r", nxt_name, neuron["scale"], name)
            has_bias = b_arr is not None and bool(np.any(b_arr != 0))
            params[f"blocks.{i}.weight"] = w
            if has_bias:
                params[f"blocks.{i}.bias"] = b_arr
            neuron_params.append((nxt_name, nxt, neuron))
            neurons = (features, *cur[1:]) if kind == "conv" else (features,)
            pos += 2
            pool, pool_size, out = None, 2, neurons
            pname, pnode = peek()
            if isinstance(pnode, (nir.AvgPool2d, nir.SumPool2d)):
                if kind != "conv":
                    raise ConfigError(f"{_where(pname, pnode)} pools a linear block's output; TESS pools conv maps only")
                k = _pair(pnode.kernel_size, pname, pnode, "kernel_size")
                s = _pair(pnode.stride, pname, pnode, "stride") if pnode.stride is not None else k
                pad = _pair(pnode.padding, pname, pnode, "padding")
                if s != k or pad != (0, 0):
                    raise ConfigError(f"{_where(pname, pnode)}: kernel {k}, stride {s}, padding {pad}; TESS pools with "
                                      "stride = kernel and no padding")
                hh, ww = neurons[1:]
                bin_name, bin_node = peek(1)
                if isinstance(pnode, nir.SumPool2d) or isinstance(bin_node, (nir.Threshold, nir.LIF)):
                    limit = 1.0 if isinstance(pnode, nir.SumPool2d) else 1.0 / (k[0] * k[1])
                    if k[0] != k[1] or bin_node is None or not _pool_binariser(nir, bin_name, bin_node, dt, limit):
                        raise ConfigError(
                            f"{_where(pname, pnode)}: a sum pool is only TESS's max pool when a square window is "
                            f"followed by Threshold (or a memoryless LIF) with a threshold in [0, {limit:g}); "
                            f"got {bin_name!r}")
                    pool, pool_size, pos = "max", k[0], pos + 2
                elif k == (hh, ww):
                    pool, pos = "global_avg", pos + 1
                elif k[0] == k[1]:
                    pool, pool_size, pos = "avg", k[0], pos + 1
                else:
                    raise ConfigError(f"{_where(pname, pnode)}: a {k[0]}x{k[1]} window; TESS's pools are square "
                                      "(or global)")
                out = (features, 1, 1) if pool == "global_avg" else (features, hh // pool_size, ww // pool_size)
                if out[1] == 0 or out[2] == 0:
                    raise ConfigError(f"{_where(pname, pnode)} makes the {hh}x{ww} map vanish")
            blocks.append(BlockConfig(kind, features, kernel_size=int(w.shape[2]) if kind == "conv" else 3,
                                      pool=pool, pool_size=pool_size, bias=has_bias))
            cur = out
            continue
        if isinstance(node, neuron_types):
            raise ConfigError(f"{_where(name, node)} is not preceded by a synaptic operator (Conv2d, Linear or "
                              "Affine); a TESS block is operator → neurons")
        raise ConfigError(f"{_where(name, node)} has no TESS equivalent; TESS imports Input, Conv2d, Linear, Affine, "
                          "LIF, IF, AvgPool2d, SumPool2d + Threshold (max pool), Flatten and Output")
    if "readout.weight" not in params:
        last = items[-1] if items else order[0]
        raise ConfigError(f"{_where(*last)} ends the graph; TESS needs a non-spiking Linear/Affine readout before "
                          "the Output (a network that ends in spiking neurons has no TESS readout)")
    first = neuron_params[0]
    for name, node, n in neuron_params[1:]:
        for key, label in (("leak", "leak γ = 1 - dt/τ"), ("theta", "v_threshold")):
            if n[key] != first[2][key]:
                raise ConfigError(f"{_where(name, node)}: {label} = {n[key]!r} differs from {first[0]!r}'s "
                                  f"{first[2][key]!r}; TESS uses one LIF setting for every block")
    network = NetworkConfig(shape, int(params["readout.weight"].shape[0]), tuple(blocks),
                            ReadoutConfig(bias="readout.bias" in params))
    lif = LIFConfig(theta=first[2]["theta"], leak=first[2]["leak"], reset="hard")
    return network, lif, params


def _signature(node: Any) -> dict[str, Any]:
    d = node.to_dict()
    d.pop("metadata", None)
    return d


def _same_graph(a: Any, b: Any) -> bool:
    if set(a.nodes) != set(b.nodes) or sorted(map(tuple, a.edges)) != sorted(map(tuple, b.edges)):
        return False
    for k in a.nodes:
        sa, sb = _signature(a.nodes[k]), _signature(b.nodes[k])
        if sa.get("type") != sb.get("type") or set(sa) != set(sb):
            return False
        for f in sa:
            va, vb = sa[f], sb[f]
            if isinstance(va, str) or isinstance(vb, str) or va is None or vb is None:
                if va != vb:
                    return False
                continue
            x, y = np.asarray(va), np.asarray(vb)
            if x.shape != y.shape or x.dtype.kind != y.dtype.kind or not np.array_equal(x, y):
                return False
    return True


def _from_metadata(nir: Any, graph: Any) -> tuple[TessConfig, dict[str, np.ndarray]] | None:
    """The exact config and parameters recorded by :func:`to_nir`, if the graph still
    is what to_nir wrote for them (else None: the graph was edited outside tess)."""
    meta = graph.metadata if isinstance(graph.metadata, dict) else {}
    if str(meta.get("tess_format", "")) != NIR_FORMAT:
        return None
    try:
        if int(meta["tess_format_version"]) != NIR_FORMAT_VERSION:
            log.warning("tess metadata of version %s is not %s; importing the plain NIR graph",
                        meta["tess_format_version"], NIR_FORMAT_VERSION)
            return None
        config = from_dict(json.loads(str(meta["tess_config"])))
        dt, max_pool = float(meta["dt"]), str(meta["max_pool"])
        params: dict[str, np.ndarray] = {}
        for i, b in enumerate(config.network.blocks):
            node = graph.nodes[f"block{i}_{b.kind}"]
            if b.weight_std:
                params[f"blocks.{i}.weight"] = np.asarray(node.metadata["tess_weight"])
                params[f"blocks.{i}.gain"] = np.asarray(node.metadata["tess_gain"])
            else:
                params[f"blocks.{i}.weight"] = np.asarray(node.weight)
            if b.bias:
                params[f"blocks.{i}.bias"] = np.asarray(node.bias)
        ro = graph.nodes["readout"]
        params["readout.weight"] = np.asarray(ro.weight)
        if config.network.readout.bias:
            params["readout.bias"] = np.asarray(ro.bias)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NIRExportWarning)
            again = to_nir(config, params, dt=dt, max_pool=max_pool)
    except (KeyError, TypeError, ValueError, AttributeError, AssertionError) as exc:
        log.warning("the graph's tess metadata is unusable (%s: %s); importing the plain NIR graph",
                    type(exc).__name__, exc)
        return None
    if not _same_graph(again, graph):
        log.warning("the graph differs from what its tess metadata describes (edited outside tess?); "
                    "importing the plain NIR graph")
        return None
    return config, {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}


def from_nir(
    graph: Any,
    *,
    dt: float | None = None,
    base: TessConfig | None = None,
    use_tess_metadata: bool = True,
) -> tuple[TessConfig, dict[str, np.ndarray]]:
    """A TESS config and float64 initial parameters from a feed-forward ``nir.NIRGraph``.

    A graph written by :func:`to_nir` and not edited since is restored exactly from
    its metadata: the same config (soft reset, weight standardisation with the raw W
    and gain, training settings) and parameters, so predictions are bit-identical.
    Any other graph (or ``use_tess_metadata=False``) is read from its NIR nodes:

    - a chain ``Input → ([Flatten] → Conv2d | Linear | Affine → LIF | IF →
      [AvgPool2d | SumPool2d → Threshold])+ → [AvgPool2d] → [Flatten] → Linear |
      Affine → Output``; the final operator is the (non-spiking) readout;
    - neurons are read with the forward-Euler step ``dt`` (default: the graph's
      metadata ``dt``, else :data:`DEFAULT_DT`): γ = 1 - dt/τ, θ = v_threshold, hard
      reset (NIR's reset to v_reset, which must be 0; v_leak must be 0); an input scale
      R·dt/τ ≠ 1 is folded into the preceding weights; all neurons share one γ and θ;
    - blocks get no weight standardisation (the weights are taken as they are), a
      bias only where the graph's is non-zero, no dropout.

    ``dt`` matters only for graphs without usable tess metadata.  ``base`` supplies
    everything but the network and the neuron (trace factors, LSG, optimiser, schedule,
    ``train`` and, for plain graphs, the profile); default: the metadata's config, or
    :class:`~tess_spec.TessConfig`'s defaults with ``train.T`` from the metadata if
    present.  Recurrent graphs
    (cycles or subgraphs), branches and nodes TESS has no equivalent for raise
    :class:`tess.errors.ConfigError` naming the node.
    """
    nir = _nir()
    if not isinstance(graph, nir.NIRGraph):
        raise ConfigError(f"from_nir expects a nir.NIRGraph (read files with tess.export.read_nir), "
                          f"got {type(graph).__name__}")
    if base is not None and not isinstance(base, TessConfig):
        raise ConfigError(f"base must be a tess_spec.TessConfig, got {type(base).__name__}")
    meta = graph.metadata if isinstance(graph.metadata, dict) else {}
    if use_tess_metadata:
        exact = _from_metadata(nir, graph)
        if exact is not None:
            config, params = exact
            if base is not None:
                config = _with_base(base, config.network, config.lif, profile=config.profile)
            return config, params
    if dt is None:
        dt = float(meta["dt"]) if "dt" in meta else DEFAULT_DT
    _check_dt(dt)
    network, lif, params = _plain(nir, graph, dt)
    if base is None:
        d = to_dict(TessConfig(network=network, lif=lif))
        if "time_steps" in meta:
            d["train"].update(T=int(meta["time_steps"]), n_learn=None)
        return from_dict(d), params
    return _with_base(base, network, lif), params


def _with_base(base: TessConfig, network: NetworkConfig, lif: LIFConfig, profile: str | None = None) -> TessConfig:
    d = to_dict(base)
    d["network"], d["lif"] = to_dict(network), to_dict(lif)
    if profile is not None:
        d["profile"] = profile
    pools = d["lsg"]["pool_sizes"]
    if pools is not None and len(pools) != len(network.blocks):
        raise ConfigError(f"base.lsg.pool_sizes has {len(pools)} entries but the graph has "
                          f"{len(network.blocks)} blocks; pass a base with lsg.pool_sizes=None or one per block")
    return from_dict(d)
