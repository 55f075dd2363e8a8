"""The service catalogue and who holds authority over it: environments, services, roles,
delegations, access reviews; and the `restrict(user, action)` chokepoint every page and endpoint
scopes through.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.auth.models import Permission
from django.db import connection, models
from django.db.models import Q
from django.utils import timezone

if TYPE_CHECKING:
    from datetime import datetime

from governance.people.models import Team, User


class Platform(models.TextChoices):
    """Where an environment or a target runs; policies see it as `environment.platform`."""

    ON_PREMISES = "on_premises", "On-premises"
    AWS = "aws", "Amazon Web Services"
    AZURE = "azure", "Microsoft Azure"
    GCP = "gcp", "Google Cloud"
    SAAS = "saas", "SaaS vendor"
    KUBERNETES = "kubernetes", "Kubernetes cluster"


class Environment(models.Model):
    """A deployment stage (dev, staging, production) with its risk class."""

    class Risk(models.TextChoices):
        LOW = "low", "Low"
        MEDIUM = "medium", "Medium"
        HIGH = "high", "High"

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(unique=True)
    risk = models.CharField(max_length=10, choices=Risk.choices, default=Risk.LOW)
    regulated = models.BooleanField(default=False)
    order = models.PositiveSmallIntegerField(default=0, help_text="Position in the promotion path.")
    platform = models.CharField(
        max_length=20,
        choices=Platform.choices,
        default=Platform.ON_PREMISES,
        help_text="Where it mainly runs; its targets may add others.",
    )

    class Meta:
        ordering = ["order", "name"]

    def __str__(self) -> str:
        return self.name


class Target(models.Model):
    """A place releases to an environment land on: an account, a data centre, a cluster."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="targets")
    name = models.CharField(max_length=100)
    slug = models.SlugField()
    platform = models.CharField(max_length=20, choices=Platform.choices)
    details = models.CharField(
        max_length=255, blank=True, help_text="Account, region, API address: for people."
    )
    namespaces = models.JSONField(
        default=list,
        blank=True,
        help_text="A Kubernetes cluster's governed namespaces: admission checks images there.",
    )
    token_digest = models.CharField(
        max_length=64,
        blank=True,
        help_text="SHA-256 (hex) of the bearer token a cluster's kube-apiserver presents.",
    )

    class Meta:
        ordering = ["environment", "name"]
        constraints = [
            models.UniqueConstraint(fields=["environment", "slug"], name="unique_target_slug"),
            # A cluster is named alone in its admission URL, so its slug is unique everywhere.
            models.UniqueConstraint(
                fields=["slug"],
                condition=Q(platform="kubernetes"),
                name="unique_cluster_slug",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_platform_display()})"


class ServiceQuerySet(models.QuerySet):
    def restrict(
        self, user: User, action: str = "view", *, delegated: bool = False
    ) -> ServiceQuerySet:
        """Services on which `user` may perform `action` (view, approve, cab, request).

        The one chokepoint for scoping: views and endpoints start from it, so anything outside a
        person's scope is a 404 rather than a 403 that confirms it exists. With `delegated`, the
        services lent to `user` by delegations in force now count too (never for requesting).
        """
        from guardian.shortcuts import get_objects_for_user

        if not user.is_authenticated or not user.is_active:
            return self.none()
        codename = SERVICE_ACTIONS[action]
        if holds_everywhere(user, action):
            return self.all()
        allowed = get_objects_for_user(
            user, f"governance.{codename}", klass=Service, accept_global_perms=False
        )
        scope = Q(pk__in=allowed.values("pk"))
        if action == "view":
            # Owners decide where the policy names the service's owners: they see its releases
            # whatever roles they hold (the decision itself re-checks their authority).
            scope |= Q(pk__in=Service.owners.through.objects.filter(user=user).values("service"))
        if delegated and action != "request":
            scope |= Q(pk__in=delegated_service_ids(user))
        return self.filter(scope)


