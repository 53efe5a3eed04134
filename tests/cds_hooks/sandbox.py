"""Hook requests shaped as the public CDS Hooks sandbox (github.com/cds-hooks/sandbox) sends them.

Followed from the sandbox's source (snapshot of 2026-03-31, commit 3b7e255):

- src/retrieve-data-helpers/service-exchange.js: `callServices` builds the request as
  {hookInstance: uuidv4(), hook, fhirServer, context}; context starts with patientId and
  userId, then the screen's own keys; `fhirAuthorization` {access_token, token_type 'Bearer',
  expires_in, scope, subject} only when it holds an access token (left out for an open
  server); `prefetch` only when at least one prefetch query gave an answer.
  `completePrefetchTemplate` replaces {{context.patientId}}, {{user}}, {{context.userId}},
  first-level {{context.x}} primitives, {{userPractitionerId}} (and the other user ids)
  and {{today()}} / {{today() - N days}}, then `encodeUriParameters` re-encodes the query
  through query-string, which sorts the keys and joins repeated keys with commas.
  `prefetchDataPromises` skips a template that still holds a token and drops the key of any
  query that fails (a non-2xx answer or no connection): the service gets no entry for it,
  never an error object.
- src/config/fhir-config.js: the scope and client id put in fhirAuthorization.
- src/reducers/patient-reducers.js: the default user 'Practitioner/COREPRACTITIONER1'.
- src/components/PatientView/patient-view.jsx: patient-view adds no context.
- src/components/Pama/pama.jsx: order-select and order-sign send selections
  ['ServiceRequest/example-request-id'] and draftOrders, a Bundle of one ServiceRequest
  (status draft, intent plan, code = the chosen CPT coding, subject Patient/<id>,
  reasonCode = the chosen SNOMED CT codings, each concept's text its display).
- src/components/RxSign/rx-sign.jsx: the medication order-sign sends draftOrders only.

One departure: since November 2024 (commit 496ab1a) the sandbox first POSTs each search to
<Type>/_search and falls back to GET when that fails. `prefetch_for` sends the GET at once,
which is what the sandbox ends up sending to a server that refuses the POST (as
FhirTestServer does, with 501). The sandbox never sends encounterId; the builders add it only
when given one, after userId, where a real EHR would put it.
"""

from __future__ import annotations

import json
import re
import urllib.request
import uuid
from datetime import date, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

Resource = dict[str, Any]
DEFAULT_USER = "Practitioner/COREPRACTITIONER1"
ALL_SCOPES = "patient/*.* user/*.* launch openid profile online_access"
CLIENT_ID = "48163c5e-88b5-4cb3-92d3-23b800caa927"
CPT = "http://www.ama-assn.org/go/cpt"
SNOMED = "http://snomed.info/sct"
PAMA_REQUEST_ID = "example-request-id"
# The sandbox asks for the old DSTU2 media type; servers answer FHIR JSON all the same.
_ACCEPT = "application/json+fhir"
_TOKEN = re.compile(r"\{\{[^}]+}}")
_USER_TOKENS = {"Practitioner": "userPractitionerId",
                "PractitionerRole": "userPractitionerRoleId",
                "Patient": "userPatientId", "RelatedPerson": "userRelatedPersonId"}


def _user_identifiers(user_id: str) -> dict[str, str]:
    parts = user_id.split("/")
    if len(parts) == 2 and parts[0] in _USER_TOKENS:
        return {_USER_TOKENS[parts[0]]: parts[1]}
    return {}


def _today_tokens(template: str, today: date) -> str:
    template = re.sub(r"\{\{\s*today\(\)\s*}}", today.isoformat(), template, flags=re.I)

    def shifted(match: re.Match[str]) -> str:
        days = int(match.group(2)) * (-1 if match.group(1) == "-" else 1)
        return (today + timedelta(days=days)).isoformat()

    return re.sub(r"\{\{\s*today\(\)\s*([+-])\s*(\d+)\s*days?\s*}}", shifted, template,
                  flags=re.I)


def _encode_query(template: str) -> str:
    """The query as the sandbox sends it: keys sorted, repeated keys comma-joined, form-encoded."""
    if "?" not in template:
        return template
    path, query = template.split("?", 1)
    values: dict[str, list[str]] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        values.setdefault(name, []).append(value)
    return f"{path}?{urlencode([(k, ','.join(v)) for k, v in sorted(values.items())])}"


def complete_template(template: str, context: dict[str, Any], today: date | None = None) -> str:
    """A prefetch template with the sandbox's tokens replaced and its query re-encoded."""
    ids = _user_identifiers(str(context.get("userId", "")))

    def context_value(match: re.Match[str]) -> str:
        value = context.get(match.group(1))
        # The sandbox replaces first-level primitives only and leaves the rest as written.
        return str(value) if isinstance(value, str | int | float | bool) else match.group(0)

    out = re.sub(r"\{\{\s*user\s*}}", str(context.get("userId", "{{user}}")), template)
    out = re.sub(r"\{\{\s*context\.([A-Za-z0-9_]+)\s*}}", context_value, out)
    for token in _USER_TOKENS.values():
        out = re.sub(r"\{\{\s*" + token + r"\s*}}", ids.get(token, "{{" + token + "}}"), out)
    return _encode_query(_today_tokens(out, today or date.today()))


