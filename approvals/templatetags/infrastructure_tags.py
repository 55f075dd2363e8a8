"""The release page's Terraform plan panel: what the partial shows, decided here, not in HTML."""

from __future__ import annotations

from django import template

from approvals.models import InfrastructurePlan, Release
from approvals.services.infrastructure import PLAN_IMAGE

register = template.Library()

# The summary's counts as the page labels them, in the order a reviewer reads them.
COUNT_LABELS = (
    ("creates", "Create"),
    ("updates", "Update in place"),
    ("replaces", "Replace"),
    ("deletes", "Delete"),
    ("no_ops", "Unchanged"),
)
# Counts that destroy something: shown in red when there are any.
_DESTRUCTIVE = {"replaces", "deletes"}


@register.simple_tag
def iac_plan_panel(release: Release) -> dict | None:
    """The panel for `release`, or None when there is nothing to show: no plan, and the
    release is not an infrastructure release (whose page says the plan is still missing).

    Reads `release.infrastructure_plan` and its `submitted_by`: load the release with
    `select_related("infrastructure_plan__submitted_by")` and the panel costs no query.
    """
    try:
        plan = release.infrastructure_plan
    except InfrastructurePlan.DoesNotExist:
        plan = None
    if plan is None:
        return {"plan": None} if release.image == PLAN_IMAGE else None
    summary = plan.summary or {}
    world_open = list(summary.get("world_open", []))
    return {
        "plan": plan,
        "counts": [
            {
                "label": label,
                "value": summary.get(key, 0),
                "danger": key in _DESTRUCTIVE and summary.get(key, 0) > 0,
            }
            for key, label in COUNT_LABELS
        ],
        "sensitive": [
            {"address": address, "world_open": address in world_open}
            for address in summary.get("sensitive", [])
        ],
        "world_open": world_open,
        "artifact_is_plan": plan.sha256 == release.digest,
    }
