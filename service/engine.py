"""Run a presentation through durable-rules, one private session per call, recording a trace.

This module is the only one that touches durable-rules. Each hazard measured in
../shared/durable-rules-notes.md has its workaround here, named where it is applied:

- the stock Host's timer threads steal activations and crash under load: `_ThreadFreeHost`;
- facts outlive a session unless deleted, and >1,024 live sessions break a ruleset for good:
  one unique sid per run, deleted in `finally`, with at most one session alive per engine
  (the lock; the engine holds the GIL anyway, so threads gain nothing by overlapping);
- deleting a session where no action ran segfaults: the intake rule fires on every
  presentation, and a sentinel fact is asserted if nothing has fired;
- exceptions in actions are swallowed into the session state: recorded and re-raised;
- a derived fact no rule consumes raises MessageNotHandledException: caught per conclusion;
- facts without ids collide by content: every fact gets a unique id.

Rules run stage by stage: the stage's gate fact is asserted only after every rule of earlier
stages has finished, so `lacks:` (negation) always sees every conclusion it depends on.
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
_INTAKE = "engine$intake"
_SENTINEL = "engine$sentinel"


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


class RulesEngine:
    """Own one durable-rules host compiled from a catalog, and run assessments on it."""

    def __init__(self, catalog: RuleCatalog) -> None:
        self._stages = catalog.stages
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()
        actions: dict[str, Callable[[Any], None]] = {
            rule.id: self._action_for(rule) for rule in catalog.rules
        }
        actions[_INTAKE] = self._count_action
        actions[_SENTINEL] = self._count_action
        definitions = catalog.engine_definitions()
        # Accepts every presentation, so asserting one is never "not handled" and at least
        # one action runs in every session (deleting a session with none segfaults).
        definitions[_INTAKE] = {"all": [{"p": {"t": "presentation"}}], "pri": 0, "run": _INTAKE}
        definitions[_SENTINEL] = {"all": [{"s": {"t": "sentinel"}}], "run": _SENTINEL}
        self._host = _ThreadFreeHost(actions)
        # register_rulesets mutates the definitions it is given.
        self._host.register_rulesets({RULESET: copy.deepcopy(definitions)})

    def run(self, presentation: Mapping[str, Any]) -> list[Firing]:
        """Run every stage over a validated presentation and return the firings in order."""
        sid = uuid.uuid4().hex
        session = _Session(presentation=presentation)
        with self._lock:
            self._sessions[sid] = session
            try:
                self._host.assert_fact(RULESET, {**presentation, "id": "p", "sid": sid,
                                                 "t": "presentation"})
                for stage in self._stages:
                    if session.error is not None:
                        break
                    self._assert_optional({"id": f"stage-{stage}", "sid": sid, "t": "stage",
                                           "name": stage})
                self._raise_if_failed(sid, session)
            finally:
                self._close(sid, session)
        return session.firings

    def _assert_optional(self, fact: dict[str, Any]) -> None:
        # A stage gate no rule accepts (none of the stage's rules could apply) is fine.
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
            fact = {**conclusion.fact, "id": session.next_fact_id(conclusion.kind),
                    "sid": c.s["sid"]}
            # No later rule may build on this conclusion; it still reaches the response.
            with contextlib.suppress(durable.MessageNotHandledException):
                c.assert_fact(fact)
