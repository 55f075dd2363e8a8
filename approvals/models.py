"""Releases, their evidence, approval requests with frozen plans, stages and decisions."""

from __future__ import annotations

import functools
import hashlib
import re

from django.db import connection, models
from django.db.models import Count, Exists, ExpressionWrapper, Max, OuterRef, Q, Subquery, Value
from django.db.models.functions import Cast, Concat
from django.utils import timezone

from changes.models import ChangeRecord
from governance.authority.selectors import auditor_grants
from governance.models import (
    Delegation,
    Environment,
    LedgerEntry,
    Service,
    Team,
    User,
    holds_everywhere,
)
from governance.people.selectors import people_named
from governance.policy.evidence import failed_count

DIGEST_PATTERN = re.compile(r"^sha256:[0-9a-f]{64}$")


class ReleaseQuerySet(models.QuerySet):
    def restrict(
        self, user: User, action: str = "view", *, delegated: bool = False
    ) -> ReleaseQuerySet:
        """Releases of services on which `user` may perform `action` (see Service.restrict)."""
        if user.is_authenticated and holds_everywhere(user, action):
            return self.all()  # No subquery: it would only cost the planner time.
        return self.filter(service__in=Service.objects.restrict(user, action, delegated=delegated))

    def for_write(self) -> ReleaseQuerySet:
        """What the write services read from a release: its service, environment and change.

        Lighter than the list's select: the services lock and read the approval request
        themselves, and people are needed by id only.
        """
        return self.select_related("service", "environment", "change")

    def with_list_related(self) -> ReleaseQuerySet:
        return self.select_related(
            "service", "environment", "change", "approval", "requested_by", "triggered_by"
        ).with_last_deployment()

    def with_last_deployment(self) -> ReleaseQuerySet:
        """Annotate the latest deployment's status: a release whose last deployment failed (or
        failed its post-deploy verification) shows as failed in lists."""
        latest = Deployment.objects.filter(release=models.OuterRef("pk")).order_by(
            "-created_at", "-pk"
        )
        return self.annotate(last_deployment_status=models.Subquery(latest.values("status")[:1]))

    def for_page(self) -> ReleaseQuerySet:
        """What the release page shows: the gate's data plus who, where and people's details."""
        return (
            self.with_last_deployment()
            .select_related(
                "service__vendor",
                "environment",
                "change",
                "approval",
                "requested_by",
                "triggered_by",
                "infrastructure_plan",
            )
            .prefetch_related(
                models.Prefetch(
                    "approval__stages",
                    queryset=ApprovalStage.objects.order_by("position").prefetch_related(
                        models.Prefetch(
                            "decisions",
                            queryset=Decision.objects.select_related(
                                "approver", "on_behalf_of"
                            ).order_by("created_at"),
                        ),
                        "eligible_approvers",
                    ),
                ),
                models.Prefetch("evidence", queryset=Evidence.objects.order_by("created_at", "pk")),
                models.Prefetch(
                    "deployments",
                    queryset=Deployment.objects.select_related("reported_by").order_by(
                        "-created_at"
                    ),
                ),
            )
        )

    def live_rows(self) -> models.QuerySet:
        """One small row per release holding everything whose change moves its page: the
        request's state and gate snapshot, the change record's state, a summary of decisions
        (revoked ones too) and deployments, and the newest ledger entry about it.

        An open release page polls with a token made from this row (approvals.live), so the
        common answer, "nothing changed", costs this one query instead of a page render.
        """
        decisions = _summary(
            Decision.all_objects.filter(request__release=OuterRef("pk")),
            "request__release",
            Count("pk"),
            Max("pk"),
            Count("revoked_at"),
        )
        deployments = _summary(
            Deployment.objects.filter(release=OuterRef("pk")), "release", Count("pk"), Max("pk")
        )
        subject = Concat(Value("release:"), Cast(OuterRef("pk"), models.CharField()))
        ledger = LedgerEntry.objects.filter(subject=subject).order_by("-seq").values("seq")[:1]
        return self.annotate(
            decision_summary=decisions,
            deployment_summary=deployments,
            ledger_seq=Subquery(ledger),
        ).values(
            "pk",
            "approval__status",
            "approval__expires_at",
            "approval__valid_until",
            "approval__gate_snapshot",
            "change__state",
            "decision_summary",
            "deployment_summary",
            "ledger_seq",
        )

    def gate_row(self, pk: int) -> Release | None:
        """`for_gate().filter(pk=pk).first()` for someone who may view every release, as one
        statement written once: building the ORM query cost more than running it, at every
        pipeline call. The instances are the same (deferred fields load when touched)."""
        # The ORM answers "no such row" for an id beyond the column's range; raw SQL would raise
        # instead (SQLite: OverflowError), so /gate of a 30-digit id would be a 500.
        low, high = connection.ops.integer_field_range(self.model._meta.pk.get_internal_type())
        if not low <= pk <= high:
            return None
        row = None
        with connection.cursor() as cursor:
            cursor.execute(_gate_sql(), [pk])
            row = cursor.fetchone()
        if row is None:
            return None
        values = iter(row)
        objects = {}
        for model, names in GATE_COLUMNS:
            fields = _in_model_order(model, names)
            loaded = [_from_db(field, next(values)) for field in fields]
            objects[model] = (
                model.from_db(connection.alias, [f.attname for f in fields], loaded)
                if loaded[0] is not None
                else None
            )
        release = objects[Release]
        Release.environment.field.set_cached_value(release, objects[Environment])
        Release.change.field.set_cached_value(release, objects[ChangeRecord])
        approval = objects[ApprovalRequest]
        Release.approval.related.set_cached_value(release, approval)
        if approval is not None:
            ApprovalRequest.release.field.set_cached_value(approval, release)
        return release

    def for_gate(self) -> ReleaseQuerySet:
        """What the gate reads: one row with its change record and approval request.

        Stages, decisions and evidence come from the request's snapshot (see approvals.gate):
        the gate is asked by every pipeline run, far more often than anything changes.
        """
        return self.select_related("change", "approval", "environment").only(
            "id",
            "digest",
            "service_id",
            "environment__id",
            "environment__risk",
            "change__id",
            "change__ref",
            "change__state",
            "change__type",
            "change__incident_id",
            "approval__id",
            "approval__release_id",
            "approval__status",
            "approval__plan",
            "approval__expires_at",
            "approval__valid_until",
            "approval__gate_snapshot",
        )


