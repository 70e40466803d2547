"""``tess export``: write a trained network (a checkpoint) as a NIR graph (:mod:`tess.export`).

    tess train --dataset digits --set lif.reset=hard --checkpoint-dir runs/mlp
    tess export --checkpoint runs/mlp/last.npz --format nir --out mlp.nir

The graph computes one time step; run it for the checkpoint's T steps and sum the
output over time (tess's prediction).  Neuron parameters are written for ``--dt``
(default 1e-4, the time step snnTorch's importer assumes).  What NIR cannot express
exactly (tess's soft reset) is printed as a warning; the file is written anyway, in
the closest form, with the exact tess description in its metadata.
"""

from __future__ import annotations

import argparse
import warnings
from collections import Counter
from typing import Any

__all__ = ["register", "run", "FORMATS"]

FORMATS: tuple[str, ...] = ("nir",)
"""Export formats ``--format`` accepts."""


def register(subparsers: Any) -> None:
    """Add the ``export`` subcommand (``handler`` = :func:`run`)."""
    from .export import DEFAULT_DT, MAX_POOL_FORMS  # tess.export imports no framework at module level

    p = subparsers.add_parser(
        "export", help="export a trained network (checkpoint) to NIR",
        description="Write the network of a tess checkpoint as a NIR graph (Neuromorphic Intermediate "
                    "Representation) that snnTorch, Norse and other SNN frameworks load. Needs the 'nir' "
                    "extra: pip install 'tess[nir]'.")
    p.add_argument("--checkpoint", required=True, metavar="PATH", help="checkpoint file (e.g. DIR/last.npz)")
    p.add_argument("--format", choices=FORMATS, default="nir", help="export format [nir]")
    p.add_argument("--out", required=True, metavar="PATH", help="output file, e.g. net.nir (written atomically)")
    p.add_argument("--dt", type=float, default=DEFAULT_DT,
                   help=f"time step the neuron parameters are written for; import with the same dt [{DEFAULT_DT:g}]")
    p.add_argument("--max-pool", choices=MAX_POOL_FORMS, default=MAX_POOL_FORMS[0],
                   help="how max pooling of spikes is written: lif (a memoryless LIF, loads in snnTorch) or "
                        "threshold (nir.Threshold) [lif]")
    p.add_argument("--no-tess-metadata", action="store_true",
                   help="omit the exact tess description (config, raw weights) from the file's metadata")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``tess export``; returns the exit status."""
    from tess_spec.atomic import check_output_path

    from .checkpoint import read_checkpoint
    from .export import NIRExportWarning, to_nir, write_nir

    out = check_output_path(args.out, what="--out")
    ckpt = read_checkpoint(args.checkpoint)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NIRExportWarning)
        graph = to_nir(ckpt.config, ckpt.state["params"], dt=args.dt, max_pool=args.max_pool,
                       tess_metadata=not args.no_tess_metadata)
    for w in caught:
        if issubclass(w.category, NIRExportWarning):
            print(f"warning: {w.message}")
        else:  # pragma: no cover - other libraries' warnings pass through unchanged
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    write_nir(graph, out)
    kinds = Counter(type(n).__name__ for n in graph.nodes.values())
    print(f"wrote {out}: {len(graph.nodes)} NIR nodes ({', '.join(f'{v} {k}' for k, v in kinds.items())}), "
          f"dt={args.dt:g}, epoch {ckpt.epoch}")
    print(f"run it for T={ckpt.config.train.T} steps and take the argmax of the output summed over time")
    return 0
