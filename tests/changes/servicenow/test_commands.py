"""`configure_integration servicenow`, `map_external servicenow` and `sync_servicenow`, the
last against a Table API stub this test serves on 127.0.0.1 (basic auth checked, paged)."""

from __future__ import annotations

import base64
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.core.management import CommandError, call_command

from changes.incidents.models import ExternalServiceMapping, Incident
from changes.records.models import ChangeRecord
from changes.servicenow.models import ServiceNowConfig
from changes.servicenow.services import token_matches
from governance.ledger.models import LedgerEntry
from tests.changes.servicenow.conftest import CI, change_request, display_all, incident

pytestmark = pytest.mark.django_db
USER, PASSWORD = "signoff.sync", "s3cret-pull-password"


def run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


class TableStub:
    """A ServiceNow instance's Table API: records per table, filtered by the sys_updated_on>=
    of sysparm_query, ordered by it, paged by sysparm_limit/sysparm_offset."""

    def __init__(self) -> None:
        self.tables: dict[str, list[dict]] = {"change_request": [], "incident": []}
        self.requests: list[dict] = []
        self.link_header = False  # page with Link: rel="next" instead of leaving it to offsets
        self.next_link: str | None = None  # a fixed next link, to point outside the instance
        self.fail_with: int | None = None
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stub.handle(self)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        self.requests.append({"path": parts.path, **query})
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return self.send(request, 401, {"error": {"message": "User Not Authenticated"}})
        if self.fail_with:
            return self.send(request, self.fail_with, {"error": {"message": "Boom"}})
        table = parts.path.removeprefix("/api/now/table/")
        since = query.get("sysparm_query", "").partition("^")[0].partition(">=")[2]
        records = sorted(
            (r for r in self.tables[table] if r["sys_updated_on"] >= since),
            key=lambda r: r["sys_updated_on"],
        )
        limit, offset = int(query["sysparm_limit"]), int(query.get("sysparm_offset", 0))
        page = records[offset : offset + limit]
        if query.get("sysparm_display_value") == "all":
            page = [display_all(record) for record in page]
        headers = {}
        if self.next_link:
            headers["Link"] = f'<{self.next_link}>;rel="next"'
        elif self.link_header and offset + limit < len(records):
            following = urlencode({**query, "sysparm_offset": offset + limit})
            headers["Link"] = f'<{self.url}{parts.path}?{following}>;rel="next"'
        self.send(request, 200, {"result": page}, headers)

    def send(self, request, status: int, body: dict, headers: dict | None = None) -> None:
        raw = json.dumps(body).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(raw)))
        for name, value in (headers or {}).items():
            request.send_header(name, value)
        request.end_headers()
        request.wfile.write(raw)


@pytest.fixture
def stub():
    table_api = TableStub()
    thread = threading.Thread(target=table_api.server.serve_forever, daemon=True)
    thread.start()
    yield table_api
    table_api.server.shutdown()
    table_api.server.server_close()


@pytest.fixture
def password_file(tmp_path):
    path = tmp_path / "servicenow-password"
    path.write_text(PASSWORD + "\n")
    return path


@pytest.fixture
def pull(db, stub, password_file, service):
    """ServiceNow's pull configured against the stub, its CI mapped to payments-api."""
    run(
        "configure_integration",
        "servicenow",
        "--instance",
        stub.url,
        "--user",
        USER,
        "--password-file",
        str(password_file),
    )
    run("map_external", "servicenow", CI, "payments-api")
    return stub


def changes(count: int) -> list[dict]:
    return [
        change_request(
            sys_id=f"{index:032x}",
            number=f"CHG00300{index:02d}",
            sys_updated_on=f"2026-12-01 09:{index:02d}:00",
        )
        for index in range(1, count + 1)
    ]


# --- configure_integration / map_external ----------------------------------------------------


def test_a_token_is_generated_printed_once_and_stored_hashed(db):
    output, _ = run("configure_integration", "servicenow", "--token", "--reason", "setup")

    token = output.splitlines()[-1]
    assert len(token) >= 40
    config = ServiceNowConfig.objects.get()
    assert token not in (config.token_digest, config.token_hint)
    assert token_matches(token) and not token_matches(token[:-1])
    entry = LedgerEntry.objects.get(kind="integration.configured")
    assert entry.payload == {
        "source": "servicenow",
        "token": f"…{token[-4:]}",
        "instance": "",
        "user": "",
        "token_issued": True,
        "reason": "setup",
    }
    assert token not in json.dumps(entry.payload)