def _summary(rows: models.QuerySet, group: str, *aggregates) -> Subquery:
    """The aggregates of `rows` joined with dots ("3.41.1"), as one scalar subquery."""
    parts = []
    for aggregate in aggregates:
        parts += [Value("."), Cast(aggregate, models.CharField())]
    summary = Concat(*parts[1:], output_field=models.CharField())
    return Subquery(rows.order_by().values(group).annotate(summary=summary).values("summary"))


class Release(models.Model):
    """A version of a service, as an artifact digest, headed for one environment."""

    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="releases")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="releases")
    version = models.CharField(max_length=100)
    image = models.CharField(max_length=255)
    digest = models.CharField(max_length=71, help_text="sha256:<64 hex>")
    change = models.ForeignKey(ChangeRecord, on_delete=models.PROTECT, related_name="releases")
    requested_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    triggered_by = models.ForeignKey(
        User,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The person behind the pipeline run, when known.",
    )
    triggered_by_name = models.CharField(max_length=150, blank=True)
    pipeline_provider = models.CharField(max_length=32, blank=True)
    pipeline_run_url = models.URLField(max_length=500, blank=True)
    pipeline_sha = models.CharField(
        max_length=64, blank=True, help_text="The commit the pipeline run built, when given."
    )
    # NULL, not "", for "no key": the unique constraint must ignore requests without one.
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    deployed_at = models.DateTimeField(null=True, blank=True)
    planned_at = models.DateTimeField(
        null=True, blank=True, help_text="When the release is planned to go out (vendor releases)."
    )
    previous = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="next_requests",
        help_text="The rejected, withdrawn or expired request this one asks again for.",
    )
    unapproved_deployment_at = models.DateTimeField(
        null=True,
        blank=True,
        db_index=True,
        help_text="When a deployment the gate had not approved was last reported (a finding).",
    )
    standard_change = models.CharField(
        max_length=100,
        blank=True,
        help_text="The standard change template (policy `standard_changes:` id) it claims.",
    )

    objects = ReleaseQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # A retried pipeline step sends the same key and gets the same release back.
            models.UniqueConstraint(
                fields=["requested_by", "idempotency_key"], name="unique_idempotency_key"
            ),
        ]
        indexes = [
            # Admission webhooks find an image's releases by digest in the cluster's environment.
            models.Index(fields=["digest", "environment"], name="release_digest_env_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.service.name} {self.version} → {self.environment.name}"

    @property
    def short_digest(self) -> str:
        return self.digest.removeprefix("sha256:")[:12]

    @property
    def trigger_unresolved(self) -> bool:
        """The pipeline named who triggered it, and that name matches nobody Signoff knows."""
        return bool(self.triggered_by_name) and self.triggered_by_id is None

    def conflicted_user_ids(self) -> set[int]:
        """People who may never approve this release: its requester, trigger and change author."""
        ids = {self.requested_by_id, self.triggered_by_id, self.change.author_id}
        if self.trigger_unresolved:
            # The name matched nobody when the release was requested; anyone it names now (a
            # person the identity provider has provisioned since) is the person behind the run.
            ids |= set(people_named(self.triggered_by_name).values_list("pk", flat=True))
        return {i for i in ids if i is not None}


class Evidence(models.Model):
    """A check result attached to a release (tests, scans, reviews...)."""

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="evidence")
    kind = models.CharField(max_length=50)
    status = models.CharField(max_length=20)
    summary = models.JSONField(default=dict, blank=True)
    url = models.URLField(max_length=500, blank=True)
    reported_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at"]
        verbose_name_plural = "evidence"

    def __str__(self) -> str:
        return f"{self.kind}: {self.status}"

    @property
    def failed_count(self) -> int | None:
        """The reported number of failures; None when there is no usable count (a boolean or a
        negative number, which older rows may hold, never passes for one)."""
        return failed_count(self.summary)


class ApprovalRequest(models.Model):
    """The approval of one release, with the plan resolved from the policy frozen onto it."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        EXPIRED = "expired", "Expired"
        WITHDRAWN = "withdrawn", "Withdrawn"

    release = models.OneToOneField(Release, on_delete=models.CASCADE, related_name="approval")
    policy_version = models.ForeignKey(
        "governance.PolicyVersion", on_delete=models.PROTECT, null=True, related_name="+"
    )
    plan = models.JSONField(default=dict)
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    dual_control = models.BooleanField(default=False)
    retro_review = models.BooleanField(default=False)
    requested_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(help_text="A pending request expires undecided at this time.")
    decided_at = models.DateTimeField(null=True, blank=True)
    valid_until = models.DateTimeField(null=True, blank=True)
    withdrawn_by = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    withdrawal_reason = models.TextField(blank=True)
    gate_snapshot = models.JSONField(
        default=dict, editable=False, help_text="Maintained by approvals.gate.refresh_snapshot."
    )

    class Meta:
        ordering = ["-requested_at"]

    def __str__(self) -> str:
        return f"Approval of {self.release} ({self.status})"


def _lent_to(user: User) -> models.QuerySet:
    """Delegations in force to `user` from someone eligible on the outer stage's release.

    The decision service re-checks everything (live authority, who was already counted); this
    keeps the queue to what the delegate can act on.
    """
    return (
        Delegation.objects.in_force(timezone.now())
        .lent_to(user)
        .filter(delegator__eligible_stages=OuterRef("pk"))
        .filter(Q(service__isnull=True) | Q(service=OuterRef("request__release__service")))
    )


class ApprovalStageQuerySet(models.QuerySet):
    def decidable_by(self, user: User) -> ApprovalStageQuerySet:
        """Active stages `user` may decide now: eligible, authorised, no conflict of interest."""
        if not user.is_authenticated or not user.is_active or user.is_service_account:
            return self.none()
        own_release = (
            Q(request__release__requested_by=user)
            | Q(request__release__triggered_by=user)
            | Q(request__release__change__author=user)
        )
        already = Decision.objects.filter(request=OuterRef("request"), approver=user).filter(
            Q(stage=OuterRef("pk")) | Q(request__dual_control=True)
        )
        authorised = (
            Q(
                approvers="service_approvers",
                request__release__service__in=Service.objects.restrict(user, "approve"),
            )
            | Q(
                approvers="cab", request__release__service__in=Service.objects.restrict(user, "cab")
            )
            | Q(approvers="service_owners", owner=True)
            | Q(
                approvers="release_managers",
                request__release__service__in=Service.objects.restrict(user, "request"),
            )
            # Overdue stages escalated to the CAB: its members may decide them too.
            | Q(
                escalated_at__isnull=False,
                request__release__service__in=Service.objects.restrict(user, "cab"),
            )
        )
        # EXISTS rather than a join on owners: a join could duplicate rows and force a DISTINCT
        # over every selected column, which is most of this query's cost on a long history.
        owner = Service.owners.through.objects.filter(
            service=OuterRef("request__release__service"), user=user
        )
        eligible = ApprovalStage.eligible_approvers.through.objects.filter(
            approvalstage=OuterRef("pk"), user=user
        )
        mine = Q(Exists(eligible)) & authorised
        return (
            self.annotate(
                owner=Exists(owner),
                as_delegate=ExpressionWrapper(~mine, output_field=models.BooleanField()),
            )
            .filter(
                status=ApprovalStage.Status.ACTIVE, request__status=ApprovalRequest.Status.PENDING
            )
            .filter(mine | Q(Exists(_lent_to(user))))
            .exclude(own_release)
            # Auditors decide nothing: an uncorrelated EXISTS, evaluated once per query.
            .exclude(Exists(auditor_grants().filter(user=user)))
            .exclude(Exists(already))
        )

    def with_queue_related(self) -> ApprovalStageQuerySet:
        return self.select_related(
            "request__release__service",
            "request__release__environment",
            "request__release__change",
            "request__release__requested_by",
            "request__release__triggered_by",
        )


class ApprovalStage(models.Model):
    """One ordered stage of a plan: who may approve and how many distinct approvals it needs."""

    class Status(models.TextChoices):
        WAITING = "waiting", "Waiting for earlier stages"
        ACTIVE = "active", "Awaiting decisions"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        CANCELLED = "cancelled", "Cancelled"

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="stages")
    position = models.PositiveSmallIntegerField()
    order = models.PositiveSmallIntegerField(
        default=0, help_text="The policy's `order`: stages with the same order run in parallel."
    )
    key = models.CharField(max_length=50)
    name = models.CharField(max_length=100)
    approvers = models.CharField(max_length=30, help_text="Approver source from the policy.")
    required_count = models.PositiveSmallIntegerField(default=1)
    step_up = models.BooleanField(default=False)
    sla_hours = models.PositiveIntegerField(null=True, blank=True)
    due_at = models.DateTimeField(null=True, blank=True)
    # When the sweeps act on an open stage: remind undecided approvers, then escalate to the CAB.
    remind_at = models.DateTimeField(null=True, blank=True)
    escalate_at = models.DateTimeField(null=True, blank=True)
    reminded_at = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(
        null=True, blank=True, help_text="Overdue: CAB members may decide it too from then on."
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.WAITING)
    approval_count = models.PositiveSmallIntegerField(default=0)
    activated_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    rules = models.JSONField(default=list, help_text="Policy rules that produced this stage.")
    team_rule = models.CharField(
        max_length=10, blank=True, help_text="How a shared service's owning teams decide."
    )
    teams_required = models.JSONField(
        default=list, blank=True, help_text="Team slugs that must each approve (rule 'each')."
    )
    eligible_approvers = models.ManyToManyField(User, related_name="eligible_stages", blank=True)

    objects = ApprovalStageQuerySet.as_manager()

    class Meta:
        ordering = ["request", "position"]
        constraints = [
            models.UniqueConstraint(fields=["request", "position"], name="unique_stage_position"),
            models.UniqueConstraint(fields=["request", "key"], name="unique_stage_key"),
        ]
        indexes = [
            # Queues and sweeps look only at open stages, a small part of a long history.
            models.Index(fields=["status"], condition=Q(status="active"), name="stage_active_idx"),
            # The sweeps' claims: open stages whose reminder or escalation time has come.
            models.Index(
                fields=["remind_at"],
                condition=Q(status="active", reminded_at__isnull=True),
                name="stage_remind_due_idx",
            ),
            models.Index(
                fields=["escalate_at"],
                condition=Q(status="active", escalated_at__isnull=True),
                name="stage_escalation_due_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.approval_count}/{self.required_count})"

    def teams_still_needed(self) -> list[str]:
        """Under the 'each team' rule, the owning teams (slugs) no approval has come from yet.

        An approval made on someone's behalf counts for the team of the person it was made for.
        """
        if not self.teams_required:
            return []
        # A fresh read, never a prefetched cache: this runs right after a decision is added.
        approvals = Decision.objects.filter(stage=self, verdict=Decision.Verdict.APPROVE)
        seats = [
            principal or approver
            for approver, principal in approvals.values_list("approver_id", "on_behalf_of_id")
        ]
        covered = set(
            Team.objects.filter(slug__in=self.teams_required, members__in=seats).values_list(
                "slug", flat=True
            )
        )
        return [slug for slug in self.teams_required if slug not in covered]


class StandingDecisionManager(models.Manager):
    """Decisions that count: an approval its approver revoked is kept, but counts nowhere."""

    def get_queryset(self) -> models.QuerySet:
        return super().get_queryset().filter(revoked_at__isnull=True)


class Decision(models.Model):
    """An approver's approve/reject with rationale, bound to the artifact digest it was made on.

    The default manager (and so `stage.decisions`, prefetches and every count) sees standing
    decisions only; `all_objects` sees revoked approvals too, for the record.
    """

    class Verdict(models.TextChoices):
        APPROVE = "approve", "Approve"
        REJECT = "reject", "Reject"

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="decisions")
    stage = models.ForeignKey(ApprovalStage, on_delete=models.CASCADE, related_name="decisions")
    approver = models.ForeignKey(User, on_delete=models.PROTECT, related_name="decisions")
    on_behalf_of = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="delegated_decisions"
    )
    verdict = models.CharField(max_length=10, choices=Verdict.choices)
    rationale = models.TextField()
    digest = models.CharField(max_length=71)
    step_up_method = models.CharField(max_length=20, blank=True)
    dual_control = models.BooleanField(default=False)
    channel = models.CharField(max_length=10, default="ui", help_text="ui or api")
    # Where the decision came from, so a step-up decision from an unfamiliar place stands out.
    client_address = models.GenericIPAddressField(null=True, blank=True)
    client_device = models.CharField(
        max_length=16, blank=True, help_text="SHA-256 of the User-Agent, first 16 hex digits."
    )
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(
        null=True, blank=True, help_text="The approver took this approval back (stage still open)."
    )
    revocation_reason = models.TextField(blank=True)

    all_objects = models.Manager()
    objects = StandingDecisionManager()

    class Meta:
        ordering = ["created_at"]
        # Related managers and prefetches follow the default manager: standing decisions only.
        default_manager_name = "objects"
        base_manager_name = "all_objects"
        constraints = [
            # The database itself refuses a second standing decision by one person on one stage,
            # and, under dual control, anywhere in the request. A revoked approval frees the seat.
            models.UniqueConstraint(
                fields=["stage", "approver"],
                condition=Q(revoked_at__isnull=True),
                name="one_decision_per_stage",
            ),
            models.UniqueConstraint(
                fields=["request", "approver"],
                condition=Q(dual_control=True, revoked_at__isnull=True),
                name="one_decision_per_request_under_dual_control",
            ),
            # Acting for someone fills their seat: nobody decides twice for the same person.
            models.UniqueConstraint(
                fields=["stage", "on_behalf_of"],
                condition=Q(revoked_at__isnull=True),
                name="one_decision_per_stage_per_principal",
            ),
            models.UniqueConstraint(
                fields=["request", "on_behalf_of"],
                condition=Q(dual_control=True, revoked_at__isnull=True),
                name="one_principal_per_request_under_dual_control",
            ),
        ]
        # /metrics counts decisions by verdict and channel at every scrape: an index-only scan.
        indexes = [models.Index(fields=["verdict", "channel"], name="decision_verdict_channel_idx")]

    def __str__(self) -> str:
        return f"{self.approver} {self.verdict_past} {self.stage.name}"

    @staticmethod
    def device_fingerprint(user_agent: str) -> str:
        """A short stable name for the client software a decision came from.

        A hash, never the header itself: enough to tell "same browser as usual" from "a new
        one" without keeping what the browser sent.
        """
        if not user_agent:
            return ""
        return hashlib.sha256(user_agent.encode()).hexdigest()[:16]

    @property
    def verdict_past(self) -> str:
        """The verdict as people read it after the fact: "approved" or "rejected"."""
        return {self.Verdict.APPROVE: "approved", self.Verdict.REJECT: "rejected"}[self.verdict]


class Deployment(models.Model):
    """A deployment outcome reported by the pipeline, with the gate's answer at that moment.

    Every reported deployment is kept, approved or not: refusing to record one would hide that
    it happened. One the gate had not approved (pending, blocked, another digest) is flagged.
    """

    class Status(models.TextChoices):
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        ROLLED_BACK = "rolled_back", "Rolled back"

    class Verification(models.TextChoices):
        NOT_REQUIRED = "", "Not required"
        VERIFYING = "verifying", "Verifying"
        PASSED = "passed", "Passed"
        FAILED = "failed", "Failed"

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="deployments")
    status = models.CharField(max_length=12, choices=Status.choices)
    reported_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    url = models.URLField(max_length=500, blank=True)
    digest = models.CharField(max_length=71, blank=True, help_text="The artifact deployed.")
    gate_status = models.CharField(
        max_length=10, blank=True, help_text="The gate's answer for that digest when reported."
    )
    gate_reasons = models.JSONField(default=list, blank=True)
    approved = models.BooleanField(
        default=True, help_text="The gate had approved this digest when the deployment happened."
    )
    rollback_url = models.URLField(
        max_length=500, blank=True, help_text="The pipeline's rollback hook, called on failure."
    )
    verification = models.CharField(
        max_length=10, choices=Verification.choices, default=Verification.NOT_REQUIRED
    )
    verify_until = models.DateTimeField(
        null=True, blank=True, help_text="End of the post-deploy verification window."
    )
    verification_interval = models.PositiveIntegerField(
        default=60, help_text="Seconds between health polls during the window."
    )
    next_check_at = models.DateTimeField(null=True, blank=True)
    verified_at = models.DateTimeField(
        null=True, blank=True, help_text="When verification passed or failed."
    )
    verification_detail = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["next_check_at"],
                condition=models.Q(verification="verifying"),
                name="deployment_verifying_idx",
            )
        ]

    def __str__(self) -> str:
        flag = "" if self.approved else " (unapproved)"
        return f"{self.release} {self.status}{flag}"


# What the gate reads (see ReleaseQuerySet.for_gate), model by model, in column order.
GATE_COLUMNS = (
    (Release, ("id", "digest", "service", "environment", "change")),
    (Environment, ("id", "risk")),
    (ChangeRecord, ("id", "ref", "state", "type", "incident")),
    (
        ApprovalRequest,
        ("id", "release", "status", "plan", "expires_at", "valid_until", "gate_snapshot"),
    ),
)


@functools.cache
def _gate_sql() -> str:
    def columns(model, alias, names):
        return [f"{alias}.{field.column}" for field in _in_model_order(model, names)]

    (_, release), (_, environment), (_, change), (_, approval) = GATE_COLUMNS
    selected = [
        *columns(Release, "r", release),
        *columns(Environment, "e", environment),
        *columns(ChangeRecord, "c", change),
        *columns(ApprovalRequest, "a", approval),
    ]
    return (
        f"SELECT {', '.join(selected)} FROM {Release._meta.db_table} r "
        f"JOIN {Environment._meta.db_table} e ON e.id = r.environment_id "
        f"JOIN {ChangeRecord._meta.db_table} c ON c.id = r.change_id "
        f"LEFT JOIN {ApprovalRequest._meta.db_table} a ON a.release_id = r.id "
        "WHERE r.id = %s"
    )


def _in_model_order(model: type[models.Model], names: tuple[str, ...]) -> list[models.Field]:
    """The named fields in the model's own order, the order `Model.from_db` reads values in."""
    wanted = {model._meta.get_field(name) for name in names}
    return [field for field in model._meta.concrete_fields if field in wanted]


def _from_db(field: models.Field, value):
    """The value as the ORM would load it (JSON text parsed; the driver gives the rest)."""
    for converter in connection.ops.get_db_converters(field.get_col(field.model._meta.db_table)):
        value = converter(value, field, connection)
    if hasattr(field, "from_db_value"):
        value = field.from_db_value(value, None, connection)
    return value


# Each concern's models live in its own package; Django finds them through this module.
from approvals.admission.models import Admission  # noqa: E402, F401
from approvals.emergencies.models import EmergencyException  # noqa: E402, F401
from approvals.pipelines.models import (  # noqa: E402, F401
    InboundDelivery,
    PipelineIntegration,
    PipelineWait,
    RepositoryMapping,
)
from approvals.verification.models import HealthCheck  # noqa: E402, F401


class InfrastructurePlan(models.Model):
    """The Terraform plan (`terraform show -json`) of a release, summarised for the policy.

    At most one per release: a changed plan is a different artifact and needs a new request.
    """

    release = models.OneToOneField(
        Release, on_delete=models.CASCADE, related_name="infrastructure_plan"
    )
    format_version = models.CharField(max_length=20)
    terraform_version = models.CharField(max_length=40, blank=True)
    sha256 = models.CharField(max_length=71, help_text="sha256:<hex> of the plan's bytes.")
    summary = models.JSONField(
        help_text="creates, updates, deletes, replaces, no_ops, sensitive, world_open."
    )
    submitted_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    submitted_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"Plan of {self.release}"
