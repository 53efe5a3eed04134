"""Concurrent requests each get their own right answer: in process, and under gunicorn."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.cases import load_cases
from tests.conftest import SHARED
from tests.gunicorn_server import post_json, running_gunicorn

CASES = load_cases(SHARED / "vignettes" / "cases.yaml")


def _essentials(result: dict[str, Any]) -> dict[str, Any]:
    """Everything but the per-request id."""
    return {key: value for key, value in result.items() if key != "assessment_id"}


@pytest.fixture(scope="module")
def expected(app) -> dict[str, dict[str, Any]]:
    client = app.test_client()
    return {case["id"]: _essentials(client.post("/v1/assessments",
                                                json=case["presentation"]).json)
            for case in CASES}


def test_threads_in_process_get_their_own_answers(app, expected):
    def post(index: int) -> tuple[str, dict[str, Any]]:
        case = CASES[index % len(CASES)]
        response = app.test_client().post("/v1/assessments", json=case["presentation"])
        return case["id"], _essentials(response.json)

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(post, range(400)))
    wrong = [case_id for case_id, result in results if result != expected[case_id]]
    assert wrong == []


@pytest.fixture(scope="module")
def gunicorn_port(tmp_path_factory):
    log_path = tmp_path_factory.mktemp("gunicorn") / "server.log"
    with running_gunicorn(log_path, WEB_CONCURRENCY="2", GUNICORN_THREADS="4") as server:
        yield server.port


def test_gunicorn_workers_and_threads_give_each_request_its_own_answer(gunicorn_port, expected):
    def post(index: int) -> tuple[str, dict[str, Any]]:
        case = CASES[index % len(CASES)]
        return case["id"], _essentials(post_json(
            f"http://127.0.0.1:{gunicorn_port}/v1/assessments", case["presentation"])[1])

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(post, range(600)))
    wrong = [case_id for case_id, result in results if result != expected[case_id]]
    assert wrong == []
