"""On-device learning: TESS on an unbounded stream, one time step at a time.

    >>> from tess.stream import Learner
    >>> learner = Learner(tess.presets.mlp_events(), "numpy")     # doctest: +SKIP
    >>> for x_t, y in stream:                                      # doctest: +SKIP
    ...     logits_t = learner.step(x_t, label=y)

A :class:`Learner` carries every stream's u, o, q, h, the window sums and the
optimiser moments between calls — memory fixed by the network and the number of
streams, never by how long the stream runs — and drives the engine's time step
(:func:`tess.engine.time_step`) directly.

The learning policy
-------------------

* **Segments.** The stream is cut into segments of ``T = config.train.T`` steps, back
  to back, counted from the learner's creation or the last :meth:`Learner.reset`.  A
  segment is what :func:`tess.engine.train_batch` calls a sequence.
* **Labels.** A label given with a step belongs to that step's segment (a segment has
  one label; a different one before the segment ends is an error).  The label of a
  segment is usually given with its first frame — the label *opens* the segment —
  but it may come later: learning starts at the first learning step that knows it.
  A segment without a label is inference (it is scored in :attr:`Learner.last_segment`
  only if labelled).
* **Learning window.** The learning steps of a labelled segment accumulate their
  update (the causal and non-causal terms, the bias and readout gradients) into the
  window sums, exactly as ``train_batch`` does: the steps and signals of the config's
  learning-signal schedule (:func:`step_schedule`, :func:`signal_name`; for the paper's
  LSG, the steps ``t ≥ T - n_learn``).
* **Application.** By default the optimiser is applied once per segment, at its last
  step, to the sums of its window (then zeroed): feeding the sequences of mini-batches
  segment by segment gives the parameters ``train_batch`` gives, mini-batch after
  mini-batch.  ``apply_every=k`` applies after every ``k`` learning steps instead
  (``k < n_learn``: several updates per segment; ``k > n_learn``: sums accumulated over
  several segments).  :meth:`Learner.apply` applies now.  The learning rate is constant
  (:attr:`Learner.lr`; a stream has no epochs for the plateau schedule).
* **Dropout.** Each segment's masks are drawn from the spec's generator at its first
  :meth:`~Learner.step`, as :class:`tess.Model` draws them per mini-batch.
* **Resets.** ``auto_reset="segment"`` (default) zeroes u, o, q, h when a segment starts,
  as every sequence of ``train_batch`` starts from zero; ``"never"`` carries the state
  across segments.  :meth:`Learner.reset` starts a new segment now (the unfinished one
  is dropped; its unapplied sums are kept unless ``discard_pending=True``).
* **Inference.** :meth:`Learner.predict_step` steps without dropout, learning or random
  numbers.
* **Checkpoints.** :meth:`Learner.state_dict` / :meth:`Learner.load_state_dict` (and
  :func:`save_state` / :func:`read_state` for files, written atomically) hold everything —
  state, sums, parameters, moments, the generator, the segment position, the counters —
  so a device can power off mid-segment and continue bit for bit.
* **Bad input.** A frame of the wrong shape, NaN or Inf values, a label outside
  ``[0, n_classes)`` or one that contradicts the segment's, and any call after
  :meth:`Learner.close`, raise a :mod:`tess.errors` error before anything changes.

:meth:`Learner.from_model` continues a :class:`tess.Model` (trained offline) on a stream.
``tess stream`` (:mod:`tess.stream.cli`) replays a dataset's splits as streams.
"""

from __future__ import annotations

from .io import FORMAT, FORMAT_VERSION, read_state, save_state, validated_state
from .learner import AUTO_RESETS, Learner, SegmentResult, StreamClosedError, signal_name, step_schedule

__all__ = [
    "AUTO_RESETS",
    "FORMAT",
    "FORMAT_VERSION",
    "Learner",
    "SegmentResult",
    "StreamClosedError",
    "read_state",
    "save_state",
    "signal_name",
    "step_schedule",
    "validated_state",
]
