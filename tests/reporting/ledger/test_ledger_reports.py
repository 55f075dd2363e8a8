"""The ledger for auditors: the streamed export, the public key, the verifier download, the
ledger page and its whole-ledger verification runs."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from governance import tasks
from governance.ledger import format as ledger_format
from governance.ledger import services as ledger
from governance.ledger import triggers, verification
from governance.models import LedgerEntry, LedgerHead, Role
from governance.notifications.models import Notification
from tests import factories

pytestmark = pytest.mark.django_db
TOOL = Path(settings.BASE_DIR) / "tools" / "verify_ledger.py"
PAGE = "/reports/ledger/"
EXPORT = "/reports/ledger.jsonl"
PUBLIC_KEY = "/reports/ledger/public-key.pem"
VERIFIER = "/reports/ledger/verify_ledger.py"
VERIFY = "/reports/ledger/verify/"
PROTECTION = "governance.LedgerEntry:ledger_append_only"
FAILED_SUBJECT = "The evidence ledger FAILED verification"


@pytest.fixture
def entries(production_release) -> list[LedgerEntry]:
    """A real ledger: an organisation seeded and one production release requested."""
    return list(LedgerEntry.objects.order_by("seq"))


@pytest.fixture
def scoped_auditor(service):
    user = factories.UserFactory(username="sam")
    factories.grant(user, Role.AUDITOR, service)
    return user


def signed_in(client, user):
    client.force_login(user)
    return client


def bearer(user) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {factories.token_for(user)}"}


def body(response) -> bytes:
    if response.streaming:
        return b"".join(response.streaming_content)
    return response.content


def alter_entry(seq: int) -> None:
    """Change a stored entry behind the application's back (the trigger switched off)."""
    with triggers.ignoring(PROTECTION), transaction.atomic():
        LedgerEntry.objects.filter(seq=seq).update(actor="mallory")


# --- Who may open what --------------------------------------------------------------------------

ORGANISATION_WIDE = [EXPORT, PAGE, "/reports/ledger/verifications/{run}/"]
ANY_AUDITOR = [PUBLIC_KEY, VERIFIER]


@pytest.fixture
def run(db):
    return verification.LedgerVerification.objects.create(status="passed", total=3, verified=3)


def url(path: str, run) -> str:
    return path.format(run=run.pk)


@pytest.mark.parametrize("path", ORGANISATION_WIDE + ANY_AUDITOR)
def test_anonymous_people_are_sent_to_sign_in(client, run, path):
    response = client.get(url(path, run))

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("path", ORGANISATION_WIDE + ANY_AUDITOR)
def test_a_bad_token_is_401(client, run, path):
    response = client.get(url(path, run), HTTP_AUTHORIZATION="Bearer not-a-token")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


@pytest.mark.parametrize("path", ORGANISATION_WIDE + ANY_AUDITOR)
@pytest.mark.parametrize("who", ["outsider", "administrator", "approver"])
def test_people_without_the_auditor_role_are_refused(client, run, path, who, request):
    user = request.getfixturevalue(who)

    response = signed_in(client, user).get(url(path, run))

    assert response.status_code == 403


@pytest.mark.parametrize("path", ORGANISATION_WIDE)
def test_a_scoped_auditor_cannot_open_the_whole_ledger(client, run, scoped_auditor, path):
    assert signed_in(client, scoped_auditor).get(url(path, run)).status_code == 403


@pytest.mark.parametrize("path", ANY_AUDITOR)
def test_a_scoped_auditor_may_fetch_the_key_and_the_verifier(client, run, scoped_auditor, path):
    assert signed_in(client, scoped_auditor).get(url(path, run)).status_code == 200


@pytest.mark.parametrize("path", ORGANISATION_WIDE + ANY_AUDITOR)
def test_an_auditor_may_open_everything_signed_in_or_by_token(client, run, auditor, path):
    by_token = client.get(url(path, run), **bearer(auditor))
    by_session = signed_in(factories.SignInClient(), auditor).get(url(path, run))

    assert (by_token.status_code, by_session.status_code) == (200, 200)


