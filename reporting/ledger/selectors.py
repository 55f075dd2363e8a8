"""What the ledger page shows, computed here so the templates hold no logic."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from django.urls import reverse

from governance.ledger import checkpoints, verification
from governance.ledger import format as ledger_format
from governance.ledger import services as ledger
from governance.ledger.models import LedgerEntry, LedgerHead, LedgerVerification

POLL_SECONDS = 2


@dataclass(frozen=True)
class RunRow:
    """One verification run as the page shows it."""

    run: LedgerVerification
    requested_by: str
    percent: int
    active: bool
    seconds: float | None
    checkpoint_note: str
    poll_url: str
    poll_seconds: int


@dataclass(frozen=True)
class CheckpointState:
    """The latest checkpoint and whether the ledger still matches it."""

    name: str
    seq: int
    recorded_at: datetime
    matches: bool
    problem: str


@dataclass(frozen=True)
class LedgerPage:
    entries: int
    head_hash: str
    checkpoint: CheckpointState | None
    checkpoint_error: str
    runs: list[RunRow]
    active: RunRow | None
    latest: RunRow | None
    links: dict[str, str]
    commands: str


def run_row(run: LedgerVerification) -> RunRow:
    active = run.status in verification.ACTIVE
    seconds = None
    if run.started_at and run.finished_at:
        seconds = (run.finished_at - run.started_at).total_seconds()
    person = run.requested_by.display_name if run.requested_by else "nightly schedule"
    return RunRow(
        run=run,
        requested_by=person,
        percent=verification.progress_percent(run),
        active=active,
        seconds=seconds,
        checkpoint_note=checkpoint_note(run),
        poll_url=reverse("reporting:ledger_verification", args=[run.pk]),
        poll_seconds=POLL_SECONDS,
    )


def checkpoint_note(run: LedgerVerification) -> str:
    """What a passed run says about checkpoints: the one it matched, or that there was none."""
    if run.status != LedgerVerification.Status.PASSED:
        return ""
    if not run.checkpoint_name:
        return "; no checkpoint to compare it with yet"
    return f"; checkpoint {run.checkpoint_name} (entry #{run.checkpoint_seq}) matches"


def latest_checkpoint(head_seq: int) -> tuple[CheckpointState | None, str]:
    """(the latest checkpoint compared with the ledger, or None; why it could not be read)."""
    names = checkpoints.checkpoint_names()
    if not names:
        return None, ""
    try:
        stored = checkpoints.load_checkpoint(names[-1])
    except ValueError as exc:
        return None, f"The latest checkpoint {names[-1]} is not a checkpoint ({exc})."
    point = stored.checkpoint
    found = LedgerEntry.objects.filter(seq=point.seq).values_list("entry_hash", flat=True).first()
    problem = ledger_format.checkpoint_problem(
        point, ledger.public_keys(), verified=head_seq, hash_at_seq=found
    )
    return (
        CheckpointState(
            name=stored.name,
            seq=point.seq,
            recorded_at=datetime.fromisoformat(point.recorded_at),
            matches=problem is None,
            problem=problem or "",
        ),
        "",
    )


def ledger_page(
    *, absolute: Callable[[str], str], runs: Iterable[LedgerVerification]
) -> LedgerPage:
    """The page: the head, the latest checkpoint, recent runs, downloads and commands."""
    head = LedgerHead.objects.filter(pk=1).first()
    seq, head_hash = (head.seq, head.entry_hash) if head else (0, ledger_format.GENESIS_HASH)
    checkpoint, error = latest_checkpoint(seq)
    rows = [run_row(run) for run in runs]
    links = {
        "export": absolute(reverse("reporting:ledger_export")),
        "public_key": absolute(reverse("reporting:ledger_public_key")),
        "verifier": absolute(reverse("reporting:ledger_verifier")),
    }
    return LedgerPage(
        entries=seq,
        head_hash=head_hash,
        checkpoint=checkpoint,
        checkpoint_error=error,
        runs=rows,
        active=next((row for row in rows if row.active), None),
        latest=rows[0] if rows else None,
        links=links,
        commands=commands(links),
    )


def commands(links: dict[str, str]) -> str:
    """The shell lines an auditor copies: fetch the three files with a token, then verify."""
    auth = '-H "Authorization: Bearer $SIGNOFF_TOKEN"'
    return "\n".join(
        [
            f"curl -fsS {auth} -o signoff-ledger.jsonl {links['export']}",
            f"curl -fsS {auth} -o signoff-ledger.pem {links['public_key']}",
            f"curl -fsS {auth} -o verify_ledger.py {links['verifier']}",
            "python3 -m pip install cryptography  # the verifier's only dependency",
            "python3 verify_ledger.py --public-key signoff-ledger.pem signoff-ledger.jsonl"
            " [--checkpoint CHECKPOINT_FOLDER]",
        ]
    )
