"""Language-neutral test vectors of the TESS rule, and their checker.

``tess vectors export DIR`` writes self-describing cases (a manifest, plain
``.npy`` and raw ``.bin`` arrays, a ``key value`` sidecar for C); an
implementation in any language reads a case's inputs, runs one mini-batch of TESS
and writes its arrays under the same names; ``tess vectors check DIR RESULTS_DIR``
judges them with the conformance suite's tolerance policy and can write the same
report as ``python -m tess.conformance``.  See ``docs/validate-other-language.md``.
"""

from __future__ import annotations

from pathlib import Path

from .cases import CASES, CaseInputs, VectorCase, case_names, family, features, select_cases
from .check import CaseVerdict, QuantityVerdict, check_case, check_vectors, format_verdicts, report_header, report_rows
from .export import FORMAT, FORMAT_VERSION, export_case, export_vectors

__all__ = ["CASES", "CaseInputs", "VectorCase", "case_names", "select_cases", "family", "features",
           "export_case", "export_vectors", "check_case", "check_vectors", "CaseVerdict", "QuantityVerdict",
           "format_verdicts", "report_rows", "report_header", "FORMAT", "FORMAT_VERSION", "SCHEMA_PATH",
           "load_schema"]

SCHEMA_PATH = Path(__file__).with_name("manifest.schema.json")
"""The JSON schema (draft 2020-12) every exported ``manifest.json`` validates against."""


def load_schema() -> dict:
    """The manifest's JSON schema as a dict (from :data:`SCHEMA_PATH`)."""
    import json

    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
