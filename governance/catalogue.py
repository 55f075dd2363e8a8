"""The administrators' catalogue: people, teams, services and environments, edited in pages.

Every save goes through `save_entry`, which writes the change and a ledger entry naming the
fields that changed (ownership decides who may approve, so it belongs in the evidence too);
django-auditlog keeps the field-level history as well.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django import forms
from django.db import transaction
from django.db.models import Model, Q, QuerySet

from governance import ledger
from governance.exceptions import PermissionDenied
from governance.forms import TIME_ZONES
from governance.models import Environment, Service, Team, User
from governance.services import is_administrator, revoke_user_tokens, sync_team_grants


class ServiceForm(forms.ModelForm):
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
            "compliance_tags": forms.Textarea(attrs={"rows": 1}),
            "co_owning_teams": forms.CheckboxSelectMultiple,
            "owners": forms.SelectMultiple(attrs={"size": 8}),
        }


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


@dataclass(frozen=True)
class Section:
    """One catalogue page: what it lists, how it searches and filters, and its edit form."""

    title: str
    model: type[Model]
    form: type[forms.ModelForm]
    search: tuple[str, ...]
    columns: tuple[tuple[str, str], ...]
    filters: dict[str, str] = field(default_factory=dict)
    related: tuple[str, ...] = ()
    can_add: bool = True

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
            if filters.get(name) not in (None, ""):
                rows = rows.filter(**{lookup: filters[name]})
        return rows


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
        ),
        filters={"team": "team__slug", "tier": "tier"},
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
    ),
    "environments": Section(
        "Environments",
        Environment,
        EnvironmentForm,
        ("name", "slug"),
        (("name", "Environment"), ("get_risk_display", "Risk"), ("regulated", "Regulated")),
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
