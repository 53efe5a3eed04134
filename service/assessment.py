"""Assess one validated presentation: derive, run the rules, assemble the response."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .engine import RulesEngine
from .loader import RuleCatalog
from .presentation import derive
from .report import build_report


class Assessor:
    """Own the rules engine for one catalog and turn presentations into assessments."""

    def __init__(self, catalog: RuleCatalog) -> None:
        self.catalog = catalog
        self.engine = RulesEngine(catalog)

    def assess(self, presentation: Mapping[str, Any]) -> dict[str, Any]:
        """Return the full, cited assessment of a presentation that passed validation."""
        view = derive(dict(presentation))
        firings = self.engine.run(view)
        return build_report(self.catalog, view, firings)
