"""A streaming learner's state on disk, and its validation.

:func:`save_state` writes :meth:`tess.stream.Learner.state_dict` as one ``.npz`` file
(``FORMAT = "tess-stream"``, ``FORMAT_VERSION = 1``) through the one atomic writer
(:func:`tess_spec.atomic.atomic_write`): a power cut while writing leaves the previous
file whole.  Layout: ``__header__`` (UTF-8 JSON as ``uint8``: format, versions, the
config, dtype, backend, batch, policy, the optimiser step, the segment's position and
labels, the counters, the learning rate, the generator state, and for every array its
shape, dtype and SHA-256) and the arrays ``params/<name>``, ``opt/<slot>/<name>``,
``state/<block>/<u|o|q|h>``, ``sums/<name>``, ``segment/logits``, ``segment/masks/<block>``.

:func:`read_state` checks the zip, the header and every checksum;
:func:`validated_state` (called by :meth:`~tess.stream.Learner.load_state_dict`) checks
every value against the learner before anything is assigned — the config, batch and
policy, finite parameters, moments (Adam's ``v`` ≥ 0), state (spikes 0 or 1), sums and
masks, labels in range, the counters and the segment position, the learning rate and
the generator state — and raises :class:`tess.errors.CheckpointError` naming the first
bad item.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from tess_spec import SPEC_VERSION, TessConfig, from_dict, state_shapes, to_dict
from tess_spec.errors import CheckpointError, TessError
from tess_spec.init import param_shapes
from tess_spec.plan import network_plan

from ..archive import read_archive, write_archive
from ..model import _checked_arrays, _network_difference, _restored_generator

__all__ = ["save_state", "read_state", "validated_state", "FORMAT", "FORMAT_VERSION", "IGNORED_FIELDS"]

FORMAT = "tess-stream"
"""The ``format`` of a streaming learner's state (dict and file)."""
FORMAT_VERSION = 1
"""Version of the file layout this module writes and reads."""
IGNORED_FIELDS: tuple[str, ...] = ("train.epochs", "train.batch_size", "train.seed", "train.dtype")
"""Config fields a state may differ in from the learner loading it (a stream has no epochs
or mini-batches; the generator state and the arrays' dtype are part of the state); the
schedule is ignored too (a stream's learning rate is its own)."""

_STATE_KEYS = ("format", "config", "batch", "policy", "params", "opt_state", "state", "sums", "segment", "counters",
               "lr", "rng")


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _count(value: Any, what: str, lo: int = 0, hi: int | None = None) -> int:
    if not _is_int(value) or value < lo or (hi is not None and value > hi):
        rng = f"in [{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise CheckpointError(f"stream state {what}={value!r} is invalid: expected an integer {rng}")
    return int(value)


def _config_difference(ours: TessConfig, theirs: TessConfig) -> str:
    net = _network_difference(ours, theirs)
    if net:
        return net
    a, b = _flat(to_dict(ours)), _flat(to_dict(theirs))
    for key in sorted(set(a) | set(b)):
        if key in IGNORED_FIELDS or key.startswith("schedule."):
            continue
        if a.get(key) != b.get(key):
            return f"{key}: state {b.get(key)!r} vs learner {a.get(key)!r}"
    return ""


