"""Validate a presentation strictly with marshmallow, before the rules engine sees it.

The engine compares whatever it is given ("100" is not > 50, 0 matches false), so validation
is the only guard: no coercion at all. A string is never a number or a boolean, a boolean is
never a number, numbers must be finite and in range, and unknown fields are refused. `null`
means "not provided", exactly like an absent field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, missing, validate

from .presentation import BOOL, ENUM, ENUM_LIST, INPUT_FIELDS, INT, SECTIONS, FieldSpec


class _BoundedList(fields.List):
    """A list whose length is checked before its items: 2,000 bad entries are one error, not
    2,000 (and not 2,000 item validations)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        for validator in self.validators:
            if isinstance(validator, validate.Length) and isinstance(value, list) and (
                    validator.max is not None and len(value) > validator.max):
                raise ValidationError(f"Must hold at most {validator.max} entries.")
        return super()._deserialize(value, attr, data, **kwargs)


class _PlainValueField(fields.Field):
    """A field whose commonest inputs are answered before marshmallow's general path.

    `deserialize` runs for every declared field of a section, given or not, and its general
    path (missing check, pre-load hooks, validators, post-load hooks; none are used here) is
    most of validation's time. An absent optional field, and a value `_plainly_valid`
    confirms, come back as the general path would return them; anything else (every error
    included) takes the general path.
    """

    def deserialize(self, value: Any, attr: str | None = None, data: Any = None,
                    **kwargs: Any) -> Any:
        if value is missing and not self.required:
            return missing
        if self._plainly_valid(value):
            return value
        return super().deserialize(value, attr, data, **kwargs)

    def _plainly_valid(self, value: Any) -> bool:
        return False


class StrictBoolean(_PlainValueField):
    """true or false, nothing else (no 0/1, no "yes")."""

    default_error_messages = {"invalid": "Not a valid boolean: use true or false."}

    def _plainly_valid(self, value: Any) -> bool:
        return value is True or value is False

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class Choice(_PlainValueField, fields.String):
    """One of a fixed list of strings (marshmallow's String refuses numbers and booleans)."""

    def __init__(self, choices: tuple[str, ...], **kwargs: Any) -> None:
        super().__init__(validate=validate.OneOf(choices), **kwargs)
        self._choices = frozenset(choices)

    def _plainly_valid(self, value: Any) -> bool:
        return type(value) is str and value in self._choices


class StrictNumber(_PlainValueField):
    """A finite JSON number (an integer when `integer=True`, 10.0 included, as JSON Schema
    says); never a string or boolean."""

    default_error_messages = {
        "invalid": "Not a valid number.",
        "integer": "Not a valid integer.",
        "finite": "Must be a finite number.",
    }

    def __init__(self, *, integer: bool, minimum: float | None = None,
                 maximum: float | None = None, **kwargs: Any) -> None:
        super().__init__(validate=validate.Range(min=minimum, max=maximum), **kwargs)
        self.integer = integer
        self._minimum = -math.inf if minimum is None else minimum
        self._maximum = math.inf if maximum is None else maximum

    def _plainly_valid(self, value: Any) -> bool:
        # type() and not isinstance(): a bool is an int subclass and must take the error path.
        return ((type(value) is int or (type(value) is float and not self.integer
                                        and math.isfinite(value)))
                and self._minimum <= value <= self._maximum)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("integer" if self.integer else "invalid")
        if isinstance(value, float) and not math.isfinite(value):
            raise self.make_error("finite")
        if self.integer and not isinstance(value, int):
            # JSON (and JSON Schema) has one number type: 10.0 is the integer 10.
            if not value.is_integer():
                raise self.make_error("integer")
            return int(value)
        return value


def _field_for(spec: FieldSpec) -> fields.Field:
    kwargs: dict[str, Any] = {"required": spec.required}
    if spec.kind == BOOL:
        return StrictBoolean(**kwargs)
    if spec.kind == ENUM:
        return Choice(spec.choices, **kwargs)
    if spec.kind == ENUM_LIST:
        return _BoundedList(
            fields.String(validate=validate.OneOf(spec.choices)),
            validate=[validate.Length(min=1, max=len(spec.choices)), _unique],
            **kwargs,
        )
    return StrictNumber(integer=spec.kind == INT, minimum=spec.minimum, maximum=spec.maximum,
                        **kwargs)


def _unique(values: list[Any]) -> None:
    if len(set(values)) != len(values):
        raise ValidationError("Must not list the same value twice.")


class _StrictSchema(Schema):
    class Meta:
        unknown = RAISE


