"""Authenticate the CDS Client: a signed bearer JWT, as CDS Hooks "Trusting CDS Clients" asks.

A token is accepted only when: it is signed with RS384 or ES384 (never `none`, never an HMAC
shared secret) by a key of the JWK Set configured for its `iss`, which must be allow-listed;
its `jku`, if any, is that same configured URL (a token never names where its own keys are
fetched from); `aud` is the URL called; `exp`, `iat` and `jti` are present, it has not
expired and lives at most ten minutes; and its `jti` has not been seen before from that
issuer. Tokens are never logged; a refusal is logged and counted by a fixed reason only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import sqlite3
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import jwt
import redis
from prometheus_client import Counter
from redis.backoff import NoBackoff
from redis.retry import Retry

from .errors import ReplayStoreUnavailable, Unauthorized
from .settings import CLOCK_SKEW_SECONDS, MAX_TOKEN_LIFETIME_SECONDS, HookSettings

log = logging.getLogger(__name__)
AUTH_FAILURES = Counter("cds_hooks_auth_failures_total",
                        "CDS Hooks calls refused with 401, by reason", ["reason"])

ALGORITHMS = {"RS384": "RSA", "ES384": "EC"}
_MIN_RSA_BITS = 2048
_JWKS_TTL_SECONDS = 300
_JWKS_MIN_REFRESH_SECONDS = 30
_MAX_JWKS_BYTES = 256 * 1024


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def fetch_https(url: str) -> bytes:
    """GET a JWK Set over https, following no redirect."""
    opener = urllib.request.build_opener(_NoRedirect)
    with opener.open(urllib.request.Request(url, headers={"Accept": "application/json"}),
                     timeout=5) as response:
        return response.read(_MAX_JWKS_BYTES)


def _usable(jwk: Mapping[str, Any]) -> bool:
    if jwk.get("use", "sig") != "sig" or jwk.get("alg", "") not in ("", *ALGORITHMS):
        return False
    if jwk.get("kty") == "EC":
        return jwk.get("crv") == "P-384"
    return jwk.get("kty") == "RSA"


class KeyStore:
    """The JWK Set of each allow-listed issuer, re-read at most every few minutes."""

    def __init__(self, issuers: Mapping[str, str],
                 fetch: Callable[[str], bytes] = fetch_https) -> None:
        self.issuers = dict(issuers)
        self._fetch = fetch
        self._cache: dict[str, tuple[float, dict[str, jwt.PyJWK]]] = {}
        self._lock = threading.Lock()

    def _read(self, url: str) -> dict[str, jwt.PyJWK]:
        parts = urlsplit(url)
        raw = (Path(url2pathname(parts.path)).read_bytes() if parts.scheme == "file"
               else self._fetch(url))
        keys = {}
        for jwk in json.loads(raw).get("keys", []):
            if isinstance(jwk, dict) and jwk.get("kid") and _usable(jwk):
                try:
                    keys[jwk["kid"]] = jwt.PyJWK(jwk)
                except jwt.PyJWTError:
                    continue
        return keys

    def key(self, issuer: str, kid: str) -> jwt.PyJWK | None:
        now = time.monotonic()
        with self._lock:
            read_at, keys = self._cache.get(issuer, (float("-inf"), {}))
            stale = now - read_at > _JWKS_TTL_SECONDS
            if stale or (kid not in keys and now - read_at > _JWKS_MIN_REFRESH_SECONDS):
                try:
                    keys = self._read(self.issuers[issuer])
                except (OSError, ValueError, AttributeError):
                    log.warning("jwks unavailable", extra={"issuer": issuer})
                    keys = {} if stale else keys
                self._cache[issuer] = (now, keys)
            return keys.get(kid)


class ReplayGuard:
    """Remember each token id until it expires, in SQLite shared by the worker processes."""

    def __init__(self, path: str) -> None:
        # A short busy timeout: the wait for the other worker's write lock happens inside C,
        # where a gevent worker answers nothing else meanwhile. Writes take microseconds.
        self._db = sqlite3.connect(path, timeout=1, isolation_level=None,
                                   check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("CREATE TABLE IF NOT EXISTS seen_jti "
                             "(id TEXT PRIMARY KEY, expires INTEGER NOT NULL)")

    def first_use(self, token_id: str, expires: int) -> bool:
        now = int(time.time())
        with self._lock:
            self._db.execute("DELETE FROM seen_jti WHERE expires < ?", (now,))
            try:
                self._db.execute("INSERT INTO seen_jti VALUES (?, ?)",
                                 (token_id, expires + CLOCK_SKEW_SECONDS))
            except sqlite3.IntegrityError:
                return False
        return True


class RedisReplayGuard:
    """Remember each token id until it expires, in Redis shared by every replica.

    One `SET key NX EX` per token: atomic, so two replicas given the same token at once
    cannot both accept it, and Redis forgets the id when the token could no longer be used.
    Unreachable Redis fails closed (503): a token whose reuse cannot be ruled out is not
    accepted, and the timeouts keep a call from waiting on it for long.
    """

    KEY_PREFIX = "msk-cds-hooks:jti:"

    def __init__(self, url: str, timeout_seconds: float = 0.5) -> None:
        self._client = redis.Redis(connection_pool=redis_pool(url, timeout_seconds))

    def first_use(self, token_id: str, expires: int) -> bool:
        # Hashed: a fixed-size key whatever the token carries; seconds to live rather than an
        # absolute time, so the service's and Redis's clocks need not agree.
        key = self.KEY_PREFIX + hashlib.sha256(token_id.encode()).hexdigest()
        seconds = max(1, expires + CLOCK_SKEW_SECONDS - int(time.time()))
        # A nonce of this call's own: if the SET reached Redis but its answer was lost and the
        # retry then found the key, the key is still ours, and the token is not a replay.
        nonce = secrets.token_hex(16).encode()
        try:
            if self._client.set(key, nonce, nx=True, ex=seconds):
                return True
            return self._client.get(key) == nonce
        except redis.RedisError as error:
            log.warning("replay store unavailable: %s", type(error).__name__)
            AUTH_FAILURES.labels("replay_store_unavailable").inc()
            raise ReplayStoreUnavailable("The store of seen CDS Hooks tokens cannot be "
                                         "reached; retry shortly.") from None


def redis_pool(url: str, timeout_seconds: float = 0.5) -> redis.ConnectionPool:
    """A pool for the URL (no connection is made); ValueError for a URL redis-py cannot use.

    One retry, at once (a pooled connection Redis closed while idle is reopened); redis-py's
    default of 10 with backoff would hold a hook call for seconds.
    """
    return redis.ConnectionPool.from_url(url, socket_timeout=timeout_seconds,
                                         socket_connect_timeout=timeout_seconds,
                                         retry=Retry(NoBackoff(), 1),
                                         health_check_interval=30)


def replay_guard(settings: HookSettings) -> ReplayGuard | RedisReplayGuard:
    """The shared Redis store when CDS_HOOKS_REPLAY_STORE names one, else SQLite (one pod)."""
    if settings.replay_store:
        return RedisReplayGuard(settings.replay_store)
    return ReplayGuard(settings.replay_db)


class TokenVerifier:
    def __init__(self, keys: KeyStore, replay: ReplayGuard | RedisReplayGuard) -> None:
        self.keys = keys
        self.replay = replay

    def verify(self, authorization: str | None, audience: str | None) -> dict[str, Any]:
        """Return the claims of a valid token for `audience`, else raise Unauthorized.

        `audience` is None when the service's public URL is not configured: then no token
        can be valid, and every call is refused.
        """
        try:
            if audience is None or not self.keys.issuers:
                raise Unauthorized("not_configured")
            return self._verify(authorization, audience)
        except Unauthorized as refusal:
            AUTH_FAILURES.labels(refusal.reason).inc()
            log.info("cds hooks call refused", extra={"auth_refusal": refusal.reason})
            raise

    def _verify(self, authorization: str | None, audience: str) -> dict[str, Any]:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("no_bearer_token")
        token = token.strip()
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise Unauthorized("malformed") from None
        alg, issuer = header.get("alg"), unverified.get("iss")
        if alg not in ALGORITHMS:
            raise Unauthorized("algorithm")
        if not isinstance(issuer, str) or issuer not in self.keys.issuers:
            raise Unauthorized("issuer")
        if "jku" in header and header["jku"] != self.keys.issuers[issuer]:
            raise Unauthorized("jku")
        if header.get("typ", "JWT") != "JWT" or not isinstance(header.get("kid"), str):
            raise Unauthorized("header")
        key = self.keys.key(issuer, header["kid"])
        if key is None or key.key_type != ALGORITHMS[alg] or (
                alg == "RS384" and key.key.key_size < _MIN_RSA_BITS):
            raise Unauthorized("key")
        try:
            claims = jwt.decode(token, key.key, algorithms=[alg], audience=audience,
                                issuer=issuer, leeway=CLOCK_SKEW_SECONDS,
                                options={"require": ["iss", "aud", "exp", "iat", "jti"]})
        except jwt.ExpiredSignatureError:
            raise Unauthorized("expired") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized("audience") from None
        except jwt.PyJWTError:
            raise Unauthorized("invalid") from None
        # PyJWT accepts a numeric string for exp and iat; a NumericDate is a JSON number.
        if any(not isinstance(claims[name], int | float) or isinstance(claims[name], bool)
               for name in ("exp", "iat")):
            raise Unauthorized("invalid")
        if claims["exp"] > time.time() + MAX_TOKEN_LIFETIME_SECONDS + CLOCK_SKEW_SECONDS:
            raise Unauthorized("lifetime")
        if not isinstance(claims["jti"], str) or not self.replay.first_use(
                f"{issuer} {claims['jti']}", int(claims["exp"])):
            raise Unauthorized("replayed")
        return claims
