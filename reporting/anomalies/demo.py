"""Demo anomalies: a reciprocal pair in the demo organisation, the detectors run over it, and one
alert acknowledged, so the alerts page shows both states.

Heidi and Ivan each approve three of the other's releases (Heidi approves web-frontend, which
Ivan releases; Ivan approves checkout-service, which Heidi releases), all through the real
services, so the ledger holds them too. The demo's other releases were decided seconds after
they were requested, which the rubber-stamping detector rightly notices on tier-1 services.
Idempotent: the releases carry fixed idempotency keys and alerts are raised once.
"""

from __future__ import annotations

import hashlib

from django.db import transaction

from approvals import services as approvals
from approvals.models import Release
from governance.models import Environment, Service, User
from reporting.anomalies.models import AnomalyAlert
from reporting.anomalies.services import acknowledge_alert, detect_anomalies

PASSED = {"kind": "tests", "status": "passed", "summary": {"passed": 412, "failed": 0}}
SCAN = {"kind": "security_scan", "status": "passed", "summary": {"critical": 0, "high": 0}}
# (service, version, who releases it, who approves it)
PAIRS = [("web-frontend", f"3.9.0-rc.{n}", "ivan", "heidi") for n in (1, 2, 3)] + [
    ("checkout-service", f"5.2.0-rc.{n}", "heidi", "ivan") for n in (1, 2, 3)
]
ACKNOWLEDGED_NOTE = (
    "Hotfix approved on the incident bridge; the diff was reviewed on the call. No action."
)


def seed_demo_anomalies() -> dict[str, int]:
    """Make the reciprocal releases, run the detectors and acknowledge the hotfix's alert."""
    with transaction.atomic():
        return _seed()


def _seed() -> dict[str, int]:
    people = {p.username: p for p in User.objects.filter(username__in=["ivan", "heidi", "sam"])}
    bot = User.objects.get(username="ci-bot")
    made = sum(_reciprocal_release(key, people, bot) for key in PAIRS)
    raised = detect_anomalies()
    hotfix = (
        AnomalyAlert.objects.open()
        .filter(kind=AnomalyAlert.Kind.RUBBER_STAMP, summary__contains="-hf1")
        .first()
    )
    if hotfix is not None:
        acknowledge_alert(alert=hotfix, actor=people["sam"], note=ACKNOWLEDGED_NOTE)
    return {"releases": made, "alerts": len(raised)}


def _reciprocal_release(entry: tuple, people: dict[str, User], bot: User) -> bool:
    service_slug, version, releaser, approver = entry
    key = f"demo-anomaly-{service_slug}-{version}"
    release, created = approvals.request_approval(
        data=approvals.ReleaseInput(
            service=Service.objects.get(slug=service_slug),
            environment=Environment.objects.get(slug="staging"),
            version=version,
            image=f"registry.example.com/web/{service_slug}",
            digest="sha256:" + hashlib.sha256(key.encode()).hexdigest(),
            change_ref=f"CHG{int(hashlib.sha256(key.encode()).hexdigest()[:6], 16):07d}",
            change_type="normal",
            change_title=f"{service_slug} {version}",
            triggered_by=releaser,
            evidence=(PASSED, SCAN),
        ),
        actor=bot,
        idempotency_key=key,
    )
    if created:
        _approve(release, people[approver])
    return created


def _approve(release: Release, approver: User) -> None:
    approvals.record_decision(
        release=release,
        actor=approver,
        verdict="approve",
        rationale="Looked fine to me.",
        client_address="198.51.100.40",
        user_agent="Mozilla/5.0 (demo browser)",
    )
