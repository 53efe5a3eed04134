"""patient-view for a long-followed patient against a plain assessment, on the same app.

    .venv/bin/python benchmarks/cds_long_record.py [--rounds 7] [--calls 20] [--observations 3000]

A FHIR test server (tests/cds_hooks/fhir_server.py) holds a patient followed for 15 years
for chronic low back pain with `--observations` Observations (BMI, pain scores, blood
pressure, heart rate, labs; tests/cds_hooks/long_record.py). Each round, interleaved so both
see the same machine load, times `--calls` of each through the app (Flask's test client, no
network between client and app):

    plain         POST /v1/assessments with the presentation the chart maps to
    prefetched    POST /cds-services/msk-assessment with the prefetch filled as the public
                  CDS Hooks sandbox fills it (each template run against the server: its
                  first page), the next pages read by the service from the server
    fetched       the same call with no prefetch: the service runs every search itself
    searches      the same searches sent straight to the FHIR test server (urllib): the
                  server's share of `fetched` (the test server scans every resource in
                  Python for each search; a real FHIR server's index is faster)

The target (issue 11): patient-view within 3x the time of a plain assessment. Medians over
the rounds, in milliseconds per call, and the ratios.
"""

from __future__ import annotations

import argparse
import statistics
import time
import urllib.request
from datetime import UTC, datetime

from _common import machine

from service import create_app
from service.cds_hooks import HookSettings
from service.cds_hooks.fetching import PREFETCH, FhirClient, gather, search_url
from service.cds_hooks.mapping import read_chart
from tests.cds_hooks.fhir_server import FhirTestServer
from tests.cds_hooks.long_record import long_followed_patient
from tests.cds_hooks.sandbox import patient_view_request

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--observations", type=int, default=3000)
    args = parser.parse_args()
    app = create_app()
    settings = HookSettings(clock=lambda: NOW, fhir_servers=("http://127.0.0.1",))
    app.extensions["cds_hooks"] = settings
    client = app.test_client()
    resources = long_followed_patient("long-bench", observations=args.observations)
    with FhirTestServer(resources) as server:
        discovery = client.get("/cds-services").json["services"][0]
        prefetched = patient_view_request(server.base_url, "long-bench",
                                          discovery_service=discovery)
        fetched = patient_view_request(server.base_url, "long-bench")
        record = gather({"context": {"patient_id": "long-bench"},
                         "prefetch": prefetched["prefetch"], "fhir_server": server.base_url},
                        settings)
        presentation = read_chart(record.chart, NOW.date()).presentation
        urls = [search_url(FhirClient(server.base_url, None, 5), key, "long-bench")
                 for key in PREFETCH]

        def searches() -> None:
            for url in urls:
                with urllib.request.urlopen(url) as response:
                    response.read()

        calls = {
            "plain": lambda: client.post("/v1/assessments", json=presentation),
            "prefetched": lambda: client.post("/cds-services/msk-assessment",
                                              json=prefetched),
            "fetched": lambda: client.post("/cds-services/msk-assessment", json=fetched),
            "searches": searches,
        }
        for name, call in calls.items():  # warm up, and check each answers
            assert name == "searches" or call().status_code == 200
        times: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(args.rounds):
            for name, call in calls.items():
                start = time.perf_counter()
                for _ in range(args.calls):
                    call()
                times[name].append((time.perf_counter() - start) / args.calls * 1000)
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(machine())
    print(f"{args.observations} observations on the server; {args.rounds} rounds of "
          f"{args.calls} calls each; median ms per call")
    for name, value in medians.items():
        ratio = value / medians["plain"]
        print(f"  {name:<11} {value:8.2f} ms   {ratio:5.2f}x plain")


if __name__ == "__main__":
    main()
