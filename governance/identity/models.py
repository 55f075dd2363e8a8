"""Identity-provider objects (SCIM tokens, pushed groups and their role mappings) and the API's
bearer tokens."""

from __future__ import annotations

import hashlib
import secrets

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django_scim.models import AbstractSCIMGroupMixin

from governance.authority.models import Role, RoleAssignment, Service, ServiceScoped
from governance.people.models import User


class ScimTokenQuerySet(models.QuerySet):
    def active(self) -> ScimTokenQuerySet:
        return self.filter(revoked_at__isnull=True)


class BearerToken(models.Model):
    """A secret presented as `Authorization: Bearer …`: only its SHA-256 and first characters are
    stored, so the secret is shown once, at issue, and never again."""

    PREFIX = ""

    name = models.CharField(max_length=100)
    key_hash = models.CharField(max_length=64, unique=True)
    key_prefix = models.CharField(max_length=12)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.key_prefix}…)"

    @staticmethod
    def hash_key(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    @classmethod
    def generate_key(cls) -> str:
        return cls.PREFIX + secrets.token_urlsafe(32)


class ScimToken(BearerToken):
    """The bearer secret an identity provider presents on /scim/v2/.

    Not tied to a person: provisioning acts as the system, and the ledger names the token.
    """

    PREFIX = "scim_"

    created_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    objects = ScimTokenQuerySet.as_manager()

    class Meta(BearerToken.Meta):
        verbose_name = "SCIM token"


class IdentityGroup(AbstractSCIMGroupMixin, models.Model):
    """A group pushed by the identity provider; mapped to roles by `GroupRoleMapping`.

    Membership changes only through `governance.identity.services`, which grants and revokes
    mapped roles.
    """

    name = models.CharField(max_length=254)
    members = models.ManyToManyField(User, related_name="identity_groups", blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class GroupRoleMapping(ServiceScoped, models.Model):
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


class MappedRoleGrant(models.Model):
    """Links a role grant to the group mapping(s) that made it.

    Only grants with such a link are ever revoked by identity sync: a role an administrator granted
    by hand has none. The grant is revoked when its last link goes. PROTECT on the mapping: removing
    a mapping must go through `governance.identity.services.remove_role_mapping`, which revokes
    first.
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


class ApiTokenQuerySet(models.QuerySet):
    def active(self) -> ApiTokenQuerySet:
        return self.filter(revoked_at__isnull=True, user__is_active=True)


class ApiToken(BearerToken):
    """A bearer token for the pipeline API, carrying its owner's authority."""

    PREFIX = "so_"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")

    objects = ApiTokenQuerySet.as_manager()
