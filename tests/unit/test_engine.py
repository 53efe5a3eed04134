"""The durable-rules wrapper: one test per hazard in ../shared/durable-rules-notes.md."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import textwrap
import threading
import tomllib
import uuid
from pathlib import Path

import durable_rules_engine
import pytest

from service.assessment import Assessor
from service.engine import RULESET, EngineError, RulesEngine
from service.loader import load_rulesets
from service.presentation import RULE_FIELDS, derive
from tests.conftest import ROOT

MINIMAL = {"patient": {"age": 40}, "pain": {"sites": ["low_back"], "duration_days": 3}}
SADDLE = {
    "patient": {"age": 40},
    "pain": {"sites": ["low_back"], "duration_days": 3},
    "neuro": {"saddle_anaesthesia": True},
}


@pytest.fixture(scope="module")
def catalog():
    return load_rulesets(ROOT / "rulesets")


@pytest.fixture(scope="module")
def engine(catalog):
    return RulesEngine(catalog)


def _run(engine: RulesEngine, presentation: dict) -> list:
    return engine.run(derive(presentation))


def _fired(firings) -> list[str]:
    return [firing.rule.id for firing in firings]


def test_host_starts_no_timer_threads(catalog):
    """The stock Host's timer threads steal activations; ours must start none."""
    before = threading.active_count()
    RulesEngine(catalog)
    assert threading.active_count() == before


def test_results_are_complete_when_run_returns(engine):
    """Without background dispatch, every chained conclusion exists when run() returns."""
    fired = _fired(_run(engine, SADDLE))
    # red flag -> suspected condition -> urgency -> imaging -> referral, all in one call
    for rule_id in ("lbp.ces.saddle_anaesthesia", "core.urgency.emergency_condition",
                    "lbp.imaging.cauda_equina", "lbp.refer.emergency"):
        assert rule_id in fired


def _live_facts(engine: RulesEngine) -> list:
    return engine._host.facts(RULESET, engine._sid) if engine._sid else []


def test_no_fact_outlives_its_run(engine):
    """Facts stay in a session until deleted: every fact of a run is retracted by its end."""
    assert _run(engine, SADDLE)
    assert engine._sid is not None
    assert _live_facts(engine) == []


def test_more_sessions_than_the_engine_slot_limit(engine):
    """1,025 undeleted sessions raise MemoryError and break the ruleset for good."""
    for _ in range(1100):
        _run(engine, MINIMAL)
    assert "core.duration.acute" in _fired(_run(engine, MINIMAL))


def test_action_exception_is_raised_not_swallowed(catalog, monkeypatch):
    """durable-rules swallows action exceptions into session state and keeps firing."""
    engine = RulesEngine(catalog)
    real_fire = engine._fire

    def failing_fire(rule, run):
        if rule.id == "lbp.ces.saddle_anaesthesia":
            raise ValueError("boom")
        real_fire(rule, run)

    _run(engine, MINIMAL)
    failed_session = engine._sid
    monkeypatch.setattr(engine, "_fire", failing_fire)
    with pytest.raises(EngineError, match="boom"):
        _run(engine, SADDLE)
    # The failed run's session, with whatever facts it still held, is gone.
    assert engine._sid is None
    with pytest.raises(durable_rules_engine.error, match="309"):  # no such session
        engine._host.facts(RULESET, failed_session)
    monkeypatch.setattr(engine, "_fire", real_fire)
    assert "lbp.ces.saddle_anaesthesia" in _fired(_run(engine, SADDLE))


def test_failed_run_stops_before_later_stages(catalog, monkeypatch):
    """No half-done assessment: after a failing action, no later stage is run."""
    engine = RulesEngine(catalog)
    fired: list[str] = []
    real_fire = engine._fire

    def recording_fire(rule, run):
        fired.append(rule.id)
        if rule.id == "lbp.ces.saddle_anaesthesia":
            raise ValueError("boom")
        real_fire(rule, run)

    monkeypatch.setattr(engine, "_fire", recording_fire)
    with pytest.raises(EngineError):
        _run(engine, SADDLE)
    assert "core.urgency.emergency_condition" not in fired


_NO_ACTION_SCRIPT = textwrap.dedent(
    """
    from pathlib import Path
    from service.engine import RulesEngine
    from service.loader import load_rulesets
    from service.presentation import derive

    engine = RulesEngine(load_rulesets(Path("rulesets")))
    real_assert = engine._host.assert_fact

    def fail_on_presentation(ruleset, fact):
        if '"t":"presentation"' in fact:
            raise RuntimeError("refused before any action ran")
        return real_assert(ruleset, fact)

    engine._host.assert_fact = fail_on_presentation
    try:
        engine.run(derive({"patient": {"age": 40},
                           "pain": {"sites": ["low_back"], "duration_days": 3}}))
    except RuntimeError:
        pass
    engine._host.assert_fact = real_assert
    engine.run(derive({"patient": {"age": 40},
                       "pain": {"sites": ["low_back"], "duration_days": 3}}))
    print("survived")
    """
)


