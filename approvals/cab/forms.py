"""The CAB queue's filters: kind, service, overdue only."""

from __future__ import annotations

from django import forms

from approvals.cab.queue import KINDS, QueueFilter
from changes.cab.models import AgendaItem
from governance.models import Service


class QueueFilterForm(forms.Form):
    kind = forms.ChoiceField(
        required=False,
        choices=[("", "Every kind"), *[(k, AgendaItem.Kind(k).label) for k in KINDS]],
    )
    service = forms.ModelChoiceField(
        queryset=Service.objects.none(),
        required=False,
        to_field_name="slug",
        empty_label="Every service",
    )
    overdue = forms.BooleanField(required=False, label="Overdue only")

    def __init__(self, *args, services=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Only services the member sits on the CAB for are offered (and accepted).
        self.fields["service"].queryset = (
            services if services is not None else Service.objects.all()
        ).order_by("name")

    def chosen(self) -> QueueFilter:
        """The filters as given; an invalid form filters nothing."""
        if not self.is_valid():
            return QueueFilter()
        data = self.cleaned_data
        return QueueFilter(data["kind"], data["service"], data["overdue"])
