"""The CDS Client's bearer JWT (CDS Hooks "Trusting CDS Clients"), with local keys only."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from prometheus_client import REGISTRY

from service.cds_hooks import HookSettings
from service.cds_hooks.security import ReplayGuard
from tests.cds_hooks.conftest import ISSUER, PUBLIC_URL, TODAY, VIGNETTES, SigningKeys
from tests.cds_hooks.fhir_builder import fhir_record, hook_request

SERVICE = "/cds-services/msk-assessment"


def claims(path: str = SERVICE, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "aud": f"{PUBLIC_URL}{path}", "iat": now, "exp": now + 300,
            "jti": str(uuid.uuid4()), **changes}


def es384(keys: SigningKeys, payload: dict[str, Any], **headers: Any) -> str:
    return jwt.encode(payload, keys.ec, algorithm="ES384", headers={"kid": "ec-1", **headers})


def rs384(keys: SigningKeys, payload: dict[str, Any]) -> str:
    return jwt.encode(payload, keys.rsa, algorithm="RS384", headers={"kid": "rsa-1"})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def handmade(header: dict[str, Any], payload: dict[str, Any], secret: bytes | None) -> str:
    """A token PyJWT refuses to make: unsigned, or an HMAC keyed with a public key."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    if secret is None:
        return signing_input + "."
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha384).digest()
    return f"{signing_input}.{_b64(mac)}"


def unsigned(payload: dict[str, Any]) -> str:
    return handmade({"alg": "none", "typ": "JWT", "kid": "ec-1"}, payload, None)


def call(client, token: str | None, path: str = SERVICE):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if path == "/cds-services":
        return client.get(path, headers=headers)
    prefetch = fhir_record(VIGNETTES["V01-acute-nonspecific"]["presentation"], TODAY)
    return client.post(path, json=hook_request("patient-view", prefetch), headers=headers)


def refused(response) -> bool:
    """CDS Hooks: a bare 401 - no body, nothing said about why."""
    return (response.status_code == 401 and response.data == b""
            and response.headers["WWW-Authenticate"] == "Bearer")


def failures(reason: str) -> float:
    return REGISTRY.get_sample_value("cds_hooks_auth_failures_total", {"reason": reason}) or 0


def test_a_good_es384_token_is_accepted(secured, keys):
    assert call(secured, es384(keys, claims())).status_code == 200


def test_a_good_rs384_token_is_accepted(secured, keys):
    assert call(secured, rs384(keys, claims())).status_code == 200


def test_discovery_needs_a_token_for_its_own_url(secured, keys):
    assert refused(call(secured, None, "/cds-services"))
    token = es384(keys, claims("/cds-services"))
    assert call(secured, token, "/cds-services").status_code == 200


def test_a_token_for_another_endpoint_is_refused(secured, keys):
    before = failures("audience")
    assert refused(call(secured, es384(keys, claims("/cds-services"))))
    assert refused(call(secured, es384(keys, claims(aud="https://other.example.org"
                                                        "/cds-services/msk-assessment"))))
    assert failures("audience") == before + 2


def test_an_expired_token_is_refused(secured, keys):
    past = int(time.time()) - 3600
    assert refused(call(secured, es384(keys, claims(iat=past - 300, exp=past))))


def test_a_replayed_token_is_refused(secured, keys):
    token = es384(keys, claims())
    assert call(secured, token).status_code == 200
    before = failures("replayed")
    assert refused(call(secured, token))
    assert failures("replayed") == before + 1


def test_an_unsigned_token_is_refused(secured):
    assert refused(call(secured, unsigned(claims())))


def test_an_hmac_token_is_refused_even_keyed_with_the_public_key(secured, keys):
    public_pem = keys.rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    for secret in (public_pem, b"a-shared-secret-of-forty-eight-bytes-or-so-0123456"):
        token = handmade({"alg": "HS384", "typ": "JWT", "kid": "rsa-1"}, claims(), secret)
        assert refused(call(secured, token))


@pytest.mark.parametrize("change", [
    {"iss": "https://stranger.example.org"},
    {"exp": int(time.time()) + 3600},  # lives longer than ten minutes
    {"jti": None},
    # Numeric strings, which PyJWT lets through: a NumericDate is a number (was a 500).
    {"exp": str(int(time.time()) + 300)},
    {"iat": str(int(time.time()))},
])
def test_claims_outside_the_policy_are_refused(secured, keys, change):
    payload = {k: v for k, v in claims(**change).items() if v is not None}
    assert refused(call(secured, es384(keys, payload)))


def test_the_kid_and_jku_must_match_the_configured_key_set(secured, keys):
    assert refused(call(secured, es384(keys, claims(), kid="unknown")))
    assert refused(call(secured, es384(keys, claims(), jku="https://evil.example/jwks")))
    assert call(secured, es384(keys, claims(), jku=keys.url)).status_code == 200


def test_a_token_signed_by_a_key_the_issuer_does_not_publish_is_refused(secured, tmp_path):
    (tmp_path / "stranger").mkdir()
    stranger = SigningKeys(tmp_path / "stranger")
    assert refused(call(secured, es384(stranger, claims())))


def test_no_bearer_token_is_refused_but_a_cors_preflight_is_not(secured):
    assert refused(call(secured, None))
    assert refused(secured.post(SERVICE, json={}, headers={"Authorization": "Basic abc"}))
    assert secured.options(SERVICE).status_code == 200


def test_with_auth_off_no_token_is_needed(hooks):
    assert call(hooks, None).status_code == 200


def test_tokens_are_never_logged(secured, keys, caplog):
    caplog.set_level(logging.DEBUG)
    good, bad = es384(keys, claims()), es384(keys, claims(exp=int(time.time()) - 100))
    call(secured, good)
    call(secured, good)
    call(secured, bad)
    logged = json.dumps([{**r.__dict__, "msg": str(r.msg)} for r in caplog.records],
                        default=str)
    for token in (good, bad):
        assert token not in logged and token.split(".")[2] not in logged
    assert "replayed" in logged  # the refusal is logged by its reason only


def test_a_https_key_set_is_fetched_once_and_cached(app, monkeypatch, keys, tmp_path):
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return json.dumps(keys.jwks).encode()

    jwks_url = "https://ehr.example.org/.well-known/jwks.json"
    settings = HookSettings(auth=True, issuers={ISSUER: jwks_url}, public_url=PUBLIC_URL,
                            replay_db=str(tmp_path / "jti.sqlite3"), jwks_fetch=fetch)
    monkeypatch.setitem(app.extensions, "cds_hooks", settings)
    client = app.test_client()
    assert call(client, es384(keys, claims())).status_code == 200
    assert call(client, rs384(keys, claims())).status_code == 200
    assert fetched == [jwks_url]


def test_the_replay_store_is_shared_by_worker_processes(tmp_path):
    path = str(tmp_path / "jti.sqlite3")
    worker_a, worker_b = ReplayGuard(path), ReplayGuard(path)
    expires = int(time.time()) + 300
    assert worker_a.first_use("iss jti-1", expires) is True
    assert worker_b.first_use("iss jti-1", expires) is False
    assert worker_b.first_use("iss jti-2", expires) is True


def test_expired_token_ids_are_forgotten(tmp_path):
    guard = ReplayGuard(":memory:")
    assert guard.first_use("iss old", int(time.time()) - 3600)
    assert guard.first_use("iss new", int(time.time()) + 300)
    assert guard.first_use("iss old", int(time.time()) + 300)  # purged, so new again
