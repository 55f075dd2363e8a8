"""Django admin for governance data. Writes that need an audit trail go through services."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.db import models, transaction
from django.urls import reverse
from django.utils.html import format_html

from governance.authority.models import Environment, RoleAssignment, Service
from governance.authority.services import grant_role, revoke_role
from governance.catalogue.models import Vendor
from governance.exceptions import GovernanceError
from governance.identity import services as identity
from governance.identity.models import ApiToken, GroupRoleMapping, IdentityGroup, ScimToken
from governance.identity.tokens import revoke_token, revoke_user_tokens
from governance.ledger.models import LedgerEntry
from governance.notifications.models import OutboundEvent
from governance.people.models import Team, User
from governance.policy import engine as policy
from governance.policy import services as policy_changes
from governance.policy.models import Policy, PolicyProposal, PolicyVersion


class ReadOnlyAdmin(admin.ModelAdmin):
    """For records that change only through services: browse, never edit."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class DistinctUsernameMixin:
    """Refuses a username taken or confusable with another (the rule SCIM provisioning follows)."""

    def clean_username(self) -> str:
        username = self.cleaned_data["username"]
        exclude = self.instance.pk if self.instance and self.instance.pk else None
        try:
            identity.check_username_free(username, exclude_pk=exclude)
        except GovernanceError as exc:
            raise forms.ValidationError(exc.message) from None
        return username


class UserAddForm(DistinctUsernameMixin, AdminUserCreationForm):
    class Meta(AdminUserCreationForm.Meta):
        model = User


class UserEditForm(DistinctUsernameMixin, UserChangeForm):
    class Meta(UserChangeForm.Meta):
        model = User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    form = UserEditForm
    add_form = UserAddForm

    def save_model(self, request, obj, form, change) -> None:
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            if change and "is_active" in form.changed_data and not obj.is_active:
                # Switched off here as by SCIM: the person's tokens die for good.
                revoke_user_tokens(
                    user=obj, source=request.user.username, reason="Deactivated in the admin"
                )

    list_display = [
        "username",
        "get_full_name",
        "email",
        "time_zone",
        "is_service_account",
        "is_active",
    ]
    list_filter = ["is_active", "is_service_account", "is_staff", "teams"]
    fieldsets = [
        *BaseUserAdmin.fieldsets,
        (
            "Signoff",
            {
                "fields": [
                    "time_zone",
                    "working_hours_start",
                    "working_hours_end",
                    "is_service_account",
                ]
            },
        ),
    ]


# Ownership and team membership decide who may approve: they are edited in the catalogue pages
# (/governance/catalogue/), which ledger every change and refuse self-empowerment.


@admin.register(Team)
class TeamAdmin(ReadOnlyAdmin):
    list_display = ["name", "slug"]
    search_fields = ["name", "slug"]


@admin.register(Service)
class ServiceAdmin(ReadOnlyAdmin):
    list_display = ["name", "tier", "team", "vendor", "compliance_tags"]
    list_filter = ["tier", "team", "vendor"]
    search_fields = ["name", "slug", "description"]


@admin.register(Environment)
class EnvironmentAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "risk", "regulated", "order"]


class RoleAssignmentForm(forms.ModelForm):
    class Meta:
        model = RoleAssignment
        fields = ["user", "role", "service", "reason"]


@admin.register(RoleAssignment)
class RoleAssignmentAdmin(admin.ModelAdmin):
    """Grants and revokes go through the governance services (guardian + ledger + SoD checks)."""

    form = RoleAssignmentForm
    list_display = ["user", "role", "scope_label", "granted_by", "granted_at"]
    list_filter = ["role", "service"]
    search_fields = ["user__username", "reason"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        data = form.cleaned_data
        try:
            grant_role(
                user=data["user"],
                role=data["role"],
                service=data["service"],
                reason=data["reason"],
                actor=request.user,
            )
        except GovernanceError as exc:
            self.message_user(request, exc.message, messages.ERROR)

    def delete_model(self, request, obj) -> None:
        revoke_role(assignment=obj, reason="Revoked in admin", actor=request.user)

    def delete_queryset(self, request, queryset) -> None:
        for assignment in queryset:
            self.delete_model(request, assignment)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "key_prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    readonly_fields = ["user", "name", "key_prefix", "created_at", "last_used_at", "revoked_at"]
    exclude = ["key_hash"]
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False  # Tokens are shown once: issue them with `manage.py issue_token`.

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset) -> None:
        revoked = 0
        for token in queryset.select_related("user"):
            try:
                revoked += revoke_token(
                    token=token, actor=request.user, reason="Revoked in the admin"
                )
            except GovernanceError as exc:
                self.message_user(request, exc.message, messages.ERROR)
                return
        self.message_user(request, f"Revoked {revoked} token(s).", messages.SUCCESS)


class PolicyForm(forms.ModelForm):
    comment = forms.CharField(
        required=False, help_text="What changed and why (kept with the version)."
    )

    class Meta:
        model = Policy
        fields = ["name", "slug", "description", "is_active", "source"]
        widgets = {
            "source": forms.Textarea(
                attrs={"rows": 30, "cols": 100, "style": "font-family: monospace"}
            )
        }

    def clean_source(self) -> str:
        # Browsers send textareas with CRLF; store what a git checkout of the policy would hold.
        source = self.cleaned_data["source"].replace("\r\n", "\n").rstrip() + "\n"
        try:
            policy.parse(source)
        except policy.PolicyError as exc:
            raise forms.ValidationError(str(exc)) from None
        return source


