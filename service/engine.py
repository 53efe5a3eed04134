"""Run a presentation through durable-rules, one private session per call, recording a trace.

This module is the only one that touches durable-rules. Each hazard measured in
../shared/durable-rules-notes.md has its workaround here, named where it is applied:

- the stock Host's timer threads steal activations and crash under load: `_ThreadFreeHost`;
- facts outlive a session unless deleted, and >1,024 live sessions break a ruleset for good:
  one unique sid per run, deleted in `finally`, with at most one session alive per engine
  (the lock; the engine holds the GIL anyway, so threads gain nothing by overlapping);
- deleting a session where no action ran segfaults: a sentinel fact is asserted then;
- exceptions in actions are swallowed into the session state: recorded and re-raised;
- a fact no rule accepts raises MessageNotHandledException: suppressed where legitimate;
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

import contextlib
import copy
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from durable import engine as durable

from .actions import FACT_ATTRIBUTES, Conclusion
from .loader import Rule, RuleCatalog
from .presentation import lookup

RULESET = "assessment"
_SENTINEL = "engine$sentinel"
# Each leaf test of a rule is one alpha node; a node and a disjunction's join node are each
# pushed at most once per fact, so 24 leaves per gate keep the stack below 2 x 24 + 3 of 64.
MAX_GATE_WEIGHT = 24


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


class _ThreadFreeHost(durable.Host):
    """A durable-rules host without background timer threads, resolving actions by name."""

    def __init__(self, actions: Mapping[str, Callable[[Any], None]]) -> None:
        self._actions = actions
        super().__init__()

    def _run(self) -> None:
        # The stock host starts timer threads that dispatch activations behind the caller's
        # back (incomplete results, error 307, segfaults). Without them, asserting a fact runs
        # every resulting action before it returns.
        pass

    def get_action(self, action_name: str) -> Callable[[Any], None]:
        return self._actions[action_name]


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
        actions: dict[str, Callable[[Any], None]] = {
            rule.id: self._action_for(rule) for rule in catalog.rules
        }
        actions[_SENTINEL] = self._count_action
        definitions = {
            **self._definitions,
            _SENTINEL: {"all": [{"s": {"t": "sentinel"}}], "run": _SENTINEL},
        }
        self._host = _ThreadFreeHost(actions)
        # register_rulesets mutates the definitions it is given.
        self._host.register_rulesets({RULESET: copy.deepcopy(definitions)})

    def definition(self, rule_id: str) -> dict[str, Any]:
        """Return the durable-rules definition the engine runs for a rule (for reviewers)."""
        return copy.deepcopy(self._definitions[rule_id])

    def run(self, presentation: Mapping[str, Any]) -> list[Firing]:
        """Run every stage over a validated presentation and return the firings in order."""
        sid = uuid.uuid4().hex
        session = _Session(presentation=presentation)
        with self._lock:
            self._sessions[sid] = session
            try:
                for gate, fields in self._gate_fields.items():
                    if session.error is not None:
                        break
                    copy_ = _project(presentation, fields)
                    self._assert_optional({**copy_, "id": f"p.{gate}", "sid": sid,
                                           "t": "presentation", "gate": gate})
                self._raise_if_failed(sid, session)
            finally:
                self._close(sid, session)
        return session.firings

    def _assert_optional(self, fact: dict[str, Any]) -> None:
        # A copy no rule of its gate accepts (none of them could apply) is fine.
        with contextlib.suppress(durable.MessageNotHandledException):
            self._host.assert_fact(RULESET, fact)

    def _raise_if_failed(self, sid: str, session: _Session) -> None:
        if session.error is not None:
            raise EngineError(f"a rule action failed: {session.error!r}") from session.error
        swallowed = self._host.get_state(RULESET, sid).get("exception")
        if swallowed:
            raise EngineError(f"a rule action failed inside the engine: {swallowed}")

    def _close(self, sid: str, session: _Session) -> None:
        try:
            if session.actions_run == 0:
                self._host.assert_fact(RULESET, {"id": "sentinel", "sid": sid, "t": "sentinel"})
            self._host.delete_state(RULESET, sid)
        finally:
            del self._sessions[sid]

    def _count_action(self, c: Any) -> None:
        # One parameter only: durable-rules treats a two-parameter action as asynchronous.
        self._sessions[c.s["sid"]].actions_run += 1

    def _action_for(self, rule: Rule) -> Callable[[Any], None]:
        def action(c: Any) -> None:
            session = self._sessions[c.s["sid"]]
            session.actions_run += 1
            match = (rule.id, tuple(sorted(fact["id"] for fact in c._m.values())))
            if match in session.matches_seen:
                return
            session.matches_seen.add(match)
            try:
                self._fire(rule, session, c)
            except BaseException as error:
                # durable-rules would swallow this into the session state and keep firing.
                session.error = session.error or error
                raise

        return action

    def _fire(self, rule: Rule, session: _Session, c: Any) -> None:
        joined: Mapping[str, Any] = c._m
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
                    "sid": c.s["sid"]}
            # No later rule may build on this conclusion; it still reaches the response.
            with contextlib.suppress(durable.MessageNotHandledException):
                c.assert_fact(fact)