class Service(models.Model):
    """An entry of the service catalogue (CMDB): what is released, who owns it, how critical."""

    class Tier(models.IntegerChoices):
        TIER_1 = 1, "Tier 1 (business critical)"
        TIER_2 = 2, "Tier 2"
        TIER_3 = 3, "Tier 3"
        TIER_4 = 4, "Tier 4 (internal)"

    class ComplianceFramework(models.TextChoices):
        """The regimes offered as checkboxes in the catalogue; policies compare the tag itself
        (`"SOX" in service.compliance_tags`), so each label starts with it."""

        SOX = "SOX", "SOX (Sarbanes-Oxley)"
        PCI = "PCI", "PCI (PCI DSS, card data)"
        HIPAA = "HIPAA", "HIPAA (US health data)"
        GDPR = "GDPR", "GDPR (EU personal data)"
        ISO27001 = "ISO27001", "ISO27001 (ISO/IEC 27001)"
        SOC2 = "SOC2", "SOC2 (SOC 2 report)"

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(unique=True)
    description = models.TextField(blank=True)
    tier = models.PositiveSmallIntegerField(choices=Tier.choices, default=Tier.TIER_3)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="services")
    owners = models.ManyToManyField(User, related_name="owned_services", blank=True)
    co_owning_teams = models.ManyToManyField(
        Team,
        related_name="co_owned_services",
        blank=True,
        help_text="Further teams that own a shared service; `team` is the primary owner.",
    )
    vendor = models.ForeignKey(
        "governance.Vendor",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="services",
        help_text="For a SaaS service run by a third party: its releases follow the vendor's SLA.",
    )
    compliance_tags = models.JSONField(
        default=list, blank=True, help_text='Regimes in scope, e.g. ["SOX", "PCI"].'
    )
    business_function = models.CharField(
        max_length=100,
        blank=True,
        help_text="The business capability it serves (e.g. payments); SLA rules may name it.",
    )
    health_urls = models.JSONField(
        default=list,
        blank=True,
        help_text="URLs polled after a deployment when the policy requires verification; "
        "any answer but 2xx is a failure.",
    )
    depends_on = models.ManyToManyField(
        "self",
        symmetrical=False,
        related_name="dependents",
        blank=True,
        help_text="Services this one needs at run time: their blocking incidents hold it.",
    )

    objects = ServiceQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        permissions = [
            ("view_releases", "View the service's releases"),
            ("request_release", "Request approval for releases of the service"),
            ("approve_release", "Approve releases of the service"),
            ("cab_approve", "Decide CAB stages"),
            ("security_approve", "Decide security and privacy stages"),
        ]

    def __str__(self) -> str:
        return self.name

    def owning_teams(self) -> list[Team]:
        """The primary owning team first, then any co-owners."""
        return [self.team, *(t for t in self.co_owning_teams.all() if t.pk != self.team_id)]


SERVICE_ACTIONS = {
    "view": "view_releases",
    "request": "request_release",
    "approve": "approve_release",
    "cab": "cab_approve",
    "security": "security_approve",
}


def delegated_service_ids(user: User) -> set[int]:
    """Services on which someone lent `user` their approval authority, for delegations in force.

    Only the delegators' own authority counts, never what was delegated to them: no chains.
    """
    ids: set[int] = set()
    now = timezone.now()
    for delegation in Delegation.objects.in_force(now).lent_to(user).select_related("delegator"):
        if delegation.service_id:
            ids.add(delegation.service_id)
            continue
        principal = delegation.delegator
        for action in ("approve", "cab"):
            ids.update(Service.objects.restrict(principal, action).values_list("pk", flat=True))
        ids.update(principal.owned_services.values_list("pk", flat=True))
    return ids


