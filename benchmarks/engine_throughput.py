"""Assessments per second in process, and the share of the rules engine and the report in it.

    .venv/bin/python benchmarks/engine_throughput.py [--rounds 7]

The mix is every vignette of ../shared/vignettes/cases.yaml, tests/vignettes/low_back_cases.yaml
and tests/vignettes/hip_cases.yaml, validated once up front as the API does. Each round makes
one pass over the whole mix for each measurement, in turn, so that every figure of a round saw
the same machine load:

    assess   Assessor.assess(presentation) end to end: derive -> RulesEngine.run -> build_report;
             the time spent in RulesEngine.run and in build_report inside these same calls is
             recorded too, which gives each one's share of assess()
    engine   RulesEngine.run(view) alone, on views derived beforehand
    report   build_report(catalog, view, firings) alone, on firings recorded beforehand
    validate load_presentation(body) (marshmallow; done by the API before assess)
    encode   the app's JSON encoding of the response (what jsonify does after assess)

Each figure is the median over the rounds. CPU time (process_time / thread_time) is given
beside the wall-clock rate: other processes on a shared machine inflate it far less.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from _common import machine, vignette_bodies

import service.assessment
from service import create_app
from service.presentation import derive
from service.report import build_report
from service.schemas import load_presentation


def _timed_pass(work: Callable[[], None]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


class _Inside:
    """Wrap a function to add up the CPU time spent in it."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function, self.seconds = function, 0.0

    def __call__(self, *args: Any) -> Any:
        start = time.thread_time()
        try:
            return self.function(*args)
        finally:
            self.seconds += time.thread_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="passes over the mix (default 7)")
    args = parser.parse_args()

    app = create_app()
    assessor = app.extensions["assessor"]
    catalog, engine = assessor.catalog, assessor.engine
    bodies = vignette_bodies()
    presentations = [load_presentation(body) for body in bodies]
    views = [derive(dict(p)) for p in presentations]
    firings = [engine.run(view) for view in views]
    reports = [assessor.assess(p) for p in presentations]
    run_engine_alone = engine.run
    engine_inside = _Inside(engine.run)
    report_inside = _Inside(service.assessment.build_report)
    inside: dict[str, list[float]] = {"engine": [], "report": []}

    def assess() -> None:
        engine.run = engine_inside  # type: ignore[method-assign]
        service.assessment.build_report = report_inside
        engine_inside.seconds = report_inside.seconds = 0.0
        try:
            for presentation in presentations:
                assessor.assess(presentation)
        finally:
            del engine.run
            service.assessment.build_report = report_inside.function
        inside["engine"].append(engine_inside.seconds)
        inside["report"].append(report_inside.seconds)

    def run_engine() -> None:
        for view in views:
            run_engine_alone(view)

    def report() -> None:
        for view, fired in zip(views, firings, strict=True):
            build_report(catalog, view, fired)

    def validate() -> None:
        for body in bodies:
            load_presentation(body)

    def encode() -> None:
        for response in reports:
            app.json.dumps(response)

    measurements = {"assess": assess, "engine": run_engine, "report": report,
                    "validate": validate, "encode": encode}
    with app.app_context():
        for work in measurements.values():  # warm up
            work()
        inside = {"engine": [], "report": []}
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in measurements}
        for _ in range(args.rounds):
            for name, work in measurements.items():
                samples[name].append(_timed_pass(work))
        sizes = [len(app.json.dumps(response)) for response in reports]

    n = len(presentations)
    wall = {name: statistics.median(s[0] for s in runs) for name, runs in samples.items()}
    cpu = {name: statistics.median(s[1] for s in runs) for name, runs in samples.items()}
    steps = statistics.mean(len(r["trace"]) for r in reports)
    print(f"{n} vignettes, {args.rounds} rounds; {machine()}")
    print(f"mean {steps:.1f} rule firings and {statistics.mean(sizes) / 1024:.1f} KiB of JSON "
          f"per assessment")
    print(f"{'':30s} {'per second':>10s} {'CPU us each':>12s}")
    for name, label in (("assess", "Assessor.assess end to end"),
                        ("engine", "RulesEngine.run alone"),
                        ("report", "build_report alone"),
                        ("validate", "validate (API, before assess)"),
                        ("encode", "encode (API, after assess)")):
        print(f"{label:30s} {n / wall[name]:10.0f} {cpu[name] / n * 1e6:12.0f}")
    total = statistics.median(s[1] for s in samples["assess"])
    shares = {part: statistics.median(inside[part]) / total for part in inside}
    print(f"share of assess() CPU, inside the same calls: engine {shares['engine']:.0%}, "
          f"report {shares['report']:.0%}, derive and glue "
          f"{1 - shares['engine'] - shares['report']:.0%}")


if __name__ == "__main__":
    main()
