"""The model's steps about measuring the process: the security sweep and its alerts, the
quarterly review and the requesters' ratings of their workflow, each through the page people use.

What measuring records closes out acts of people (an alert about an approver, a review item about
an emergency, a rating of a release's workflow): each step tries it as anyone might, and
`measure_checks` judges who managed to.
"""

from __future__ import annotations

from datetime import timedelta

from dateutil.relativedelta import relativedelta
from django.urls import reverse
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from governance.models import Team, User
from reporting.anomalies.detectors import Finding
from reporting.anomalies.models import AnomalyAlert
from reporting.anomalies.services import detect_anomalies, raise_alerts
from reporting.reviews.models import QuarterlyReviewItem
from reporting.reviews.services import quarter_start, start_quarterly_review
from tests.invariants import fingerprint
from tests.invariants.drawing import actors, people, release_indexes
from tests.invariants.organisation import TEAMS

Kind = AnomalyAlert.Kind
OUTCOMES = [o for o in QuarterlyReviewItem.Outcome.values if o != "pending"]


class MeasureSteps:
    """Alerts are raised and acknowledged, quarters are reviewed and workflows rated (mixed into
    the model)."""

    @rule()
    def security_sweep(self) -> None:
        """Beat runs the anomaly detectors over the history so far."""
        self.step("security_sweep")
        detect_anomalies()

    @rule(
        about=people,
        counterpart=st.one_of(st.none(), people),
        team=st.none() | st.sampled_from(TEAMS),
    )
    def anomaly_found(self, about: str, counterpart: str | None, team: str | None) -> None:
        """A detector finds something about a person (with a counterpart, or about their team):
        the alert is raised the way the detectors raise theirs."""
        self.step("anomaly_found")
        person = self.user(about)
        if person is None:  # not joined yet
            return
        now = self.clock.now()
        raise_alerts(
            [
                Finding(
                    kind=AnomalyAlert.Kind.RECIPROCITY
                    if counterpart
                    else AnomalyAlert.Kind.VOLUME_SPIKE,
                    fingerprint=f"model:{now.isoformat()}:{about}:{counterpart}:{team}",
                    summary=f"{about} decided unlike themselves.",
                    severity=AnomalyAlert.Severity.MEDIUM,
                    window_start=now - timedelta(days=1),
                    window_end=now,
                    person=person,
                    counterpart=self.user(counterpart) if counterpart else None,
                    team=Team.objects.get(slug=team) if team else None,
                )
            ]
        )

    @precondition(lambda self: AnomalyAlert.objects.filter(status="open").exists())
    @rule(actor=st.none() | actors, pick=st.integers(0, 3), with_note=st.booleans())
    def acknowledge_alert(self, actor: str | None, pick: int, with_note: bool) -> None:
        """Someone acknowledges an open alert on the alerts page: anyone, or (None) the person
        the alert is about."""
        self.step("acknowledge_alert")
        alerts = list(AnomalyAlert.objects.filter(status="open").order_by("pk"))
        if not alerts:
            return
        alert = alerts[pick % len(alerts)]
        user = alert.person if actor is None else self.user(actor)
        if user is None:
            return
        before = fingerprint.take()
        response = self.browser(user).post(
            reverse("reporting:anomaly_acknowledge", args=[alert.pk]),
            {"note": "Looked into it." if with_note else ""},
        )
        self.answered("acknowledge_alert", response, (302,), before)

    @rule(actor=actors)
    def quarter_ends(self, actor: str) -> None:
        """The quarter ends: someone presses the page's start button (only an administrator may)
        and beat starts the review anyway (the same review, when it already is)."""
        self.step("quarter_ends")
        self.clock.at = _next_quarter(self.clock.now()) + timedelta(hours=1)
        user = self.user(actor)
        if user is not None:
            before = fingerprint.take()
            response = self.browser(user).post(reverse("reporting:quarterly_reviews"))
            self.answered("start_quarterly_review", response, (302,), before)
        start_quarterly_review(actor=None)

    @precondition(lambda self: QuarterlyReviewItem.objects.filter(outcome="pending").exists())
    @rule(actor=st.none() | actors, pick=st.integers(0, 7), outcome=st.sampled_from(OUTCOMES))
    def record_review_outcome(self, actor: str | None, pick: int, outcome: str) -> None:
        """Someone records what the review concluded about one item: anyone, or (None) one of
        the people whose act it is."""
        self.step("record_review_outcome")
        items = list(QuarterlyReviewItem.objects.filter(outcome="pending").order_by("pk"))
        if not items:
            return
        item = items[pick % len(items)]
        if actor is None:
            user = User.objects.filter(pk__in=item.involved).order_by("pk").first()
        else:
            user = self.user(actor)
        if user is None:
            return
        before = fingerprint.take()
        response = self.browser(user).post(
            reverse("reporting:quarterly_outcome", args=[item.review_id, item.pk]),
            {"outcome": outcome, "note": "Discussed at the review."},
        )
        self.answered("record_review_outcome", response, (302,), before)

    @rule(
        rater=st.none() | people, pick=release_indexes, rating=st.sampled_from(("useful", "noise"))
    )
    def rate_workflow(self, rater: str | None, pick: int, rating: str) -> None:
        """Someone rates a release's approval workflow from its page's feedback card: anyone, or
        (None) the person who asked for the release."""
        self.step("rate_workflow")
        if not self.releases:
            return
        release = self.release(pick)
        user: User | None = self.user(rater) if rater else release.requested_by
        if user is None or user.is_service_account:
            return
        before = fingerprint.take()
        response = self.browser(user).post(
            reverse("reporting:release_workflow_feedback", args=[release.pk]),
            {"rating": rating, "comment": "Model rating."},
        )
        self.answered("rate_workflow", response, (200,), before)


def _next_quarter(now):
    return now.replace(
        day=1, hour=0, minute=0, second=0, microsecond=0, month=quarter_start(now.date()).month
    ) + relativedelta(months=3)
