"""Run a presentation through durable-rules, one private session per call, recording a trace.

This module is the only one that touches durable-rules. Each hazard measured in
../shared/durable-rules-notes.md has its workaround here, named where it is applied:

- the stock Host's timer threads steal activations and crash under load: the stock Host is not
  used at all; `_NativeHost` drives the native engine directly and starts no thread;
- facts outlive a session unless deleted, and >1,024 live sessions break a ruleset for good:
  one unique sid per run, deleted in `finally`, with at most one session alive per engine
  (the lock; the engine holds the GIL anyway, so threads gain nothing by overlapping);
- deleting a session where no action ran segfaults: a sentinel fact is asserted then;
- exceptions in actions are swallowed into the session state by the stock Host: here they
  propagate from the action to `run`, which re-raises them as EngineError;
- a fact no rule accepts raises MessageNotHandledException in the stock Host (and a batch
  with one such fact runs no action): `_NativeHost` reads the native result code instead,
  and a fact no rule accepts is simply not kept;
- facts without ids collide by content: every fact gets a unique id;
- found here (not in the notes): the engine matches a fact against its alpha network with a
  fixed 64-entry stack (events.c, MAX_STACK_SIZE) and fails with error 303 when too many
  rule branches match one fact at once. Rules are therefore split into gates of bounded
  size, and the presentation is asserted once per gate, each copy seen by one gate only.

Rules run stage by stage and gate by gate: a stage's presentation copies are asserted only
after every rule of earlier stages has finished, so `lacks:` (negation) always sees every
conclusion it depends on.
"""

from __future__ import annotations

import copy
import json
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import durable_rules_engine as native  # durable-rules' compiled engine (the package ships it)

from .actions import FACT_ATTRIBUTES, Conclusion
from .loader import Rule, RuleCatalog
from .presentation import lookup

RULESET = "assessment"
_SENTINEL = "engine$sentinel"
# Each leaf test of a rule is one alpha node; a node and a disjunction's join node are each
# pushed at most once per fact, so 24 leaves per gate keep the stack below 2 x 24 + 3 of 64.
MAX_GATE_WEIGHT = 24

# Facts are plain dicts built here (no cycles); one encoder instead of one per json.dumps call.
_to_json = json.JSONEncoder(ensure_ascii=False, check_circular=False).encode


class EngineError(RuntimeError):
    """The engine could not complete an assessment; no partial result may be used."""


@dataclass(frozen=True)
class Firing:
    """One rule firing, in order: the facts it matched and what it concluded."""

    seq: int
    rule: Rule
    matched: dict[str, Any]
    conclusions: tuple[Conclusion, ...]


@dataclass
class _Session:
    presentation: Mapping[str, Any]
    sid: str
    firings: list[Firing] = field(default_factory=list)
    actions_run: int = 0
    error: BaseException | None = None
    fact_count: int = 0
    # (rule id, ids of the facts it matched): one firing per distinct match. The engine
    # activates a rule once per matching `$or` alternative, which would repeat it.
    matches_seen: set[tuple[str, tuple[str, ...]]] = field(default_factory=set)
    # Conclusions already asserted as facts: a second rule drawing the same conclusion is
    # recorded (trace, reasons) but asserts nothing new, so later rules fire once for it.
    facts_seen: set[tuple[tuple[str, Any], ...]] = field(default_factory=set)

    def next_fact_id(self, kind: str) -> str:
        self.fact_count += 1
        return f"{kind}-{self.fact_count}"


