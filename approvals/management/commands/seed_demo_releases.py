"""Demo releases in every state, made through the real services (so the ledger is real too).

Idempotent: each demo release carries a fixed Idempotency-Key; a second run finds them all.
"""

import hashlib
import zlib
from datetime import timedelta

from django.core.management.base import BaseCommand
from django.utils import timezone

from approvals import services
from approvals.models import ApprovalRequest, Release
from governance.models import Environment, Service, User

PASSED = {
    "kind": "tests",
    "status": "passed",
    "summary": {"passed": 812, "failed": 0, "skipped": 3},
}
SCAN = {
    "kind": "security_scan",
    "status": "passed",
    "summary": {"critical": 0, "high": 0, "medium": 2, "low": 7, "tool": "trivy"},
}
COVERAGE = {"kind": "coverage", "status": "passed", "summary": {"percent": 86.4}}
# What every release carries, and what the built-in policy's checklists ask of some services:
# payments (PCI, business-critical) report coverage and a peer review by someone other than
# the requester.
EVIDENCE = {
    "payments-api": (PASSED, SCAN, COVERAGE),
    "payments-ledger": (PASSED, SCAN, COVERAGE),
}


def peer_review(service: str, version: str, reviewer: str) -> dict:
    return {
        "kind": "peer_review",
        "status": "passed",
        "summary": {
            "url": f"https://gitlab.example.com/{service}/-/merge_requests/{version}",
            "reviewer": reviewer,
        },
    }


# key, service, environment, version, change (ref, type, title), triggered by, decisions, outcome
DEMO = [
    (
        "demo-web-380-dev",
        "web-frontend",
        "dev",
        "3.8.0",
        ("CHG0031290", "standard", "Checkout copy refresh"),
        "ivan",
        [],
        "deployed",
    ),
    (
        "demo-web-380-stg",
        "web-frontend",
        "staging",
        "3.8.0",
        ("CHG0031290", "standard", "Checkout copy refresh"),
        "ivan",
        [("grace", "approve", "Visual diff reviewed; copy approved by product.")],
        "deployed",
    ),
    (
        "demo-pay-240-prod",
        "payments-api",
        "production",
        "2.4.0",
        ("CHG0031301", "normal", "Faster SEPA settlement batching"),
        "dave",
        [
            ("sam", "approve", "PCI scope unchanged; scan clean, no new card data flows."),
            ("alice", "approve", "Load test at 3x peak is clean; rollback plan attached."),
            ("bob", "approve", "Reviewed the settlement diff and the migration; fine."),
            ("frank", "approve", "Reconciliation report matches the ledger to the cent."),
            ("carol", "approve", "CAB: low customer impact, outside month-end window."),
        ],
        "deployed",
    ),
    (
        "demo-pay-239-stg",
        "payments-api",
        "staging",
        "2.3.9",
        ("CHG0031288", "normal", "Retry policy for acquirer timeouts"),
        "dave",
        [("bob", "reject", "Integration tests against the acquirer sandbox are flaky; fix first.")],
        None,
    ),
    (
        "demo-ledger-17-prod",
        "payments-ledger",
        "production",
        "1.7.0",
        ("CHG0031250", "normal", "Ledger archive job"),
        "dave",
        [],
        "expire",
    ),
    (
        "demo-pay-241-hf-prod",
        "payments-api",
        "production",
        "2.4.0-hf1",
        ("CHG0031333", "emergency", "Hotfix: duplicate refund on retry"),
        "dave",
        [("alice", "approve", "Sev-1 INC0099812 ongoing; fix is one guarded line.")],
        None,
    ),
    (
        # A pipeline that did not wait for the gate: recorded as an unapproved deployment.
        "demo-search-53-stg",
        "search-api",
        "staging",
        "5.3.0",
        ("CHG0031344", "normal", "Query cache warm-up job"),
        "ivan",
        [],
        "deployed",
    ),
    (
        "demo-search-52-stg",
        "search-api",
        "staging",
        "5.2.0",
        ("CHG0031320", "normal", "Synonym dictionary update"),
        "ivan",
        [("grace", "approve", "Relevance report attached; looks good.")],
        None,
    ),
    (
        "demo-pay-241-prod",
        "payments-api",
        "production",
        "2.4.1",
        ("CHG0031337", "normal", "Instant payouts for marketplace sellers"),
        "dave",
        [],
        None,
    ),
    (
        "demo-ledger-18-stg",
        "payments-ledger",
        "staging",
        "1.8.0",
        ("CHG0031340", "normal", "Faster month-end close"),
        "dave",
        [],
        None,
    ),
    (
        "demo-web-390-prod",
        "web-frontend",
        "production",
        "3.9.0",
        ("CHG0031341", "normal", "New product detail page"),
        "ivan",
        [("grace", "approve", "Canary on 5% for 2 days, error rate flat.")],
        None,
    ),
    (
        # A standard change: approved by the policy's template when its conditions hold
        # (Monday to Thursday, 09:00-16:00 London), else the normal path says why.
        "demo-web-content-stg",
        "web-frontend",
        "staging",
        "content-2026.12",
        ("CHG0031360", "standard", "Holiday banner and copy"),
        "ivan",
        [],
        None,
    ),
    (
        "demo-payroll-2026-11-prod",
        "payroll-saas",
        "production",
        "2026.11",
        ("CHG0031350", "normal", "Acme Payroll November release (vendor)"),
        "",
        [],
        None,
    ),
]


