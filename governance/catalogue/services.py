"""The administrators' catalogue: people, teams, services, environments and vendors, in pages.

Every save goes through `save_entry`, which writes the change and a ledger entry naming the
fields that changed (ownership decides who may approve, so it belongs in the evidence too);
django-auditlog keeps the field-level history as well.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from django import forms
from django.db import transaction
from django.db.models import Model, Q, QuerySet

from governance import ledger
from governance.exceptions import PermissionDenied
from governance.forms import TIME_ZONES, ComplianceTagListField
from governance.models import Environment, Service, Team, User, Vendor
from governance.services import is_administrator, revoke_user_tokens, sync_team_grants

FRAMEWORKS = Service.ComplianceFramework


class ServiceForm(forms.ModelForm):
    """A service; its compliance tags as checkboxes of the known frameworks plus other tags."""

    compliance_tags = forms.MultipleChoiceField(
        choices=FRAMEWORKS.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Compliance frameworks",
    )
    other_compliance_tags = ComplianceTagListField(
        required=False,
        max_length=300,
        label="Other compliance tags",
        help_text="Comma-separated, e.g. FEDRAMP, NIS2: saved upper-case, as policies see them.",
    )

    class Meta:
        model = Service
        fields = [
            "name",
            "slug",
            "description",
            "tier",
            "team",
            "co_owning_teams",
            "owners",
            "vendor",
            "compliance_tags",
        ]
        widgets = {
            "description": forms.Textarea(attrs={"rows": 3}),
            "co_owning_teams": forms.CheckboxSelectMultiple,
            "owners": forms.SelectMultiple(attrs={"size": 8}),
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.stored_tags = stored_tags(self.instance)
        known = [tag for tag in self.stored_tags if tag in FRAMEWORKS.values]
        self.initial["compliance_tags"] = known
        others = [tag for tag in self.stored_tags if tag not in known]
        self.initial["other_compliance_tags"] = ", ".join(others)

    def clean(self) -> dict:
        data = super().clean()
        if "compliance_tags" in data and "other_compliance_tags" in data:
            data["compliance_tags"] = self._merged_tags(
                data["compliance_tags"], data["other_compliance_tags"]
            )
        return data

    def _merged_tags(self, checked: list[str], typed: list[str]) -> list[str]:
        # Known frameworks in their usual order (also when typed), then the others as typed.
        known = [tag for tag in FRAMEWORKS.values if tag in {*checked, *typed}]
        tags = known + [tag for tag in typed if tag not in known]
        # The same tags in another order are no change: the stored list stays as it is.
        return self.stored_tags if sorted(tags) == sorted(self.stored_tags) else tags

    @property
    def changed_data(self) -> list[str]:
        """The two tag inputs count as one field, changed only if the tags are."""
        changed = [name for name in super().changed_data if "compliance_tags" not in name]
        tags = getattr(self, "cleaned_data", {}).get("compliance_tags", self.stored_tags)
        return changed + (["compliance_tags"] if tags != self.stored_tags else [])


def stored_tags(service: Service) -> list[str]:
    """A service's compliance tags as stored (the old JSON input may have left a bare string)."""
    tags = service.compliance_tags
    if isinstance(tags, str):
        return [tags]
    return [str(tag) for tag in tags] if isinstance(tags, list) else []


class TeamForm(forms.ModelForm):
    class Meta:
        model = Team
        fields = ["name", "slug", "members"]
        widgets = {"members": forms.SelectMultiple(attrs={"size": 12})}


class PersonForm(forms.ModelForm):
    time_zone = forms.ChoiceField(choices=[(tz, tz) for tz in TIME_ZONES])

    class Meta:
        model = User
        fields = [
            "first_name",
            "last_name",
            "email",
            "time_zone",
            "working_hours_start",
            "working_hours_end",
            "is_active",
        ]


class EnvironmentForm(forms.ModelForm):
    class Meta:
        model = Environment
        fields = ["name", "slug", "risk", "regulated", "order"]


class VendorForm(forms.ModelForm):
    support_url = forms.URLField(required=False, assume_scheme="https", label="Support URL")

    class Meta:
        model = Vendor
        fields = [
            "name",
            "slug",
            "contact_name",
            "contact_email",
            "support_url",
            "notice_period_hours",
            "approval_turnaround_hours",
        ]


class Tags(tuple):
    """A cell listing tags, shown as badges."""

    badges = True


def tagged(tag: str) -> Q:
    """Services carrying `tag`. JSON containment has no SQLite version, so this matches the tag
    as a quoted string in the stored JSON text: tags hold no quotes, so no tag matches another."""
    return Q(compliance_tags__icontains=f'"{tag}"')


def compliance_tags_in_use() -> list[str]:
    """The known frameworks, then every other tag a service carries: the list's tag filter."""
    used = {
        str(tag)
        for tags in Service.objects.values_list("compliance_tags", flat=True)
        if isinstance(tags, list)
        for tag in tags
    }
    return [*FRAMEWORKS.values, *sorted(used - set(FRAMEWORKS.values))]


