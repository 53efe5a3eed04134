"""Fixtures for the CDS Hooks tests: a fixed day, hook settings, signing keys."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask
from flask.testing import FlaskClient
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from service.cds_hooks import HookSettings
from tests.cases import load_cases
from tests.conftest import ROOT, SHARED

TODAY = date(2026, 6, 15)
NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
PUBLIC_URL = "https://cds.example.org"
ISSUER = "https://ehr.example.org"
VIGNETTES = {case["id"]: case for case in load_cases(SHARED / "vignettes" / "cases.yaml")}
ALL_CASES = load_cases(SHARED / "vignettes" / "cases.yaml",
                       *sorted((ROOT / "tests" / "vignettes").glob("*_cases.yaml")))


# The FHIR servers the tests start, on loopback at any port: allowed as a deployment would
# list its EHR's (nothing is read from a server not listed).
TEST_FHIR_SERVERS = ("http://127.0.0.1",)


def fixed_clock() -> datetime:
    return NOW


def hook_client(app: Flask, monkeypatch: pytest.MonkeyPatch,
                clock: Callable[[], datetime] = fixed_clock) -> FlaskClient:
    """A client of the app with authentication off, the day fixed and the test FHIR
    servers allowed."""
    monkeypatch.setitem(app.extensions, "cds_hooks", HookSettings(
        clock=clock, fhir_servers=TEST_FHIR_SERVERS))
    return app.test_client()


@pytest.fixture()
def hooks(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[FlaskClient]:
    yield hook_client(app, monkeypatch)


class SigningKeys:
    """An EC P-384 and an RSA key pair, published as a JWK Set in a file."""

    def __init__(self, directory: Path) -> None:
        self.ec = ec.generate_private_key(ec.SECP384R1())
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwks = {"keys": [self._public(ECAlgorithm.to_jwk(self.ec.public_key()), "ec-1", "ES384"),
                         self._public(RSAAlgorithm.to_jwk(self.rsa.public_key()), "rsa-1",
                                      "RS384")]}
        self.path = directory / "jwks.json"
        self.path.write_text(json.dumps(jwks), encoding="utf-8")
        self.jwks = jwks

    @staticmethod
    def _public(jwk: str, kid: str, alg: str) -> dict[str, Any]:
        return {**json.loads(jwk), "kid": kid, "alg": alg, "use": "sig"}

    @property
    def url(self) -> str:
        return self.path.as_uri()


@pytest.fixture()
def keys(tmp_path: Path) -> SigningKeys:
    return SigningKeys(tmp_path)


@pytest.fixture()
def secured(app: Flask, monkeypatch: pytest.MonkeyPatch, keys: SigningKeys,
            tmp_path: Path) -> Iterator[FlaskClient]:
    """A client of the app with JWT authentication on, trusting ISSUER's local JWK Set."""
    settings = HookSettings(auth=True, issuers={ISSUER: keys.url}, public_url=PUBLIC_URL,
                            replay_db=str(tmp_path / "jti.sqlite3"), clock=fixed_clock)
    monkeypatch.setitem(app.extensions, "cds_hooks", settings)
    yield app.test_client()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server (tests/redis_server.py), shared by the session's tests."""
    from tests.redis_server import running_redis

    with running_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url