def _fetch(url: str, access_token: str | None, timeout: float) -> Resource | None:
    headers = {"Accept": _ACCEPT}
    if access_token:
        headers["Authorization"] = f"Bearer {access_token}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                    timeout=timeout) as response:
            body = json.loads(response.read().decode("utf-8"))
    except (OSError, ValueError):  # URLError, HTTPError and timeouts are all OSErrors
        return None  # the sandbox logs the failure and leaves the key out
    return body if isinstance(body, dict) and body else None


def prefetch_for(discovery_service: dict[str, Any], base_url: str, patient_id: str, *,
                 user_id: str = DEFAULT_USER, context: dict[str, Any] | None = None,
                 access_token: str | None = None, today: date | None = None,
                 timeout: float = 10.0) -> dict[str, Resource]:
    """Run each of a discovery service's prefetch templates against `base_url`, as the sandbox.

    Searches keep the whole first searchset page the server answers (the sandbox follows no
    `next` link). Keys whose query fails or still holds an unresolved token are left out.
    """
    full_context = {"patientId": patient_id, "userId": user_id, **(context or {})}
    results: dict[str, Resource] = {}
    for key, template in (discovery_service.get("prefetch") or {}).items():
        query = complete_template(str(template or ""), full_context, today)
        if not query or _TOKEN.search(query):
            continue
        body = _fetch(f"{base_url.rstrip('/')}/{query}", access_token, timeout)
        if body is not None:
            results[key] = body
    return results


def fhir_authorization(access_token: str, expires_in: int = 3600) -> dict[str, Any]:
    return {"access_token": access_token, "token_type": "Bearer", "expires_in": expires_in,
            "scope": ALL_SCOPES, "subject": CLIENT_ID}


def hook_request(hook: str, base_url: str, patient_id: str, *,
                 extra_context: dict[str, Any] | None = None,
                 discovery_service: dict[str, Any] | None = None,
                 user_id: str = DEFAULT_USER, encounter_id: str | None = None,
                 access_token: str | None = None, hook_instance: str | None = None,
                 today: date | None = None) -> dict[str, Any]:
    """A request body as the sandbox's callServices builds it, prefetch filled if asked."""
    context: dict[str, Any] = {"patientId": patient_id, "userId": user_id}
    if encounter_id:
        context["encounterId"] = encounter_id
    context.update(extra_context or {})
    request: dict[str, Any] = {"hookInstance": hook_instance or str(uuid.uuid4()),
                               "hook": hook, "fhirServer": base_url, "context": context}
    if access_token:
        request["fhirAuthorization"] = fhir_authorization(access_token)
    if discovery_service and discovery_service.get("prefetch"):
        prefetch = prefetch_for(discovery_service, base_url, patient_id, user_id=user_id,
                                context=context, access_token=access_token, today=today)
        if prefetch:
            request["prefetch"] = prefetch
    return request


def patient_view_request(base_url: str, patient_id: str, **options: Any) -> dict[str, Any]:
    """patient-view: the sandbox's face sheet adds nothing to patientId and userId."""
    return hook_request("patient-view", base_url, patient_id, **options)


def draft_orders_bundle(draft_orders: list[Resource]) -> Resource:
    return {"resourceType": "Bundle", "entry": [{"resource": order} for order in draft_orders]}


def order_select_request(base_url: str, patient_id: str, draft_orders: list[Resource],
                         selections: list[str], **options: Any) -> dict[str, Any]:
    """order-select with the PAMA screen's context: selections first, then draftOrders."""
    context = {"selections": list(selections), "draftOrders": draft_orders_bundle(draft_orders)}
    return hook_request("order-select", base_url, patient_id, extra_context=context, **options)


def order_sign_request(base_url: str, patient_id: str, draft_orders: list[Resource],
                       selections: list[str] | None = None, **options: Any) -> dict[str, Any]:
    """order-sign: the PAMA screen sends selections too, the medication screen does not."""
    context: dict[str, Any] = {}
    if selections is not None:
        context["selections"] = list(selections)
    context["draftOrders"] = draft_orders_bundle(draft_orders)
    return hook_request("order-sign", base_url, patient_id, extra_context=context, **options)


def coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    """A coding as in the sandbox's PAMA code lists; without display it is system and code."""
    found = {"code": code, "system": system}
    if display:
        found["display"] = display
    return found


def _concept(found: dict[str, str]) -> dict[str, Any]:
    # The sandbox sets text to the display; JSON.stringify drops it when there is none.
    concept: dict[str, Any] = {"coding": [found]}
    if found.get("display"):
        concept["text"] = found["display"]
    return concept


def pama_service_request(patient_id: str, study: dict[str, str],
                         reasons: list[dict[str, str]]) -> Resource:
    """The draft imaging order of the sandbox's PAMA screen (pama.jsx `generateContext`).

    `study` is a CPT coding, e.g. coding(CPT, "72148"); `reasons` SNOMED CT codings.
    """
    return {"resourceType": "ServiceRequest", "id": PAMA_REQUEST_ID, "status": "draft",
            "intent": "plan", "code": _concept(study),
            "subject": {"reference": f"Patient/{patient_id}"},
            "reasonCode": [_concept(reason) for reason in reasons]}


def pama_order_select_request(base_url: str, patient_id: str, study_code: str,
                              reason_codes: list[str], **options: Any) -> dict[str, Any]:
    """The PAMA screen's order-select for a CPT study and SNOMED CT reasons given as codes."""
    order = pama_service_request(patient_id, coding(CPT, study_code),
                                 [coding(SNOMED, code) for code in reason_codes])
    return order_select_request(base_url, patient_id, [order],
                                [f"ServiceRequest/{PAMA_REQUEST_ID}"], **options)
