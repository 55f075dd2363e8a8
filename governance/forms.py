"""Forms for governance pages: validation and normalisation only."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from django import forms
from django.db.models import Q
from django.utils import timezone

from governance.models import Service, User


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

    def __init__(self, *args, user: User, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["delegate"].queryset = User.objects.filter(
            is_active=True, is_service_account=False
        ).exclude(pk=user.pk)
        mine = (
            Q(pk__in=Service.objects.restrict(user, "approve"))
            | Q(pk__in=Service.objects.restrict(user, "cab"))
            | Q(owners=user)
        )
        self.fields["service"].queryset = Service.objects.filter(mine).distinct()

    def _localise(self, name: str):
        value = self.cleaned_data[name]
        if value is not None and timezone.is_naive(value):
            value = value.replace(tzinfo=ZoneInfo(self.user.time_zone))
        return value

    def clean_starts_at(self):
        return self._localise("starts_at")

    def clean_ends_at(self):
        return self._localise("ends_at")
