"""What the release page shows of each deployment's post-deploy verification."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Max, Q

from approvals.models import Deployment
from approvals.verification.models import HealthCheck

# The word shown for a deployment's verification, with its badge style.
WORDS = {
    Deployment.Verification.VERIFYING: ("verifying", "warning"),
    Deployment.Verification.PASSED: ("passed", "success"),
    Deployment.Verification.FAILED: ("failed", "danger"),
}


@dataclass
class DeploymentView:
    deployment: Deployment
    # "" when no window was opened; "unverified" for a window that ended without any signal.
    verification: str = ""
    css: str = "secondary"
    window_open: bool = False
    checks: int = 0
    unhealthy: int = 0
    last_checked_at: datetime | None = None
    # "requested" (the hook is called through the outbox), "none" (failed, but no hook given).
    rollback: str = ""


def deployment_views(deployments: list[Deployment], now: datetime) -> list[DeploymentView]:
    """One view per deployment, with one query for every health count, whatever their number
    (none at all when no deployment was verified)."""
    verified = [d.pk for d in deployments if d.verify_until is not None]
    counts = {}
    if verified:
        counts = {
            row["deployment"]: row
            for row in HealthCheck.objects.filter(deployment__in=verified)
            .values("deployment")
            .annotate(
                total=Count("pk"),
                unhealthy=Count("pk", filter=Q(healthy=False)),
                last_at=Max("checked_at"),
            )
        }
    return [_view(d, counts.get(d.pk, {}), now) for d in deployments]


def _view(deployment: Deployment, counts: dict, now: datetime) -> DeploymentView:
    if deployment.verify_until is None:
        return DeploymentView(deployment)
    word, css = WORDS.get(deployment.verification, ("unverified", "secondary"))
    failed = deployment.verification == Deployment.Verification.FAILED
    return DeploymentView(
        deployment,
        verification=word,
        css=css,
        window_open=deployment.verification == Deployment.Verification.VERIFYING
        and deployment.verify_until > now,
        checks=counts.get("total", 0),
        unhealthy=counts.get("unhealthy", 0),
        last_checked_at=counts.get("last_at"),
        rollback=("requested" if deployment.rollback_url else "none") if failed else "",
    )
