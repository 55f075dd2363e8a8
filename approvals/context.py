"""The context a policy's CEL conditions see for one release."""

from __future__ import annotations

import math
from typing import Any

from approvals.models import InfrastructurePlan, Release
from changes.incidents.selectors import incident_context
from governance.models import Environment, Service
from governance.policy.reference import NO_PLAN


def policy_context(
    release: Release, evidence: list | None = None, incidents: dict | None = None
) -> dict[str, Any]:
    """Plain data only, so that a policy can be tried against any release, past or present."""
    service, change = release.service, release.change
    items = evidence if evidence is not None else list(release.evidence.all())
    latest = {item.kind: item for item in items}
    return {
        "release": {
            "version": release.version,
            "image": release.image,
            "digest": release.digest,
            "standard_change": release.standard_change,
        },
        "service": service_context(service),
        "environment": environment_context(release.environment),
        "change": {
            "ref": change.ref,
            "type": change.type,
            "state": change.state,
            "risk": change.risk,
            "impact": change.impact,
        },
        # Given when many releases of one service are planned together (a simulation).
        "incidents": incidents if incidents is not None else incident_context(service.pk),
        "plan": plan_context(release),
        "evidence": {
            kind: {"status": item.status, **_counts(item.summary)} for kind, item in latest.items()
        },
    }


def _counts(summary: Any) -> dict[str, int | float]:
    """The summary's numbers (counts, a coverage percent), for conditions to compare."""
    if not isinstance(summary, dict):
        return {}
    return {
        k: v
        for k, v in summary.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }


def service_context(service: Service) -> dict[str, Any]:
    """`service` for policies, from the catalogue."""
    return {
        "slug": service.slug,
        "name": service.name,
        "tier": service.tier,
        "compliance_tags": list(service.compliance_tags or []),
        "team": service.team.slug,
        "teams": [team.slug for team in service.owning_teams()],
        "vendor": service.vendor.slug if service.vendor_id else "",
        "business_function": service.business_function,
    }


def environment_context(environment: Environment) -> dict[str, Any]:
    """`environment` for policies: one rule language whatever the platform, the
    environment's own and its targets'."""
    targets = [{"slug": t.slug, "platform": t.platform} for t in environment.targets.all()]
    return {
        "slug": environment.slug,
        "name": environment.name,
        "risk": environment.risk,
        "regulated": environment.regulated,
        "platform": environment.platform,
        "platforms": sorted({environment.platform, *(t["platform"] for t in targets)}),
        "targets": targets,
    }


def plan_context(release: Release) -> dict[str, Any]:
    """`plan` for policies: the summary of the release's Terraform plan, when one was sent."""
    try:
        summary = release.infrastructure_plan.summary
    except InfrastructurePlan.DoesNotExist:
        return dict(NO_PLAN)
    return {**NO_PLAN, **{k: summary[k] for k in NO_PLAN if k in summary}, "present": True}