def test_the_pull_settings_keep_the_password_in_its_file(db, password_file):
    output, _ = run(
        "configure_integration",
        "servicenow",
        "--instance",
        "https://acme.service-now.com/",
        "--user",
        USER,
        "--password-file",
        str(password_file),
    )

    assert output == f"ServiceNow: pulls from https://acme.service-now.com as {USER}.\n"
    config = ServiceNowConfig.objects.get()
    assert (config.instance_url, config.username) == ("https://acme.service-now.com", USER)
    assert config.password_file == str(password_file.resolve())
    assert PASSWORD not in json.dumps(LedgerEntry.objects.get().payload)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "Give --token, or --instance, --user and --password-file."),
        (("--instance", "https://acme.service-now.com"), "together"),
        (
            ("--instance", "http://acme.service-now.com", "--user", "u", "--password-file", "x"),
            "The instance is an https:// URL",
        ),
        (
            (
                "--instance",
                "https://acme.service-now.com",
                "--user",
                "u",
                "--password-file",
                "/nope",
            ),
            "No password file /nope.",
        ),
    ],
)
def test_incomplete_or_bad_settings_are_refused_and_nothing_is_written(db, args, message):
    with pytest.raises(CommandError, match=message):
        run("configure_integration", "servicenow", *args)

    assert (ServiceNowConfig.objects.count(), LedgerEntry.objects.count()) == (0, 0)


def test_pagerduty_still_needs_its_secrets(db):
    with pytest.raises(CommandError, match="--secret"):
        run("configure_integration", "pagerduty")


def test_a_servicenow_ci_is_mapped_to_a_service(service):
    output, _ = run("map_external", "servicenow", CI, "payments-api")

    assert output == f"servicenow {CI} → payments-api\n"
    assert ExternalServiceMapping.objects.get(source="servicenow").service == service


# --- sync_servicenow ----------------------------------------------------------------------------


def test_the_pull_pages_through_the_table_api_with_basic_auth(pull, service):
    pull.tables["change_request"] = changes(5)
    pull.tables["incident"] = [incident(priority="2")]

    output, _ = run("sync_servicenow", "--page-size", "2")

    assert output == (
        "change_request: 5 created, 0 updated, 0 unchanged, 0 stale, 0 refused\n"
        "incident: 1 created, 0 updated, 0 unchanged, 0 stale, 0 refused\n"
    )
    assert sorted(ChangeRecord.objects.values_list("ref", flat=True)) == [
        f"CHG00300{i:02d}" for i in range(1, 6)
    ]
    assert all(list(c.services.all()) == [service] for c in ChangeRecord.objects.all())
    assert Incident.objects.get().is_blocking
    offsets = [r["sysparm_offset"] for r in pull.requests if r["path"].endswith("change_request")]
    assert offsets == ["0", "2", "4"]
    first = pull.requests[0]
    assert first["sysparm_display_value"] == "all"
    assert first["sysparm_query"] == "ORDERBYsys_updated_on"
    assert "assigned_to.email" in first["sysparm_fields"].split(",")


def test_the_pull_follows_the_link_header(pull):
    pull.link_header = True
    pull.tables["change_request"] = changes(3)

    output, _ = run("sync_servicenow", "--table", "change_request", "--page-size", "1")

    assert output.startswith("change_request: 3 created,")
    assert len(pull.requests) == 3
    assert all(r["path"] == "/api/now/table/change_request" for r in pull.requests)