def validated_state(config: TessConfig, state: Any, dtype: str, *, batch: int,
                    policy: dict[str, Any]) -> dict[str, Any]:
    """Check a :meth:`~tess.stream.Learner.state_dict` against a learner (its ``config``,
    ``dtype``, ``batch`` and ``policy``) and return its parts as fresh NumPy arrays and
    plain values (``rng`` a new :class:`numpy.random.Generator`).  Raises
    :class:`tess.errors.CheckpointError` naming the first bad item."""
    if not isinstance(state, dict):
        raise CheckpointError(f"a stream state is a dict, got {type(state).__name__}")
    missing = [k for k in _STATE_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"the stream state lacks {missing}")
    if state["format"] != FORMAT:
        raise CheckpointError(f"state format {state['format']!r} is not a streaming learner's ({FORMAT!r}); a "
                              "tess.Model checkpoint loads with tess.checkpoint.load_checkpoint")
    other = state["config"]
    if not isinstance(other, TessConfig):
        raise CheckpointError(f"state['config'] must be a TessConfig, got {type(other).__name__}")
    diff = _config_difference(config, other)
    if diff:
        raise CheckpointError(f"the stream state was made for a different config ({diff}); load it into a Learner "
                              "built with the state's own config")
    if state["batch"] != batch or not _is_int(state["batch"]):
        raise CheckpointError(f"the stream state holds {state['batch']!r} streams but the learner has batch={batch}; "
                              f"build the Learner with batch={state['batch']!r}")
    if not isinstance(state["policy"], dict) or state["policy"] != policy:
        raise CheckpointError(f"the stream state's policy {state['policy']!r} differs from the learner's {policy!r}; "
                              "build the Learner with the same learn, apply_every and auto_reset (and signal)")
    shapes = param_shapes(config)
    params = _checked_arrays(shapes, state["params"], "parameter", dtype, CheckpointError)
    opt = state["opt_state"]
    expected = {"step", "m", "v"} if config.optimizer.name == "adam" else {"step", "buf"}
    if not isinstance(opt, dict) or set(opt) != expected:
        raise CheckpointError(f"optimiser state keys {sorted(map(str, opt)) if isinstance(opt, dict) else opt!r} do "
                              f"not match the {config.optimizer.name!r} optimiser (expected {sorted(expected)})")
    moments = {key: _checked_arrays(shapes, opt[key], f"optimiser state {key!r}", dtype, CheckpointError,
                                    nonnegative=key == "v") for key in sorted(expected - {"step"})}
    opt_step = _count(opt["step"], "optimiser step")
    blocks = state["state"]
    shapes_s = state_shapes(config.network, batch)
    if not isinstance(blocks, list) or len(blocks) != len(shapes_s):
        raise CheckpointError(f"the stream state's neuron state must be a list of {len(shapes_s)} per-block dicts "
                              f"(u, o, q, h), got {type(blocks).__name__}")
    neuron = []
    for i, (d, sh) in enumerate(zip(blocks, shapes_s)):
        arrays = _checked_arrays(sh, d, f"neuron state of block {i}", dtype, CheckpointError)
        o = arrays["o"]
        odd = np.flatnonzero((o != 0) & (o != 1))
        if odd.size:
            raise CheckpointError(f"neuron state of block {i}: spikes o hold values other than 0 and 1 (first: "
                                  f"{float(o.reshape(-1)[odd[0]])}); the state is corrupt")
        neuron.append(arrays)
    plan = network_plan(config)
    from .learner import _sum_shapes

    sums = _checked_arrays(_sum_shapes(plan), state["sums"], "window sums", dtype, CheckpointError)
    seg = state["segment"]
    if not isinstance(seg, dict) or {"t", "begun", "labels", "masks", "logits", "learned_steps"} - set(seg):
        raise CheckpointError(f"segment state {seg!r} is invalid: expected t, begun, labels, masks, logits and "
                              "learned_steps")
    T = config.train.T
    t = _count(seg["t"], "segment step t", 0, T - 1)
    begun = seg["begun"]
    if not isinstance(begun, (bool, np.bool_)):
        raise CheckpointError(f"segment state begun={begun!r} is invalid: expected True or False")
    begun = bool(begun)
    learned = _count(seg["learned_steps"], "segment learned_steps", 0, t)
    labels = seg["labels"]
    if labels is not None:
        labels = np.asarray(labels)
        n = config.network.n_classes
        integer = np.issubdtype(labels.dtype, np.integer)
        if labels.shape != (batch,) or not integer or ((labels < 0) | (labels >= n)).any():
            raise CheckpointError(f"segment labels {labels.tolist()!r} are invalid: expected {batch} integers in "
                                  f"[0, {n})")
        labels = labels.astype(np.int64)
    masks = seg["masks"]
    if masks is not None:
        if not isinstance(masks, (list, tuple)) or len(masks) != len(config.network.blocks):
            raise CheckpointError(f"segment masks must be None or one entry per block ({len(config.network.blocks)})")
        checked: list[np.ndarray | None] = []
        for i, (m, b, sh) in enumerate(zip(masks, config.network.blocks, shapes_s)):
            if b.dropout == 0:
                if m is not None:
                    raise CheckpointError(f"segment mask of block {i} is given but the block has no dropout")
                checked.append(None)
                continue
            if m is None:
                raise CheckpointError(f"segment mask of block {i} is missing (the block has dropout {b.dropout})")
            checked.append(_checked_arrays({"mask": sh["u"]}, {"mask": m}, f"dropout mask of block {i}", dtype,
                                           CheckpointError, nonnegative=True)["mask"])
        masks = checked
    logits = seg["logits"]
    if logits is not None:
        logits = _checked_arrays({"logits": (batch, config.network.n_classes)}, {"logits": logits},
                                 "segment logits", dtype, CheckpointError)["logits"]
    if begun and logits is None:
        raise CheckpointError("segment state: a begun segment needs its summed logits")
    if not begun and (t or labels is not None or masks is not None or logits is not None or learned):
        raise CheckpointError("segment state: a segment that has not begun has t = 0 and no labels, masks or logits")
    c = state["counters"]
    if not isinstance(c, dict) or {"steps", "segments", "updates", "pending"} - set(c):
        raise CheckpointError(f"stream counters {c!r} are invalid: expected steps, segments, updates and pending")
    counters = {k: _count(c[k], f"counter {k}") for k in ("steps", "segments", "updates", "pending")}
    if policy.get("apply_every") is not None and counters["pending"] >= policy["apply_every"]:
        raise CheckpointError(f"stream counter pending={counters['pending']} is invalid: updates are applied every "
                              f"{policy['apply_every']} learning steps")
    lr = state["lr"]
    if not isinstance(lr, (int, float, np.floating)) or isinstance(lr, bool) or not math.isfinite(lr) or lr <= 0:
        raise CheckpointError(f"stream state lr={lr!r} is invalid: expected a finite learning rate > 0")
    rng = _restored_generator(state["rng"])
    return {
        "params": params,
        "opt_state": {"step": opt_step, **moments},
        "state": neuron,
        "sums": sums,
        "segment": {"t": t, "begun": begun, "labels": labels, "masks": masks, "logits": logits,
                    "learned_steps": learned},
        "counters": counters,
        "lr": float(lr),
        "rng": rng,
    }


