"""Validate CDS Hooks requests and feedback (CDS Hooks 2.0) before anything reads them.

Members the specification does not name are ignored rather than refused: clients add
extensions and newer hook versions add context fields. Error messages never echo a value, so
an access token sent in the wrong place cannot reach a response or a log.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from ..schemas import StrictNumber, flatten_errors

_TEXT = {"validate": validate.Length(min=1), "required": True}


def _url(value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ValidationError("Must be an absolute http(s) URL.")


def _is_resource(value: Any) -> bool:
    return (isinstance(value, Mapping) and isinstance(value.get("resourceType"), str)
            and bool(value["resourceType"]))


class _Lenient(Schema):
    class Meta:
        unknown = EXCLUDE


class FhirAuthorizationSchema(_Lenient):
    access_token = fields.String(**_TEXT)
    token_type = fields.String(required=True, validate=validate.OneOf(["Bearer", "bearer"]))
    expires_in = StrictNumber(integer=True, required=True, minimum=0)
    scope = fields.String(**_TEXT)
    subject = fields.String(**_TEXT)
    patient = fields.String(validate=validate.Length(min=1))


class PatientContextSchema(_Lenient):
    user_id = fields.String(data_key="userId", **_TEXT)
    patient_id = fields.String(data_key="patientId", **_TEXT)
    encounter_id = fields.String(data_key="encounterId", validate=validate.Length(min=1))


class _Bundle(fields.Dict):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        bundle = super()._deserialize(value, attr, data, **kwargs)
        if bundle.get("resourceType") != "Bundle":
            raise ValidationError("Must be a FHIR Bundle.")
        return bundle


class OrderSignContextSchema(PatientContextSchema):
    draft_orders = _Bundle(data_key="draftOrders", required=True)


class OrderSelectContextSchema(OrderSignContextSchema):
    selections = fields.List(fields.String(validate=validate.Length(min=1)), required=True,
                             validate=validate.Length(min=1))


CONTEXT_SCHEMAS: dict[str, type[Schema]] = {
    "patient-view": PatientContextSchema,
    "order-select": OrderSelectContextSchema,
    "order-sign": OrderSignContextSchema,
}


class HookRequestSchema(_Lenient):
    hook = fields.String(**_TEXT)
    hook_instance = fields.String(data_key="hookInstance", **_TEXT)
    fhir_server = fields.String(data_key="fhirServer", validate=_url)
    fhir_authorization = fields.Nested(FhirAuthorizationSchema, data_key="fhirAuthorization")
    context = fields.Dict(required=True)
    prefetch = fields.Dict(keys=fields.String(), values=fields.Raw(allow_none=True))
    extension = fields.Dict()

    @validates_schema
    def _authorization_needs_a_server(self, data: dict[str, Any], **_: Any) -> None:
        if "fhir_authorization" in data and "fhir_server" not in data:
            raise ValidationError("fhirAuthorization is given, so fhirServer is required.",
                                  "fhirServer")

    @validates_schema
    def _prefetch_holds_resources(self, data: dict[str, Any], **_: Any) -> None:
        # A key the service asked for holds a FHIR resource or null; anything else is the
        # client's defect, said at its path rather than read as "no such data". Other keys
        # are ignored, as CDS Hooks asks.
        from .fetching import PREFETCH  # fetching reads the hooks; this module only checks

        faults = {f"prefetch.{key}": ["Must be a FHIR resource (with resourceType) or null."]
                  for key, value in (data.get("prefetch") or {}).items()
                  if key in PREFETCH and value is not None and not _is_resource(value)}
        if faults:
            raise ValidationError(faults)


def load_hook_request(body: Any, hooks: tuple[str, ...]) -> dict[str, Any]:
    """Validate a hook call to a service that answers `hooks`; dotted-path errors."""
    if not isinstance(body, Mapping):
        raise ValidationError({"body": ["The body must be a JSON object."]})
    try:
        request = HookRequestSchema().load(body)
    except ValidationError as error:
        raise ValidationError(flatten_errors(error.messages)) from error
    if request["hook"] not in hooks:
        raise ValidationError({"hook": [f"This service answers {' or '.join(hooks)}."]})
    try:
        request["context"] = CONTEXT_SCHEMAS[request["hook"]]().load(request["context"])
    except ValidationError as error:
        raise ValidationError(flatten_errors(error.messages, "context")) from error
    return request


# --- feedback ---------------------------------------------------------------------------


class CodingSchema(_Lenient):
    code = fields.String(**_TEXT)
    system = fields.String(**_TEXT)
    display = fields.String()


class OverrideReasonSchema(_Lenient):
    reason = fields.Nested(CodingSchema)
    # Read to validate it, never kept or logged: free text may name the patient.
    user_comment = fields.String(data_key="userComment")


class AcceptedSuggestionSchema(_Lenient):
    id = fields.String(**_TEXT)


class FeedbackItemSchema(_Lenient):
    card = fields.String(**_TEXT)
    outcome = fields.String(required=True, validate=validate.OneOf(["accepted", "overridden"]))
    accepted_suggestions = fields.List(fields.Nested(AcceptedSuggestionSchema),
                                       data_key="acceptedSuggestions",
                                       validate=validate.Length(min=1))
    override_reason = fields.Nested(OverrideReasonSchema, data_key="overrideReason")
    outcome_timestamp = fields.AwareDateTime(data_key="outcomeTimestamp", required=True)

    @validates_schema
    def _outcome_needs_its_details(self, data: dict[str, Any], **_: Any) -> None:
        accepted = data["outcome"] == "accepted"
        if accepted and "accepted_suggestions" not in data:
            raise ValidationError("An accepted outcome lists its acceptedSuggestions.",
                                  "acceptedSuggestions")
        if accepted and "override_reason" in data:
            raise ValidationError("Only an overridden outcome has an overrideReason.",
                                  "overrideReason")


class FeedbackSchema(Schema):
    feedback = fields.List(fields.Nested(FeedbackItemSchema), required=True,
                           validate=validate.Length(min=1, max=100))

    class Meta:
        unknown = EXCLUDE


def load_feedback(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, Mapping):
        raise ValidationError({"body": ["The body must be a JSON object."]})
    try:
        return FeedbackSchema().load(body)["feedback"]
    except ValidationError as error:
        raise ValidationError(flatten_errors(error.messages)) from error

