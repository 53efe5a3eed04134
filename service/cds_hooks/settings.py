"""Read the CDS Hooks settings from the environment, with defaults, in one place."""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..config import ConfigError

log = logging.getLogger(__name__)

# CDS Hooks clients sign a fresh token for every call, valid for about five minutes (the
# public sandbox uses exactly five). A longer-lived token is refused, which also bounds how
# long a token id must be remembered to refuse its replay.
MAX_TOKEN_LIFETIME_SECONDS = 600
CLOCK_SKEW_SECONDS = 30


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class HookSettings:
    """Settings of the CDS Hooks services of one app instance; tests build their own."""

    auth: bool = False
    # iss -> where its JSON Web Key Set is: an https URL, or a file: URL for a local copy.
    issuers: Mapping[str, str] = field(default_factory=dict)
    # The public base URL the EHR calls (https://cds.example.org); the token audience is this
    # plus the path called, e.g. https://cds.example.org/cds-services/msk-assessment.
    public_url: str | None = None
    # SQLite file shared by the worker processes to refuse a replayed token id; ":memory:"
    # remembers within one process only.
    replay_db: str = ":memory:"
    # Where seen token ids are kept instead, shared by every replica: a redis:// or rediss://
    # URL (CDS_HOOKS_REPLAY_STORE). Empty: the SQLite file above, enough for one pod.
    replay_store: str = ""
    max_body_bytes: int = 1024 * 1024
    fhir_timeout_seconds: float = 5.0
    # All FHIR reads of one hook call together; after it the service answers from what it has.
    fhir_budget_seconds: float = 10.0
    # The Argonaut PAMA guide's pama-rating-qcdsm-consulted: the CMS G-code of the qualified
    # CDS mechanism this deployment is part of. G1011 is CMS's "qualified tool not otherwise
    # specified"; a deployment sets its own.
    pama_qcdsm: str = "G1011"
    # The FHIR servers a call's `fhirServer` may name for the service to read (and send the
    # call's access token to): base URLs, or `scheme://host` for any port of that host. With
    # authentication on, only those of the verified token's issuer (`issuer_fhir_servers`).
    # Nothing else is ever fetched: not a server a caller names, not a private address.
    fhir_servers: tuple[str, ...] = ()
    issuer_fhir_servers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    clock: Callable[[], datetime] = _utc_now
    # How a JWK Set is fetched from an https URL; None: a plain GET (tests pass their own).
    jwks_fetch: Callable[[str], bytes] | None = None


    def may_read(self, server: str, issuer: str | None) -> bool:
        """Whether the service may read from this FHIR server for this call."""
        allowed = self.issuer_fhir_servers.get(issuer or "", ()) if self.auth else self.fhir_servers
        return any(_serves(entry, server) for entry in allowed)


def _serves(entry: str, server: str) -> bool:
    """`server` is `entry` (a base URL) or below it; an entry without a port or path names
    every port of its host."""
    want, got = urlsplit(entry), urlsplit(server)
    if want.scheme != got.scheme or (want.hostname or "") != (got.hostname or ""):
        return False
    if want.port is not None and want.port != got.port:
        return False
    base = want.path.rstrip("/")
    return got.path == base or got.path.startswith(base + "/") or not base


def _servers(name: str, values: Any) -> tuple[str, ...]:
    if isinstance(values, str):
        values = [v.strip() for v in values.split(",") if v.strip()]
    if not isinstance(values, list):
        raise ConfigError(f"{name} must list FHIR server base URLs")
    for value in values:
        parts = urlsplit(value) if isinstance(value, str) else None
        if parts is None or parts.scheme not in ("https", "http") or not parts.hostname:
            raise ConfigError(f"{name}: {value!r} is not an http(s) base URL")
    return tuple(value.rstrip("/") for value in values)