def holds_everywhere(user: User, action: str) -> bool:
    """Whether `user` may perform `action` on every service (a role with no service scope).

    One query per request at most: the answer set is cached on the user object, as Django caches
    its own permission sets. Roles are granted to users directly, never through auth groups.
    """
    if not user.is_active:
        return False
    if user.is_superuser:
        return True
    cached = getattr(user, "_signoff_global_codenames", None)
    if cached is None:
        cached = _global_codenames(user.pk)
        user._signoff_global_codenames = cached
    return SERVICE_ACTIONS[action] in cached


def _global_codenames(user_id: int) -> set[str]:
    # Plain SQL on purpose: this runs on every gate check, and building the equivalent ORM
    # query costs several times more than executing it. Table names come from the models'
    # metadata; every value is a bound parameter.
    link = User.user_permissions.through._meta.db_table
    codenames = tuple(SERVICE_ACTIONS.values())
    placeholders = ", ".join(["%s"] * len(codenames))
    sql = (
        f"SELECT p.codename FROM {Permission._meta.db_table} p "
        f"JOIN {link} up ON up.permission_id = p.id "
        f"WHERE up.user_id = %s AND p.codename IN ({placeholders})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [user_id, *codenames])
        return {row[0] for row in cursor.fetchall()}


class ServiceScoped:
    """For records scoped to one service or, with none, to all of them."""

    service_id: int | None

    @property
    def scope_label(self) -> str:
        if getattr(self, "team_id", None):
            label = f"{self.team.name}'s services"
        else:
            label = self.service.name if self.service_id else "all services"
        if getattr(self, "environment_id", None):
            label += f", {self.environment.name} only"
        return label


class Role(models.TextChoices):
    APPROVER = "approver", "Approver"
    RELEASE_MANAGER = "release_manager", "Release manager"
    CAB_MEMBER = "cab_member", "CAB member"
    SECURITY_APPROVER = "security_approver", "Security / privacy approver"
    AUDITOR = "auditor", "Auditor"
    ADMINISTRATOR = "administrator", "Administrator"


# Which service permissions each role carries. A role with no service scope holds them globally.
ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    Role.APPROVER: ("view_releases", "approve_release"),
    Role.RELEASE_MANAGER: ("view_releases", "request_release"),
    Role.CAB_MEMBER: ("view_releases", "cab_approve"),
    Role.SECURITY_APPROVER: ("view_releases", "security_approve"),
    Role.AUDITOR: ("view_releases",),
    Role.ADMINISTRATOR: ("view_releases", "request_release"),
}