class PolicyVersionInline(admin.TabularInline):
    model = PolicyVersion
    fields = ["number", "comment", "created_by", "created_at", "checksum"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Policy)
class PolicyAdmin(admin.ModelAdmin):
    """A new policy's first version is written here. A published policy changes only through
    the policy editor or `policy_import`, which simulate the change: one that loosens a regulated
    environment goes to a second administrator, who must confirm the loosening. Editing the
    source here would be a way around that, so it is read-only once the policy exists."""

    form = PolicyForm
    list_display = ["name", "version", "is_active", "updated_at"]
    inlines = [PolicyVersionInline]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # Requests reference their policy version forever: deactivate instead.

    def get_readonly_fields(self, request, obj=None) -> tuple[str, ...]:
        return ("source", "change_it_in_the_editor") if obj else ()

    def get_exclude(self, request, obj=None) -> tuple[str, ...]:
        return ("comment",) if obj else ()

    @admin.display(description="To change the rules")
    def change_it_in_the_editor(self, obj: Policy) -> str:
        url = reverse("policy_editor:policy_edit", args=[obj.slug])
        return format_html(
            '<a href="{}">Open the policy editor</a>: it validates, shows the diff, simulates '
            "the change on past releases and proposes it (four eyes where needed).",
            url,
        )

    def save_model(self, request, obj, form, change) -> None:
        if change:
            obj.save()  # name, description, whether it is active: the rules stay as published
            return
        source = form.cleaned_data["source"]
        obj.source = ""
        obj.save()
        result = policy_changes.change_policy(
            policy_obj=obj,
            source=source,
            actor=request.user,
            comment=form.cleaned_data.get("comment", ""),
        )
        if isinstance(result, PolicyProposal):
            self.message_user(
                request,
                "You hold approval authority under this policy, so it waits for a second "
                "administrator at /governance/policies/.",
                messages.WARNING,
            )


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    """The ledger is append-only and written by services alone."""

    list_display = ["seq", "kind", "subject", "actor", "recorded_at"]
    list_filter = ["kind"]
    search_fields = ["subject", "actor"]


@admin.register(OutboundEvent)
class OutboundEventAdmin(ReadOnlyAdmin):
    """Events for other systems; each receiver's delivery is a Delivery row (the outbox page)."""

    list_display = ["created_at", "kind", "subject"]
    list_filter = ["kind"]
    search_fields = ["subject", "kind"]
    date_hierarchy = "created_at"


# --- Identity provisioning (SCIM) ----------------------------------------------------------------


@admin.register(IdentityGroup)
class IdentityGroupAdmin(ReadOnlyAdmin):
    """Groups and their members come from the identity provider; map them to roles below."""

    list_display = ["name", "scim_external_id", "created_at"]
    search_fields = ["name", "scim_external_id"]


@admin.register(GroupRoleMapping)
class GroupRoleMappingAdmin(admin.ModelAdmin):
    """Adding or removing a mapping grants or revokes the role for the group's members now."""

    list_display = ["group", "role", "scope_label", "created_by", "created_at"]
    list_filter = ["role", "service"]
    fields = ["group", "role", "service", "reason"]

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None  # Change a mapping by removing it and adding another.

    def save_model(self, request, obj, form, change) -> None:
        data = form.cleaned_data
        try:
            identity.add_role_mapping(
                group=data["group"],
                role=data["role"],
                service=data["service"],
                reason=data["reason"],
                actor=request.user,
            )
        except GovernanceError as exc:
            self.message_user(request, exc.message, messages.ERROR)

    def delete_model(self, request, obj) -> None:
        identity.remove_role_mapping(mapping=obj, actor=request.user)

    def delete_queryset(self, request, queryset) -> None:
        for mapping in queryset:
            self.delete_model(request, mapping)


@admin.register(ScimToken)
class ScimTokenAdmin(ReadOnlyAdmin):
    """Tokens are shown once: issue them on /governance/scim-tokens/ or with
    `manage.py issue_scim_token`."""

    list_display = ["name", "key_prefix", "created_by", "created_at", "last_used_at", "revoked_at"]
    exclude = ["key_hash"]
    actions = ["revoke"]

    def has_change_permission(self, request, obj=None) -> bool:
        return True  # For the revoke action; every field is read-only.

    def get_readonly_fields(self, request, obj=None) -> list[str]:
        return ["name", "key_prefix", "created_by", "created_at", "last_used_at", "revoked_at"]

    @admin.action(description="Revoke selected SCIM tokens")
    def revoke(self, request, queryset) -> None:
        for token in queryset:
            identity.revoke_scim_token(token=token, actor=request.user)


@admin.register(Vendor)
class VendorAdmin(ReadOnlyAdmin):
    """Edited in the catalogue pages (/governance/catalogue/vendors/), which ledger every change:
    a vendor's notice period and turnaround decide when its releases breach their SLA."""

    list_display = [
        "name",
        "contact_name",
        "contact_email",
        "notice_period_hours",
        "approval_turnaround_hours",
    ]
    search_fields = ["name", "contact_name", "contact_email"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}  # as the catalogue form