@pytest.mark.parametrize("who", ["outsider", "administrator", "scoped_auditor"])
def test_only_organisation_wide_auditors_may_start_a_verification(client, who, request):
    user = request.getfixturevalue(who)

    response = signed_in(client, user).post(VERIFY)

    assert response.status_code == 403
    assert not verification.LedgerVerification.objects.exists()


def test_anonymous_posts_start_nothing(client):
    response = client.post(VERIFY)

    assert response.status_code == 302
    assert not verification.LedgerVerification.objects.exists()


def test_a_bad_token_starts_nothing(client):
    response = client.post(VERIFY, HTTP_AUTHORIZATION="Bearer not-a-token")

    assert response.status_code == 401
    assert not verification.LedgerVerification.objects.exists()


def test_an_unknown_run_is_404(client, auditor):
    assert (
        signed_in(client, auditor).get("/reports/ledger/verifications/999999/").status_code == 404
    )


def test_the_verify_button_takes_posts_only(client, auditor):
    assert signed_in(client, auditor).get(VERIFY).status_code == 405
    assert not verification.LedgerVerification.objects.exists()


# --- The export, the key and the verifier -------------------------------------------------------


def test_the_export_streams_a_header_then_every_entry_oldest_first(client, auditor, entries):
    response = client.get(EXPORT, **bearer(auditor))

    assert response.status_code == 200
    assert response.streaming
    today = timezone.now().strftime("%Y-%m-%d")
    assert response["Content-Disposition"] == (f"attachment; filename=signoff-ledger-{today}.jsonl")
    lines = body(response).decode().splitlines()
    header = json.loads(lines[0])
    assert header["format"] == "signoff-ledger-export/1"
    assert header["entries"] == len(entries)
    assert header["public_keys"] == {
        kid: ledger_format.public_key_text(key) for kid, key in ledger.public_keys().items()
    }
    assert [json.loads(line)["seq"] for line in lines[1:]] == [e.seq for e in entries]


def test_the_export_and_the_command_write_the_same_lines(client, auditor, entries, tmp_path):
    written = tmp_path / "command.jsonl"
    call_command("export_ledger", output=str(written))

    downloaded = body(client.get(EXPORT, **bearer(auditor))).decode().splitlines()

    command = written.read_text().splitlines()
    assert downloaded[1:] == command[1:]
    assert json.loads(downloaded[0])["entries"] == json.loads(command[0])["entries"]


def test_the_export_stops_at_the_head_read_when_it_began(client, auditor, entries):
    response = client.get(EXPORT, **bearer(auditor))
    chunks = iter(response.streaming_content)
    header = json.loads(next(chunks))
    with transaction.atomic():
        ledger.append(kind="test.later", subject="test:1", actor="system", payload={})

    rest = [json.loads(line) for chunk in chunks for line in chunk.decode().splitlines()]

    assert header["entries"] == len(entries)
    assert [entry["seq"] for entry in rest] == [e.seq for e in entries]


def test_the_public_key_is_pem_with_the_current_then_the_retired_keys(client, auditor, settings):
    retired = ledger_format.load_private_key("B" * 43 + "=").public_key()
    settings.LEDGER_PUBLIC_KEYS = [ledger_format.public_key_text(retired)]
    current = ledger_format.key_id(ledger.signing_key().public_key())

    response = client.get(PUBLIC_KEY, **bearer(auditor))

    assert response["Content-Type"] == "application/x-pem-file"
    text = response.content.decode()
    assert text.startswith(f"# current key {current}\n-----BEGIN PUBLIC KEY-----\n")
    assert f"-----END PUBLIC KEY-----\n# retired key {ledger_format.key_id(retired)}\n" in text
    assert text.count("-----BEGIN PUBLIC KEY-----") == 2


def test_the_verifier_downloads_as_the_tool_itself(client, auditor):
    response = client.get(VERIFIER, **bearer(auditor))

    assert response["Content-Type"] == "text/x-python"
    assert response["Content-Disposition"] == 'attachment; filename="verify_ledger.py"'
    assert body(response) == TOOL.read_bytes()


