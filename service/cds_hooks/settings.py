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
    max_body_bytes: int = 1024 * 1024
    fhir_timeout_seconds: float = 5.0
    # All FHIR reads of one hook call together; after it the service answers from what it has.
    fhir_budget_seconds: float = 10.0
    # The Argonaut PAMA guide's pama-rating-qcdsm-consulted: the CMS G-code of the qualified
    # CDS mechanism this deployment is part of. G1011 is CMS's "qualified tool not otherwise
    # specified"; a deployment sets its own.
    pama_qcdsm: str = "G1011"
    clock: Callable[[], datetime] = _utc_now
    # How a JWK Set is fetched from an https URL; None: a plain GET (tests pass their own).
    jwks_fetch: Callable[[str], bytes] | None = None


def _bool_env(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("on", "true", "1", "yes"):
        return True
    if value in ("", "off", "false", "0", "no"):
        return False
    raise ConfigError(f"{name} must be on or off, got {raw!r}")


def _issuers(raw: str) -> dict[str, str]:
    if not raw.strip():
        return {}
    try:
        issuers = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ConfigError("CDS_HOOKS_ISSUERS must be a JSON object {iss: jwks_url}") from error
    if not isinstance(issuers, dict):
        raise ConfigError("CDS_HOOKS_ISSUERS must be a JSON object {iss: jwks_url}")
    for issuer, jwks in issuers.items():
        if not isinstance(jwks, str) or urlsplit(jwks).scheme not in ("https", "file"):
            raise ConfigError(f"CDS_HOOKS_ISSUERS: the JWKS of {issuer!r} must be an https: "
                              "or file: URL")
    return issuers


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


def load_settings(environ: Mapping[str, str] | None = None) -> HookSettings:
    """Read and check the CDS_HOOKS_* variables; refuse a configuration that cannot work."""
    env = os.environ if environ is None else environ
    auth = _bool_env("CDS_HOOKS_AUTH", env.get("CDS_HOOKS_AUTH", "off"))
    issuers = _issuers(env.get("CDS_HOOKS_ISSUERS", ""))
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
        max_body_bytes=int(_positive_number("CDS_HOOKS_MAX_BODY_BYTES",
                                            env.get("CDS_HOOKS_MAX_BODY_BYTES", ""), 1024 * 1024)),
        fhir_timeout_seconds=_positive_number("CDS_HOOKS_FHIR_TIMEOUT",
                                              env.get("CDS_HOOKS_FHIR_TIMEOUT", ""), 5.0),
        fhir_budget_seconds=_positive_number("CDS_HOOKS_FHIR_BUDGET",
                                             env.get("CDS_HOOKS_FHIR_BUDGET", ""), 10.0),
        pama_qcdsm=_g_code(env.get("CDS_HOOKS_PAMA_QCDSM", "")),
    )
