"""CDS_HOOKS_* settings: off by default, and a configuration that cannot work is refused."""

from __future__ import annotations

import json

import pytest

from service.cds_hooks.settings import load_settings
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
