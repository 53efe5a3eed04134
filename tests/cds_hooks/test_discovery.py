"""Discovery: the services, their prefetch templates and the ruleset version."""

from __future__ import annotations

from service.cds_hooks.discovery import RULESET_EXTENSION
from service.cds_hooks.fetching import PREFETCH
from tests.cds_hooks.shapes import shape_errors


def test_discovery_lists_the_three_services_in_the_cds_hooks_shape(hooks, app):
    response = hooks.get("/cds-services")
    assert response.status_code == 200
    body = response.json
    assert shape_errors("discovery", body) == []
    services = [(s["id"], s["hook"]) for s in body["services"]]
    assert services == [("msk-assessment", "patient-view"),
                        ("lumbar-imaging-appropriateness", "order-sign"),
                        ("lumbar-imaging-appropriateness", "order-select")]
    catalog = app.extensions["assessor"].catalog
    for service in body["services"]:
        assert service["title"] and service["description"]
        assert service["prefetch"] == PREFETCH
        assert service["extension"][RULESET_EXTENSION] == {"version": catalog.version,
                                                           "digest": catalog.digest}


def test_prefetch_templates_use_only_the_patient_token():
    for template in PREFETCH.values():
        assert "{{context.patientId}}" in template
        assert template.count("{{") == 1