def _section_schema(section: str) -> type[Schema]:
    specs = {
        path.split(".", 1)[1]: spec
        for path, spec in INPUT_FIELDS.items()
        if path.startswith(section + ".")
    }
    if section == "start_back":
        # The whole block or none: a partial STarT Back score is meaningless.
        specs = {name: FieldSpec(s.kind, s.choices, s.minimum, s.maximum, required=True)
                 for name, s in specs.items()}
    attributes = {name: _field_for(spec) for name, spec in specs.items()}
    name = "".join(part.title() for part in section.split("_")) + "Schema"
    return type(name, (_StrictSchema,), attributes)


SECTION_SCHEMAS: dict[str, type[Schema]] = {s: _section_schema(s) for s in SECTIONS}
_REQUIRED_SECTIONS = {path.split(".")[0] for path, spec in INPUT_FIELDS.items() if spec.required}


# A patient presentation as POSTed to /v1/assessments (contract.md), built from the field
# registry so the schema and the rule loader's checks cannot drift apart.
PresentationSchema = type(
    "PresentationSchema",
    (_StrictSchema,),
    {
        section: fields.Nested(schema, required=section in _REQUIRED_SECTIONS)
        for section, schema in SECTION_SCHEMAS.items()
    },
)


_KNOWN_MEMBERS: dict[str, set[str]] = {
    section: {path.split(".", 1)[1] for path in INPUT_FIELDS if path.startswith(section + ".")}
    for section in SECTIONS
}


def _without_nulls(body: Mapping[str, Any]) -> dict[str, Any]:
    """Drop `null` for known sections and fields: null means "not provided", like absent.

    An unknown name keeps its null so the schema still refuses it (a misspelt field sent as
    null must not pass). Only the two levels the schema has are visited, so a deeply nested
    body cannot exhaust the stack here.
    """
    cleaned: dict[str, Any] = {}
    for section, members in body.items():
        if members is None and section in _KNOWN_MEMBERS:
            continue
        if isinstance(members, Mapping) and section in _KNOWN_MEMBERS:
            members = {name: value for name, value in members.items()
                       if value is not None or name not in _KNOWN_MEMBERS[section]}
        cleaned[section] = members
    return cleaned


def flatten_errors(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """Turn marshmallow's nested messages into {"dotted.field.path": [messages]}."""
    flat: dict[str, list[str]] = {}
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            name = "body" if key == "_schema" and not prefix else str(key)
            path = f"{prefix}.{name}" if prefix and key != "_schema" else (prefix or name)
            for sub_path, sub_messages in flatten_errors(value, path).items():
                flat.setdefault(sub_path, []).extend(sub_messages)
    elif isinstance(messages, list):
        for item in messages:
            if isinstance(item, str):
                flat.setdefault(prefix, []).append(item)
            else:
                for sub_path, sub_messages in flatten_errors(item, prefix).items():
                    flat.setdefault(sub_path, []).extend(sub_messages)
    else:
        flat.setdefault(prefix, []).append(str(messages))
    return flat


# Building a schema instance costs four times a load; an instance is reusable across threads
# because load() keeps no state on it.
_PRESENTATION_SCHEMA = PresentationSchema()


# Unknown fields reported per presentation before the schema runs: past this many the body
# is refused with these listed and the rest counted, so a body of 10,000 invented fields
# costs no more than one of fifty.
MAX_UNKNOWN_LISTED = 50


class TooManyUnknownFields(ValidationError):
    def __init__(self, listed: dict[str, list[str]], left_out: int) -> None:
        super().__init__(listed)
        self.left_out = left_out


def _unknown_fields(body: Mapping[str, Any]) -> list[str]:
    sizes = len(body) + sum(len(v) for v in body.values() if isinstance(v, Mapping))
    if sizes <= MAX_UNKNOWN_LISTED:
        return []  # cannot hold more unknown fields than that: the common case, no scan
    unknown = [str(key) for key in body if key not in SECTIONS]
    for section in SECTIONS:
        values = body.get(section)
        if isinstance(values, Mapping):
            unknown += [f"{section}.{key}" for key in values
                        if f"{section}.{key}" not in INPUT_FIELDS]
    return unknown


def load_presentation(body: Any) -> dict[str, Any]:
    """Validate a decoded JSON body; raise ValidationError with dotted-path messages."""
    if not isinstance(body, Mapping):
        raise ValidationError({"body": ["The body must be a JSON object."]})
    unknown = _unknown_fields(body)
    if len(unknown) > MAX_UNKNOWN_LISTED:
        raise TooManyUnknownFields({path: ["Unknown field."]
                                    for path in unknown[:MAX_UNKNOWN_LISTED]},
                                   len(unknown) - MAX_UNKNOWN_LISTED)
    try:
        return _PRESENTATION_SCHEMA.load(_without_nulls(body))
    except ValidationError as error:
        raise ValidationError(flatten_errors(error.messages)) from error
