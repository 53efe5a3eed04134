"""Run a presentation through durable-rules, recording a trace.

This module is the only one that touches durable-rules. Each hazard measured in
../shared/durable-rules-notes.md has its workaround here, named where it is applied:

- the stock Host's timer threads steal activations and crash under load: the stock Host is not
  used at all; `_NativeHost` drives the native engine directly and starts no thread;
- facts outlive a session unless deleted, and >1,024 live sessions break a ruleset for good:
  each engine keeps one session, and every fact asserted into it is retracted as soon as the
  rules it made ready have run, so no fact outlives its run; a run that fails deletes the
  session (its facts with it) and the next run starts a new one. The lock keeps one run at a
  time per engine (the engine holds the GIL anyway, so threads gain nothing by overlapping);
- deleting a session where no action ran segfaults: a sentinel fact is asserted then;
- exceptions in actions are swallowed into the session state by the stock Host: here they
  propagate from the action to `run`, which re-raises them as EngineError;
- a fact no rule accepts raises MessageNotHandledException in the stock Host (and a batch
  with one such fact runs no action): `_NativeHost` reads the native result code instead,
  and a fact no rule accepts is simply not kept;
- facts without ids collide by content: every fact gets a unique id;
- found here (not in the notes): the engine matches a fact against its alpha network with a
  fixed 64-entry stack (events.c, MAX_STACK_SIZE) and fails with error 303 when too many
  rule branches match one fact at once. Rules are therefore split into gates whose match
  stack is bounded (MAX_MATCH_STACK, with the bound measured exact against the native
  engine), and the presentation is asserted once per gate, each copy seen by one gate only.

Rules run stage by stage and gate by gate. Earlier conclusions reach later rules on the
presentation copy itself (`concluded.*` keys, see conditions.py), not as facts to join, so
every rule is one test of one fact: the engine keeps one beta node per rule, never joins or
negates across facts, and a `lacks:` (negation) always sees every conclusion it depends on,
because a copy is built only after every rule of earlier gates has finished. A session's
native state is a fixed ~8 KiB per beta node; with joins, creating and deleting one per run
was a quarter of the engine's time (benchmarks/README.md).
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
import orjson

from .actions import FACT_ATTRIBUTES, Conclusion
from .conditions import FactPattern, concluded_keys
from .loader import Rule, RuleCatalog
from .presentation import lookup

RULESET = "assessment"
_SENTINEL = "engine$sentinel"
# events.c matches a fact depth first with a fixed stack of 64 alpha nodes (MAX_STACK_SIZE):
# a node that matches pushes every matching child, and a popped node is finished before its
# siblings. Below a gate's node the stack therefore holds, at most, every rule's first-level
# nodes (one, or one per alternative of a leading `$or`) plus the pending alternatives of the
# `$or`s inside the one rule being matched (`_match_stack`). That bound was measured exact
# (tests/unit/test_engine.py drives the native engine to one past it); gates keep it at 48,
# leaving a margin of 16.
MAX_MATCH_STACK = 48



def _to_json(value: Any) -> str:
    """Encode a fact or a value of one (validated: finite numbers, strings, lists, bools)."""
    return orjson.dumps(value).decode()


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
class _Run:
    """What one assessment has found so far; it lives only for the duration of `run`."""

    presentation: Mapping[str, Any]
    number: int
    copy_id: str = ""  # the presentation copy being matched: every action must be on it
    firings: list[Firing] = field(default_factory=list)
    # A rule is one term on one gate's copy, asserted once per run; the engine activates it
    # once per matching `$or` alternative, so it fires on the first activation only.
    fired: set[str] = field(default_factory=set)
    # Each distinct conclusion (its content), and for each concluded key the first conclusion
    # that set it, with its position (the trace shows it as what a `has:` matched).
    concluded: set[tuple[tuple[str, Any], ...]] = field(default_factory=set)
    concluded_keys: dict[str, tuple[int, Mapping[str, Any]]] = field(default_factory=dict)
    error: BaseException | None = None


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
    # not kept and made nothing ready (legitimate for a gate copy none of whose rules applies).
    # For "deferred", durable's Host runs actions for state 0.
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

    def assert_fact(self, ruleset: str, fact: str) -> bool:
        """Assert a fact (JSON text) and run every action it makes ready; tell whether it was
        kept."""
        handle = self._handles[ruleset]
        result, state = native.assert_fact(handle, fact)
        if result == self._OBSERVED:
            raise EngineError("a fact with the same id was asserted twice")
        if result == self._NOT_HANDLED:
            return False
        self._run_actions(handle, 0 if result == self._DEFERRED else state)
        return True

    def retract_fact(self, ruleset: str, fact_id: str, sid: str) -> None:
        """Take a fact out of the session; it must leave no rule ready to run."""
        handle = self._handles[ruleset]
        _, state = native.retract_fact(handle, _to_json({"id": fact_id, "sid": sid}))
        if native.start_action_for_state(handle, state) is not None:
            native.abandon_action(handle, state)
            raise EngineError(f"retracting fact {fact_id!r} made a rule ready to run")

    def facts(self, ruleset: str, sid: str) -> list[dict[str, Any]]:
        """Return the facts a session holds (for checks: after a run there are none)."""
        return json.loads(native.get_facts(self._handles[ruleset], sid))

    def delete_state(self, ruleset: str, sid: str) -> None:
        native.delete_state(self._handles[ruleset], sid)

    def _run_actions(self, handle: int, state: int) -> None:
        started = native.start_action_for_state(handle, state)
        if started is None:  # nothing is ready
            return
        messages: str | None = started[1]
        while messages is not None:
            ((name, joined),) = orjson.loads(messages).items()
            try:
                self._actions[name](joined)
            except BaseException:
                native.abandon_action(handle, state)
                raise
            messages = native.complete_and_start_action(handle, state)


def _encode_fields(presentation: Mapping[str, Any]) -> dict[str, str]:
    """Encode each field of a nested presentation once, as `"section.name":value`.

    The engine flattens nested objects into dotted names before matching, so a flat copy with
    dotted names is the same fact to it; each gate's copy is then a join of these members.
    """
    return {
        f"{section}.{name}": f'"{section}.{name}":{_to_json(value)}'
        for section, values in presentation.items() if isinstance(values, Mapping)
        for name, value in values.items()
    }


def _pending_alternatives(test: Mapping[str, Any]) -> int:
    """Alternatives of the `$or`s in a test that can wait on the stack at once (an upper
    bound: every `$or` met on the way keeps its other alternatives pending)."""
    ((key, value),) = test.items()
    if key == "$and":
        return sum(_pending_alternatives(item) for item in value)
    if key == "$or":
        return len(value) - 1 + sum(_pending_alternatives(item) for item in value)
    return 0


def _match_stack(terms: list[dict[str, Any]]) -> tuple[int, int]:
    """What one rule puts on the engine's match stack below its gate's node.

    Returns (first, inner): the nodes it pushes when the gate node matches (its first test,
    or each alternative of a leading `$or`), and the most alternatives that can be pending
    while the rule itself is matched. `terms` are the rule's engine terms: one `$and` whose
    first two tests are the fact type and the gate, shared by every rule of the gate.
    """
    ((test,),) = (term.values() for term in terms)
    tests = test["$and"][2:]
    if not tests:
        return 1, 0
    head = tests[0]
    while "$and" in head:  # a nested `$and` continues the same chain
        head = head["$and"][0]
    first = len(head["$or"]) if "$or" in head else 1
    return first, sum(_pending_alternatives(item) for item in tests) - (first - 1)


def _assign_gates(rules: tuple[Rule, ...]) -> dict[str, list[Rule]]:
    """Split each stage's rules, in catalog order, into gates whose match stack stays within
    MAX_MATCH_STACK: the sum of their first-level nodes plus the most any one keeps pending."""
    gates: dict[str, list[Rule]] = {}
    needs: dict[str, tuple[int, int]] = {}
    for rule in rules:
        first, inner = _match_stack(rule.condition.engine_terms("gate"))
        if first + inner > MAX_MATCH_STACK:
            raise EngineError(f"rule {rule.id} needs {first + inner} places on the engine's "
                              f"match stack, more than {MAX_MATCH_STACK}; split the rule")
        gate = next((g for g in reversed(gates) if g.startswith(rule.stage + "/")), None)
        if gate is not None:
            total, deepest = needs[gate]
            if total + first + max(deepest, inner) > MAX_MATCH_STACK:
                gate = None
        if gate is None:
            gate = f"{rule.stage}/{sum(g.startswith(rule.stage + '/') for g in gates) + 1}"
            gates[gate], needs[gate] = [], (0, 0)
        gates[gate].append(rule)
        total, deepest = needs[gate]
        needs[gate] = (total + first, max(deepest, inner))
    return gates


def gate_match_stack(rules: list[Rule]) -> int:
    """The most places a gate of these rules can take on the engine's match stack."""
    needs = [_match_stack(rule.condition.engine_terms("gate")) for rule in rules]
    return sum(first for first, _ in needs) + max(inner for _, inner in needs)