def test_deleting_a_session_where_no_action_ran_does_not_crash():
    """delete_state segfaults when no action ever ran; the sentinel fact prevents it.

    Run in a subprocess so that a regression fails this test instead of killing pytest.
    """
    result = subprocess.run([sys.executable, "-c", _NO_ACTION_SCRIPT], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "survived" in result.stdout


def test_unconsumed_conclusions_reach_the_firings(engine):
    """A derived fact no rule consumes raises MessageNotHandledException in the engine."""
    firings = _run(engine, SADDLE)
    referral = [c for f in firings for c in f.conclusions if c.kind == "refer"]
    assert referral and referral[0].params["code"] == "emergency_department"


def test_identical_conclusions_do_not_collide(engine):
    """Facts without unique ids collide by content (MessageObservedException)."""
    presentation = {
        **MINIMAL,
        "start_back": {item: False for item in (
            "leg_pain", "neck_or_shoulder_pain", "walks_short_distances_only",
            "dresses_slowly", "activity_unsafe", "worrying_thoughts", "catastrophising",
            "low_mood")} | {"bothersomeness": "slightly"},
    }
    fired = _fired(_run(engine, presentation))
    # both rules conclude `treat: education_reassurance`
    assert "lbp.treat.advice" in fired and "lbp.treat.startback_low" in fired


def test_a_presentation_stays_far_below_the_fact_size_that_crashes():
    """A fact with about 253 flattened properties segfaults the engine."""
    assert len(RULE_FIELDS) + 3 < 200  # every field, plus id, sid and type


def test_the_largest_presentation_runs(engine):
    everything = {}
    for path, spec in RULE_FIELDS.items():
        section, name = path.split(".")
        if section in ("derived",) or name in ("total", "distress"):
            continue
        value = {"bool": True, "int": int(spec.maximum or 0), "number": spec.minimum,
                 "enum": spec.choices[-1] if spec.choices else None,
                 "enum_list": list(spec.choices)}[spec.kind]
        everything.setdefault(section, {})[name] = value
    everything["pain"]["sites"] = ["low_back"]
    assert _run(engine, everything)


def test_same_input_same_output(catalog):
    assessor = Assessor(catalog)
    first, second = assessor.assess(SADDLE), assessor.assess(SADDLE)
    assert first.pop("assessment_id") != second.pop("assessment_id")
    assert first == second


def test_python_version_is_pinned_below_313():
    """The released durable-rules cannot be imported on Python 3.13."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11,<3.13"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "python:3.11" in dockerfile


def test_engine_memory_stays_flat(engine):
    """Without delete_state memory grows about 1 MB per request."""
    for _ in range(300):
        _run(engine, SADDLE)
    before = _rss_bytes()
    for _ in range(2000):
        _run(engine, SADDLE)
    growth = _rss_bytes() - before
    assert growth < 20 * 1024 * 1024, f"RSS grew {growth / 1e6:.1f} MB over 2,000 runs"


def _rss_bytes() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize()


def test_concurrent_runs_see_only_their_own_facts(catalog):
    engine = RulesEngine(catalog)
    expected = {
        "minimal": _fired(_run(engine, MINIMAL)),
        "saddle": _fired(_run(engine, SADDLE)),
    }
    errors: list[str] = []

    def worker(name: str, presentation: dict) -> None:
        for _ in range(60):
            got = _fired(_run(engine, presentation))
            if got != expected[name]:
                errors.append(f"{name}: {got}")

    threads = [threading.Thread(target=worker, args=(name, p))
               for name, p in (("minimal", MINIMAL), ("saddle", SADDLE)) * 4]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert _live_facts(engine) == []


def test_rule_fires_once_when_several_alternatives_match(engine):
    """The engine activates a rule once per matching `$or` alternative; fire it once."""
    presentation = {
        "patient": {"age": 40},
        "pain": {"sites": ["low_back"], "duration_days": 3, "radiation": "below_knee"},
        "neuro": {"straight_leg_raise": "positive", "sensory_deficit": True},
    }
    assert _fired(_run(engine, presentation)).count("lbp.pattern.radicular") == 1


def test_a_conclusion_drawn_twice_is_built_on_once(engine):
    """Three rules suspect cauda equina; the urgency rule still fires once."""
    presentation = {**SADDLE, "neuro": {"saddle_anaesthesia": True, "urinary_retention": True,
                                        "bladder_or_bowel_incontinence": True}}
    fired = _fired(_run(engine, presentation))
    assert fired.count("core.urgency.emergency_condition") == 1
    assert {"lbp.ces.saddle_anaesthesia", "lbp.ces.urinary_retention",
            "lbp.ces.incontinence"} <= set(fired)


def test_rules_are_split_into_gates_the_engine_can_match(engine):
    """events.c matches a fact with a 64-entry stack (error 303 when exceeded)."""
    from service.engine import MAX_MATCH_STACK, gate_match_stack

    for gate, rules in engine._gates.items():
        assert gate_match_stack(rules) <= MAX_MATCH_STACK < 64, gate


def _native_match(rules: int, terms) -> str:
    """Assert, into a fresh native ruleset of `rules` rules shaped by `terms(i)`, a fact that
    every test of every rule matches; return "ok" or the native error."""
    definitions = {f"r{i}": {"all": [{"m": {"$and": terms(i)}}]} for i in range(rules)}
    handle = durable_rules_engine.create_ruleset(f"stack-{uuid.uuid4().hex}",
                                                 json.dumps(definitions))
    try:
        fact = {"id": "1", "sid": "s", "t": "p", "gate": "g"}
        durable_rules_engine.assert_fact(handle, json.dumps(fact))
        return "ok"
    except Exception as error:  # the native module raises a plain Exception with the code
        return str(error)


SHAPES = {
    # A chain of three tests: one first-level node per rule, nothing pending inside it.
    "chain": lambda i: [{"t": "p"}, {"gate": "g"}, {"$nex": {f"a{i}": 1}},
                        {"$nex": {f"b{i}": 1}}, {"$nex": {f"c{i}": 1}}],
    # A leading `$or` of three: three first-level nodes per rule.
    "leading_or": lambda i: [{"t": "p"}, {"gate": "g"}, {"$or": [
        {"$nex": {f"a{i}": 1}}, {"$nex": {f"b{i}": 1}}, {"$nex": {f"c{i}": 1}}]}],
    # A test, then an `$or` of three: one first-level node, two alternatives pending inside.
    "inner_or": lambda i: [{"t": "p"}, {"gate": "g"}, {"$nex": {f"x{i}": 1}}, {"$or": [
        {"$nex": {f"a{i}": 1}}, {"$nex": {f"b{i}": 1}}, {"$nex": {f"c{i}": 1}}]}],
}


@pytest.mark.parametrize("shape", SHAPES)
def test_the_match_stack_bound_the_gates_use_is_exact(shape):
    """The gates' bound, sum of first-level nodes plus the most pending inside one rule,
    is what the native engine needs: a fact matching everything fits at 64 and fails one
    rule later with error 303 (measured here, so a change of engine would show)."""
    from service.engine import _match_stack

    first, inner = _match_stack([{"p": {"$and": SHAPES[shape](0)}}])
    fits = max(n for n in range(1, 70) if n * first + inner <= 64)
    assert _native_match(fits, SHAPES[shape]) == "ok"
    assert "303" in _native_match(fits + 1, SHAPES[shape])


def test_ready_actions_run_lowest_priority_first(engine):
    """The engine drives durable's native dispatch itself: stage by stage, gate by gate, and
    within a gate lowest `pri` first, so priorities never decrease along a run's firings."""
    from service.schemas import load_presentation
    from tests.cases import load_cases

    cases = load_cases(ROOT.parent / "shared" / "vignettes" / "cases.yaml")
    for presentation in [MINIMAL, SADDLE] + [load_presentation(c["presentation"]) for c in cases]:
        priorities = [engine.definition(f.rule.id)["pri"] for f in _run(engine, presentation)]
        assert priorities == sorted(priorities)


def test_an_action_finishes_before_the_conclusions_it_asserts_are_acted_on(engine, monkeypatch):
    """A conclusion asserted inside an action is matched by the running dispatch loop after the
    action returns; no action ever runs nested inside another."""
    depth = deepest = 0
    real_fire = engine._fire

    def tracking_fire(rule, run):
        nonlocal depth, deepest
        depth += 1
        deepest = max(deepest, depth)
        try:
            real_fire(rule, run)
        finally:
            depth -= 1

    monkeypatch.setattr(engine, "_fire", tracking_fire)
    fired = _fired(_run(engine, SADDLE))
    assert "lbp.refer.emergency" in fired  # the end of a four-link chain of conclusions
    assert deepest == 1