def run_tool(folder: Path, *args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-I", "verify_ledger.py", *map(str, args)],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_downloaded_files_verify_offline_and_tampering_fails(client, auditor, entries, tmp_path):
    headers = bearer(auditor)
    files = {"signoff-ledger.jsonl": EXPORT, "key.pem": PUBLIC_KEY, "verify_ledger.py": VERIFIER}
    for name, path in files.items():
        (tmp_path / name).write_bytes(body(client.get(path, **headers)))

    untouched = run_tool(tmp_path, "--public-key", "key.pem", "signoff-ledger.jsonl")
    lines = (tmp_path / "signoff-ledger.jsonl").read_text().splitlines()
    third = json.loads(lines[3])
    third["subject"] = "release:999"
    lines[3] = json.dumps(third, sort_keys=True)
    (tmp_path / "signoff-ledger.jsonl").write_text("\n".join(lines) + "\n")
    tampered = run_tool(tmp_path, "--public-key", "key.pem", "signoff-ledger.jsonl")

    assert (untouched.returncode, untouched.stderr) == (0, "")
    assert untouched.stdout.startswith(f"OK: {len(entries)} entries verified")
    assert (tampered.returncode, tampered.stdout) == (
        1,
        "line 4: entry #3 edited: its content does not match its hash\n",
    )


# --- Verification runs --------------------------------------------------------------------------


def test_a_run_on_a_good_ledger_passes_with_every_entry_verified(
    client, auditor, entries, ledger_checkpoints
):
    call_command("ledger_checkpoint", stdout=io.StringIO())
    run = verification.LedgerVerification.objects.create()

    assert tasks.verify_ledger_task(run.pk) == "passed"

    run.refresh_from_db()
    assert (run.status, run.verified, run.total, run.problem) == (
        "passed",
        len(entries),
        len(entries),
        "",
    )
    assert run.checkpoint_seq == len(entries)
    assert run.checkpoint_name.startswith(f"checkpoint-{len(entries):012d}-")
    assert run.started_at <= run.finished_at
    card = signed_in(client, auditor).get(f"/reports/ledger/verifications/{run.pk}/")
    assert (f"{len(entries)} of {len(entries)} entries verified in ") in card.content.decode()
    assert f"; checkpoint {run.checkpoint_name} (entry #{len(entries)}) matches." in (
        card.content.decode()
    )
    assert not Notification.objects.filter(subject=FAILED_SUBJECT).exists()


def test_a_run_records_progress_with_one_update_per_batch(entries, monkeypatch):
    monkeypatch.setattr(verification, "PROGRESS_EVERY", 2)
    run = verification.LedgerVerification.objects.create()

    with CaptureQueriesContext(connection) as queries:
        verification.run_verification(run.pk)

    updates = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith('UPDATE "governance_ledgerverification" SET "verified"')
    ]
    assert len(updates) == len(entries) // 2
    run.refresh_from_db()
    assert (run.status, run.verified) == ("passed", len(entries))


def test_a_run_on_an_altered_ledger_fails_naming_the_entry_and_tells_people(
    entries, auditor, administrator, scoped_auditor, outsider
):
    alter_entry(3)
    run = verification.LedgerVerification.objects.create(requested_by=auditor)

    assert tasks.verify_ledger_task(run.pk) == "failed"

    run.refresh_from_db()
    assert run.status == "failed"
    assert run.verified == 2
    assert run.problem == "entry #3: content does not match its hash (the entry was altered)"
    told = set(
        Notification.objects.filter(subject=FAILED_SUBJECT).values_list(
            "recipient__username", flat=True
        )
    )
    assert told == {auditor.username, administrator.username}
    notice = Notification.objects.get(recipient=auditor, subject=FAILED_SUBJECT)
    assert "entry #3: content does not match its hash" in notice.body
    assert notice.url == PAGE