class _NativeHost:
    """durable-rules' native engine, driven directly, with actions resolved by name.

    It makes the native calls durable's own Python `Host` makes, in the same order: assert a
    fact, then start, run and complete each action it made ready (the native engine hands them
    out lowest `pri` first) until none is left, all before `assert_fact` returns. The stock
    Host wraps that in a layer that cost more than the rules themselves (benchmarks/README.md):
    per firing a Closure and Content objects, two datetime calls and a JSON round trip of the
    session state (`update_state`, the one native call left out here); per fact no rule
    accepts, an exception carrying a JSON dump of the fact. Leaving out `update_state` changes
    nothing: no action changes the session state, and no rule matches it (every rule tests a
    fact type `t`, which the state has not).
    """

    # Result codes of the native assert (rules.h). For "not handled" the native call leaves
    # the returned state offset unset (pyAssertFact), so it must not be used: the fact was
    # not kept and made nothing ready (legitimate for a gate copy none of whose rules applies,
    # or an unused conclusion). For "deferred", durable's Host runs actions for state 0.
    _NOT_HANDLED = 1
    _OBSERVED = 2  # a fact with this id is already in the session
    _DEFERRED = 3

    def __init__(self, rulesets: Mapping[str, Mapping[str, Any]],
                 actions: Mapping[str, Callable[[dict[str, Any]], None]]) -> None:
        self._actions = actions
        # The native engine takes each rule without its `run` (as durable's Ruleset passes it).
        self._handles = {
            name: native.create_ruleset(name, json.dumps(
                {rule_name: {key: value for key, value in rule.items() if key != "run"}
                 for rule_name, rule in rules.items()}, ensure_ascii=False))
            for name, rules in rulesets.items()
        }

    def assert_fact(self, ruleset: str, fact: Mapping[str, Any], complete: None = None) -> None:
        """Assert a fact and run every action it makes ready, before returning.

        The signature is the stock Host's; only its synchronous form (no `complete`) exists.
        """
        if complete is not None:
            raise TypeError("only synchronous asserts are supported")
        handle = self._handles[ruleset]
        state = self._assert(handle, fact)
        if state is not None:
            self._run_actions(handle, state)

    def assert_from_action(self, ruleset: str, fact: Mapping[str, Any]) -> None:
        """Assert a conclusion from inside an action: the running loop runs what it enables."""
        self._assert(self._handles[ruleset], fact)

    def delete_state(self, ruleset: str, sid: str) -> None:
        native.delete_state(self._handles[ruleset], sid)

    def _assert(self, handle: int, fact: Mapping[str, Any]) -> int | None:
        """Assert one fact; return the state whose ready actions to run, or None."""
        result, state = native.assert_fact(handle, _to_json(fact))
        if result == self._OBSERVED:
            raise EngineError(f"a fact with id {fact.get('id')!r} was asserted twice")
        if result == self._NOT_HANDLED:
            return None
        if result == self._DEFERRED:
            return 0
        return state

    def _run_actions(self, handle: int, state: int) -> None:
        started = native.start_action_for_state(handle, state)
        if started is None:  # nothing is ready
            return
        messages: str | None = started[1]
        while messages is not None:
            ((name, joined),) = json.loads(messages).items()
            try:
                self._actions[name](joined)
            except BaseException:
                native.abandon_action(handle, state)
                raise
            messages = native.complete_and_start_action(handle, state)


