"""Permission matrix of the pipeline API: every endpoint by every persona.

The release under test is dave's payments-api release to production, requested by ci-bot.

- 401: no credentials.
- 404: the release is outside the caller's scope; the API does not confirm that it exists. Adding
  evidence or deployments needs the *request* role, so for someone who may only look, those are
  out of scope too (the queryset is restricted per action).
- 400 on create: the service is not one the caller may request releases for (a field error).
- 403: in scope, but segregation of duties forbids it: ci-bot requested the release, an auditor
  only looks, the CAB stage opens after the service stage. An auditor acting as alice's delegate
  (the delegation predates the auditor role) and an administrator holding a delegation they
  arranged for themselves decide nothing either.
- withdraw answers 200 and withdraws the request for those who may (the requester, anyone who may
  request releases of the service); approvers and auditors cannot.
- again (request again) is 409 for those who may, because the release under test is still
  pending; everyone else is refused first. revoke is 409 for everyone in scope: nobody has an
  approval there to take back (taking back another's is covered in test_revoke_approval).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from governance.authority.services import create_delegation
from governance.models import Delegation, Role
from tests import factories

MATRIX = """
endpoint     anon  outsider  other_appr  pipeline  approver  auditor  cab  aud_delegate  admin_self
list         401   200       200         200       200       200      200  200           200
create       401   400       400         201       400       400      400  400           201
detail       401   404       404         200       200       200      200  200           200
gate         401   404       404         200       200       200      200  200           200
evidence     401   404       404         201       404       404      404  404           201
decisions    401   404       404         403       201       403      403  403           403
deployments  401   404       404         201       404       404      404  404           201
withdraw     401   404       404         200       403       403      403  403           200
again        401   404       404         409       403       403      403  403           409
revoke       401   404       404         409       409       409      409  409           409
"""

# Which fixture plays each persona (anonymous has none).
PERSONAS = {
    "anon": None,
    "outsider": "outsider",
    "other_appr": "other_service_approver",
    "pipeline": "pipeline_bot",
    "approver": "approver",
    "auditor": "auditor",
    "cab": "cab_member",
    "aud_delegate": "auditor_delegate",
    "admin_self": "admin_self_delegate",
}


@pytest.fixture
def auditor_delegate(approver):
    """frank holds alice's authority by delegation, and was made an auditor afterwards."""
    frank = factories.UserFactory(username="frank")
    now = timezone.now()
    create_delegation(
        delegator=approver,
        delegate=frank,
        service=None,
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(days=1),
        reason="annual leave",
        actor=approver,
    )
    factories.grant(frank, Role.AUDITOR)
    return frank


@pytest.fixture
def admin_self_delegate(approver):
    """An administrator holding alice's authority through a delegation they arranged themselves
    (written straight to the database: the delegation service refuses it)."""
    ada = factories.UserFactory(username="ada")
    factories.grant(ada, Role.ADMINISTRATOR)
    now = timezone.now()
    Delegation.objects.create(
        delegator=approver,
        delegate=ada,
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(days=1),
        reason="covering",
        created_by=ada,
    )
    return ada


ENDPOINTS = {
    "list": lambda api, r: api.get("/api/v1/releases/"),
    "create": lambda api, r: api.post("/api/v1/releases/", factories.release_body()),
    "detail": lambda api, r: api.get(f"/api/v1/releases/{r.pk}/"),
    "gate": lambda api, r: api.get(f"/api/v1/releases/{r.pk}/gate"),
    "evidence": lambda api, r: api.post(
        f"/api/v1/releases/{r.pk}/evidence/",
        {"kind": "security-scan", "status": "passed", "summary": {"critical": 0}},
    ),
    "decisions": lambda api, r: api.post(
        f"/api/v1/releases/{r.pk}/decisions/",
        {"decision": "approve", "rationale": "Reviewed.", "digest": r.digest},
    ),
    "withdraw": lambda api, r: api.post(
        f"/api/v1/releases/{r.pk}/withdraw/", {"reason": "Superseded by 2.14.1."}
    ),
    "again": lambda api, r: api.post(f"/api/v1/releases/{r.pk}/request-again/", {}),
    "revoke": lambda api, r: api.post(
        f"/api/v1/releases/{r.pk}/decisions/revoke/", {"reason": "Changed my mind."}
    ),
    "deployments": lambda api, r: api.post(
        f"/api/v1/releases/{r.pk}/deployments/",
        {"status": "succeeded", "url": "https://deploy.example.com/runs/1"},
    ),
}


def parse_matrix(table: str) -> list[tuple[str, str, int]]:
    """(endpoint, persona, expected status) for every cell of the table above."""
    header, *rows = (line.split() for line in table.strip().splitlines())
    return [
        (row[0], persona, int(status))
        for row in rows
        for persona, status in zip(header[1:], row[1:], strict=True)
    ]


CASES = parse_matrix(MATRIX)


def test_the_matrix_covers_every_endpoint_and_persona():
    assert {(e, p) for e, p, _ in CASES} == {(e, p) for e in ENDPOINTS for p in PERSONAS}


@pytest.mark.parametrize(
    ("endpoint", "persona", "expected"), CASES, ids=[f"{e}-{p}" for e, p, _ in CASES]
)
def test_permission_matrix(
    request, production_release, other_service_approver, api, endpoint, persona, expected
):
    fixture = PERSONAS[persona]
    client = api(request.getfixturevalue(fixture) if fixture else None)
    counts = factories.state_counts()
    snapshot = factories.approval_snapshot(production_release)

    response = ENDPOINTS[endpoint](client, production_release)

    assert response.status_code == expected, response.content
    assert response["Content-Type"] == "application/json"
    if expected >= 400:
        assert set(response.json()["error"]) == {"code", "message", "fields"}
    if expected == 201:
        assert factories.state_counts() != counts
    elif endpoint == "withdraw" and expected == 200:
        assert factories.approval_snapshot(production_release)["status"] == "withdrawn"
    else:
        assert factories.state_counts() == counts
        assert factories.approval_snapshot(production_release) == snapshot


@pytest.mark.parametrize(
    ("persona", "visible"),
    [
        ("outsider", 0),
        ("other_appr", 0),
        ("pipeline", 1),
        ("approver", 1),
        ("auditor", 1),
        ("cab", 1),
    ],
)
def test_the_list_shows_only_releases_in_scope(
    request, production_release, other_service_approver, api, persona, visible
):
    client = api(request.getfixturevalue(PERSONAS[persona]))

    data = client.get("/api/v1/releases/").json()

    assert data["count"] == visible
    assert [r["id"] for r in data["results"]] == [production_release.pk] * visible


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/releases/not-a-number/",
        "/api/v1/releases/1,2/gate",
        "/api/v1/no-such-endpoint/",
        "/integrations/azure/releases/abc/check",
    ],
)
def test_an_api_path_no_url_matches_answers_the_error_document(pipeline_bot, api, path):
    response = api(pipeline_bot).get(path)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "error": {"code": "not_found", "message": "Not found.", "fields": {}}
    }


def test_a_page_no_url_matches_stays_the_html_page(client):
    response = client.get("/approvals/releases/not-a-number/")

    assert response.status_code == 404
    assert response["Content-Type"] == "text/html; charset=utf-8"
