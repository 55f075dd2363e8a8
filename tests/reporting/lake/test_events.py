"""What the lake holds for a seeded history: one CloudEvent per approval-process ledger entry,
with stable ids, the documented types and the same normalised data whatever the platform."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from approvals import services
from approvals.admission.services import register_cluster
from approvals.models import Release
from governance.ledger import format as ledger_format
from governance.ledger import services as ledger
from governance.models import Environment, LedgerEntry, Platform
from reporting.lake.exporter import export_lake
from tests import factories
from tests.approvals.admission.conftest import EVIDENCE, pinned, review

pytestmark = pytest.mark.django_db

DATA_FIELDS = [
    "kind",
    "release_id",
    "change",
    "service",
    "team",
    "environment",
    "platform",
    "platform_kind",
    "cluster",
    "version",
    "digest",
    "actor",
    "outcome",
    "reason",
    "payload",
]


def request(service, environment, actor, **overrides) -> Release:
    release, _ = services.request_approval(
        data=factories.release_input(service, environment, triggered_by="dave", **overrides),
        actor=actor,
    )
    return release


@pytest.fixture
def history(org, low_tier_service, staging, approver, pipeline_bot, requester):
    """Four releases of web-frontend to staging: deployed, withdrawn, rejected, expired."""
    deployed = request(low_tier_service, staging, pipeline_bot)
    factories.decide(deployed, approver)
    services.record_deployment(release=deployed, actor=pipeline_bot, status="succeeded")
    withdrawn = request(low_tier_service, staging, pipeline_bot)
    services.withdraw_request(release=withdrawn, actor=requester, reason="Superseded by 1.0.9.")
    rejected = request(low_tier_service, staging, pipeline_bot)
    factories.decide(rejected, approver, "reject", "Flaky login tests.")
    expired = request(low_tier_service, staging, pipeline_bot)
    services.expire_requests(now=timezone.now() + timedelta(days=30))
    return {"deployed": deployed, "withdrawn": withdrawn, "rejected": rejected, "expired": expired}


def about(events: list[dict], release: Release) -> list[tuple[str, str | None]]:
    return [
        (e["type"], e["data"]["outcome"]) for e in events if e["subject"] == f"release:{release.pk}"
    ]


def test_each_release_reads_as_its_approval_story(lake, history):
    export_lake()
    events = lake.events()
    assert about(events, history["deployed"]) == [
        ("com.signoff.release.requested", "pending"),
        ("com.signoff.decision.recorded", "approve"),
        ("com.signoff.release.decided", "approved"),
        ("com.signoff.deployment.reported", "succeeded"),
    ]
    assert about(events, history["withdrawn"]) == [
        ("com.signoff.release.requested", "pending"),
        ("com.signoff.release.status_changed", "withdrawn"),
        ("com.signoff.release.withdrawn", "withdrawn"),
    ]
    assert about(events, history["rejected"]) == [
        ("com.signoff.release.requested", "pending"),
        ("com.signoff.decision.recorded", "reject"),
        ("com.signoff.release.decided", "rejected"),
    ]
    assert about(events, history["expired"]) == [
        ("com.signoff.release.requested", "pending"),
        ("com.signoff.release.expired", "expired"),
    ]


def test_every_approval_entry_is_exported_once_and_the_rest_is_not(lake, history):
    export_lake()
    exported = [e["signoffseq"] for e in lake.events()]
    not_approval = ("role.granted", "policy.published")
    assert LedgerEntry.objects.filter(kind__in=not_approval).exists()
    assert exported == list(
        LedgerEntry.objects.exclude(kind__in=not_approval).values_list("seq", flat=True)
    )


def test_an_event_carries_the_cloudevents_attributes_and_the_normalised_data(
    lake, history, low_tier_service, settings
):
    export_lake()
    release = history["rejected"]
    entry = LedgerEntry.objects.get(subject=f"release:{release.pk}", kind="decision.recorded")
    event = next(e for e in lake.events() if e["signoffseq"] == entry.seq)
    assert event == {
        "specversion": "1.0",
        "id": f"signoff:{entry.seq}",
        "source": f"{settings.SITE_URL}/reports/ledger/",
        "type": "com.signoff.decision.recorded",
        "subject": f"release:{release.pk}",
        "time": entry.recorded_at.isoformat(timespec="microseconds"),
        "datacontenttype": "application/json",
        "signoffseq": entry.seq,
        "signoffhash": entry.entry_hash,
        "signoffprevhash": entry.prev_hash,
        "signoffkeyid": entry.key_id,
        "signoffsignature": entry.signature,
        "data": {
            "kind": "decision.recorded",
            "release_id": release.pk,
            "change": release.change.ref,
            "service": "web-frontend",
            "team": "payments",
            "environment": "staging",
            "platform": "on_premises",
            "platform_kind": "on_premises",
            "cluster": None,
            "version": release.version,
            "digest": release.digest,
            "actor": "alice",
            "outcome": "reject",
            "reason": "Flaky login tests.",
            "payload": entry.payload,
        },
    }
    assert event["time"].endswith("+00:00")


def test_a_consumer_verifies_each_event_against_the_ledgers_keys(lake, history):
    """Everything the entry's hash covers is in the event: hash and signature check out."""
    export_lake()
    keys = ledger.public_keys()
    for event in lake.events():
        entry = {
            "seq": event["signoffseq"],
            "recorded_at": event["time"],
            "kind": event["data"]["kind"],
            "subject": event["subject"],
            "actor": event["data"]["actor"],
            "payload": event["data"]["payload"],
            "prev_hash": event["signoffprevhash"],
            "entry_hash": event["signoffhash"],
            "key_id": event["signoffkeyid"],
            "signature": event["signoffsignature"],
        }
        verdict = ledger_format.verify_entries(
            [entry], keys, after_seq=entry["seq"] - 1, after_hash=entry["prev_hash"]
        )
        assert list(verdict) == [entry["seq"]]