def _project(presentation: Mapping[str, Any],
             fields: list[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """Return the nested presentation reduced to the given (section, name) fields."""
    projected: dict[str, dict[str, Any]] = {}
    for section, name in fields:
        values = presentation.get(section)
        if values is not None and name in values:
            projected.setdefault(section, {})[name] = values[name]
    return projected


def _assign_gates(rules: tuple[Rule, ...]) -> dict[str, list[Rule]]:
    """Split each stage's rules, in catalog order, into gates of bounded total weight."""
    gates: dict[str, list[Rule]] = {}
    weights: dict[str, int] = {}
    for rule in rules:
        weight = max(rule.condition.weight, 1)
        if weight > MAX_GATE_WEIGHT:
            raise EngineError(f"rule {rule.id} has {weight} tests, more than the engine can "
                              f"match on one fact ({MAX_GATE_WEIGHT}); split the rule")
        gate = next((g for g in reversed(gates) if g.startswith(rule.stage + "/")), None)
        if gate is None or weights[gate] + weight > MAX_GATE_WEIGHT:
            gate = f"{rule.stage}/{sum(g.startswith(rule.stage + '/') for g in gates) + 1}"
            gates[gate], weights[gate] = [], 0
        gates[gate].append(rule)
        weights[gate] += weight
    return gates


class RulesEngine:
    """Own one durable-rules host compiled from a catalog, and run assessments on it."""

    def __init__(self, catalog: RuleCatalog) -> None:
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()
        self._gates = _assign_gates(catalog.rules)
        # Each gate's copy of the presentation carries only the fields its rules test: a
        # field left out reads as unknown, exactly as it does to those rules anyway, and
        # the engine parses a few fields per copy instead of every one.
        self._gate_fields = {
            gate: [tuple(path.split(".")) for path in
                   dict.fromkeys(p for rule in rules for p in rule.condition.fields)]
            for gate, rules in self._gates.items()
        }
        self._definitions = {
            rule.id: {"all": rule.condition.engine_terms(gate), "pri": priority, "run": rule.id}
            for priority, (gate, rule) in enumerate(
                ((gate, rule) for gate, rules in self._gates.items() for rule in rules), start=1)
        }
        actions: dict[str, Callable[[dict[str, Any]], None]] = {
            rule.id: self._action_for(rule) for rule in catalog.rules
        }
        actions[_SENTINEL] = self._count_action
        definitions = {
            **self._definitions,
            _SENTINEL: {"all": [{"s": {"t": "sentinel"}}], "run": _SENTINEL},
        }
        self._host = _NativeHost({RULESET: definitions}, actions)

    def definition(self, rule_id: str) -> dict[str, Any]:
        """Return the durable-rules definition the engine runs for a rule (for reviewers)."""
        return copy.deepcopy(self._definitions[rule_id])

    def run(self, presentation: Mapping[str, Any]) -> list[Firing]:
        """Run every stage over a validated presentation and return the firings in order."""
        sid = uuid.uuid4().hex
        session = _Session(presentation=presentation, sid=sid)
        with self._lock:
            self._sessions[sid] = session
            try:
                for gate, fields in self._gate_fields.items():
                    copy_ = _project(presentation, fields)
                    # A copy no rule of its gate accepts (none of them could apply) is fine.
                    self._host.assert_fact(RULESET, {**copy_, "id": f"p.{gate}", "sid": sid,
                                                     "t": "presentation", "gate": gate})
            except BaseException:
                # An action failed: no later rule ran (the failure stopped the engine's loop).
                if session.error is not None:
                    raise EngineError(
                        f"a rule action failed: {session.error!r}") from session.error
                raise
            finally:
                self._close(sid, session)
        return session.firings

    def _close(self, sid: str, session: _Session) -> None:
        try:
            if session.actions_run == 0:
                self._host.assert_fact(RULESET, {"id": "sentinel", "sid": sid, "t": "sentinel"})
            self._host.delete_state(RULESET, sid)
        finally:
            del self._sessions[sid]

    def _count_action(self, joined: dict[str, Any]) -> None:
        self._sessions[joined["s"]["sid"]].actions_run += 1

    def _action_for(self, rule: Rule) -> Callable[[dict[str, Any]], None]:
        def action(joined: dict[str, Any]) -> None:
            # `joined`: the facts the activation matched, by alias (p, has0, ...).
            session = self._sessions[joined["p"]["sid"]]
            session.actions_run += 1
            match = (rule.id, tuple(sorted(fact["id"] for fact in joined.values())))
            if match in session.matches_seen:
                return
            session.matches_seen.add(match)
            try:
                self._fire(rule, session, joined)
            except BaseException as error:
                session.error = session.error or error
                raise

        return action

    def _fire(self, rule: Rule, session: _Session, joined: Mapping[str, Any]) -> None:
        matched: dict[str, Any] = {
            path: lookup(session.presentation, path) for path in rule.condition.fields
        }
        if rule.condition.has:
            matched["has"] = [
                {p.kind: {a: joined[f"has{i}"].get(a) for a in FACT_ATTRIBUTES[p.kind]}}
                for i, p in enumerate(rule.condition.has)
            ]
        if rule.condition.lacks:
            matched["lacks"] = [pattern.describe() for pattern in rule.condition.lacks]
        session.firings.append(
            Firing(seq=len(session.firings) + 1, rule=rule, matched=matched,
                   conclusions=rule.then)
        )
        for conclusion in rule.then:
            if conclusion.fact is None:
                continue
            content = tuple(sorted(conclusion.fact.items()))
            if content in session.facts_seen:
                continue
            session.facts_seen.add(content)
            fact = {**conclusion.fact, "id": session.next_fact_id(conclusion.kind),
                    "sid": session.sid}
            # When no later rule may build on this conclusion, the engine does not keep it;
            # it still reaches the response.
            self._host.assert_from_action(RULESET, fact)