class RulesEngine:
    """Own one durable-rules host compiled from a catalog, and run assessments on it."""

    def __init__(self, catalog: RuleCatalog) -> None:
        self._lock = threading.Lock()
        self._gates = _assign_gates(catalog.rules)
        # Each gate's copy of the presentation carries only the fields and concluded keys its
        # rules test: a field left out reads as unknown, exactly as it does to those rules
        # anyway, and the engine parses a few fields per copy instead of every one.
        self._gate_fields = {
            gate: list(dict.fromkeys(p for rule in rules for p in rule.condition.fields))
            for gate, rules in self._gates.items()
        }
        self._gate_concluded = {
            gate: [(key, f"{_to_json(key)}:true") for key in dict.fromkeys(
                k for rule in rules for k in rule.condition.concluded_fields)]
            for gate, rules in self._gates.items()
        }
        self._gate_type = {gate: f'"t":"presentation","gate":{_to_json(gate)}}}'
                           for gate in self._gates}
        # Worked out once per rule, as rules are constant: the conclusion facts it asserts
        # with their content and the concluded keys they set; the keys of its `has:` patterns.
        self._asserts = {
            rule.id: [(c.fact, tuple(sorted(c.fact.items())), concluded_keys(c.fact))
                      for c in rule.then if c.fact is not None]
            for rule in catalog.rules
        }
        self._has_keys = {
            rule.id: [(pattern, pattern.concluded_keys()) for pattern in rule.condition.has]
            for rule in catalog.rules
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
        self._sid: str | None = None  # the live native session, if any
        self._actions_in_session = 0
        self._runs = 0
        self._current: _Run | None = None

    def definition(self, rule_id: str) -> dict[str, Any]:
        """Return the durable-rules definition the engine runs for a rule (for reviewers)."""
        return copy.deepcopy(self._definitions[rule_id])

    def run(self, presentation: Mapping[str, Any]) -> list[Firing]:
        """Run every stage over a validated presentation and return the firings in order."""
        with self._lock:
            self._runs += 1
            run = self._current = _Run(presentation=presentation, number=self._runs)
            try:
                if self._sid is None:
                    self._sid, self._actions_in_session = uuid.uuid4().hex, 0
                fields = _encode_fields(presentation)
                for gate in self._gates:
                    # A copy no rule of its gate accepts (none of them could apply) is not kept.
                    if self._host.assert_fact(RULESET, self._gate_copy(run, gate, fields)):
                        self._host.retract_fact(RULESET, run.copy_id, self._sid)
            except BaseException:
                # An action failed: no later rule ran (the failure stopped the engine's loop).
                # The session may still hold this run's facts: it goes, and them with it.
                self._discard_session()
                if run.error is not None:
                    raise EngineError(f"a rule action failed: {run.error!r}") from run.error
                raise
            finally:
                self._current = None
        return run.firings

    def _gate_copy(self, run: _Run, gate: str, fields: Mapping[str, str]) -> str:
        """The JSON of a gate's copy: the fields and concluded keys its rules test, if set."""
        members = [fields[path] for path in self._gate_fields[gate] if path in fields]
        members += [member for key, member in self._gate_concluded[gate]
                    if key in run.concluded_keys]
        run.copy_id = f"p{run.number}.{gate}"
        members.append(f'"id":{_to_json(run.copy_id)},"sid":"{self._sid}",{self._gate_type[gate]}')
        return "{" + ",".join(members)

    def _discard_session(self) -> None:
        sid, self._sid = self._sid, None
        if sid is None:
            return
        if self._actions_in_session == 0:
            self._host.assert_fact(
                RULESET, _to_json({"id": "sentinel", "sid": sid, "t": "sentinel"}))
        self._host.delete_state(RULESET, sid)

    def _count_action(self, joined: dict[str, Any]) -> None:
        self._actions_in_session += 1

    def _action_for(self, rule: Rule) -> Callable[[dict[str, Any]], None]:
        def action(joined: dict[str, Any]) -> None:
            # `joined`: the fact the activation matched, under its alias `p`.
            self._actions_in_session += 1
            run = self._current
            if run is None or joined["p"]["id"] != run.copy_id:
                raise EngineError(f"rule {rule.id} matched a fact of no current run")
            if rule.id in run.fired:
                return
            run.fired.add(rule.id)
            try:
                self._fire(rule, run)
            except BaseException as error:
                run.error = run.error or error
                raise

        return action

    def _fire(self, rule: Rule, run: _Run) -> None:
        matched: dict[str, Any] = {
            path: lookup(run.presentation, path) for path in rule.condition.fields
        }
        if rule.condition.has:
            matched["has"] = [_first_match(run, pattern, keys)
                              for pattern, keys in self._has_keys[rule.id]]
        if rule.condition.lacks:
            matched["lacks"] = [pattern.describe() for pattern in rule.condition.lacks]
        run.firings.append(
            Firing(seq=len(run.firings) + 1, rule=rule, matched=matched, conclusions=rule.then)
        )
        for fact, content, keys in self._asserts[rule.id]:
            if content in run.concluded:
                continue
            run.concluded.add(content)
            order = len(run.concluded)
            for key in keys:
                run.concluded_keys.setdefault(key, (order, fact))


def _first_match(run: _Run, pattern: FactPattern, keys: list[str]) -> dict[str, Any]:
    """The earliest conclusion that satisfied a `has:` pattern, as the trace shows it."""
    found = [run.concluded_keys[key] for key in keys if key in run.concluded_keys]
    if not found:
        raise EngineError(f"the engine matched {pattern.describe()} but no conclusion does")
    _, fact = min(found, key=lambda entry: entry[0])
    return {pattern.kind: {a: fact.get(a) for a in FACT_ATTRIBUTES[pattern.kind]}}
