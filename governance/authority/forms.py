"""Forms for governance pages: validation and normalisation only."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from django import forms
from django.db.models import Q
from django.utils import timezone

from governance.authority.models import AccessReviewItem, Environment, Role, Service
from governance.authority.selectors import auditor_grants
from governance.people.models import Team, User


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
