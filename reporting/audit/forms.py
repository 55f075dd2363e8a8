"""The audit trail's filters, read from the query string."""

from __future__ import annotations

from django import forms
from django.db import connection

from governance.models import Environment, LedgerEntry, Service

CONFIGURATION = "configuration"

# The distinct kinds, read through the (kind, seq) index one kind at a time (a "loose index
# scan"): a plain DISTINCT would read every entry of a long ledger.
KINDS_SQL = """
WITH RECURSIVE kinds(kind) AS (
    (SELECT kind FROM {table} ORDER BY kind LIMIT 1)
    UNION ALL
    SELECT (SELECT kind FROM {table} WHERE kind > kinds.kind ORDER BY kind LIMIT 1)
    FROM kinds WHERE kinds.kind IS NOT NULL
)
SELECT kind FROM kinds WHERE kind IS NOT NULL
"""


def ledger_kinds() -> list[str]:
    """Every kind of event the ledger holds, in alphabetical order."""
    if connection.vendor != "postgresql":
        return sorted(set(LedgerEntry.objects.values_list("kind", flat=True).distinct()))
    with connection.cursor() as cursor:
        cursor.execute(KINDS_SQL.format(table=LedgerEntry._meta.db_table))
        return [row[0] for row in cursor.fetchall()]


class AuditFilterForm(forms.Form):
    """Service, environment, person, period and kind; every filter is optional."""

    service = forms.ModelChoiceField(
        queryset=Service.objects.order_by("name"), to_field_name="slug", required=False
    )
    environment = forms.ModelChoiceField(
        queryset=Environment.objects.order_by("name"), to_field_name="slug", required=False
    )
    person = forms.CharField(
        max_length=150, required=False, help_text="A username, exactly as it is written."
    )
    start = forms.DateField(
        label="From", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    end = forms.DateField(
        label="To", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    kind = forms.ChoiceField(label="Event kind", required=False)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        kinds = [(kind, kind) for kind in ledger_kinds()]
        self.fields["kind"].choices = [
            ("", "Every kind"),
            (CONFIGURATION, "configuration change"),
            *kinds,
        ]
        for field in self.fields.values():
            css = "form-select" if isinstance(field.widget, forms.Select) else "form-control"
            field.widget.attrs["class"] = f"{css} form-select-sm form-control-sm"

    def clean_person(self) -> str:
        return self.cleaned_data["person"].strip()

    def clean(self) -> dict:
        cleaned = super().clean()
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end and end < start:
            self.add_error("end", "The period ends before it starts.")
        return cleaned
