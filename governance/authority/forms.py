"""Forms for governance pages: validation and normalisation only."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, available_timezones

from django import forms
from django.db.models import Q
from django.utils import timezone

from governance.models import AccessReviewItem, Environment, Role, ScimToken, Service, Team, User
from governance.selectors import auditor_grants

TIME_ZONES = sorted(available_timezones())


class ProfileForm(forms.ModelForm):
    """A person's time zone and working hours, used to route approvals to who is available."""

    time_zone = forms.ChoiceField(choices=[(tz, tz) for tz in TIME_ZONES])

    class Meta:
        model = User
        fields = ["time_zone", "working_hours_start", "working_hours_end"]
        labels = {"working_hours_start": "Working hours from", "working_hours_end": "until"}

    def clean(self) -> dict:
        data = super().clean()
        start, end = data.get("working_hours_start"), data.get("working_hours_end")
        if start is not None and end is not None and not 0 <= start < end <= 24:
            raise forms.ValidationError("Working hours must satisfy 0 ≤ from < until ≤ 24.")
        return data


class StepUpCodeForm(forms.Form):
    code = forms.RegexField(
        r"^\d{6,8}$",
        label="Code from your app",
        error_messages={"invalid": "Enter the 6-digit code your app shows."},
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "one-time-code"}),
    )