def test_a_run_is_not_run_twice(entries):
    run = verification.LedgerVerification.objects.create()
    tasks.verify_ledger_task(run.pk)
    finished = verification.LedgerVerification.objects.get(pk=run.pk)
    alter_entry(2)

    again = tasks.verify_ledger_task(run.pk)

    assert again is None
    run.refresh_from_db()
    assert (run.status, run.finished_at, run.problem) == ("passed", finished.finished_at, "")


def test_the_button_queues_one_run_and_a_second_press_shows_it(
    client, auditor, entries, django_capture_on_commit_callbacks
):
    signed_in(client, auditor)
    with django_capture_on_commit_callbacks() as callbacks:
        first = client.post(VERIFY)
    with django_capture_on_commit_callbacks() as again:
        second = client.post(VERIFY)

    [run] = verification.LedgerVerification.objects.all()
    assert (run.status, run.requested_by) == ("queued", auditor)
    assert first["Location"] == second["Location"] == f"{PAGE}#verification-{run.pk}"
    assert (len(callbacks), len(again)) == (1, 0)


def test_the_button_runs_the_task_after_commit(
    client, auditor, entries, eager, django_capture_on_commit_callbacks
):
    signed_in(client, auditor)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(VERIFY)

    run = verification.LedgerVerification.objects.get()
    assert (run.status, run.verified) == ("passed", len(entries))


def test_the_nightly_task_starts_a_run_nobody_asked_for(
    entries, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        pk = tasks.verify_ledger_nightly_task()
    again = tasks.verify_ledger_nightly_task()

    run = verification.LedgerVerification.objects.get()
    assert (run.pk, run.requested_by, run.status, again) == (pk, None, "queued", pk)
    assert len(callbacks) == 1


def test_a_queued_run_silent_for_too_long_is_enqueued_again(
    client, auditor, entries, django_capture_on_commit_callbacks
):
    """The broker was down when the run was asked for: pressing again sends it again."""
    long_ago = timezone.now() - verification.STALE_AFTER - timedelta(seconds=1)
    lost = verification.LedgerVerification.objects.create(progressed_at=long_ago)

    with django_capture_on_commit_callbacks() as callbacks:
        signed_in(client, auditor).post(VERIFY)

    [run] = verification.LedgerVerification.objects.all()
    assert (run.pk, run.status) == (lost.pk, "queued")
    assert run.progressed_at > long_ago
    assert len(callbacks) == 1


def test_a_running_run_silent_for_too_long_is_closed_and_a_new_one_starts(
    client, auditor, entries, django_capture_on_commit_callbacks
):
    long_ago = timezone.now() - verification.STALE_AFTER - timedelta(seconds=1)
    lost = verification.LedgerVerification.objects.create(
        status="running", started_at=long_ago, progressed_at=long_ago, total=9, verified=3
    )

    with django_capture_on_commit_callbacks() as callbacks:
        signed_in(client, auditor).post(VERIFY)

    lost.refresh_from_db()
    assert lost.status == "failed"
    assert lost.problem.startswith("abandoned: no progress since ")
    fresh = verification.LedgerVerification.objects.exclude(pk=lost.pk).get()
    assert (fresh.status, fresh.requested_by) == ("queued", auditor)
    assert len(callbacks) == 1


def test_a_run_that_breaks_down_does_not_stay_running(entries, settings, tmp_path):
    """The checkpoint store cannot be read (its folder is a file): the run ends FAILED."""
    not_a_folder = tmp_path / "checkpoints"
    not_a_folder.write_text("")
    settings.STORAGES = {
        **settings.STORAGES,
        settings.LEDGER_CHECKPOINT_STORAGE: {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(not_a_folder)},
        },
    }
    run = verification.LedgerVerification.objects.create()

    with pytest.raises(NotADirectoryError):
        verification.run_verification(run.pk)

    run.refresh_from_db()
    assert run.status == "failed"
    assert run.problem.startswith("the run stopped with an error before finishing: ")
    assert (
        verification.LedgerVerification.objects.filter(status__in=verification.ACTIVE).count() == 0
    )


# --- The page -----------------------------------------------------------------------------------