def demo_digest(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


class Command(BaseCommand):
    help = "Create demo releases in every state (idempotent)."

    def handle(self, *args, **options) -> None:
        bot = User.objects.get(username="ci-bot")
        created_count = 0
        for key, service, env, version, change, trigger, decisions, outcome in DEMO:
            release, created = services.request_approval(
                data=self._input(key, service, env, version, change, trigger),
                actor=bot,
                idempotency_key=key,
            )
            if not created:
                continue
            created_count += 1
            for username, verdict, rationale in decisions:
                services.record_decision(
                    release=release,
                    actor=User.objects.get(username=username),
                    verdict=verdict,
                    rationale=rationale,
                )
            self._finish(release, outcome, bot)
        self.stdout.write(
            f"Demo releases: {created_count} created, {len(DEMO) - created_count} already present."
        )

    def _input(self, key, service, env, version, change, trigger) -> services.ReleaseInput:
        ref, change_type, title = change
        slug = service.split("-")[0]
        return services.ReleaseInput(
            service=Service.objects.get(slug=service),
            environment=Environment.objects.get(slug=env),
            version=version,
            image=f"registry.example.com/{slug}/{service}",
            digest=demo_digest(key),
            change_ref=ref,
            change_type=change_type,
            change_title=title,
            pipeline_provider="gitlab",
            pipeline_run_url=f"https://gitlab.example.com/{slug}/{service}/-/pipelines/"
            f"{zlib.crc32(key.encode()) % 90000 + 10000}",
            triggered_by=trigger,
            evidence=(
                *EVIDENCE.get(service, (PASSED, SCAN)),
                *((peer_review(service, version, "alice"),) if service == "payments-api" else ()),
            ),
            standard_change="web-copy-refresh"
            if change_type == "standard" and env != "dev"
            else "",
            # Vendor releases announce when they go out; this one gives only a day's notice.
            planned_at=timezone.now() + timedelta(hours=24) if service == "payroll-saas" else None,
        )

    def _finish(self, release: Release, outcome: str | None, bot: User) -> None:
        if outcome == "deployed":
            services.record_deployment(release=release, actor=bot, status="succeeded")
        elif outcome == "expire":
            # Pretend the request was made a fortnight ago and nobody decided it.
            ApprovalRequest.objects.filter(release=release).update(
                expires_at=timezone.now() - timedelta(minutes=1)
            )
            services.expire_requests()
