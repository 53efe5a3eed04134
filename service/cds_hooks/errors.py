"""The errors of the CDS Hooks endpoints, as problem+json like every other error."""

from __future__ import annotations

from ..errors import ProblemError


class PreconditionFailed(ProblemError):
    """Required FHIR data was neither prefetched nor retrievable (CDS Hooks: 412)."""

    status, slug, title = 412, "precondition-failed", "Precondition Failed"


class ReplayStoreUnavailable(ProblemError):
    """The shared store of seen token ids cannot be reached: no token can be checked."""

    status, slug, title = 503, "replay-store-unavailable", "Service Unavailable"


class Unauthorized(Exception):
    """The bearer token was refused; answered with a bare 401 and never with a reason.

    `reason` is a fixed word for the logs and metrics, never text from the token.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