class RoleAssignment(ServiceScoped, models.Model):
    """The record of a role grant; the permissions themselves live in django-guardian.

    Written only by `governance.authority.services.grant_role` / `revoke_role`, which keep both
    in step.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="role_assignments")
    role = models.CharField(max_length=20, choices=Role.choices)
    service = models.ForeignKey(
        Service,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="role_assignments",
        help_text="Empty means every service.",
    )
    team = models.ForeignKey(
        Team,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="role_assignments",
        help_text="Every service this team owns (as primary owner), now and later.",
    )
    environment = models.ForeignKey(
        Environment,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="role_assignments",
        help_text="Only releases to this environment; empty means every environment.",
    )
    reason = models.TextField()
    granted_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    granted_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Revoked automatically at this time; empty never expires."
    )

    class Meta:
        ordering = ["user__username", "role"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "role", "service", "team", "environment"],
                nulls_distinct=False,
                name="unique_role_per_scope",
            ),
            models.CheckConstraint(
                condition=Q(service__isnull=True) | Q(team__isnull=True),
                name="role_on_a_service_or_a_team",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} — {self.get_role_display()} on {self.scope_label}"


class DelegationQuerySet(models.QuerySet):
    def in_force(self, at: datetime) -> DelegationQuerySet:
        """Delegations whose window contains `at` and that nobody revoked."""
        return self.filter(revoked_at__isnull=True, starts_at__lte=at, ends_at__gt=at)

    def overlapping(self, starts_at: datetime, ends_at: datetime) -> DelegationQuerySet:
        return self.filter(revoked_at__isnull=True, starts_at__lt=ends_at, ends_at__gt=starts_at)

    def covering(self, service: Service) -> DelegationQuerySet:
        """Delegations whose scope includes `service` (no service means all of it)."""
        return self.filter(Q(service__isnull=True) | Q(service=service))

    def lent_to(self, user: User) -> DelegationQuerySet:
        """Delegations `user` may act under: from an active person, and not set up by `user`.

        Nobody becomes able to decide through an administrative act of their own, so a
        delegation its own delegate arranged never counts, however it was written.
        """
        return self.filter(delegate=user, delegator__is_active=True).exclude(created_by=user)


class Delegation(ServiceScoped, models.Model):
    """A person's approval authority lent to another person for a window, during an absence.

    The delegate acts on the delegator's own authority only: authority received through a
    delegation is never passed on (no chains). Decisions made under it record both people.
    """

    delegator = models.ForeignKey(User, on_delete=models.CASCADE, related_name="delegations_given")
    delegate = models.ForeignKey(
        User, on_delete=models.CASCADE, related_name="delegations_received"
    )
    service = models.ForeignKey(
        Service,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="delegations",
        help_text="Empty means all of the delegator's authority.",
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reason = models.TextField()
    created_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = DelegationQuerySet.as_manager()

    class Meta:
        ordering = ["-starts_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=models.F("starts_at")), name="delegation_window_positive"
            ),
            models.CheckConstraint(
                condition=~Q(delegator=models.F("delegate")), name="delegation_not_to_self"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.delegator} → {self.delegate} ({self.scope_label})"


def global_permission(codename: str) -> Permission:
    """The model-level permission used for roles that span every service."""
    return Permission.objects.get(content_type__app_label="governance", codename=codename)


# --- Identity provisioning (SCIM 2.0 from Okta / Microsoft Entra ID) ----------------------------


class AccessReview(models.Model):
    """One campaign (quarterly, or started by an administrator) over all role grants."""

    name = models.CharField(max_length=100)
    started_at = models.DateTimeField(default=timezone.now)
    started_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    due_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return self.name


class AccessReviewItem(ServiceScoped, models.Model):
    """One role grant as it stood when the campaign started, with what the review found."""

    class Outcome(models.TextChoices):
        PENDING = "pending", "To certify"
        KEEP = "keep", "Kept"
        REVOKE = "revoke", "Revoked"

    class Finding(models.TextChoices):
        """What a review found about a grant: the code is stored, the label is shown."""

        ORPHANED = "orphaned", "Orphaned"
        UNUSED = "unused", "Unused for 90 days"
        EXCESSIVE = "excessive", "Excessive"
        NO_EXPIRY = "no_expiry", "No expiry"
        GRANTOR_NOT_ADMIN = "grantor_not_admin", "Grantor no longer an administrator"

    review = models.ForeignKey(AccessReview, on_delete=models.CASCADE, related_name="items")
    # The grant itself may be revoked later; the item keeps what it was.
    assignment = models.ForeignKey(
        RoleAssignment, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    role = models.CharField(max_length=20, choices=Role.choices)
    service = models.ForeignKey(
        Service, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    granted_by = models.CharField(max_length=150, blank=True)
    granted_at = models.DateTimeField()
    findings = models.JSONField(default=list, help_text="[{code, text}] found at campaign start.")
    # The same codes as ",orphaned,unused," so that lists can filter on them in any database.
    finding_codes = models.CharField(max_length=200, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.PENDING)
    decided_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["review", "user__username", "role"]

    def __str__(self) -> str:
        return f"{self.user} {self.role} ({self.outcome})"

    @property
    def labelled_findings(self) -> list[dict[str, str]]:
        """The findings with the label of each code: `[{code, label, text}]`."""
        return [{**finding, "label": finding_label(finding["code"])} for finding in self.findings]


def finding_label(code: str) -> str:
    """The words for a finding code; a code no longer known still reads as words."""
    if code in AccessReviewItem.Finding.values:
        return AccessReviewItem.Finding(code).label
    return code.replace("_", " ").capitalize()
