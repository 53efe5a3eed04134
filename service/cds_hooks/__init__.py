"""CDS Hooks 2.0 services fed by FHIR R4: the assessment inside an EHR's workflow.

    discovery     the services, their prefetch templates and the ruleset version
    fetching      the patient's resources from the prefetch or the client's FHIR server
    valuesets     the value sets (valuesets/*.yaml) and which one feeds which field
    mapping       a FHIR R4 chart -> a presentation of the contract, as of the day of the call
    cards         an assessment -> cards (red flags, classification and plan, data needed)
    imaging_codes LOINC / CPT order codes -> the imaging procedures the assessment rates
    ordering      draft imaging orders -> ratings (Argonaut PAMA), suggestions, systemActions
    security      the client's signed JWT: keys, audience, expiry, replay
    schemas       hook request and feedback validation
    metrics       cards and feedback counters
    routes        HTTP only
    settings      CDS_HOOKS_* environment variables

The package depends on the core (`Assessor`, `load_presentation`); the core never on it.
"""

from .routes import blueprint
from .settings import HookSettings, load_settings
from .valuesets import terminology

__all__ = ["HookSettings", "blueprint", "load_settings", "terminology"]
