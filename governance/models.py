"""Who and what is governed: people, teams, services, environments, roles, policies, the ledger."""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pgtrigger
from django.contrib.auth.models import AbstractUser, Permission
from django.db import connection, models
from django.db.models import Q
from django.utils import timezone
from django_scim.models import AbstractSCIMGroupMixin, AbstractSCIMUserMixin

if TYPE_CHECKING:
    from datetime import datetime


class User(AbstractSCIMUserMixin, AbstractUser):
    """A person (or a pipeline's service account) known to Signoff.

    SCIM-ready from the first migration: identity providers provision these rows later.
    """

    time_zone = models.CharField(max_length=64, default="UTC")
    working_hours_start = models.PositiveSmallIntegerField(default=9)
    working_hours_end = models.PositiveSmallIntegerField(default=17)
    is_service_account = models.BooleanField(
        default=False, help_text="A pipeline identity: may request releases, never approves."
    )

    class Meta:
        ordering = ["username"]

    def __str__(self) -> str:
        return self.get_full_name() or self.username

    @property
    def display_name(self) -> str:
        return self.get_full_name() or self.username

    def is_available_at(self, moment: datetime) -> bool:
        """True when `moment` falls on a weekday inside this person's working hours."""
        local = moment.astimezone(ZoneInfo(self.time_zone))
        return (
            local.weekday() < 5 and self.working_hours_start <= local.hour < self.working_hours_end
        )


class Team(models.Model):
    """A group of people that owns services."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(unique=True)
    members = models.ManyToManyField(User, related_name="teams", blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Environment(models.Model):
    """A deployment target (dev, staging, production) with its risk class."""

    class Risk(models.TextChoices):
        LOW = "low", "Low"
        MEDIUM = "medium", "Medium"
        HIGH = "high", "High"

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(unique=True)
    risk = models.CharField(max_length=10, choices=Risk.choices, default=Risk.LOW)
    regulated = models.BooleanField(default=False)
    order = models.PositiveSmallIntegerField(default=0, help_text="Position in the promotion path.")

    class Meta:
        ordering = ["order", "name"]

    def __str__(self) -> str:
        return self.name


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

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(unique=True)
    description = models.TextField(blank=True)
    tier = models.PositiveSmallIntegerField(choices=Tier.choices, default=Tier.TIER_3)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="services")
    owners = models.ManyToManyField(User, related_name="owned_services", blank=True)
    compliance_tags = models.JSONField(
        default=list, blank=True, help_text='Regimes in scope, e.g. ["SOX", "PCI"].'
    )

    objects = ServiceQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        permissions = [
            ("view_releases", "View the service's releases"),
            ("request_release", "Request approval for releases of the service"),
            ("approve_release", "Approve releases of the service"),
            ("cab_approve", "Decide CAB stages"),
        ]

    def __str__(self) -> str:
        return self.name


SERVICE_ACTIONS = {
    "view": "view_releases",
    "request": "request_release",
    "approve": "approve_release",
    "cab": "cab_approve",
}


def delegated_service_ids(user: User) -> set[int]:
    """Services on which someone lent `user` their approval authority, for delegations in force.

    Only the delegators' own authority counts, never what was delegated to them: no chains.
    """
    ids: set[int] = set()
    now = timezone.now()
    for delegation in (
        Delegation.objects.in_force(now)
        .filter(delegate=user, delegator__is_active=True)
        .select_related("delegator")
    ):
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


class Role(models.TextChoices):
    APPROVER = "approver", "Approver"
    RELEASE_MANAGER = "release_manager", "Release manager"
    CAB_MEMBER = "cab_member", "CAB member"
    AUDITOR = "auditor", "Auditor"
    ADMINISTRATOR = "administrator", "Administrator"


# Which service permissions each role carries. A role with no service scope holds them globally.
ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    Role.APPROVER: ("view_releases", "approve_release"),
    Role.RELEASE_MANAGER: ("view_releases", "request_release"),
    Role.CAB_MEMBER: ("view_releases", "cab_approve"),
    Role.AUDITOR: ("view_releases",),
    Role.ADMINISTRATOR: ("view_releases", "request_release"),
}


class RoleAssignment(models.Model):
    """The record of a role grant; the permissions themselves live in django-guardian.

    Written only by `governance.services.grant_role` / `revoke_role`, which keep both in step.
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
    reason = models.TextField()
    granted_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    granted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["user__username", "role"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "role", "service"], name="unique_role_per_scope"
            ),
            models.UniqueConstraint(
                fields=["user", "role"],
                condition=Q(service__isnull=True),
                name="unique_global_role",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} — {self.get_role_display()} on {self.scope_label}"

    @property
    def scope_label(self) -> str:
        return self.service.name if self.service_id else "all services"


class DelegationQuerySet(models.QuerySet):
    def in_force(self, at: datetime) -> DelegationQuerySet:
        """Delegations whose window contains `at` and that nobody revoked."""
        return self.filter(revoked_at__isnull=True, starts_at__lte=at, ends_at__gt=at)

    def overlapping(self, starts_at: datetime, ends_at: datetime) -> DelegationQuerySet:
        return self.filter(revoked_at__isnull=True, starts_at__lt=ends_at, ends_at__gt=starts_at)

    def covering(self, service: Service) -> DelegationQuerySet:
        """Delegations whose scope includes `service` (no service means all of it)."""
        return self.filter(Q(service__isnull=True) | Q(service=service))


class Delegation(models.Model):
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

    @property
    def scope_label(self) -> str:
        return self.service.name if self.service_id else "all services"