def _bool_env(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("on", "true", "1", "yes"):
        return True
    if value in ("", "off", "false", "0", "no"):
        return False
    raise ConfigError(f"{name} must be on or off, got {raw!r}")


def _issuers(raw: str) -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    """{iss: jwks_url} or {iss: {"jwks": url, "fhir_servers": [base URLs]}}: the key set of
    each trusted issuer, and the FHIR servers its calls may name."""
    shape = "CDS_HOOKS_ISSUERS must be a JSON object {iss: jwks_url or {jwks, fhir_servers}}"
    if not raw.strip():
        return {}, {}
    try:
        issuers = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ConfigError(shape) from error
    if not isinstance(issuers, dict):
        raise ConfigError(shape)
    keys: dict[str, str] = {}
    servers: dict[str, tuple[str, ...]] = {}
    for issuer, entry in issuers.items():
        jwks = entry.get("jwks") if isinstance(entry, dict) else entry
        if not isinstance(jwks, str) or urlsplit(jwks).scheme not in ("https", "file"):
            raise ConfigError(f"CDS_HOOKS_ISSUERS: the JWKS of {issuer!r} must be an https: "
                              "or file: URL")
        keys[issuer] = jwks
        if isinstance(entry, dict):
            servers[issuer] = _servers(f"CDS_HOOKS_ISSUERS {issuer!r} fhir_servers",
                                       entry.get("fhir_servers", []))
    return keys, servers


def _public_url(raw: str) -> str | None:
    url = raw.strip().rstrip("/")
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.query:
        raise ConfigError(f"CDS_HOOKS_PUBLIC_URL must be the service's base URL, got {raw!r}")
    return url


def _positive_number(name: str, raw: str, default: float) -> float:
    if not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError as error:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from error
    if not value > 0:
        raise ConfigError(f"{name} must be positive, got {raw!r}")
    return value


def _g_code(raw: str) -> str:
    code = raw.strip()
    if not code:
        return HookSettings.pama_qcdsm
    if not re.fullmatch(r"G\d{4}", code):
        raise ConfigError(f"CDS_HOOKS_PAMA_QCDSM must be a CMS G-code such as G1011, got {raw!r}")
    return code


def _replay_store(raw: str) -> str:
    url = raw.strip()
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix") or not (parts.hostname or parts.path):
        # The URL may carry a password: it is never echoed.
        raise ConfigError("CDS_HOOKS_REPLAY_STORE must be a redis://, rediss:// or unix:// URL "
                          f"(got one with scheme {parts.scheme!r})")
    if parts.query:
        # redis-py lets URL options override the short timeouts the service sets.
        raise ConfigError("CDS_HOOKS_REPLAY_STORE takes no options after '?' (the service "
                          "sets its own timeouts)")
    from .security import redis_pool  # the parse redis-py will do, made here at start-up

    try:
        redis_pool(url).disconnect()
    except ValueError:
        raise ConfigError("CDS_HOOKS_REPLAY_STORE is not a URL redis-py can use (check its "
                          "port and database number)") from None
    return url


def load_settings(environ: Mapping[str, str] | None = None) -> HookSettings:
    """Read and check the CDS_HOOKS_* variables; refuse a configuration that cannot work."""
    env = os.environ if environ is None else environ
    auth = _bool_env("CDS_HOOKS_AUTH", env.get("CDS_HOOKS_AUTH", "off"))
    issuers, issuer_servers = _issuers(env.get("CDS_HOOKS_ISSUERS", ""))
    public_url = _public_url(env.get("CDS_HOOKS_PUBLIC_URL", ""))
    if auth and not (issuers and public_url):
        # Fail closed, not down: the REST API keeps serving, every CDS Hooks call gets 401.
        log.warning("CDS_HOOKS_AUTH is on without CDS_HOOKS_ISSUERS and CDS_HOOKS_PUBLIC_URL: "
                    "every CDS Hooks call will be refused")
    default_db = str(Path(tempfile.gettempdir()) / "cds-hooks-jti.sqlite3") if auth else ":memory:"
    return HookSettings(
        auth=auth,
        issuers=issuers,
        public_url=public_url,
        replay_db=env.get("CDS_HOOKS_REPLAY_DB", "").strip() or default_db,
        replay_store=_replay_store(env.get("CDS_HOOKS_REPLAY_STORE", "")),
        max_body_bytes=int(_positive_number("CDS_HOOKS_MAX_BODY_BYTES",
                                            env.get("CDS_HOOKS_MAX_BODY_BYTES", ""), 1024 * 1024)),
        fhir_timeout_seconds=_positive_number("CDS_HOOKS_FHIR_TIMEOUT",
                                              env.get("CDS_HOOKS_FHIR_TIMEOUT", ""), 5.0),
        fhir_budget_seconds=_positive_number("CDS_HOOKS_FHIR_BUDGET",
                                             env.get("CDS_HOOKS_FHIR_BUDGET", ""), 10.0),
        pama_qcdsm=_g_code(env.get("CDS_HOOKS_PAMA_QCDSM", "")),
        fhir_servers=_servers("CDS_HOOKS_FHIR_SERVERS", env.get("CDS_HOOKS_FHIR_SERVERS", "")),
        issuer_fhir_servers=issuer_servers,
    )
