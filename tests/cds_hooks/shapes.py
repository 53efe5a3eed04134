"""Hold responses to the CDS Hooks 2.0 JSON shapes (schemas/ written from the specification)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

SCHEMAS = Path(__file__).parent / "schemas"


@cache
def validator(kind: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{kind}.schema.json").read_text(encoding="utf-8"))
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def shape_errors(kind: str, instance: Any) -> list[str]:
    """`kind` is discovery, response or feedback."""
    return [f"{list(error.absolute_path)}: {error.message}"
            for error in validator(kind).iter_errors(instance)]
