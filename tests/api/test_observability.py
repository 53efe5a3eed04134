"""Request ids, JSON logs without patient data, metrics, security headers and CORS."""

from __future__ import annotations

import json
import re

import pytest

from service import create_app
from service.config import ConfigError

MINIMAL = {"patient": {"age": 40}, "pain": {"sites": ["low_back"], "duration_days": 3}}
# Values no log line has any business containing.
DISTINCTIVE = {
    "patient": {"age": 117, "sex": "other", "bmi": 77.7},
    "pain": {"sites": ["low_back", "hip"], "duration_days": 31337, "severity": 9,
             "morning_stiffness_minutes": 1234},
    "care": {"conservative_care_weeks": 419},
}
SECRET_STRINGS = ("SECRET-AGE-77", "zzz_secret_field")


def leaks(log_text: str) -> list[str]:
    """Return what in the log text could only have come from a posted presentation.

    A leaked presentation carries its field names; its numbers are matched only where they
    stand alone, since short digit runs occur by chance in ids, pids and timings.
    """
    found = [name for name in ("duration_days", "morning_stiffness_minutes",
                               "conservative_care_weeks", "severity")
             if name in log_text]
    # Log timestamps ("21:05:01,419") and gunicorn's worker pids ("pid: 419") hold digit runs
    # of their own; they are blanked first, or a run would fail one time in a few hundred.
    scanned = re.sub(r"\d\d:\d\d:\d\d,\d{3}|\bpid: \d+", "", log_text)
    found += [value for value in ("31337", "1234", "419")
              if re.search(rf"(?<![\w.:\[-]){value}(?![\w.\]])", scanned)]
    found += [secret for secret in SECRET_STRINGS if secret in log_text]
    return found


def _metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    pattern = re.compile(rf"^{re.escape(name)}\{{{re.escape(wanted)}\}} (\S+)$", re.M)
    match = pattern.search(text)
    return float(match.group(1)) if match else 0.0


def test_request_id_is_echoed_when_safe(client):
    response = client.get("/healthz", headers={"X-Request-ID": "ehr-4711.abc"})
    assert response.headers["X-Request-ID"] == "ehr-4711.abc"


@pytest.mark.parametrize("incoming", [None, "", "x" * 129, "bad id with spaces",
                                      "evil\\ninjected"])
def test_request_id_is_generated_when_missing_or_unsafe(client, incoming):
    headers = {} if incoming is None else {"X-Request-ID": incoming}
    generated = client.get("/healthz", headers=headers).headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)


def test_logs_are_json_and_carry_no_patient_data(capfd):
    app = create_app()  # logging bound to the captured stderr
    client = app.test_client()
    assert client.post("/v1/assessments", json=DISTINCTIVE).status_code == 200
    bad = {**DISTINCTIVE, "patient": {"age": "SECRET-AGE-77"}, "zzz_secret_field": 1}
    assert client.post("/v1/assessments", json=bad).status_code == 422
    batch = {"presentations": [DISTINCTIVE, bad]}
    assert client.post("/v1/assessments/batch", json=batch).status_code == 200
    err = capfd.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("message") == "request"]
    assert [r["route"] for r in requests] == ["/v1/assessments", "/v1/assessments",
                                              "/v1/assessments/batch"]
    for record in requests:
        assert set(record) >= {"request_id", "method", "route", "status", "duration_ms",
                               "ruleset_version"}
    assert leaks(err) == []


def test_unexpected_error_is_a_500_quoting_the_request_id_and_logging_no_data(capfd,
                                                                               monkeypatch):
    app = create_app()
    assessor = app.extensions["assessor"]

    def failing(presentation):
        raise RuntimeError("duration=" + str(presentation["pain"]["duration_days"]))

    monkeypatch.setattr(assessor, "assess", failing)
    response = app.test_client().post("/v1/assessments", json=DISTINCTIVE,
                                      headers={"X-Request-ID": "trace-me-1"})
    assert response.status_code == 500
    assert response.content_type == "application/problem+json"
    assert "trace-me-1" in response.json["detail"]
    assert "31337" not in response.get_data(as_text=True)
    err = capfd.readouterr().err
    assert "RuntimeError" in err and "trace-me-1" in err
    # The frames show source lines (code, not data); the message with the value is not logged.
    assert "31337" not in err and "duration=31337" not in err


