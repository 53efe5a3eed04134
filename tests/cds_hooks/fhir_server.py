"""A small FHIR R4 REST server for the hook tests, on the standard library only.

    with FhirTestServer(resources) as server:
        urllib.request.urlopen(f"{server.base_url}/Condition?patient=synthea-1")

It answers `GET /metadata`, `GET /Patient/<id>` (any type in fact) and type searches on the
types named in SEARCHABLE with the parameters in _PARAMETERS, as searchset Bundles with
`total` and `self`/`next` links. Unknown search parameters get a 400 OperationOutcome, as
HAPI answers under strict handling (`Prefer: handling=strict`), unless `lenient=True`.
Every request is recorded, so tests can assert what a client asked for.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from tests.cds_hooks.long_record import long_followed_patient

__all__ = ["FhirTestServer", "long_followed_patient"]

Resource = dict[str, Any]
FHIR_JSON = "application/fhir+json"
SEARCHABLE = ("Condition", "Observation", "MedicationRequest", "AllergyIntolerance",
              "ServiceRequest")
DEFAULT_COUNT = 50
# Paging and formatting parameters every search accepts besides the type's own.
_CONTROL = {"_count", "_sort", "_getpagesoffset", "_format", "_include"}
_PARAMETERS = {"patient", "code", "category", "clinical-status", "status", "date"}
_SORTS = {"date", "-date", "recorded-date", "-recorded-date", "authoredon", "-authoredon"}
# The element paths a `date` search or sort reads, first present wins, per type.
_DATE_PATHS = {
    "Observation": (("effectiveDateTime",), ("effectivePeriod", "start"), ("issued",)),
    "Condition": (("onsetDateTime",), ("recordedDate",)),
    "MedicationRequest": (("authoredOn",),),
    "AllergyIntolerance": (("recordedDate",),),
    "ServiceRequest": (("authoredOn",),),
}
_COMPARATORS: dict[str, Callable[[str, str], bool]] = {
    "ge": lambda value, bound: value >= bound, "gt": lambda value, bound: value > bound,
    "le": lambda value, bound: value <= bound, "lt": lambda value, bound: value < bound,
    "eq": lambda value, bound: value.startswith(bound),
}


class SearchError(ValueError):
    """A search the server refuses, answered with 400 and an OperationOutcome."""


def operation_outcome(code: str, text: str) -> Resource:
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": text}]}


def _get(resource: Resource, path: tuple[str, ...]) -> Any:
    value: Any = resource
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def resource_date(resource: Resource) -> str | None:
    for path in _DATE_PATHS.get(resource.get("resourceType", ""), ()):
        value = _get(resource, path)
        if isinstance(value, str):
            return value
    return None


def _codings(concepts: Any) -> list[dict[str, Any]]:
    if isinstance(concepts, dict):
        concepts = [concepts]
    return [coding for concept in concepts or [] for coding in concept.get("coding", [])]


def _code_concepts(resource: Resource) -> Any:
    if resource.get("resourceType") == "MedicationRequest":
        return resource.get("medicationCodeableConcept")
    return resource.get("code")


def _matches_token(coding: dict[str, Any], token: str) -> bool:
    if "|" not in token:
        return coding.get("code") == token
    system, code = token.split("|", 1)
    return coding.get("system") == system and (code == "" or coding.get("code") == code)


def _match_patient(resource: Resource, value: str) -> bool:
    reference = (resource.get("subject") or resource.get("patient") or {}).get("reference")
    wanted = value if value.startswith("Patient/") else f"Patient/{value}"
    return reference == wanted


def _match_code(resource: Resource, value: str) -> bool:
    codings = _codings(_code_concepts(resource))
    return any(_matches_token(c, token) for token in value.split(",") for c in codings)


def _match_category(resource: Resource, value: str) -> bool:
    categories = resource.get("category") or []
    # AllergyIntolerance.category is a list of plain codes, the others CodeableConcepts.
    codes = {c for c in categories if isinstance(c, str)}
    codes |= {c.get("code") for c in _codings([c for c in categories if isinstance(c, dict)])}
    return bool(codes & set(value.split(",")))


def _match_clinical_status(resource: Resource, value: str) -> bool:
    codes = {c.get("code") for c in _codings(resource.get("clinicalStatus"))}
    return bool(codes & set(value.split(",")))


def _match_status(resource: Resource, value: str) -> bool:
    return resource.get("status") in value.split(",")


def _match_date(resource: Resource, value: str) -> bool:
    prefix, bound = (value[:2], value[2:]) if value[:2] in _COMPARATORS else ("eq", value)
    found = resource_date(resource)
    if found is None:
        return False
    # ISO strings of equal precision compare in time order; cut to the bound's precision
    # so that `le2024-01-01` keeps 2024-01-01T10:00 the way a FHIR server would.
    compared = found[:len(bound)] if prefix in ("le", "gt", "eq") else found
    return _COMPARATORS[prefix](compared, bound)


_MATCHERS: dict[str, Callable[[Resource, str], bool]] = {
    "patient": _match_patient, "code": _match_code, "category": _match_category,
    "clinical-status": _match_clinical_status, "status": _match_status, "date": _match_date,
}


def _sorted(resources: list[Resource], sort: str | None) -> list[Resource]:
    if not sort:
        return resources
    if sort not in _SORTS:
        raise SearchError(f"Unknown _sort value: {sort}")
    dated = [r for r in resources if resource_date(r) is not None]
    undated = [r for r in resources if resource_date(r) is None]
    # Missing dates go last whichever the direction, as HAPI orders nulls.
    dated.sort(key=lambda r: resource_date(r) or "", reverse=sort.startswith("-"))
    return dated + undated


class _Store:
    """The resources, indexed by type and id."""

    def __init__(self, resources: list[Resource]) -> None:
        self.by_type: dict[str, dict[str, Resource]] = {}
        for resource in resources:
            self.by_type.setdefault(resource["resourceType"], {})[resource["id"]] = resource

    def read(self, resource_type: str, resource_id: str) -> Resource | None:
        return self.by_type.get(resource_type, {}).get(resource_id)

    def search(self, resource_type: str, params: list[tuple[str, str]]) -> list[Resource]:
        found = list(self.by_type.get(resource_type, {}).values())
        for name, value in params:
            matcher = _MATCHERS.get(name)
            if matcher:
                found = [r for r in found if matcher(r, value)]
        return found


class FhirTestServer:
    """A FHIR server on 127.0.0.1 for the duration of a `with` block.

    `delay_seconds` delays every answer; `fail[path_prefix] = status` answers every path
    starting with the prefix (e.g. "/Observation") with that status and an OperationOutcome.
    `requests` holds each path+query served (without the /fhir base), `authorizations` the
    Authorization header of each (None when absent).
    """

    def __init__(self, resources: list[Resource] | None = None, *, lenient: bool = False,
                 fhir_version: str = "4.0.1", base_path: str = "/fhir") -> None:
        self.store = _Store(list(resources or []))
        self.lenient = lenient
        self.fhir_version = fhir_version
        self.base_path = base_path.rstrip("/")
        self.delay_seconds = 0.0
        self.fail: dict[str, int] = {}
        self.requests: list[str] = []
        self.authorizations: list[str | None] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._httpd, "the server is not running"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}{self.base_path}"

    def __enter__(self) -> FhirTestServer:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        assert self._httpd and self._thread
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def record(self, path: str, authorization: str | None) -> None:
        with self._lock:
            self.requests.append(path)
            self.authorizations.append(authorization)

    def answer(self, target: str) -> tuple[int, Resource]:
        """The status and body for a GET of `target` (path and query below the base)."""
        for prefix, status in self.fail.items():
            if target.startswith(prefix):
                return status, operation_outcome("exception", f"Configured failure {status}")
        parts = urlsplit(target)
        segments = [s for s in parts.path.split("/") if s]
        try:
            return self._route(segments, parts.query)
        except SearchError as error:
            return 400, operation_outcome("processing", str(error))

    def _route(self, segments: list[str], query: str) -> tuple[int, Resource]:
        if segments == ["metadata"]:
            return 200, self.capability_statement()
        if len(segments) == 2:
            found = self.store.read(*segments)
            if found is None:
                return 404, operation_outcome("not-found", f"{'/'.join(segments)} not found")
            return 200, found
        if len(segments) == 1 and segments[0] in SEARCHABLE:
            return 200, self.search(segments[0], parse_qsl(query, keep_blank_values=True))
        return 404, operation_outcome("not-supported", f"No route for /{'/'.join(segments)}")

    def search(self, resource_type: str, params: list[tuple[str, str]]) -> Resource:
        unknown = [name for name, _ in params if name not in _PARAMETERS | _CONTROL]
        if unknown and not self.lenient:
            raise SearchError(f"Unknown search parameter(s) for {resource_type}: "
                              f"{', '.join(unknown)}")
        control = dict((name, value) for name, value in params if name in _CONTROL)
        found = _sorted(self.store.search(resource_type, params), control.get("_sort"))
        count = _int_param(control, "_count", DEFAULT_COUNT)
        offset = _int_param(control, "_getpagesoffset", 0)
        page = found[offset:offset + count]
        entry = [{"fullUrl": f"{self.base_url}/{resource_type}/{r['id']}",
                  "resource": r, "search": {"mode": "match"}} for r in page]
        if control.get("_include") == "MedicationRequest:medication":
            entry += self._included_medications(page)
        return {"resourceType": "Bundle", "type": "searchset", "total": len(found),
                "link": self._links(resource_type, params, offset, count, len(found)),
                "entry": entry}

    def _included_medications(self, page: list[Resource]) -> list[Resource]:
        """`_include=MedicationRequest:medication`: the Medications the page refers to."""
        found = {}
        for request in page:
            reference = (request.get("medicationReference") or {}).get("reference", "")
            if reference.startswith("Medication/"):
                medication = self.store.read("Medication", reference.split("/", 1)[1])
                if medication is not None:
                    found[reference] = medication
        return [{"fullUrl": f"{self.base_url}/{ref}", "resource": medication,
                 "search": {"mode": "include"}} for ref, medication in found.items()]

    def _links(self, resource_type: str, params: list[tuple[str, str]], offset: int,
               count: int, total: int) -> list[dict[str, str]]:
        kept = [(name, value) for name, value in params if name != "_getpagesoffset"]

        def url(at: int | None) -> str:
            query = kept + ([("_getpagesoffset", str(at))] if at else [])
            return f"{self.base_url}/{resource_type}" + (f"?{urlencode(query)}" if query else "")

        links = [{"relation": "self", "url": url(offset)}]
        if offset + count < total:
            links.append({"relation": "next", "url": url(offset + count)})
        return links

    def capability_statement(self) -> Resource:
        return {"resourceType": "CapabilityStatement", "status": "active",
                "date": "2026-12-01", "kind": "instance", "fhirVersion": self.fhir_version,
                "format": ["json"],
                "rest": [{"mode": "server", "resource": [
                    {"type": name, "interaction": [{"code": "read"}, {"code": "search-type"}],
                     "searchParam": [{"name": p, "type": "token"} for p in sorted(_PARAMETERS)]}
                    for name in ("Patient", *SEARCHABLE)]}]}


def _int_param(control: dict[str, str], name: str, default: int) -> int:
    value = control.get(name)
    if value is None:
        return default
    if not value.isdigit():
        raise SearchError(f"{name} must be a non-negative integer, not {value!r}")
    return int(value)


def _handler_for(server: FhirTestServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 (the name http.server dispatches to)
            target = self.path
            if target.startswith(server.base_path + "/") or target == server.base_path:
                target = target[len(server.base_path):] or "/"
            server.record(target, self.headers.get("Authorization"))
            if server.delay_seconds:
                time.sleep(server.delay_seconds)
            status, body = server.answer(target)
            self._send(status, body)

        def _send(self, status: int, body: Resource) -> None:
            payload = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", f"{FHIR_JSON}; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            try:
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # a client that timed out (the delay tests) has gone: nothing to answer

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # keep the test output free of one access-log line per request

    return Handler