class DelegationForm(forms.Form):
    """Lend my approval authority to a colleague while I am away; times in my own time zone."""

    delegate = forms.ModelChoiceField(queryset=User.objects.none(), label="Delegate to")
    service = forms.ModelChoiceField(
        queryset=Service.objects.none(),
        required=False,
        empty_label="All my services",
        label="Scope",
    )
    starts_at = forms.DateTimeField(
        label="From", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    ends_at = forms.DateTimeField(
        label="Until", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    reason = forms.CharField(
        max_length=500, widget=forms.TextInput(attrs={"placeholder": "e.g. annual leave"})
    )

    def __init__(self, *args, user: User, for_anyone: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        people = User.objects.filter(is_active=True, is_service_account=False)
        # Only people who could hold approval authority: never auditors, never the person
        # filling in the form (an administrator arranging it cannot be its delegate either).
        self.fields["delegate"].queryset = people.exclude(pk=user.pk).exclude(
            pk__in=auditor_grants().values("user_id")
        )
        if for_anyone:
            # Administrators set delegations for people who are suddenly away (sick leave).
            self.fields = {
                "delegator": forms.ModelChoiceField(
                    queryset=people,
                    initial=user,
                    label="Whose authority",
                    help_text="Administrators may delegate for someone who is away.",
                ),
                **self.fields,
            }
        mine = (
            Q(pk__in=Service.objects.restrict(user, "approve"))
            | Q(pk__in=Service.objects.restrict(user, "cab"))
            | Q(owners=user)
        )
        self.fields["service"].queryset = (
            Service.objects.all() if for_anyone else Service.objects.filter(mine).distinct()
        )

    def _localise(self, name: str):
        value = self.cleaned_data[name]
        if value is not None and timezone.is_naive(value):
            value = value.replace(tzinfo=ZoneInfo(self.user.time_zone))
        return value

    def clean_starts_at(self):
        return self._localise("starts_at")

    def clean_ends_at(self):
        return self._localise("ends_at")


class RoleGrantForm(forms.Form):
    user = forms.ModelChoiceField(queryset=User.objects.filter(is_active=True), label="Person")
    role = forms.ChoiceField(choices=Role.choices)
    service = forms.ModelChoiceField(
        queryset=Service.objects.all(), required=False, empty_label="All services", label="Scope"
    )
    team = forms.ModelChoiceField(
        queryset=Team.objects.all(),
        required=False,
        empty_label="—",
        label="…or every service of a team",
        help_text="Instead of one service.",
    )
    environment = forms.ModelChoiceField(
        queryset=Environment.objects.all(),
        required=False,
        empty_label="Every environment",
        label="Environment",
    )
    reason = forms.CharField(max_length=500)
    expires_at = forms.DateTimeField(
        required=False,
        label="Expires (UTC, optional)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )


class RoleFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=100, label="Search")
    role = forms.ChoiceField(choices=[("", "Any role"), *Role.choices], required=False)
    service = forms.ModelChoiceField(
        queryset=Service.objects.all(), required=False, empty_label="Any scope"
    )


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=500)


# Policies compare tags as typed ("SOX" in service.compliance_tags): one spelling, upper-case.
COMPLIANCE_TAG = re.compile(r"[A-Z0-9][A-Z0-9-]{0,29}")
COMPLIANCE_TAG_HINT = "letters, digits and hyphens, at most 30 (e.g. PCI-DSS)"


def normalise_compliance_tags(text: str) -> list[str]:
    """Comma-separated tags, trimmed, upper-cased and de-duplicated in the order given."""
    typed = [part.strip() for part in text.split(",") if part.strip()]
    # ASCII first: upper() would turn "ß" into "SS" and make a tag nobody typed.
    bad = [t for t in typed if not (t.isascii() and COMPLIANCE_TAG.fullmatch(t.upper()))]
    if bad:
        raise forms.ValidationError(
            "Not a valid tag: %(tags)s. A tag holds %(hint)s; separate tags with commas.",
            code="invalid_tag",
            params={"tags": ", ".join(f"“{t}”" for t in bad), "hint": COMPLIANCE_TAG_HINT},
        )
    return list(dict.fromkeys(t.upper() for t in typed))


class ComplianceTagField(forms.CharField):
    """One compliance tag (a filter), normalised like the tags stored on services."""

    def clean(self, value) -> str:
        text = super().clean(value)
        if not text:
            return ""
        if "," in text:
            raise forms.ValidationError("Choose one tag.", code="invalid_tag")
        return normalise_compliance_tags(text)[0]


class ComplianceTagListField(forms.CharField):
    """Compliance tags typed as a comma-separated list; cleans to a list of tags."""

    def clean(self, value) -> list[str]:
        return normalise_compliance_tags(super().clean(value) or "")


class CatalogueFilterForm(forms.Form):
    """The catalogue list's search and filters, checked before any of them reaches a query.

    Raw query parameters used as lookups fail inside the database (`?tier=1'` is not a number,
    `?q=%00` is a NUL PostgreSQL refuses): validated here they become a form error instead.
    """

    q = forms.CharField(required=False, max_length=100, label="Search")
    team = forms.SlugField(required=False, max_length=50, label="Team")
    tier = forms.TypedChoiceField(
        choices=[("", "Any tier"), *Service.Tier.choices],
        coerce=int,
        empty_value=None,
        required=False,
        label="Tier",
    )
    active = forms.TypedChoiceField(
        choices=[("", "Active and inactive"), ("true", "Active"), ("false", "Inactive")],
        coerce=lambda value: value == "true",
        empty_value=None,
        required=False,
        label="Active",
    )
    tag = ComplianceTagField(required=False, max_length=30, label="Compliance tag")


class ScimTokenForm(forms.Form):
    """Issue a SCIM token: its name says which identity provider holds it."""

    name = forms.CharField(
        max_length=100,
        error_messages={"required": "Give the token a name, e.g. the identity provider's."},
        widget=forms.TextInput(attrs={"placeholder": "e.g. okta-production"}),
    )


class ScimTokenRevokeForm(forms.Form):
    """Revoke a SCIM token that still works; anything else is a form error, not a 404 or 500."""

    revoke = forms.ModelChoiceField(
        queryset=ScimToken.objects.active(),
        error_messages={
            "required": "No such token, or it is already revoked.",
            "invalid_choice": "No such token, or it is already revoked.",
        },
    )


class AccessReviewCertifyForm(forms.Form):
    """Keep or revoke the grants selected on an access review page, with one reason."""

    items = forms.ModelMultipleChoiceField(
        queryset=AccessReviewItem.objects.none(),
        error_messages={
            "required": "Select at least one grant.",
            "invalid_choice": "A selected grant is not one you can see in this review.",
            "invalid_pk_value": "A selected grant is not one you can see in this review.",
            "invalid_list": "Select at least one grant.",
        },
    )
    outcome = forms.ChoiceField(
        choices=[
            (AccessReviewItem.Outcome.KEEP, "Keep"),
            (AccessReviewItem.Outcome.REVOKE, "Revoke"),
        ],
        error_messages={
            "required": "Choose keep or revoke.",
            "invalid_choice": "Choose keep or revoke.",
        },
    )
    reason = forms.CharField(max_length=500, error_messages={"required": "A reason is required."})

    def __init__(self, *args, items, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["items"].queryset = items  # only what the reviewer may see: the rest is invalid