class ApiTokenQuerySet(models.QuerySet):
    def active(self) -> ApiTokenQuerySet:
        return self.filter(revoked_at__isnull=True, user__is_active=True)


class ApiToken(models.Model):
    """A bearer token for the pipeline API. Only its SHA-256 is stored; the secret is shown once."""

    PREFIX = "so_"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    key_hash = models.CharField(max_length=64, unique=True)
    key_prefix = models.CharField(max_length=12)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.key_prefix}…)"

    @staticmethod
    def hash_key(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    @classmethod
    def generate_key(cls) -> str:
        return cls.PREFIX + secrets.token_urlsafe(32)


class Policy(models.Model):
    """A policy-as-code document (YAML rules with CEL conditions); each save is a new version."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(unique=True)
    description = models.TextField(blank=True)
    source = models.TextField(help_text="YAML: rules with `when:` (CEL) and `require:`.")
    is_active = models.BooleanField(default=True)
    version = models.PositiveIntegerField(default=0, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "policies"

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class PolicyVersion(models.Model):
    """An immutable published version of a policy; approval plans reference the one they used."""

    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    source = models.TextField()
    checksum = models.CharField(max_length=64)
    comment = models.TextField(blank=True)
    created_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["policy", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "number"], name="unique_policy_version")
        ]

    def __str__(self) -> str:
        return f"{self.policy.name} v{self.number}"


class LedgerHead(models.Model):
    """The single row holding the chain's tip; locked to serialise appends."""

    seq = models.BigIntegerField(default=0)
    entry_hash = models.CharField(max_length=64, default="0" * 64)

    def __str__(self) -> str:
        return f"ledger head #{self.seq}"


@pgtrigger.register(
    pgtrigger.Protect(name="ledger_append_only", operation=pgtrigger.Update | pgtrigger.Delete)
)
class LedgerEntry(models.Model):
    """One append-only, hash-chained, Ed25519-signed record of an approval-relevant event."""

    seq = models.BigIntegerField(unique=True)
    recorded_at = models.DateTimeField()
    kind = models.CharField(max_length=64)
    subject = models.CharField(max_length=100, db_index=True)
    actor = models.CharField(max_length=150, blank=True)
    payload = models.JSONField(default=dict)
    prev_hash = models.CharField(max_length=64)
    entry_hash = models.CharField(max_length=64, unique=True)
    key_id = models.CharField(max_length=16)
    signature = models.CharField(max_length=128)

    class Meta:
        ordering = ["seq"]
        verbose_name_plural = "ledger entries"

    def __str__(self) -> str:
        return f"#{self.seq} {self.kind} {self.subject}"


def global_permission(codename: str) -> Permission:
    """The model-level permission used for roles that span every service."""
    return Permission.objects.get(content_type__app_label="governance", codename=codename)


# --- Identity provisioning (SCIM 2.0 from Okta / Microsoft Entra ID) ----------------------------


class ScimTokenQuerySet(models.QuerySet):
    def active(self) -> ScimTokenQuerySet:
        return self.filter(revoked_at__isnull=True)


class ScimToken(models.Model):
    """The bearer secret an identity provider presents on /scim/v2/. Stored as SHA-256, shown once.

    Not tied to a person: provisioning acts as the system, and the ledger names the token.
    """

    PREFIX = "scim_"

    name = models.CharField(max_length=100)
    key_hash = models.CharField(max_length=64, unique=True)
    key_prefix = models.CharField(max_length=12)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ScimTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "SCIM token"

    def __str__(self) -> str:
        return f"{self.name} ({self.key_prefix}…)"

    @staticmethod
    def hash_key(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    @classmethod
    def generate_key(cls) -> str:
        return cls.PREFIX + secrets.token_urlsafe(32)


class IdentityGroup(AbstractSCIMGroupMixin, models.Model):
    """A group pushed by the identity provider; mapped to roles by `GroupRoleMapping`.

    Membership changes only through `governance.identity`, which grants and revokes mapped roles.
    """

    name = models.CharField(max_length=254)
    members = models.ManyToManyField(User, related_name="identity_groups", blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class GroupRoleMapping(models.Model):
    """Members of `group` hold `role` on `service` (empty: every service) while they are members."""

    group = models.ForeignKey(IdentityGroup, on_delete=models.CASCADE, related_name="role_mappings")
    role = models.CharField(max_length=20, choices=Role.choices)
    service = models.ForeignKey(
        Service,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="group_role_mappings",
        help_text="Empty means every service.",
    )
    reason = models.TextField()
    created_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["group__name", "role"]
        constraints = [
            models.UniqueConstraint(
                fields=["group", "role", "service"], name="unique_group_role_per_scope"
            ),
            models.UniqueConstraint(
                fields=["group", "role"],
                condition=Q(service__isnull=True),
                name="unique_group_global_role",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.group} → {self.get_role_display()} on {self.scope_label}"

    @property
    def scope_label(self) -> str:
        return self.service.name if self.service_id else "all services"


class MappedRoleGrant(models.Model):
    """Links a role grant to the group mapping(s) that made it.

    Only grants with such a link are ever revoked by identity sync: a role an administrator granted
    by hand has none. The grant is revoked when its last link goes. PROTECT on the mapping: removing
    a mapping must go through `governance.identity.remove_role_mapping`, which revokes first.
    """

    mapping = models.ForeignKey(GroupRoleMapping, on_delete=models.PROTECT, related_name="grants")
    assignment = models.ForeignKey(
        RoleAssignment, on_delete=models.CASCADE, related_name="mapped_grants"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["mapping", "assignment"], name="unique_mapped_grant")
        ]

    def __str__(self) -> str:
        return f"{self.assignment} via {self.mapping.group}"