def test_a_second_pull_starts_where_the_last_one_ended_and_changes_nothing(
    pull, client, administrator
):
    client.force_login(administrator)
    pull.tables["change_request"] = changes(3)
    run("sync_servicenow", "--table", "change_request")
    before = LedgerEntry.objects.count()
    pull.requests.clear()

    output, _ = run("sync_servicenow", "--table", "change_request")

    # Five minutes of overlap: what was saved while the last pull ran is read again.
    assert output == "change_request: 0 created, 0 updated, 3 unchanged, 0 stale, 0 refused\n"
    assert pull.requests[0]["sysparm_query"] == (
        "sys_updated_on>=2026-12-01 08:58:00^ORDERBYsys_updated_on"
    )
    assert LedgerEntry.objects.count() == before
    assert ServiceNowConfig.objects.get().pulled_through == {
        "change_request": "2026-12-01T09:03:00+00:00"
    }
    page = client.get("/changes/integrations/servicenow/")
    assert 'change_request <span class="mono">2026-12-01 09:03:00</span> UTC' in (
        page.content.decode()
    )


def test_a_push_after_an_outage_does_not_hide_what_the_pull_must_catch_up(pull, client, db):
    from changes.servicenow.services import apply_record

    pull.tables["change_request"] = changes(1)
    run("sync_servicenow", "--table", "change_request")
    # The webhook was down for records 2-4; record 5 was pushed once it came back.
    pull.tables["change_request"] = changes(5)
    apply_record("change_request", pull.tables["change_request"][4])

    output, _ = run("sync_servicenow", "--table", "change_request")

    assert output == "change_request: 3 created, 0 updated, 2 unchanged, 0 stale, 0 refused\n"
    assert ChangeRecord.objects.count() == 5


def test_a_failed_pull_does_not_move_the_mark(pull):
    pull.tables["change_request"] = changes(3)
    pull.link_header = True
    pull.next_link = "https://elsewhere.example.com/api/now/table/change_request"

    with pytest.raises(CommandError):
        run("sync_servicenow", "--table", "change_request", "--page-size", "1")

    assert ChangeRecord.objects.count() == 1  # the first page was applied
    assert ServiceNowConfig.objects.get().pulled_through == {}


def test_since_is_read_as_utc(pull):
    pull.tables["change_request"] = changes(3)

    output, _ = run(
        "sync_servicenow", "--table", "change_request", "--since", "2026-12-01T10:02:00+01:00"
    )

    assert output.startswith("change_request: 2 created,")
    assert pull.requests[0]["sysparm_query"].startswith("sys_updated_on>=2026-12-01 09:02:00^")


def test_a_refused_login_is_a_clear_error_and_writes_nothing(pull, password_file):
    password_file.write_text("wrong")
    pull.tables["change_request"] = changes(1)
    before = LedgerEntry.objects.count()

    with pytest.raises(CommandError, match="change_request: ServiceNow answered 401 Unauthorized"):
        run("sync_servicenow")

    assert (ChangeRecord.objects.count(), LedgerEntry.objects.count()) == (0, before)


def test_a_server_error_stops_the_pull_with_a_non_zero_exit(pull):
    pull.fail_with = 500

    with pytest.raises(CommandError, match="ServiceNow answered 500"):
        run("sync_servicenow")


def test_a_next_page_outside_the_instance_is_never_fetched(pull):
    pull.tables["change_request"] = changes(1)
    pull.next_link = "https://elsewhere.example.com/api/now/table/change_request?sysparm_offset=1"

    with pytest.raises(CommandError, match="points outside the instance"):
        run("sync_servicenow", "--table", "change_request")

    assert len(pull.requests) == 1


def test_an_unreachable_instance_is_a_clear_error(pull):
    pull.server.shutdown()
    pull.server.server_close()

    with pytest.raises(CommandError, match="ServiceNow did not answer"):
        run("sync_servicenow")


def test_a_refused_record_is_reported_and_the_others_are_applied(pull):
    pull.tables["change_request"] = [
        *changes(2),
        change_request(
            sys_id="f" * 32, number="CHG9", state="77", sys_updated_on="2026-12-01 09:30:00"
        ),
    ]

    with pytest.raises(CommandError, match="1 record"):
        out, err = io.StringIO(), io.StringIO()
        try:
            call_command("sync_servicenow", "--table", "change_request", stdout=out, stderr=err)
        finally:
            assert out.getvalue().startswith("change_request: 2 created,")
            assert "refused CHG9: CHG9: unknown change state '77'." in err.getvalue()

    assert ChangeRecord.objects.count() == 2


def test_the_pull_needs_an_instance(db):
    with pytest.raises(CommandError, match="No ServiceNow instance"):
        run("sync_servicenow")
