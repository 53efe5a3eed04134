"""Discovery: the services, their prefetch templates and the ruleset version."""

from __future__ import annotations

from service.cds_hooks.discovery import RULESET_EXTENSION
from service.cds_hooks.fetching import PREFETCH
from tests.cds_hooks.shapes import shape_errors


def test_discovery_lists_one_service_per_hook_in_the_cds_hooks_shape(hooks, app):
    response = hooks.get("/cds-services")
    assert response.status_code == 200
    body = response.json
    assert shape_errors("discovery", body) == []
    services = [(s["id"], s["hook"]) for s in body["services"]]
    # Distinct ids: clients that keep one entry per id (the public sandbox) call each hook.
    assert services == [("msk-assessment", "patient-view"),
                        ("lumbar-imaging-appropriateness", "order-select"),
                        ("lumbar-imaging-appropriateness-order-sign", "order-sign")]
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


def test_the_order_select_id_still_answers_order_sign_for_ehrs_registered_before(hooks):
    from tests.cds_hooks.fhir_builder import draft_orders, hook_request
    for service in ("lumbar-imaging-appropriateness", "lumbar-imaging-appropriateness-order-sign"):
        request = hook_request("order-sign", {}, draftOrders=draft_orders())
        assert hooks.post(f"/cds-services/{service}", json=request).status_code == 200
    request = hook_request("order-select", {}, draftOrders=draft_orders(),
                           selections=["ServiceRequest/x"])
    response = hooks.post("/cds-services/lumbar-imaging-appropriateness-order-sign", json=request)
    assert response.status_code == 422
