"""What /metrics says, read from the database (and the cache's counters) at every scrape.

Gauges say how things stand now; counters only ever grow, so Prometheus' `rate()` and
`increase()` work on them. Every counter but the cache's is counted from rows that are never
deleted (decisions, ledger entries), so it survives restarts and needs no bookkeeping.

Gauges:
- `signoff_approvals_pending{environment}`: approval requests awaiting decisions, not expired.
- `signoff_stages_overdue{environment}`: open approval stages past their due time.
- `signoff_outbox_deliveries{state}`: outbound calls not delivered: `pending` (not failed
  yet), `retrying` (failed, tried again later), `given_up` (sent again only by a person).
- `signoff_outbox_oldest_pending_age_seconds`: the oldest pending or retrying one (0: none).
- `signoff_ledger_entries`: entries in the evidence ledger (its head's sequence number).
- `signoff_ledger_entries_unanchored`: entries appended since the latest signed checkpoint
  (all of them while there is none, or when the latest cannot be read).
- `signoff_ledger_checkpoint_age_seconds`: age of the latest checkpoint (absent without one);
  the store is looked up at most once a minute, so a new checkpoint shows within a minute.
- `signoff_ledger_verification_failed`: 1 when the latest finished verification of the ledger
  found a problem, else 0 (absent before the first).
- `signoff_counters_up`: 1 when the two cache counters below could be read, 0 when the cache
  (Redis) is unreachable; they are then left out rather than shown as zero.

Counters:
- `signoff_gate_answers_total{via,status}`: gate answers given; `via` is `api`
  (`/api/v1/releases/<id>/gate`) or `azure` (`/integrations/azure/gate`), from the cache.
- `signoff_admission_reviews_total{verdict}`: Kubernetes AdmissionReviews answered, `allowed`
  or `denied`, from the cache.
- `signoff_decisions_total{verdict,channel}`: decisions recorded, revoked approvals included
  (`channel`: `ui`, `api` or `cab`, where the decision was made).
- `signoff_escalations_total`: stages escalated to the CAB (`stage.escalated` ledger entries).
- `signoff_unapproved_deployments_total`: deployments reported that the gate had not approved
  (`deployment.unapproved` ledger entries).

The cache counters (governance.counters) start again from zero when Redis restarts, which
`rate()` reads as a counter reset. A scrape costs a fixed number of queries (pinned in
tests/reporting/prometheus), whatever the number of releases.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime

from django.core.cache import cache
from django.db.models import Count, Min, Q
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from approvals.api.serializers import GATE_STATUSES
from approvals.models import ApprovalRequest, ApprovalStage, Decision
from governance import counters
from governance.ledger import checkpoints
from governance.ledger.format import Checkpoint
from governance.ledger.models import LedgerEntry, LedgerHead, LedgerVerification
from governance.models import Environment
from governance.notifications.models import Delivery

logger = logging.getLogger(__name__)

ESCALATED, UNAPPROVED = "stage.escalated", "deployment.unapproved"
LATEST_CHECKPOINT_KEY = "prometheus:latest-checkpoint"
LOOKUP_SECONDS = 60


class SignoffCollector(Collector):
    """The approval process as Prometheus metrics, read when Prometheus scrapes."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or timezone.now()

    def describe(self) -> list:
        # Nothing to check against other collectors: registering must not run the queries.
        return []

    def collect(self) -> Iterator[Metric]:
        environments = dict(Environment.objects.values_list("pk", "slug"))
        yield self._by_environment(
            "signoff_approvals_pending",
            "Approval requests awaiting decisions (not yet expired).",
            environments,
            self._pending_by_environment(),
        )
        yield self._by_environment(
            "signoff_stages_overdue",
            "Open approval stages past their due time.",
            environments,
            self._overdue_by_environment(),
        )
        yield from self._cache_counters()
        yield self._decisions()
        yield from self._ledger_counters()
        yield from self._outbox()
        yield from self._ledger()

    def _by_environment(
        self, name: str, documentation: str, environments: dict[int, str], counts: dict
    ) -> GaugeMetricFamily:
        # Every environment, zeros included: an alert on "> 0" needs a series to compare.
        family = GaugeMetricFamily(name, documentation, labels=["environment"])
        for pk, slug in sorted(environments.items(), key=lambda item: item[1]):
            family.add_metric([slug], counts.get(pk, 0))
        return family

    def _pending_by_environment(self) -> dict[int, int]:
        rows = (
            ApprovalRequest.objects.filter(
                status=ApprovalRequest.Status.PENDING, expires_at__gt=self.now
            )
            .values("release__environment_id")
            .annotate(count=Count("*"))
            .order_by()
        )
        return {row["release__environment_id"]: row["count"] for row in rows}

    def _overdue_by_environment(self) -> dict[int, int]:
        # Open stages are a small, indexed part of the history (stage_active_idx); those of a
        # request that expired undecided wait for nobody any more.
        rows = (
            ApprovalStage.objects.filter(
                status=ApprovalStage.Status.ACTIVE,
                due_at__lt=self.now,
                request__status=ApprovalRequest.Status.PENDING,
            )
            .values("request__release__environment_id")
            .annotate(count=Count("*"))
            .order_by()
        )
        return {row["request__release__environment_id"]: row["count"] for row in rows}

    def _cache_counters(self) -> Iterator[Metric]:
        """The gate and admission counters, or only `signoff_counters_up 0` without the cache:
        an unknown count is left out rather than shown as a reset to zero."""
        series = [
            (counters.GATE_ANSWERS, via, status)
            for via in counters.GATE_ANSWER_VIAS
            for status in GATE_STATUSES
        ] + [(counters.ADMISSION_REVIEWS, verdict) for verdict in counters.ADMISSION_VERDICTS]
        up = GaugeMetricFamily(
            "signoff_counters_up",
            "1 when the gate and admission counters could be read from the cache.",
        )
        try:
            values = counters.read(series)
        except Exception:
            logger.warning("Gate counters unavailable (cache unreachable)", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        answers = CounterMetricFamily(
            "signoff_gate_answers",
            "Gate answers given to pipelines, by where they asked and the status answered.",
            labels=["via", "status"],
        )
        reviews = CounterMetricFamily(
            "signoff_admission_reviews",
            "Kubernetes AdmissionReviews answered by the admission webhook.",
            labels=["verdict"],
        )
        for (counter, *labels), value in values.items():
            (answers if counter == counters.GATE_ANSWERS else reviews).add_metric(labels, value)
        yield answers
        yield reviews

    def _decisions(self) -> CounterMetricFamily:
        family = CounterMetricFamily(
            "signoff_decisions",
            "Decisions recorded (revoked approvals included), by verdict and channel.",
            labels=["verdict", "channel"],
        )
        rows = (
            Decision.all_objects.values_list("verdict", "channel")
            .annotate(count=Count("*"))
            .order_by("verdict", "channel")
        )
        for verdict, channel, count in rows:
            family.add_metric([verdict, channel], count)
        return family

    def _ledger_counters(self) -> Iterator[Metric]:
        # Ledger entries are never updated or deleted: counts of a kind only grow. Counted on
        # the (kind, seq) index alone.
        counts = dict(
            LedgerEntry.objects.filter(kind__in=[ESCALATED, UNAPPROVED])
            .values_list("kind")
            .annotate(count=Count("*"))
            .order_by()
        )
        escalations = CounterMetricFamily(
            "signoff_escalations", "Approval stages escalated to the CAB when overdue."
        )
        escalations.add_metric([], counts.get(ESCALATED, 0))
        unapproved = CounterMetricFamily(
            "signoff_unapproved_deployments",
            "Deployments reported that the gate had not approved (pending, blocked, another "
            "digest).",
        )
        unapproved.add_metric([], counts.get(UNAPPROVED, 0))
        yield escalations
        yield unapproved

    def _outbox(self) -> Iterator[Metric]:
        pending = Delivery.objects.filter(status=Delivery.Status.PENDING).aggregate(
            waiting=Count("pk", filter=Q(attempts=0)),
            retrying=Count("pk", filter=Q(attempts__gt=0)),
            oldest=Min("created_at"),
        )
        given_up = Delivery.objects.filter(status=Delivery.Status.FAILED).count()
        deliveries = GaugeMetricFamily(
            "signoff_outbox_deliveries",
            "Outbound calls (webhooks, chat, pipeline callbacks) not delivered, by state.",
            labels=["state"],
        )
        deliveries.add_metric(["pending"], pending["waiting"])
        deliveries.add_metric(["retrying"], pending["retrying"])
        deliveries.add_metric(["given_up"], given_up)
        oldest = GaugeMetricFamily(
            "signoff_outbox_oldest_pending_age_seconds",
            "Age of the oldest delivery still to be sent (0 when none is).",
        )
        oldest.add_metric([], self._age(pending["oldest"]))
        yield deliveries
        yield oldest

    def _ledger(self) -> Iterator[Metric]:
        head = LedgerHead.objects.filter(pk=1).values_list("seq", flat=True).first() or 0
        entries = GaugeMetricFamily(
            "signoff_ledger_entries", "Entries in the evidence ledger (its head's sequence number)."
        )
        entries.add_metric([], head)
        yield entries
        latest = latest_checkpoint()
        unanchored = GaugeMetricFamily(
            "signoff_ledger_entries_unanchored",
            "Ledger entries appended since the latest signed checkpoint.",
        )
        unanchored.add_metric([], max(head - (latest.seq if latest else 0), 0))
        yield unanchored
        if latest is not None:
            age = GaugeMetricFamily(
                "signoff_ledger_checkpoint_age_seconds",
                "Age of the latest signed checkpoint of the ledger.",
            )
            age.add_metric([], self._age(datetime.fromisoformat(latest.recorded_at)))
            yield age
        verification = self._verification()
        if verification is not None:
            yield verification

    def _verification(self) -> GaugeMetricFamily | None:
        status = (
            LedgerVerification.objects.filter(
                status__in=[LedgerVerification.Status.PASSED, LedgerVerification.Status.FAILED]
            )
            .values_list("status", flat=True)
            .first()
        )
        if status is None:
            return None
        family = GaugeMetricFamily(
            "signoff_ledger_verification_failed",
            "1 when the latest finished verification of the ledger found a problem.",
        )
        family.add_metric([], int(status == LedgerVerification.Status.FAILED))
        return family

    def _age(self, moment: datetime | None) -> float:
        return max((self.now - moment).total_seconds(), 0.0) if moment else 0.0


def latest_checkpoint() -> Checkpoint | None:
    """The latest checkpoint, looked up in its store at most once a minute for all the web
    processes (a bucket lists its files a thousand at a time, and one is added every five
    minutes while the ledger grows); straight from the store when the cache is unreachable."""
    try:
        return cache.get_or_set(LATEST_CHECKPOINT_KEY, _stored_latest_checkpoint, LOOKUP_SECONDS)
    except Exception:
        logger.warning("Checkpoint lookup not cached (cache unreachable)", exc_info=True)
        return _stored_latest_checkpoint()


def _stored_latest_checkpoint() -> Checkpoint | None:
    """None when there is none, or when the latest cannot be read (verify_ledger and the
    ledger page name a broken file; here its age is simply unknown)."""
    names = checkpoints.checkpoint_names()
    if not names:
        return None
    try:
        return checkpoints.load_checkpoint(names[-1]).checkpoint
    except ValueError:
        return None
