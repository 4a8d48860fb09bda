"""Who may read the operational endpoints: ``/metrics`` and the details of ``/readyz``.

Both show process-wide figures (traffic per model, deployment names, circuit states), so on a
gateway that requires credentials they need a credential with ``ops:read`` (admin or viewer) unless
the operator opts in to public access. ``/healthz`` and the ready / not-ready status code of
``/readyz`` stay public: load balancers and orchestrators probe them without credentials.
"""

from __future__ import annotations

from collections.abc import Mapping

from bastion.config.settings import Settings

#: Headers that carry a credential (see ``bastion.auth.authenticator``).
CREDENTIAL_HEADERS = ("authorization", "x-api-key")


def _public(choice: bool | None, settings: Settings) -> bool:
    # Unset follows auth: while auth is off every caller is anonymous and everything else is open too.
    return not settings.auth.enabled if choice is None else choice


def metrics_public(settings: Settings) -> bool:
    """Whether ``/metrics`` answers without credentials."""
    return _public(settings.server.public_metrics, settings)


def readyz_details_public(settings: Settings) -> bool:
    """Whether ``/readyz`` shows its per-deployment details without credentials."""
    return _public(settings.server.public_readyz_details, settings)


def presents_credentials(headers: Mapping[str, str]) -> bool:
    """Whether the caller sent a credential: on ``/readyz`` that asks for the details."""
    return any(headers.get(name) for name in CREDENTIAL_HEADERS)
