"""Invalid fields say so to assistive technology: aria-invalid, and aria-describedby naming the
field's error message (and its help text), for every form the pages render.

This happens in one place. Django 5.2's BoundField adds `aria-invalid="true"` to a field with
errors and `aria-describedby="<id>_helptext <id>_error"` (on the fieldset for checkbox groups);
the crispy-bootstrap5 templates that render our forms give the help text and the error block
exactly those ids. These tests hold both halves together, so an upgrade of either that breaks the
pairing fails here rather than silently.
"""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.template import Context, Template
from django.urls import reverse

from governance.authority.forms import DelegationForm, RoleGrantForm
from governance.catalogue import sections
from governance.identity.forms import ScimTokenForm, StepUpCodeForm
from governance.people.forms import ProfileForm

pytestmark = pytest.mark.django_db

CONTROLS = {"input", "select", "textarea"}


class Elements(HTMLParser):
    """Every element's attributes, and the text inside each element that has an id."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.text_by_id: dict[str, str] = {}
        self._open_ids: list[tuple[str, str]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        self.elements.append((tag, attributes))
        if "id" in attributes and tag not in CONTROLS:
            self.text_by_id.setdefault(attributes["id"], "")
            self._open_ids.append((tag, attributes["id"]))

    def handle_endtag(self, tag: str) -> None:
        if self._open_ids and self._open_ids[-1][0] == tag:
            self._open_ids.pop()

    def handle_data(self, data: str) -> None:
        for _, element_id in self._open_ids:
            self.text_by_id[element_id] += data

    def named(self, name: str) -> list[dict[str, str]]:
        return [
            attrs for tag, attrs in self.elements if tag in CONTROLS and attrs.get("name") == name
        ]

    def described(self) -> list[dict[str, str]]:
        return [attrs for _, attrs in self.elements if "aria-describedby" in attrs]


def crispy(form) -> str:
    return Template("{% load crispy_forms_tags %}{{ form|crispy }}").render(Context({"form": form}))


def assert_errors_announced(form, html: str) -> None:
    """Each field in error: its controls are aria-invalid, and they (or their fieldset) are
    described by the help text and the error message, both present with those ids."""
    page = Elements(html)
    fields_in_error = [form[name] for name in form.errors if name != "__all__"]
    assert fields_in_error, "the form under test should have field errors"
    for field in fields_in_error:
        controls = page.named(field.html_name)
        assert controls, f"{field.name} is not rendered"
        assert all(c.get("aria-invalid") == "true" for c in controls), field.name
        wanted = [f"{field.auto_id}_helptext"] if field.help_text else []
        wanted.append(f"{field.auto_id}_error")
        holders = controls if not field.use_fieldset else page.described()
        described_by = [h["aria-describedby"].split() for h in holders]
        assert wanted in described_by, (field.name, described_by)
        for element_id in wanted:
            assert element_id in page.text_by_id, f"nothing has id {element_id}"
        assert str(field.errors[0]) in page.text_by_id[f"{field.auto_id}_error"]


def test_role_grant_form_announces_its_errors(org):
    form = RoleGrantForm(data={"team": "999999"})
    assert_errors_announced(form, crispy(form))


def test_delegation_form_announces_errors_and_help_text(org, administrator):
    form = DelegationForm(data={"delegator": "999999"}, user=administrator, for_anyone=True)
    assert form.fields["delegator"].help_text
    assert_errors_announced(form, crispy(form))


def test_profile_and_step_up_forms_announce_their_errors(org, approver):
    profile = ProfileForm(data={"time_zone": "Mars/Olympus_Mons"}, instance=approver)
    assert_errors_announced(profile, crispy(profile))
    code = StepUpCodeForm(data={"code": "12"})
    assert_errors_announced(code, crispy(code))


@pytest.mark.parametrize("section", sorted(sections.SECTIONS))
def test_catalogue_forms_announce_their_errors(org, section):
    # An unknown team among the co-owners puts the services' checkbox group (a fieldset) in error.
    form = sections.SECTIONS[section].form(data={"co_owning_teams": ["999999"]})
    assert_errors_announced(form, crispy(form))


def test_scim_token_page_announces_a_missing_name(client, administrator):
    client.force_login(administrator)
    response = client.post(reverse("governance:scim_tokens"), {"name": " "})
    assert response.status_code == 400
    assert_errors_announced(response.context["form"], response.content.decode())
    assert isinstance(response.context["form"], ScimTokenForm)


def test_refused_sign_in_points_both_inputs_at_the_message(client, approver):
    response = client.post(reverse("login"), {"username": "alice", "password": "wrong"})
    page = Elements(response.content.decode())
    for name in ("username", "password"):
        (control,) = page.named(name)
        assert (control["aria-invalid"], control["aria-describedby"]) == ("true", "sign-in-error")
    assert "didn't match" in page.text_by_id["sign-in-error"]


def test_a_decision_without_rationale_points_the_rationale_at_its_message(
    client, production_release, approver
):
    """The release page's decision box is written out by hand (it lives in the htmx panel), so it
    pairs the attributes itself; this holds it to the same rule as every other form."""
    client.force_login(approver)
    url = reverse("approvals:release_decide", args=[production_release.pk])

    response = client.post(url, {"verdict": "approve", "rationale": " "}, HTTP_HX_REQUEST="true")

    assert response.status_code == 422
    assert_errors_announced(response.context["form"], response.content.decode())


def test_a_form_wide_error_is_announced_when_it_appears(org, approver):
    profile = ProfileForm(
        data={"time_zone": "UTC", "working_hours_start": 18, "working_hours_end": 9},
        instance=approver,
    )
    assert profile.non_field_errors()

    alerts = [a for t, a in Elements(crispy(profile)).elements if a.get("role") == "alert"]

    assert len(alerts) == 1 and "alert-danger" in alerts[0]["class"]