PLATFORMS = [
    (Platform.ON_PREMISES, "on_premises"),
    (Platform.AWS, "cloud"),
    (Platform.AZURE, "cloud"),
    (Platform.GCP, "cloud"),
    (Platform.SAAS, "saas"),
    (Platform.KUBERNETES, "kubernetes"),
]


def test_a_release_reads_the_same_whatever_platform_it_targets(
    lake, org, low_tier_service, pipeline_bot
):
    releases = {}
    for platform, _ in PLATFORMS:
        environment = Environment.objects.create(
            name=f"QA {platform}", slug=f"qa-{platform}", risk="low", platform=platform
        )
        releases[platform] = request(low_tier_service, environment, pipeline_bot, version="2.0.0")
    export_lake()
    requested = {
        e["data"]["environment"]: e["data"]
        for e in lake.events()
        if e["type"] == "com.signoff.release.requested"
    }
    for platform, kind in PLATFORMS:
        data = requested[f"qa-{platform}"]
        release = releases[platform]
        assert list(data) == DATA_FIELDS
        assert {k: v for k, v in data.items() if k != "payload"} == {
            "kind": "approval.requested",
            "release_id": release.pk,
            "change": release.change.ref,
            "service": "web-frontend",
            "team": "payments",
            "environment": f"qa-{platform}",
            "platform": platform,
            "platform_kind": kind,
            "cluster": None,
            "version": "2.0.0",
            "digest": release.digest,
            "actor": "ci-bot",
            "outcome": "pending",
            "reason": None,
        }


def test_admissions_into_a_cluster_read_as_kubernetes_events(
    lake, client, org, service, production, pipeline_bot, approver, second_approver, cab_member
):
    """Production runs on premises; its cluster is a Kubernetes target, where the pods land."""
    registration = register_cluster(
        name="prod-eu-1", environment=production, namespaces=["payments"], actor="test"
    )
    release = request(service, production, pipeline_bot, evidence=EVIDENCE)
    for person in (approver, second_approver, cab_member):
        factories.decide(release, person)
    headers = {"HTTP_AUTHORIZATION": f"Bearer {registration.token}"}
    for image in (pinned(release), f"{release.image}@{factories.digest('unknown')}"):
        response = client.post(
            "/integrations/kubernetes/prod-eu-1/admission",
            review("Pod", [image]),
            content_type="application/json",
            **headers,
        )
        assert response.status_code == 200
    export_lake()
    events = {e["type"]: e["data"] for e in lake.events() if e["subject"] == "cluster:prod-eu-1"}
    shared = {
        "cluster": "prod-eu-1",
        "environment": "production",
        "platform": "kubernetes",
        "platform_kind": "kubernetes",
        "actor": "dave@example.com",
        "reason": None,
    }
    admitted, denied = (
        events["com.signoff.admission.admitted"],
        events["com.signoff.admission.denied"],
    )
    assert list(admitted) == list(denied) == DATA_FIELDS
    assert {k: admitted[k] for k in DATA_FIELDS[:-1]} == {
        **shared,
        "kind": "admission.admitted",
        "release_id": release.pk,
        "change": release.change.ref,
        "service": "payments-api",
        "team": "payments",
        "version": release.version,
        "digest": release.digest,
        "outcome": "admitted",
    }
    assert {k: denied[k] for k in DATA_FIELDS[:-1]} == {
        **shared,
        "kind": "admission.denied",
        "release_id": None,
        "change": None,
        "service": None,
        "team": None,
        "version": None,
        "digest": None,
        "outcome": "denied",
    }
    requested = next(
        e["data"] for e in lake.events() if e["type"] == "com.signoff.release.requested"
    )
    assert (requested["platform"], requested["cluster"]) == ("on_premises", None)
