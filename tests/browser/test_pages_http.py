"""The pages over plain HTTP (no browser): documented in openapi.yaml, generated from the field
registry, self-contained (nothing from another site) and under a strict content policy."""

from __future__ import annotations

import re
import tomllib
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask
from openapi_core import Config, OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from werkzeug.test import EnvironBuilder

from service import create_app
from service.presentation import BOOL, ENUM, ENUM_LIST, INPUT_FIELDS, INT, NUMBER
from service.web import WebConfigError, api_base_from
from service.web.fields import LABELS, RedFlagScreen
from tests.conftest import ROOT

WEB = ROOT / "service" / "web"
PAGES = ["/intake", "/rules", "/trace"]
ASSETS = sorted(path.name for path in (WEB / "static").iterdir())


def _text(value: bytes, **_: str) -> str:
    return value.decode("utf-8")


@pytest.fixture(scope="module")
def openapi() -> OpenAPI:
    config = Config(extra_media_type_deserializers={
        "application/problem+json": lambda value, **_: yaml.safe_load(value),
        "text/html": _text, "text/css": _text, "text/javascript": _text,
    })
    return OpenAPI.from_file_path(str(ROOT / "openapi.yaml"), config=config)


def conforms(client: Any, openapi: OpenAPI, path: str, **kwargs: Any) -> Any:
    """GET a path and check the response against openapi.yaml."""
    request = WerkzeugOpenAPIRequest(
        EnvironBuilder(path=path, method="GET", **kwargs).get_request())
    with client.get(path, **kwargs) as response:
        response.get_data()
    result = openapi.unmarshal_response(request, WerkzeugOpenAPIResponse(response))
    assert [str(error) for error in result.errors] == [], path
    return response


@pytest.mark.parametrize("path", PAGES)
def test_page_is_documented_html_with_a_strict_policy(client, openapi, path):
    response = conforms(client, openapi, path)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert "connect-src 'self';" in policy  # same origin unless WEB_API_BASE says otherwise
    assert "unsafe-inline" not in policy


@pytest.mark.parametrize("name", ASSETS)
def test_asset_is_documented_and_conditional(client, openapi, name):
    response = conforms(client, openapi, f"/static/{name}")
    assert response.status_code == 200
    assert response.mimetype in ("text/css", "text/javascript")
    again = conforms(client, openapi, f"/static/{name}",
                     headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304
    part = conforms(client, openapi, f"/static/{name}", headers={"Range": "bytes=0-9"})
    assert part.status_code == 206


def test_unknown_asset_is_a_documented_404(client, openapi):
    response = conforms(client, openapi, "/static/nothing.js")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert client.get("/static/../web/__init__.py").status_code == 404
    assert client.get("/static/%2e%2e/__init__.py").status_code == 404


def test_pages_fetch_nothing_from_another_site():
    """Offline use: no CDN, no web font, no remote script, style or image."""
    remote = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//"""
                        r"""|@import|url\(\s*["']?(?:https?:)?//""")
    for path in [*(WEB / "templates").rglob("*.html"), *(WEB / "static").iterdir()]:
        assert not remote.search(path.read_text(encoding="utf-8")), path
    assert not re.search(r"https?://", (WEB / "static" / "style.css").read_text("utf-8"))


