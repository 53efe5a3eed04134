"""How large and how costly the answer to a hostile batch is (issue 12, item 2).

    .venv/bin/python benchmarks/error_amplification.py

Two batches of about 8 MB (the batch body limit), through the app's test client in this
process: every presentation with 2,000 invalid `pain.sites` entries, and every presentation
with 2,000 unknown fields. Prints the request and answer sizes, the time, and the peak RSS
of the process (which includes the app itself, about 120 MB). Run each variant in a fresh
process for its own peak: `--only sites` or `--only unknown`.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from typing import Any

from _common import machine

from service import create_app

BATCH_BYTES = 8 * 1024 * 1024


def hostile(kind: str) -> dict[str, Any]:
    pain: dict[str, Any] = {"sites": ["low_back"], "duration_days": 3}
    if kind == "sites":
        pain["sites"] = ["nowhere"] * 2000
    else:
        pain.update({f"x{i}": True for i in range(2000)})
    return {"patient": {"age": 40}, "pain": pain}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("sites", "unknown"))
    args = parser.parse_args()
    client = create_app().test_client()
    print(machine())
    for kind in [args.only] if args.only else ["sites", "unknown"]:
        item = hostile(kind)
        count = min(1000, BATCH_BYTES // len(json.dumps(item)))
        body = json.dumps({"presentations": [item] * count})
        started = time.perf_counter()
        response = client.post("/v1/assessments/batch", data=body,
                               content_type="application/json")
        elapsed = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{kind:<8} request {len(body) / 1e6:.1f} MB ({count} items) -> "
              f"{response.status_code}, answer {len(response.get_data()) / 1e6:.2f} MB in "
              f"{elapsed:.1f} s; peak RSS so far {peak:.0f} MB")


if __name__ == "__main__":
    main()
