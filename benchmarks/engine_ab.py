"""Compare service/engine.py with other versions of it, interleaved in one process.

    git show 174c3ec:service/engine.py > /tmp/engine_before.py
    .venv/bin/python benchmarks/engine_ab.py /tmp/engine_before.py [more.py ...] [--rounds 15]

Every version is loaded as a module of the `service` package and compiles the same catalog.
Each round runs every vignette through every version, one vignette at a time and rotating
which version goes first, so that a shared machine's changing load falls on all of them
alike. Prints each version's CPU time per RulesEngine.run (median and minimum over the
rounds, and the ratio to the working copy), a fit of that time to "fixed + per firing", and
whether every version produced the same firings as the working copy.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

from _common import ROOT, machine, vignette_bodies

import service.engine
from service.loader import load_rulesets
from service.presentation import derive
from service.schemas import load_presentation


def _load(path: Path, index: int) -> object:
    name = f"service._engine_variant_{index}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "service"
    sys.modules[name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


def _trace(firings: list) -> list:
    return [(f.seq, f.rule.id, f.matched) for f in firings]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("versions", nargs="+", type=Path, help="other engine.py files")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    catalog = load_rulesets(ROOT / "rulesets")
    views = [derive(load_presentation(body)) for body in vignette_bodies()]
    engines = {"working copy": service.engine.RulesEngine(catalog)}
    for index, path in enumerate(args.versions):
        engines[path.name] = _load(path, index).RulesEngine(catalog)
    names = list(engines)
    expected = [_trace(engines["working copy"].run(view)) for view in views]
    same = {name: all(_trace(engine.run(view)) == want
                      for view, want in zip(views, expected, strict=True))
            for name, engine in engines.items()}

    per_view = {name: [[] for _ in views] for name in names}
    rounds = {name: [] for name in names}
    for _ in range(args.rounds):
        totals = dict.fromkeys(names, 0.0)
        for i, view in enumerate(views):
            for name in names[i % len(names):] + names[:i % len(names)]:
                start = time.thread_time()
                engines[name].run(view)
                spent = time.thread_time() - start
                totals[name] += spent
                per_view[name][i].append(spent)
        for name in names:
            rounds[name].append(totals[name] / len(views) * 1e6)

    firings = [len(trace) for trace in expected]
    mean_firings = statistics.mean(firings)
    base_median = statistics.median(rounds["working copy"])
    base_min = min(rounds["working copy"])
    print(f"{len(views)} vignettes, {args.rounds} rounds; {machine()}")
    print(f"{'':24s} {'median us':>9s} {'ratio':>6s} {'min us':>7s} {'ratio':>6s} "
          f"{'fixed us':>8s} {'per firing':>10s}  same firings")
    for name in names:
        times = [statistics.median(v) * 1e6 for v in per_view[name]]
        mean_time = statistics.mean(times)
        covariance = sum((f - mean_firings) * (t - mean_time)
                         for f, t in zip(firings, times, strict=True))
        slope = covariance / sum((f - mean_firings) ** 2 for f in firings)
        median, minimum = statistics.median(rounds[name]), min(rounds[name])
        print(f"{name:24s} {median:9.0f} {median / base_median:6.2f} {minimum:7.0f} "
              f"{minimum / base_min:6.2f} {mean_time - slope * mean_firings:8.0f} "
              f"{slope:10.1f}  {'yes' if same[name] else 'NO'}")


if __name__ == "__main__":
    main()