def test_the_page_shows_the_head_the_checkpoint_and_the_commands(
    client, auditor, entries, ledger_checkpoints
):
    call_command("ledger_checkpoint", stdout=io.StringIO())
    head = LedgerHead.objects.get()

    response = signed_in(client, auditor).get(PAGE)

    page = response.context["page"]
    assert (page.entries, page.head_hash) == (len(entries), head.entry_hash)
    assert (page.checkpoint.seq, page.checkpoint.matches) == (len(entries), True)
    html = response.content.decode()
    assert head.entry_hash in html
    assert "Matches the ledger" in html
    assert "python3 verify_ledger.py --public-key signoff-ledger.pem signoff-ledger.jsonl" in html
    assert (
        'curl -fsS -H "Authorization: Bearer $SIGNOFF_TOKEN" -o signoff-ledger.jsonl '
        "http://testserver/reports/ledger.jsonl"
    ) in response.context["page"].commands
    assert "No verification run yet." in html


def test_the_page_shows_a_checkpoint_the_ledger_no_longer_matches(
    client, auditor, entries, ledger_checkpoints
):
    call_command("ledger_checkpoint", stdout=io.StringIO())
    alter_entry(len(entries))  # the stored hash stays; the content changed
    with triggers.ignoring(PROTECTION), transaction.atomic():
        LedgerEntry.objects.filter(seq=len(entries)).update(entry_hash="f" * 64)

    response = signed_in(client, auditor).get(PAGE)

    assert response.context["page"].checkpoint.matches is False
    assert "Does not match" in response.content.decode()


def test_the_page_shows_a_running_verification_polling_until_it_finishes(client, auditor, entries):
    run = verification.LedgerVerification.objects.create(
        requested_by=auditor, status="running", total=200, verified=50, started_at=timezone.now()
    )

    page = signed_in(client, auditor).get(PAGE).content.decode()
    running = client.get(f"/reports/ledger/verifications/{run.pk}/").content.decode()
    verification.LedgerVerification.objects.filter(pk=run.pk).update(
        status="failed", verified=120, finished_at=timezone.now(), problem="entry #121: broken"
    )
    finished = client.get(f"/reports/ledger/verifications/{run.pk}/").content.decode()

    poll = f'hx-get="/reports/ledger/verifications/{run.pk}/" hx-trigger="every 2s"'
    assert poll in page and poll in running
    assert 'value="25"' in running
    assert "50 of 200 entries verified" in running
    assert "disabled" in page.split('data-testid="verify-button"')[1].split(">")[0]
    assert "hx-get" not in finished
    assert "entry #121: broken" in finished
    assert 'data-status="failed"' in finished


def test_the_page_lists_past_runs_with_who_asked_and_what_they_found(client, auditor, entries):
    now = timezone.now()
    verification.LedgerVerification.objects.create(
        requested_by=auditor,
        status="passed",
        total=9,
        verified=9,
        started_at=now,
        finished_at=now + timedelta(seconds=3),
    )
    verification.LedgerVerification.objects.create(
        status="failed",
        total=9,
        verified=4,
        problem="entry #5: signature is not valid",
        started_at=now,
        finished_at=now,
    )

    html = signed_in(client, auditor).get(PAGE).content.decode()

    runs = html.split('data-testid="runs"')[1]
    assert "Erin" in runs and "nightly schedule" in runs
    assert "9 of 9" in runs and "3.00 s" in runs
    assert "entry #5: signature is not valid" in runs


def test_the_page_costs_the_same_queries_for_one_run_or_many(
    client, auditor, entries, ledger_checkpoints, django_assert_num_queries
):
    call_command("ledger_checkpoint", stdout=io.StringIO())
    signed_in(client, auditor)
    verification.LedgerVerification.objects.create(requested_by=auditor, status="passed")
    client.get(PAGE)  # warm the per-process caches (signing key)

    with django_assert_num_queries(7) as one:
        client.get(PAGE)
    for _ in range(8):
        verification.LedgerVerification.objects.create(requested_by=auditor, status="failed")
    with django_assert_num_queries(len(one.captured_queries)):
        client.get(PAGE)