def save_state(learner: Any, path: str | os.PathLike) -> Path:
    """Write ``learner``'s :meth:`~tess.stream.Learner.state_dict` to ``path`` atomically.

    Refuses (:class:`tess.errors.CheckpointError`, nothing written) a state that would not
    load back — e.g. non-finite parameters; :class:`tess.errors.OutputError` if the file
    cannot be written."""
    from .. import __version__

    state = learner.state_dict()
    try:
        validated_state(learner.config, state, state["dtype"], batch=state["batch"], policy=state["policy"])
    except CheckpointError as exc:
        raise CheckpointError(f"refusing to write stream state {str(path)!r}: {exc}") from exc
    arrays: dict[str, np.ndarray] = {f"params/{k}": v for k, v in state["params"].items()}
    for slot, values in state["opt_state"].items():
        if slot != "step":
            arrays.update({f"opt/{slot}/{k}": v for k, v in values.items()})
    for i, d in enumerate(state["state"]):
        arrays.update({f"state/{i}/{k}": v for k, v in d.items()})
    arrays.update({f"sums/{k}": v for k, v in state["sums"].items()})
    seg = state["segment"]
    if seg["logits"] is not None:
        arrays["segment/logits"] = seg["logits"]
    if seg["masks"] is not None:
        arrays.update({f"segment/masks/{i}": m for i, m in enumerate(seg["masks"]) if m is not None})
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "spec_version": SPEC_VERSION,
        "tess_version": __version__,
        "config": to_dict(state["config"]),
        "dtype": state["dtype"],
        "backend": learner.backend.name,
        "batch": state["batch"],
        "policy": state["policy"],
        "opt_step": state["opt_state"]["step"],
        "segment": {"t": seg["t"], "begun": seg["begun"], "learned_steps": seg["learned_steps"],
                    "labels": None if seg["labels"] is None else [int(v) for v in seg["labels"]],
                    "masks": seg["masks"] is not None},
        "counters": state["counters"],
        "lr": state["lr"],
        "rng": state["rng"],
    }
    return write_archive(path, header, arrays, what="stream state")


def read_state(path: str | os.PathLike) -> dict[str, Any]:
    """A state dict read from a file :func:`save_state` wrote, after checking the zip, the
    header and every array's shape, dtype and checksum (values are checked when loaded:
    :func:`validated_state`).  Raises :class:`tess.errors.CheckpointError`."""
    where = f"stream state {str(path)!r}"
    header, arrays = read_archive(path, fmt=FORMAT, version=FORMAT_VERSION, what="stream state")
    try:
        config = from_dict(header["config"])
        if str(header.get("spec_version", "")).split(".")[0] != SPEC_VERSION.split(".")[0]:
            raise CheckpointError(f"{where} was written for spec {header.get('spec_version')!r}, incompatible with "
                                  f"this spec {SPEC_VERSION!r}")

        def group(prefix: str) -> dict[str, np.ndarray]:
            return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}

        opt: dict[str, Any] = {"step": header["opt_step"]}
        for k, v in arrays.items():
            if k.startswith("opt/"):
                _, slot, name = k.split("/", 2)
                opt.setdefault(slot, {})[name] = v
        L = len(config.network.blocks)
        seg = header["segment"]
        masks = None
        if seg["masks"]:
            m = group("segment/masks/")
            masks = [m.get(str(i)) for i in range(L)]
        state = {
            "format": FORMAT,
            "config": config,
            "dtype": header["dtype"],
            "batch": header["batch"],
            "policy": header["policy"],
            "params": group("params/"),
            "opt_state": opt,
            "state": [group(f"state/{i}/") for i in range(L)],
            "sums": group("sums/"),
            "segment": {"t": seg["t"], "begun": seg["begun"], "learned_steps": seg["learned_steps"],
                        "labels": None if seg["labels"] is None else np.asarray(seg["labels"], dtype=np.int64),
                        "masks": masks, "logits": arrays.get("segment/logits")},
            "counters": header["counters"],
            "lr": header["lr"],
            "rng": header["rng"],
        }
    except CheckpointError:
        raise
    except (TessError, KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise CheckpointError(f"{where} has an invalid header ({type(exc).__name__}: {exc})") from exc
    return state