def test_metrics_count_requests_firings_and_validation_failures(client):
    before = client.get("/metrics").get_data(as_text=True)
    client.post("/v1/assessments", json=MINIMAL)
    client.post("/v1/assessments", json={"patient": {"age": "x"}, "zzz_secret": 1})  # no pain
    after = client.get("/metrics")
    assert after.status_code == 200
    assert after.headers["Content-Type"].startswith("text/plain")
    text = after.get_data(as_text=True)

    def grew(name: str, **labels: str) -> float:
        return _metric(text, name, **labels) - _metric(before, name, **labels)

    assert grew("http_requests_total", method="POST", route="/v1/assessments",
                status="200") == 1
    assert grew("http_request_duration_seconds_count", method="POST",
                route="/v1/assessments") == 2
    assert grew("rule_firings_total", rule="core.duration.acute") == 1
    assert grew("validation_failures_total", status="422") == 1
    assert grew("validation_field_errors_total", field="patient.age") == 1
    assert grew("validation_field_errors_total", field="pain") == 1
    assert grew("validation_field_errors_total", field="other") == 1
    assert "zzz_secret" not in text


def test_security_headers_on_every_response(client):
    for response in (client.get("/healthz"), client.post("/v1/assessments", json=MINIMAL),
                     client.get("/nowhere")):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_assessments_are_never_cached(client):
    assert client.post("/v1/assessments", json=MINIMAL).headers["Cache-Control"] == "no-store"
    batch = client.post("/v1/assessments/batch", json={"presentations": [MINIMAL]})
    assert batch.headers["Cache-Control"] == "no-store"


def test_cors_is_off_by_default(client):
    response = client.post("/v1/assessments", json=MINIMAL,
                           headers={"Origin": "https://intake.example.org"})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_cors_allows_only_listed_origins(monkeypatch):
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", "https://intake.example.org")
    client = create_app().test_client()
    allowed = client.post("/v1/assessments", json=MINIMAL,
                          headers={"Origin": "https://intake.example.org"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://intake.example.org"
    assert "X-Request-ID" in allowed.headers["Access-Control-Expose-Headers"]
    preflight = client.options("/v1/assessments", headers={
        "Origin": "https://intake.example.org", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Content-Type"})
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://intake.example.org"
    other = client.post("/v1/assessments", json=MINIMAL,
                        headers={"Origin": "https://evil.example.net"})
    assert "Access-Control-Allow-Origin" not in other.headers


@pytest.mark.parametrize("value", ["*", "intake.example.org", "ftp://x.example"])
def test_cors_origins_must_be_full_origins(monkeypatch, value):
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", value)
    with pytest.raises(ConfigError):
        create_app()


def test_the_leak_check_ignores_log_timestamps_and_worker_pids():
    """Regression: a log line stamped 21:05:01,419 failed the gunicorn log test by chance."""
    clean = ('{"time": "2026-12-01 21:05:01,419", "route": "/v1/assessments"}\n'
             "[2026-12-01 21:04:59 +0000] [1234] [INFO] Booting worker with pid: 1234\n")
    assert leaks(clean) == []
    assert leaks(clean + '"age": 419') == ["419"]


def test_invented_methods_are_other_in_metrics_and_logs(client, capfd):
    for i in range(20):
        client.open("/healthz", method=f"BREW{i}")
    text = client.get("/metrics").get_data(as_text=True)
    assert "BREW" not in text
    assert 'method="other"' in text
    assert "BREW" not in capfd.readouterr().err


def test_the_frames_of_an_unexpected_error_are_logged_bounded(capfd, monkeypatch):
    app = create_app()
    assessor = app.extensions["assessor"]

    # Two functions in turn: traceback folds a frame repeated in a row, not a cycle.
    def ping(presentation, depth=300):
        if not depth:
            raise RuntimeError("deep")
        return pong(presentation, depth - 1)

    def pong(presentation, depth):
        return ping(presentation, depth)

    monkeypatch.setattr(assessor, "assess", ping)
    response = app.test_client().post("/v1/assessments", json=MINIMAL)
    assert response.status_code == 500
    line = next(entry for entry in capfd.readouterr().err.splitlines()
                if "unhandled RuntimeError" in entry)
    assert len(line) < 6000  # 300 frames would be about 40 KB