class Controls(HTMLParser):
    """Collect the intake form's controls by id, and which fieldset group each is in."""

    def __init__(self) -> None:
        super().__init__()
        self.by_name: dict[str, list[dict[str, Any]]] = {}
        self.ids: dict[str, str] = {}
        self.group: list[str] = []
        self.select: str | None = None
        self.labels_for: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {key: value or "" for key, value in attrs}
        if tag == "fieldset" and a.get("id", "").startswith("group-"):
            self.group.append(a["id"])
        elif tag == "fieldset":
            self.group.append(self.group[-1] if self.group else "")
        if "id" in a:
            assert a["id"] not in self.ids, f"duplicate id {a['id']}"
            self.ids[a["id"]] = tag
        if tag == "label" and "for" in a:
            self.labels_for.add(a["for"])
        if tag in ("input", "select") and "name" in a:
            entry = {"tag": tag, **a, "group": self.group[-1] if self.group else "", "options": []}
            self.by_name.setdefault(a["name"], []).append(entry)
            if tag == "select":
                self.select = a["name"]
        if tag == "option" and self.select:
            self.by_name[self.select][-1]["options"].append(a.get("value", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "fieldset":
            self.group.pop()
        if tag == "select":
            self.select = None


@pytest.fixture(scope="module")
def form(app: Flask) -> Controls:
    parser = Controls()
    parser.feed(app.test_client().get("/intake").get_data(as_text=True))
    return parser


def test_form_has_one_control_per_registry_field_named_by_its_path(form):
    form_fields = {name for name in form.by_name if name in INPUT_FIELDS}
    assert set(form.by_name) - set(INPUT_FIELDS) == set(), "controls outside the registry"
    assert form_fields == set(INPUT_FIELDS)
    for path, spec in INPUT_FIELDS.items():
        controls = form.by_name[path]
        assert controls[0]["id"] == path, path  # a 422's errors key is the control's id
        assert f"{path}--error" in form.ids, path
        assert all(c["id"] in form.labels_for for c in controls), f"{path}: unlabelled control"
        if spec.kind == BOOL:
            assert [(c["type"], c["value"]) for c in controls] == [
                ("radio", "true"), ("radio", "false"), ("radio", "")], path
            assert "checked" in controls[2], f"{path}: 'Not asked' is not the default"
            assert not any("checked" in c for c in controls[:2]), path
        elif spec.kind == ENUM:
            assert controls[0]["tag"] == "select", path
            assert controls[0]["options"] == ["", *spec.choices], path
        elif spec.kind == ENUM_LIST:
            assert [(c["type"], c["value"]) for c in controls] == [
                ("checkbox", value) for value in spec.choices], path
        else:
            assert spec.kind in (INT, NUMBER), path
            (control,) = controls
            assert control["type"] == "number", path
            assert float(control["min"]) == spec.minimum, path
            assert float(control["max"]) == spec.maximum, path
            assert control["step"] == ("1" if spec.kind == INT else "any"), path
        assert ("required" in controls[0]) == (spec.required and spec.kind != ENUM_LIST), path


def test_every_registry_field_has_a_written_label():
    assert set(LABELS) == set(INPUT_FIELDS)


def test_red_flag_screen_is_read_from_the_rules(app, form):
    red_flags = RedFlagScreen.from_rules(app.extensions["assessor"].catalog.rules)
    in_fieldset = {path for path, controls in form.by_name.items()
                   if controls[0]["group"] == "group-red_flags"}
    assert in_fieldset == {path for path in INPUT_FIELDS if red_flags.in_fieldset(path)}
    for path in ("neuro.saddle_anaesthesia", "neuro.urinary_retention", "history.cancer",
                 "history.fever", "exam.unable_to_bear_weight"):
        assert path in in_fieldset
    # The fieldset comes before the rest of the findings, after patient and pain.
    order = list(dict.fromkeys(c[0]["group"] for c in form.by_name.values()))
    assert order[:3] == ["group-patient", "group-pain", "group-red_flags"]


def test_api_base_must_be_an_http_url():
    assert api_base_from(None) == ""
    assert api_base_from(" http://127.0.0.1:9000/ ") == "http://127.0.0.1:9000"
    assert api_base_from("https://cds.example.org/api") == "https://cds.example.org/api"
    for bad in ("javascript:alert(1)", "127.0.0.1:9000", "http://", "http://a b"):
        with pytest.raises(WebConfigError):
            api_base_from(bad)


def test_api_base_from_the_environment_opens_the_policy_to_that_origin(monkeypatch):
    monkeypatch.setenv("WEB_API_BASE", "http://127.0.0.1:9/")
    app = create_app()
    response = app.test_client().get("/intake")
    assert 'data-api-base="http://127.0.0.1:9"' in response.get_data(as_text=True)
    assert "connect-src 'self' http://127.0.0.1:9;" in response.headers["Content-Security-Policy"]


def test_no_template_or_script_inserts_html_from_data():
    """Everything from the API goes in as text: no innerHTML, no document.write, no |safe."""
    for path in (WEB / "static").glob("*.js"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", text), path
    for path in (WEB / "templates").rglob("*.html"):
        assert "|safe" not in path.read_text(encoding="utf-8").replace(" ", ""), path


def test_artifacts_are_git_ignored():
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    assert "tests/artifacts/" in ignored
    assert Path(__file__).parent.joinpath("__init__.py").exists()


def test_templates_and_assets_ship_in_the_package():
    """A non-editable install (the container's) carries them only if package-data lists them."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    patterns = project["tool"]["setuptools"]["package-data"]["service.web"]
    for path in [*(WEB / "templates").rglob("*.*"), *(WEB / "static").rglob("*.*")]:
        relative = path.relative_to(WEB)
        assert any(relative.full_match(pattern) if hasattr(relative, "full_match")
                   else relative.match(pattern) for pattern in patterns), relative