@dataclass(frozen=True)
class Section:
    """One catalogue page: what it lists, how it searches and filters, and its edit form."""

    title: str
    model: type[Model]
    form: type[forms.ModelForm]
    search: tuple[str, ...]
    columns: tuple[tuple[str, str], ...]
    # A lookup the value is given to, or a function making the condition from the value.
    filters: dict[str, str | Callable[[object], Q]] = field(default_factory=dict)
    related: tuple[str, ...] = ()
    can_add: bool = True
    # What one entry is called in page titles ("Edit service payments-api"); the model's name
    # unless that reads badly (a User is a "person" here).
    singular: str = ""

    @property
    def entry_name(self) -> str:
        return self.singular or str(self.model._meta.verbose_name)

    def rows(self, filters: dict) -> QuerySet:
        """The entries matching `filters`: the cleaned data of a valid `CatalogueFilterForm`."""
        rows = self.model.objects.select_related(*self.related).all()
        text = filters.get("q")
        if text:
            query = Q()
            for name in self.search:
                query |= Q(**{f"{name}__icontains": text})
            rows = rows.filter(query)
        for name, lookup in self.filters.items():
            # False (inactive people) is a filter too; only an absent value means "any".
            if filters.get(name) in (None, ""):
                continue
            value = filters[name]
            rows = rows.filter(lookup(value) if callable(lookup) else Q(**{lookup: value}))
        return rows

    def cells(self, row: Model) -> list:
        """The row's values for the columns; lists (compliance tags) become `Tags`."""
        values = [getattr(row, attr) for attr, _ in self.columns]
        return [Tags(value) if isinstance(value, list) else value for value in values]


SECTIONS = {
    "services": Section(
        "Services",
        Service,
        ServiceForm,
        ("name", "slug", "description"),
        (
            ("name", "Service"),
            ("get_tier_display", "Tier"),
            ("team", "Primary team"),
            ("vendor", "Vendor"),
            ("compliance_tags", "Compliance"),
        ),
        filters={"team": "team__slug", "tier": "tier", "tag": tagged},
        related=("team", "vendor"),
    ),
    "teams": Section(
        "Teams", Team, TeamForm, ("name", "slug"), (("name", "Team"), ("slug", "Slug"))
    ),
    "people": Section(
        "People",
        User,
        PersonForm,
        ("username", "first_name", "last_name", "email"),
        (
            ("username", "Username"),
            ("display_name", "Name"),
            ("email", "E-mail"),
            ("time_zone", "Time zone"),
            ("is_active", "Active"),
        ),
        filters={"team": "teams__slug", "active": "is_active"},
        can_add=False,
        singular="person",
    ),
    "environments": Section(
        "Environments",
        Environment,
        EnvironmentForm,
        ("name", "slug"),
        (("name", "Environment"), ("get_risk_display", "Risk"), ("regulated", "Regulated")),
    ),
    "vendors": Section(
        "Vendors",
        Vendor,
        VendorForm,
        ("name", "slug", "contact_name", "contact_email"),
        (
            ("name", "Vendor"),
            ("contact_name", "Contact"),
            ("contact_email", "E-mail"),
            ("notice_period_hours", "Notice (hours)"),
            ("approval_turnaround_hours", "Decide within (hours)"),
        ),
    ),
}


def save_entry(*, form: forms.ModelForm, actor: User, section: str) -> Model:
    """Save a validated catalogue form and record what changed, in one transaction."""
    if not is_administrator(actor):
        raise PermissionDenied("Only administrators edit the catalogue.")
    _refuse_self_empowerment(form, actor)
    creating = form.instance.pk is None
    previous_team = form.initial.get("team")
    with transaction.atomic():
        entry = form.save()
        if isinstance(entry, Service) and (creating or "team" in form.changed_data):
            # Team-wide grants follow a service to its new team, and leave the old one.
            for team in Team.objects.filter(pk__in=[entry.team_id, previous_team]):
                sync_team_grants(team)
        if isinstance(entry, User) and "is_active" in form.changed_data and not entry.is_active:
            # Switched off here as by SCIM: the person's tokens die for good.
            revoke_user_tokens(
                user=entry, source=actor.username, reason="Deactivated in the catalogue"
            )
        ledger.append(
            kind=f"catalogue.{'created' if creating else 'updated'}",
            subject=f"{entry._meta.model_name}:{entry.pk}",
            actor=actor.username,
            payload={"section": section, "entry": str(entry), "fields": sorted(form.changed_data)},
        )
    return entry


def _refuse_self_empowerment(form: forms.ModelForm, actor: User) -> None:
    """Nobody becomes able to decide through an administrative act of their own.

    Service owners approve where the policy says so, and team membership decides who counts for
    a team: an administrator never adds themselves to either; another administrator must.
    """
    for name, label in (("owners", "an owner of this service"), ("members", "a team member")):
        if name not in form.cleaned_data:
            continue
        before = set(form.initial.get(name) or [])
        before = {getattr(person, "pk", person) for person in before}
        if actor.pk in {p.pk for p in form.cleaned_data[name]} and actor.pk not in before:
            raise PermissionDenied(
                f"You cannot make yourself {label}: it would let you approve through your own "
                "administrative act. Ask another administrator.",
                fields={name: ["You cannot add yourself."]},
            )
