"""Pages, their scripts and styles, and JSON answers go compressed to a client that accepts it."""

from __future__ import annotations

import gzip
import json

import brotli
import pytest

MINIMAL = {"patient": {"age": 40}, "pain": {"sites": ["low_back"], "duration_days": 3}}
DECODE = {"br": brotli.decompress, "gzip": gzip.decompress}


def _get(client, path, encoding=None):
    return client.get(path, headers={"Accept-Encoding": encoding} if encoding else {})


@pytest.mark.parametrize("encoding", ["br", "gzip"])
@pytest.mark.parametrize("path", ["/intake", "/rules", "/trace", "/static/intake.js",
                                  "/static/style.css", "/v1/rules"])
def test_pages_and_json_are_compressed_when_accepted(client, path, encoding):
    plain = _get(client, path)
    packed = _get(client, path, encoding)
    assert packed.status_code == plain.status_code == 200
    assert packed.headers["Content-Encoding"] == encoding
    assert "Accept-Encoding" in packed.headers["Vary"]
    assert DECODE[encoding](packed.data) == plain.data
    assert len(packed.data) < len(plain.data) / 2
    assert packed.headers["X-Content-Type-Options"] == "nosniff"


def test_an_assessment_is_compressed_and_reads_the_same(client):
    plain = client.post("/v1/assessments", json=MINIMAL)
    packed = client.post("/v1/assessments", json=MINIMAL, headers={"Accept-Encoding": "gzip"})
    assert packed.headers["Content-Encoding"] == "gzip"
    assert packed.headers["Cache-Control"] == "no-store"
    decoded = gzip.decompress(packed.data)
    drop = {"assessment_id"}
    assert ({k: v for k, v in json.loads(decoded).items() if k not in drop}
            == {k: v for k, v in plain.json.items() if k not in drop})


def test_nothing_is_compressed_for_a_client_that_does_not_ask(client):
    for response in (_get(client, "/intake"), client.post("/v1/assessments", json=MINIMAL)):
        assert "Content-Encoding" not in response.headers


def test_a_batch_answer_is_never_compressed(client):
    response = client.post("/v1/assessments/batch", json={"presentations": [MINIMAL] * 20},
                           headers={"Accept-Encoding": "br, gzip"})
    assert response.status_code == 200
    assert "Content-Encoding" not in response.headers


def test_a_range_of_the_contract_is_still_a_range(client):
    response = client.get("/openapi.yaml", headers={"Accept-Encoding": "br, gzip",
                                                    "Range": "bytes=0-99"})
    assert response.status_code == 206
    assert len(response.data) == 100
    assert "Content-Encoding" not in response.headers
