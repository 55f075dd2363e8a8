"""One release's evidence pack: everything an auditor needs about it, as one document.

The pack is built once as plain data (dicts and lists in a fixed key order) and both the JSON
and the PDF are made from it, so the two never disagree. Ledger entries appear exactly as the
ledger export writes them, so each can be matched line for line against /reports/ledger.jsonl
and its hash and signature checked offline with the public keys the pack carries.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import Prefetch, Q
from django.utils import timezone

from approvals.gate import evaluate_gate
from approvals.models import ApprovalStage, Decision, Deployment, Evidence, Release
from changes.models import ChangeRecord, Incident
from governance.ledger import format as ledger_format
from governance.ledger.services import public_keys
from governance.models import LedgerEntry, User

FORMAT = "signoff-evidence-pack/1"

# Ledger kinds that move or explain the gate's answer over time.
GATE_KINDS = (
    "approval.requested",
    "gate.transition",
    "approval.withdrawn",
    "stage.escalated",
    "freeze.override_requested",
    "freeze.override_confirmed",
    "deployment.reported",
    "deployment.unapproved",
)


def releases_for_pack(user: User):
    """The releases `user` may see, loaded with everything the pack shows: a fixed number of
    queries whatever the number of stages, decisions, evidence items or deployments."""
    decisions = Decision.all_objects.select_related("approver", "on_behalf_of").order_by(
        "created_at", "pk"
    )
    stages = ApprovalStage.objects.order_by("position").prefetch_related(
        Prefetch("decisions", queryset=decisions, to_attr="every_decision")
    )
    return (
        Release.objects.restrict(user)
        .select_related(
            "service",
            "environment",
            "requested_by",
            "triggered_by",
            "change__author",
            "change__incident",
            "change__emergency__declared_by",
            "change__emergency__reviewed_by",
            "change__emergency__incident",
            "approval__policy_version__policy",
        )
        .prefetch_related(
            Prefetch("approval__stages", queryset=stages),
            Prefetch(
                "evidence",
                queryset=Evidence.objects.select_related("reported_by").order_by(
                    "created_at", "pk"
                ),
            ),
            Prefetch(
                "deployments",
                queryset=Deployment.objects.select_related("reported_by").order_by(
                    "created_at", "pk"
                ),
            ),
        )
    )


def build_pack(release: Release, *, generated_by: User, now: datetime | None = None) -> dict:
    """The pack of `release` (loaded through `releases_for_pack`) as plain, ordered data."""
    now = now or timezone.now()
    change = release.change
    entries = ledger_entries(release)
    return {
        "format": FORMAT,
        "generated_at": _time(now),
        "generated_by": generated_by.username,
        "release": _release(release),
        "change": _change(change),
        "approval": _approval(release),
        "evidence": [_evidence(item) for item in release.evidence.all()],
        "stages": [_stage(stage) for stage in release.approval.stages.all()],
        "gate": {
            "current": evaluate_gate(release, now=now).as_dict(),
            "history": [entry for entry in entries if entry["kind"] in GATE_KINDS],
        },
        "deployments": [_deployment(item) for item in release.deployments.all()],
        "exceptions": _exceptions(change),
        "incidents": [_incident(incident) for incident in incidents_for(release, now)],
        "ledger": {
            "subjects": [f"release:{release.pk}", f"change:{change.pk}"],
            "public_keys": {
                key_id: ledger_format.public_key_text(key) for key_id, key in public_keys().items()
            },
            "entries": entries,
        },
    }


def ledger_entries(release: Release) -> list[dict]:
    """Every entry about the release and its change, oldest first, as the export writes them."""
    subjects = [f"release:{release.pk}", f"change:{release.change_id}"]
    rows = (
        LedgerEntry.objects.filter(subject__in=subjects)
        .order_by("seq")
        .values(*ledger_format.ENTRY_FIELDS)
    )
    return [export_entry(row) for row in rows]


def export_entry(row: dict) -> dict:
    """A stored entry as the export and the verifier read it (the time as hashed)."""
    entry = {name: row[name] for name in ledger_format.ENTRY_FIELDS}
    entry["recorded_at"] = row["recorded_at"].isoformat(timespec="microseconds")
    return entry


def incidents_for(release: Release, now: datetime) -> list[Incident]:
    """The incident the change fixes, and incidents on the release's service that were open at
    some point between the request and the deployment (or now, when not deployed)."""
    end = release.deployed_at or now
    overlapping = Q(services=release.service_id, opened_at__lte=end) & (
        Q(resolved_at__isnull=True) | Q(resolved_at__gte=release.created_at)
    )
    linked = Q(pk=release.change.incident_id) if release.change.incident_id else Q(pk__in=[])
    return list(
        Incident.objects.filter(overlapping | linked).distinct().order_by("opened_at", "pk")
    )


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _name(user: User | None) -> str | None:
    return user.username if user else None


def _release(release: Release) -> dict:
    return {
        "id": release.pk,
        "service": {"slug": release.service.slug, "name": release.service.name},
        "environment": {"slug": release.environment.slug, "name": release.environment.name},
        "version": release.version,
        "image": release.image,
        "digest": release.digest,
        "requested_by": _name(release.requested_by),
        "triggered_by": _name(release.triggered_by),
        "triggered_by_name": release.triggered_by_name,
        "pipeline": {"provider": release.pipeline_provider, "run_url": release.pipeline_run_url},
        "created_at": _time(release.created_at),
        "deployed_at": _time(release.deployed_at),
        "unapproved_deployment_at": _time(release.unapproved_deployment_at),
    }


def _change(change: ChangeRecord) -> dict:
    return {
        "id": change.pk,
        "ref": change.ref,
        "title": change.title,
        "type": change.type,
        "risk": change.risk,
        "impact": change.impact,
        "author": _name(change.author),
        "state": change.state,
        "source": change.source,
        "external_url": change.external_url,
        "planned_start": _time(change.planned_start),
        "planned_end": _time(change.planned_end),
    }


def _approval(release: Release) -> dict:
    approval = release.approval
    version = approval.policy_version
    return {
        "status": approval.status,
        "requested_at": _time(approval.requested_at),
        "expires_at": _time(approval.expires_at),
        "decided_at": _time(approval.decided_at),
        "valid_until": _time(approval.valid_until),
        "dual_control": approval.dual_control,
        "retro_review": approval.retro_review,
        "withdrawal_reason": approval.withdrawal_reason,
        "policy": {
            "slug": version.policy.slug,
            "version": version.number,
            "checksum": version.checksum,
        }
        if version
        else None,
        "matched_rules": approval.plan.get("matched_rules", []),
        "plan": approval.plan,
    }


def _evidence(item: Evidence) -> dict:
    return {
        "kind": item.kind,
        "status": item.status,
        "summary": item.summary,
        "url": item.url,
        "reported_by": _name(item.reported_by),
        "created_at": _time(item.created_at),
    }


def _stage(stage: ApprovalStage) -> dict:
    return {
        "position": stage.position,
        "key": stage.key,
        "name": stage.name,
        "approvers": stage.approvers,
        "required_count": stage.required_count,
        "approval_count": stage.approval_count,
        "step_up": stage.step_up,
        "status": stage.status,
        "due_at": _time(stage.due_at),
        "escalated_at": _time(stage.escalated_at),
        "completed_at": _time(stage.completed_at),
        "rules": stage.rules,
        "decisions": [_decision(decision) for decision in stage.every_decision],
    }


def _decision(decision: Decision) -> dict:
    return {
        "approver": decision.approver.username,
        "on_behalf_of": _name(decision.on_behalf_of),
        "verdict": decision.verdict,
        "rationale": decision.rationale,
        "digest": decision.digest,
        "step_up_method": decision.step_up_method,
        "channel": decision.channel,
        "created_at": _time(decision.created_at),
        "revoked_at": _time(decision.revoked_at),
        "revocation_reason": decision.revocation_reason,
    }


def _deployment(deployment: Deployment) -> dict:
    return {
        "status": deployment.status,
        "approved": deployment.approved,
        "gate_status": deployment.gate_status,
        "gate_reasons": deployment.gate_reasons,
        "digest": deployment.digest,
        "url": deployment.url,
        "reported_by": _name(deployment.reported_by),
        "created_at": _time(deployment.created_at),
    }


def _exceptions(change: ChangeRecord) -> list[dict]:
    """The change's emergency exception, if it holds one (a change holds at most one)."""
    emergency = getattr(change, "emergency", None)
    if emergency is None:
        return []
    return [
        {
            "kind": "emergency",
            "declared_by": _name(emergency.declared_by),
            "justification": emergency.justification,
            "incident": emergency.incident.label if emergency.incident else None,
            "outage": emergency.outage,
            "controls": emergency.controls,
            "control_notes": emergency.control_notes,
            "starts_at": _time(emergency.starts_at),
            "ends_at": _time(emergency.ends_at),
            "retro_review": {
                "outcome": emergency.secondary_review or "pending",
                "notes": emergency.secondary_review_notes,
                "reviewed_by": _name(emergency.reviewed_by),
                "reviewed_at": _time(emergency.reviewed_at),
            },
        }
    ]


def _incident(incident: Incident) -> dict:
    return {
        "source": incident.source,
        "external_id": incident.external_id,
        "title": incident.title,
        "priority": incident.priority,
        "severity": incident.severity,
        "status": incident.status,
        "opened_at": _time(incident.opened_at),
        "resolved_at": _time(incident.resolved_at),
        "url": incident.external_url,
    }
