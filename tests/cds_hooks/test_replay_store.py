"""Replay protection shared by replicas: token ids kept in a real Redis (CDS_HOOKS_REPLAY_STORE).

Each "replica" here is the app with its own settings object, so its own verifier, Redis
connection pool and SQLite file: only the Redis behind them is shared, as between pods.
"""

from __future__ import annotations

import hashlib
import threading
import time

import pytest
import redis

from service.cds_hooks import HookSettings
from service.cds_hooks.security import RedisReplayGuard
from service.cds_hooks.settings import CLOCK_SKEW_SECONDS, load_settings
from service.config import ConfigError
from tests.cds_hooks.conftest import ISSUER, PUBLIC_URL, fixed_clock
from tests.cds_hooks.test_security import call, claims, es384, failures, refused


def _replica(app, monkeypatch, keys, tmp_path, name: str, store: str):
    settings = HookSettings(auth=True, issuers={ISSUER: keys.url}, public_url=PUBLIC_URL,
                            replay_db=str(tmp_path / f"{name}.sqlite3"), replay_store=store,
                            clock=fixed_clock)

    def use() -> None:
        monkeypatch.setitem(app.extensions, "cds_hooks", settings)

    return use


def test_a_token_used_on_one_replica_is_refused_on_another(app, monkeypatch, keys, tmp_path,
                                                           redis_url):
    replica_a = _replica(app, monkeypatch, keys, tmp_path, "a", redis_url)
    replica_b = _replica(app, monkeypatch, keys, tmp_path, "b", redis_url)
    client = app.test_client()
    token = es384(keys, claims())
    replica_a()
    assert call(client, token).status_code == 200
    replica_b()
    before = failures("replayed")
    assert refused(call(client, token))
    assert failures("replayed") == before + 1
    assert call(client, es384(keys, claims())).status_code == 200  # a fresh token passes


def test_without_a_shared_store_each_replica_remembers_only_its_own(app, monkeypatch, keys,
                                                                    tmp_path):
    """Why the shared store exists: the embedded default is per pod."""
    replica_a = _replica(app, monkeypatch, keys, tmp_path, "a", "")
    replica_b = _replica(app, monkeypatch, keys, tmp_path, "b", "")
    client = app.test_client()
    token = es384(keys, claims())
    replica_a()
    assert call(client, token).status_code == 200
    replica_b()
    assert call(client, token).status_code == 200


def test_redis_forgets_a_token_id_once_the_token_could_not_be_used(redis_url):
    guard = RedisReplayGuard(redis_url)
    expires = int(time.time()) + 300
    assert guard.first_use("iss ttl-1", expires) is True
    key = RedisReplayGuard.KEY_PREFIX + hashlib.sha256(b"iss ttl-1").hexdigest()
    ttl = redis.Redis.from_url(redis_url).ttl(key)
    assert 300 + CLOCK_SKEW_SECONDS - 3 <= ttl <= 300 + CLOCK_SKEW_SECONDS


def test_concurrent_uses_of_one_token_on_many_replicas_accept_it_once(redis_url):
    guards = [RedisReplayGuard(redis_url) for _ in range(8)]
    expires = int(time.time()) + 300
    results: list[bool] = []
    barrier = threading.Barrier(len(guards))

    def use(guard: RedisReplayGuard) -> None:
        barrier.wait()
        results.append(guard.first_use("iss race-1", expires))

    threads = [threading.Thread(target=use, args=(guard,)) for guard in guards]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]


def test_an_unreachable_store_fails_closed_quickly_with_a_503(app, monkeypatch, keys, tmp_path):
    # A port nothing listens on: no token can be checked for reuse, so none is accepted.
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{probe.getsockname()[1]}/0"
    _replica(app, monkeypatch, keys, tmp_path, "a", dead)()
    before = failures("replay_store_unavailable")
    started = time.monotonic()
    response = call(app.test_client(), es384(keys, claims()))
    assert time.monotonic() - started < 3
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["type"] == "/problems/replay-store-unavailable"
    assert failures("replay_store_unavailable") == before + 1


def test_the_store_is_chosen_by_setting(redis_url):
    assert load_settings({}).replay_store == ""
    assert load_settings({"CDS_HOOKS_REPLAY_STORE": redis_url}).replay_store == redis_url


def test_a_lost_answer_to_our_own_set_is_not_taken_for_a_replay(redis_url, monkeypatch):
    """redis-py retries a SET whose answer timed out; if the first one had reached Redis, the
    retry finds the key: it is still this call's own, not a replay."""
    guard = RedisReplayGuard(redis_url)
    real_set = guard._client.set

    def reached_redis_but_the_answer_was_lost(*args, **kwargs):
        real_set(*args, **kwargs)
        return real_set(*args, **kwargs)  # the retry: the key exists, None

    monkeypatch.setattr(guard._client, "set", reached_redis_but_the_answer_was_lost)
    expires = int(time.time()) + 300
    assert guard.first_use("iss lost-answer-1", expires) is True
    assert RedisReplayGuard(redis_url).first_use("iss lost-answer-1", expires) is False


@pytest.mark.parametrize("url", ["http://redis:6379", "redis-cluster", "postgres://u:pw@db/x",
                                 "redis://:pw@redis:abc/0",
                                 "redis://:pw@redis:6379/0?socket_timeout=60"])
def test_a_replay_store_that_is_not_redis_is_refused_without_echoing_it(url):
    with pytest.raises(ConfigError) as refusal:
        load_settings({"CDS_HOOKS_REPLAY_STORE": url})
    assert "pw" not in str(refusal.value) and url not in str(refusal.value)
