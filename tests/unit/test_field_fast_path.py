"""The fast path of the presentation's fields answers exactly as marshmallow's general path.

`_PlainValueField.deserialize` returns plainly valid values and absent optional fields before
marshmallow's general path; these tests hold it to that path for every field of the registry
and a set of values chosen to sit on each type's and range's edges.
"""

from __future__ import annotations

import math

import pytest
from marshmallow import ValidationError, fields, missing

from service.schemas import SECTION_SCHEMAS, _PlainValueField

EDGE_VALUES = [
    missing, None, True, False, 0, 1, -1, 2, 9, 10, 17, 18, 120, 121, 520, 521, -101, 10**20,
    0.0, 1.5, -0.5, 44.9, math.nan, math.inf, -math.inf, "", "0", "true", "yes", [], {},
]


def _fields():
    for section, schema in SECTION_SCHEMAS.items():
        for name, field in schema().fields.items():
            if isinstance(field, _PlainValueField):
                yield f"{section}.{name}", field


def _outcome(deserialize, value):
    try:
        return ("value", deserialize(value))
    except ValidationError as error:
        return ("error", error.messages)


@pytest.mark.parametrize(("path", "field"), list(_fields()),
                         ids=[path for path, _ in _fields()])
def test_fast_path_agrees_with_the_general_path(path, field):
    choices = sorted(getattr(field, "_choices", ()))
    for value in [*EDGE_VALUES, *choices, *(c.upper() for c in choices)]:
        fast = _outcome(field.deserialize, value)
        general = _outcome(lambda v: fields.Field.deserialize(field, v), value)
        if isinstance(value, float) and math.isnan(value) and fast[0] == general[0] == "value":
            continue  # nan != nan; both accepted it (never: numbers must be finite)
        assert fast == general, f"{path} = {value!r}"


def test_every_field_kind_is_covered():
    kinds = {type(field).__name__ for _, field in _fields()}
    assert kinds == {"StrictBoolean", "StrictNumber", "Choice"}
