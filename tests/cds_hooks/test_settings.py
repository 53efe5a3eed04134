"""CDS_HOOKS_* settings: off by default, and a configuration that cannot work is refused."""

from __future__ import annotations

import json

import pytest

from service.cds_hooks.settings import HookSettings, load_settings
from service.config import ConfigError

ISSUERS = json.dumps({"https://ehr.example.org": "https://ehr.example.org/jwks.json"})


def test_authentication_is_off_by_default():
    settings = load_settings({})
    assert settings.auth is False and settings.replay_db == ":memory:"


def test_production_settings():
    settings = load_settings({"CDS_HOOKS_AUTH": "on", "CDS_HOOKS_ISSUERS": ISSUERS,
                              "CDS_HOOKS_PUBLIC_URL": "https://cds.example.org/"})
    assert settings.auth is True
    assert settings.public_url == "https://cds.example.org"
    assert settings.replay_db.endswith("cds-hooks-jti.sqlite3")


def test_authentication_on_but_not_configured_starts_and_refuses_every_call(app, monkeypatch):
    settings = load_settings({"CDS_HOOKS_AUTH": "on"})
    monkeypatch.setitem(app.extensions, "cds_hooks", settings)
    client = app.test_client()
    assert client.get("/cds-services").status_code == 401
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize("environ", [
    {"CDS_HOOKS_AUTH": "maybe"},
    {"CDS_HOOKS_ISSUERS": "not json"},
    {"CDS_HOOKS_ISSUERS": json.dumps({"https://ehr": "http://ehr/jwks.json"})},
    {"CDS_HOOKS_ISSUERS": json.dumps(["https://ehr"])},
    {"CDS_HOOKS_PUBLIC_URL": "cds.example.org"},
    {"CDS_HOOKS_MAX_BODY_BYTES": "-1"},
    {"CDS_HOOKS_FHIR_TIMEOUT": "soon"},
])
def test_a_configuration_that_cannot_work_is_refused(environ):
    with pytest.raises(ConfigError):
        load_settings(environ)


def test_fhir_servers_are_an_allow_list_and_issuers_may_name_their_own():
    settings = load_settings({
        "CDS_HOOKS_FHIR_SERVERS": "https://ehr.example.org/fhir, http://127.0.0.1",
        "CDS_HOOKS_ISSUERS": json.dumps({
            "https://a.example": "https://a.example/jwks.json",
            "https://b.example": {"jwks": "https://b.example/jwks.json",
                                  "fhir_servers": ["https://fhir.b.example/r4"]}}),
    })
    assert settings.issuers == {"https://a.example": "https://a.example/jwks.json",
                                "https://b.example": "https://b.example/jwks.json"}
    assert settings.may_read("https://ehr.example.org/fhir", None)
    assert settings.may_read("https://ehr.example.org/fhir/", None)
    assert not settings.may_read("https://ehr.example.org/fhirx", None)
    assert not settings.may_read("https://ehr.example.org/other", None)
    assert settings.may_read("http://127.0.0.1:8123/fhir", None)  # host only: any port
    assert not settings.may_read("http://169.254.169.254/latest", None)  # never unlisted
    assert not settings.may_read("https://ehr.example.org.evil.example/fhir", None)


def test_with_authentication_only_the_verified_issuers_servers_are_read():
    settings = HookSettings(auth=True, fhir_servers=("https://anyone.example",),
                            issuer_fhir_servers={"https://b.example":
                                                 ("https://fhir.b.example/r4",)})
    assert settings.may_read("https://fhir.b.example/r4", "https://b.example")
    assert not settings.may_read("https://fhir.b.example/r4", "https://a.example")
    assert not settings.may_read("https://anyone.example/fhir", "https://b.example")


def test_nothing_is_read_from_an_unlisted_fhir_server_by_default():
    assert HookSettings().may_read("http://127.0.0.1:9999/fhir", None) is False


@pytest.mark.parametrize("raw", ["ftp://x.example", "not a url", "https://"])
def test_a_bad_fhir_server_entry_stops_start_up(raw):
    with pytest.raises(ConfigError):
        load_settings({"CDS_HOOKS_FHIR_SERVERS": raw})
