"""The administrators' catalogue pages: people, teams, services, environments and vendors."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from approvals.context import policy_context
from governance.models import LedgerEntry, Service, Target, Vendor
from tests import factories

pytestmark = pytest.mark.django_db
SECTIONS = ["services", "teams", "people", "environments", "targets", "vendors"]


@pytest.mark.parametrize("section", SECTIONS)
@pytest.mark.parametrize(
    ("persona", "status"),
    [
        ("anonymous", 302),
        ("outsider", 403),
        ("approver", 403),
        ("auditor", 403),
        ("administrator", 200),
    ],
)
def test_catalogue_permission_matrix(client, org, request, section, persona, status):
    if persona != "anonymous":
        client.force_login(request.getfixturevalue(persona))
    assert client.get(reverse("governance:catalogue_list", args=[section])).status_code == status


def test_search_and_filters(client, org, administrator, service, low_tier_service):
    client.force_login(administrator)
    url = reverse("governance:catalogue_list", args=["services"])
    body = client.get(url, {"tier": 1}).content.decode()
    assert "payments-api" in body and "web-frontend" not in body
    body = client.get(url, {"q": "web"}).content.decode()
    assert "web-frontend" in body and "payments-api" not in body


def test_ownership_is_edited_and_recorded(client, org, administrator, service, approver):
    client.force_login(administrator)
    other = factories.TeamFactory(slug="ledger", name="Ledger")
    url = reverse("governance:catalogue_edit", args=["services", service.pk])
    form = {
        "name": service.name,
        "slug": service.slug,
        "description": "",
        "tier": 1,
        "team": service.team.pk,
        "co_owning_teams": [other.pk],
        "owners": [approver.pk],
        "vendor": "",
        "compliance_tags": ["SOX"],
    }
    assert client.post(url, form).status_code == 302
    service = Service.objects.get(pk=service.pk)
    assert list(service.co_owning_teams.all()) == [other]
    assert list(service.owners.all()) == [approver]
    entry = LedgerEntry.objects.get(kind="catalogue.updated")
    assert {"co_owning_teams", "owners"} <= set(entry.payload["fields"])


def test_bad_input_is_a_form_error_and_changes_nothing(client, org, administrator, service):
    client.force_login(administrator)
    url = reverse("governance:catalogue_edit", args=["services", service.pk])
    response = client.post(url, {"name": "", "slug": "bad slug!", "tier": 9})
    assert response.status_code == 400
    assert Service.objects.get(pk=service.pk).name == "payments-api"
    assert not LedgerEntry.objects.filter(kind__startswith="catalogue.").exists()


def test_people_are_not_created_here(client, org, administrator):
    client.force_login(administrator)
    assert client.get(reverse("governance:catalogue_add", args=["people"])).status_code == 404
    assert client.get(reverse("governance:catalogue_list", args=["nope"])).status_code == 404


def test_list_query_count_does_not_grow_with_rows(client, org, administrator, team):
    client.force_login(administrator)
    url = reverse("governance:catalogue_list", args=["services"])
    with CaptureQueriesContext(connection) as few:
        client.get(url)
    for index in range(15):
        factories.ServiceFactory(slug=f"svc-{index}", team=team)
    with CaptureQueriesContext(connection) as many:
        client.get(url)
    assert len(few) == len(many)


# --- Bad filters: the page says what is wrong, never a 500 (invariant 7) -----------------------


@pytest.mark.parametrize(
    ("section", "params", "error"),
    [
        ("services", {"tier": "1'"}, "Tier: Select a valid choice. 1&#x27; is not one of"),
        ("services", {"tier": "9"}, "Tier: Select a valid choice. 9 is not one of"),
        ("services", {"tier": "-1"}, "Tier: Select a valid choice. -1 is not one of"),
        ("services", {"tier": "9" * 30}, "Tier: Select a valid choice."),
        ("services", {"q": "\x00"}, "Search: Null characters are not allowed."),
        ("teams", {"q": "pay\x00"}, "Search: Null characters are not allowed."),
        ("services", {"q": "x" * 101}, "Search: Ensure this value has at most 100 characters"),
        ("services", {"team": "pay\x00"}, "Team: Null characters are not allowed."),
        ("services", {"team": "a b"}, "Team: Enter a valid “slug”"),
        ("people", {"active": "maybe"}, "Active: Select a valid choice. maybe is not one of"),
        ("services", {"tag": "a b"}, "Compliance tag: Not a valid tag: “a b”."),
        ("services", {"tag": "SOX,PCI"}, "Compliance tag: Choose one tag."),
    ],
    ids=[
        "tier-quote",
        "tier-unknown",
        "tier-negative",
        "tier-huge",
        "q-nul",
        "q-nul-teams",
        "q-long",
        "team-nul",
        "team-not-a-slug",
        "active-junk",
        "tag-with-space",
        "two-tags",
    ],
)
def test_a_bad_filter_is_a_400_page_naming_the_problem(
    client, org, administrator, service, section, params, error
):
    client.force_login(administrator)
    before = LedgerEntry.objects.count()

    response = client.get(reverse("governance:catalogue_list", args=[section]), params)

    assert response.status_code == 400
    body = response.content.decode()
    assert error in body
    assert "payments-api" not in body  # No rows for a filter that could not be applied.
    assert LedgerEntry.objects.count() == before


@pytest.mark.parametrize(("active", "listed"), [("true", True), ("false", False)])
def test_people_filter_by_active(client, org, administrator, active, listed):
    client.force_login(administrator)
    factories.UserFactory(username="gone", is_active=False)

    response = client.get(reverse("governance:catalogue_list", args=["people"]), {"active": active})

    assert response.status_code == 200
    body = response.content.decode()
    assert ("mallory" in body) is listed
    assert (">gone<" in body) is not listed


def test_services_filter_by_team_and_tier_together(
    client, org, administrator, service, low_tier_service, other_service
):
    client.force_login(administrator)
    url = reverse("governance:catalogue_list", args=["services"])

    body = client.get(url, {"team": "payments", "tier": "2", "q": " bill "}).content.decode()

    assert "billing" in body and "payments-api" not in body and "web-frontend" not in body


# --- Compliance tags: the known frameworks as checkboxes, other tags typed ---------------------


def service_form(service, **changes) -> dict:
    return {
        "name": service.name,
        "slug": service.slug,
        "description": service.description,
        "tier": service.tier,
        "team": service.team.pk,
        "vendor": "",
        "compliance_tags": [],
        "other_compliance_tags": "",
        **changes,
    }


def test_the_edit_page_offers_the_frameworks_as_checkboxes(client, org, administrator, service):
    Service.objects.filter(pk=service.pk).update(compliance_tags=["SOX", "FEDRAMP", "NIS2"])
    client.force_login(administrator)

    response = client.get(reverse("governance:catalogue_edit", args=["services", service.pk]))

    form = response.context["form"]
    assert [value for value, _ in form.fields["compliance_tags"].choices] == [
        "SOX",
        "PCI",
        "HIPAA",
        "GDPR",
        "ISO27001",
        "SOC2",
    ]
    assert form["compliance_tags"].value() == ["SOX"]
    assert form["other_compliance_tags"].value() == "FEDRAMP, NIS2"
    body = " ".join(response.content.decode().split())
    assert 'type="checkbox" class="form-check-input" name="compliance_tags" value="SOX"' in body
    assert 'id="id_compliance_tags_0" checked> <label for="id_compliance_tags_0"' in body
    assert 'name="other_compliance_tags" value="FEDRAMP, NIS2"' in body


def test_tags_are_saved_normalised_and_recorded(client, org, administrator, service):
    client.force_login(administrator)
    url = reverse("governance:catalogue_edit", args=["services", service.pk])

    response = client.post(
        url,
        service_form(
            service,
            compliance_tags=["HIPAA", "SOX"],
            other_compliance_tags=" fedramp , Nis2,, sox, FEDRAMP ,pci",
        ),
    )

    assert response.status_code == 302
    service.refresh_from_db()
    assert service.compliance_tags == ["SOX", "PCI", "HIPAA", "FEDRAMP", "NIS2"]
    entry = LedgerEntry.objects.get(kind="catalogue.updated")
    assert entry.payload["fields"] == ["compliance_tags"]


def test_unchanged_tags_are_no_change(client, org, administrator, service):
    Service.objects.filter(pk=service.pk).update(compliance_tags=["NIS2", "SOX"])
    client.force_login(administrator)
    url = reverse("governance:catalogue_edit", args=["services", service.pk])

    response = client.post(
        url,
        service_form(
            service,
            description="Card payments",
            compliance_tags=["SOX"],
            other_compliance_tags="NIS2",
        ),
    )

    assert response.status_code == 302
    service.refresh_from_db()
    assert service.compliance_tags == ["NIS2", "SOX"]  # as stored: the same tags, no change
    assert LedgerEntry.objects.get(kind="catalogue.updated").payload["fields"] == ["description"]


def test_tags_are_cleared_by_unticking_and_emptying(client, org, administrator, service):
    client.force_login(administrator)
    url = reverse("governance:catalogue_edit", args=["services", service.pk])

    assert client.post(url, service_form(service)).status_code == 302

    assert Service.objects.get(pk=service.pk).compliance_tags == []


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        (
            {"other_compliance_tags": "FEDRAMP, ISO 27001, a/b"},
            "Not a valid tag: “ISO 27001”, “a/b”. A tag holds letters, digits and hyphens, "
            "at most 30 (e.g. PCI-DSS); separate tags with commas.",
        ),
        ({"other_compliance_tags": "straße"}, "Not a valid tag: “straße”."),
        ({"other_compliance_tags": "-PCI"}, "Not a valid tag: “-PCI”."),
        ({"other_compliance_tags": "X" * 31}, "Not a valid tag: “" + "X" * 31 + "”."),
        ({"other_compliance_tags": "A," * 151}, "Ensure this value has at most 300 characters"),
        ({"compliance_tags": ["FEDRAMP"]}, "Select a valid choice. FEDRAMP is not one of"),
    ],
    ids=["space-and-slash", "not-ascii", "leading-hyphen", "too-long", "too-many", "not-a-box"],
)
def test_a_bad_tag_is_a_form_error_and_changes_nothing(
    client, org, administrator, service, changes, error
):
    client.force_login(administrator)
    url = reverse("governance:catalogue_edit", args=["services", service.pk])

    response = client.post(url, service_form(service, **changes))

    assert response.status_code == 400
    assert error in response.content.decode()
    assert Service.objects.get(pk=service.pk).compliance_tags == ["SOX"]
    assert not LedgerEntry.objects.filter(kind__startswith="catalogue.").exists()


def test_a_new_service_gets_its_tags(client, org, administrator, team):
    client.force_login(administrator)

    response = client.post(
        reverse("governance:catalogue_add", args=["services"]),
        {"name": "Claims", "slug": "claims", "tier": 2, "team": team.pk}
        | {"compliance_tags": ["HIPAA"], "other_compliance_tags": "hitrust"},
    )

    assert response.status_code == 302
    assert Service.objects.get(slug="claims").compliance_tags == ["HIPAA", "HITRUST"]
    assert LedgerEntry.objects.get(kind="catalogue.created").payload["entry"] == "Claims"


def test_the_list_shows_tags_as_badges_and_filters_by_tag(
    client, org, administrator, service, low_tier_service, other_service
):
    Service.objects.filter(pk=other_service.pk).update(compliance_tags=["PCI", "NIS2"])
    client.force_login(administrator)
    url = reverse("governance:catalogue_list", args=["services"])

    page = client.get(url)
    body = page.content.decode()
    assert 'href="?tag=SOX" title="Only services tagged SOX">SOX</a>' in body
    assert 'href="?tag=NIS2" title="Only services tagged NIS2">NIS2</a>' in body
    assert page.context["tags"] == ["SOX", "PCI", "HIPAA", "GDPR", "ISO27001", "SOC2", "NIS2"]

    for tag, listed in [("sox", "payments-api"), ("NIS2", "billing"), ("SOC2", None)]:
        response = client.get(url, {"tag": tag})
        assert response.status_code == 200
        shown = [row.slug for row, _ in response.context["table"]]
        assert shown == ([listed] if listed else [])


def test_the_tag_filter_does_not_match_part_of_a_tag(client, org, administrator, service):
    Service.objects.filter(pk=service.pk).update(compliance_tags=["SOX2", "XSOX"])
    client.force_login(administrator)

    response = client.get(reverse("governance:catalogue_list", args=["services"]), {"tag": "SOX"})

    assert response.context["table"] == []


# --- Vendors: a catalogue section like the others, read-only in /admin/ ------------------------


@pytest.fixture
def vendor(db):
    return Vendor.objects.create(
        name="Acme Payroll",
        slug="acme-payroll",
        contact_name="Priya Raman",
        contact_email="releases@acme.example",
    )


def vendor_form(vendor=None, **changes) -> dict:
    form = {
        "name": "Acme Payroll",
        "slug": "acme-payroll",
        "contact_name": "Priya Raman",
        "contact_email": "releases@acme.example",
        "support_url": "",
        "notice_period_hours": 72,
        "approval_turnaround_hours": 24,
    }
    if vendor is not None:
        form |= {"name": vendor.name, "slug": vendor.slug}
    return form | changes


def vendor_state() -> list[tuple]:
    return list(Vendor.objects.order_by("pk").values_list())


@pytest.mark.parametrize(
    ("persona", "read", "write", "allowed"),
    [
        ("anonymous", 302, 302, False),  # to the sign-in page
        ("outsider", 403, 403, False),
        ("approver", 403, 403, False),
        ("auditor", 403, 403, False),
        ("administrator", 200, 302, True),
    ],
)
def test_vendor_pages_permission_matrix(
    client, org, vendor, request, persona, read, write, allowed
):
    if persona != "anonymous":
        client.force_login(request.getfixturevalue(persona))
    before = vendor_state()
    urls = [
        reverse("governance:catalogue_add", args=["vendors"]),
        reverse("governance:catalogue_edit", args=["vendors", vendor.pk]),
    ]

    assert [client.get(url).status_code for url in urls] == [read, read]
    created = client.post(urls[0], vendor_form(name="Globex", slug="globex"))
    edited = client.post(urls[1], vendor_form(vendor, notice_period_hours=1))

    assert (created.status_code, edited.status_code) == (write, write)
    if allowed:
        assert Vendor.objects.get(slug="globex").name == "Globex"
        assert Vendor.objects.get(pk=vendor.pk).notice_period_hours == 1
    else:
        assert vendor_state() == before
        assert not LedgerEntry.objects.filter(kind__startswith="catalogue.").exists()


def test_a_vendor_is_created_and_recorded(client, org, administrator):
    client.force_login(administrator)

    response = client.post(
        reverse("governance:catalogue_add", args=["vendors"]),
        vendor_form(support_url="support.acme.example", notice_period_hours=48),
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("governance:catalogue_list", args=["vendors"])
    vendor = Vendor.objects.get()
    assert (vendor.support_url, vendor.notice_period_hours) == ("https://support.acme.example", 48)
    entry = LedgerEntry.objects.get(kind="catalogue.created")
    assert (entry.subject, entry.actor) == (f"vendor:{vendor.pk}", "ada")
    assert entry.payload["section"] == "vendors"
    assert entry.payload["entry"] == "Acme Payroll"


def test_a_vendor_edit_records_the_fields_that_changed(client, org, administrator, vendor):
    client.force_login(administrator)
    url = reverse("governance:catalogue_edit", args=["vendors", vendor.pk])

    response = client.post(url, vendor_form(vendor, notice_period_hours=24, contact_name="Sam"))

    assert response.status_code == 302
    vendor.refresh_from_db()
    assert (vendor.notice_period_hours, vendor.contact_name) == (24, "Sam")
    entry = LedgerEntry.objects.get(kind="catalogue.updated")
    assert entry.subject == f"vendor:{vendor.pk}"
    assert entry.payload["fields"] == ["contact_name", "notice_period_hours"]


@pytest.mark.parametrize(
    ("changes", "field", "error"),
    [
        ({"name": ""}, "name", "This field is required."),
        ({"slug": "acme payroll"}, "slug", "Enter a valid “slug”"),
        ({"contact_email": "priya@"}, "contact_email", "Enter a valid email address."),
        ({"support_url": "not a url"}, "support_url", "Enter a valid URL."),
        ({"notice_period_hours": -1}, "notice_period_hours", "greater than or equal to 0"),
        ({"notice_period_hours": "soon"}, "notice_period_hours", "Enter a whole number."),
        ({"approval_turnaround_hours": 2**31}, "approval_turnaround_hours", "less than or equal"),
        ({"name": "Globex", "slug": "globex"}, "name", "Vendor with this Name already exists."),
    ],
    ids=["no-name", "bad-slug", "bad-email", "bad-url", "negative", "not-a-number", "huge", "dup"],
)
def test_bad_vendor_input_is_a_form_error_and_changes_nothing(
    client, org, administrator, vendor, changes, field, error
):
    Vendor.objects.create(name="Globex", slug="globex-corp")
    client.force_login(administrator)
    before = vendor_state()

    response = client.post(
        reverse("governance:catalogue_edit", args=["vendors", vendor.pk]),
        vendor_form(vendor, **changes),
    )

    assert response.status_code == 400
    assert any(error in message for message in response.context["form"].errors[field])
    assert vendor_state() == before
    assert not LedgerEntry.objects.filter(kind__startswith="catalogue.").exists()


def test_vendors_are_listed_and_searched(client, org, administrator, vendor):
    Vendor.objects.create(name="Globex", slug="globex", contact_name="Hank")
    client.force_login(administrator)
    url = reverse("governance:catalogue_list", args=["vendors"])

    page = client.get(url)
    assert [row.slug for row, _ in page.context["table"]] == ["acme-payroll", "globex"]
    assert page.context["table"][0][1] == [
        "Acme Payroll",
        "Priya Raman",
        "releases@acme.example",
        72,
        24,
    ]
    assert 'href="/governance/catalogue/vendors/new/"' in page.content.decode()
    searched = client.get(url, {"q": "priya"})
    assert [row.slug for row, _ in searched.context["table"]] == ["acme-payroll"]


@pytest.fixture
def superuser(administrator):
    type(administrator).objects.filter(pk=administrator.pk).update(is_superuser=True)
    return administrator


def test_the_django_admin_shows_vendors_read_only(client, org, superuser, vendor):
    client.force_login(superuser)
    before = vendor_state()

    assert client.get(reverse("admin:governance_vendor_changelist")).status_code == 200
    change = reverse("admin:governance_vendor_change", args=[vendor.pk])
    page = client.get(change)
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert client.post(change, vendor_form(vendor, name="Renamed")).status_code == 403
    add = client.post(reverse("admin:governance_vendor_add"), vendor_form(slug="new"))
    assert add.status_code == 403
    delete = reverse("admin:governance_vendor_delete", args=[vendor.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert vendor_state() == before


def test_a_target_added_in_the_catalogue_is_recorded_and_seen_by_policies(
    client, production_release, administrator, production
):
    client.force_login(administrator)
    url = reverse("governance:catalogue_add", args=["targets"])
    form = {
        "environment": production.pk,
        "name": "Payments cluster",
        "slug": "payments-eks",
        "platform": "kubernetes",
        "details": "EKS, eu-west-1",
    }

    assert client.post(url, form).status_code == 302

    target = Target.objects.get()
    assert (target.environment, target.platform) == (production, "kubernetes")
    assert LedgerEntry.objects.filter(kind="catalogue.created").exists()
    environment = policy_context(production_release)["environment"]
    assert environment["platforms"] == ["kubernetes", "on_premises"]
    assert environment["targets"] == [{"slug": "payments-eks", "platform": "kubernetes"}]


def test_a_target_with_an_unknown_platform_is_refused_and_changes_nothing(
    client, org, administrator, production
):
    client.force_login(administrator)
    url = reverse("governance:catalogue_add", args=["targets"])

    response = client.post(
        url, {"environment": production.pk, "name": "X", "slug": "x", "platform": "mainframe"}
    )

    assert response.status_code == 400
    assert not Target.objects.exists()
