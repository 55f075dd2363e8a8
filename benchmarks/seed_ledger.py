"""Bulk-append a valid ledger chain: real canonical bytes, SHA-256 links and Ed25519 signatures.

Entries extend the stored chain from the current `LedgerHead`, with the key the Django settings
use, so `ledger.verify()` (and `manage.py verify_ledger`) accepts them. They are
computed in Python as a stream and COPYed in, one transaction per chunk that also moves the head.
Payloads have the shapes the services write (approval.requested carries the frozen plan).

PostgreSQL lets the head move only one entry at a time (invariant 11). This benchmark-only seeder
moves it a whole chunk at once, past entries it has just chained and signed itself, with that one
trigger ignored inside its own transaction: 50,000 single-step updates per chunk would measure
nothing but the seeding.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

from django.db import transaction

from approvals.models import Release
from benchmarks.bulk import analyze, copy_rows
from governance.ledger import format as ledger_format
from governance.ledger import services as ledger
from governance.ledger import triggers
from governance.models import LedgerEntry, LedgerHead

CHUNK = 50_000
HISTORY = timedelta(days=730)
KINDS = (
    ("approval.requested", 20),
    ("evidence.added", 25),
    ("decision.recorded", 25),
    ("gate.transition", 20),
    ("deployment.reported", 10),
)
COLUMNS = list(ledger_format.ENTRY_FIELDS)
Log = Callable[[str], None]
HEAD_FORWARD_ONLY = "governance.LedgerHead:ledger_head_forward_only"


def seed_ledger(target: int, sample_plans: list[dict], log: Log) -> int:
    """Extend the ledger to `target` entries; returns how many were appended."""
    existing = LedgerEntry.objects.count()
    if existing >= target:
        log(f"ledger: {existing:,} entries present (target {target:,}); nothing to seed")
        return 0
    ids = _release_id_range()
    started = time.perf_counter()
    done = existing
    while done < target:
        done += _append_chunk(min(CHUNK, target - done), target, ids, sample_plans)
        rate = (done - existing) / (time.perf_counter() - started)
        log(f"ledger: {done:,}/{target:,} entries ({rate:,.0f} entries/s)")
    analyze([LedgerEntry._meta.db_table])
    return target - existing


def _release_id_range() -> tuple[int, int]:
    first = Release.objects.order_by("pk").values_list("pk", flat=True).first() or 1
    last = Release.objects.order_by("-pk").values_list("pk", flat=True).first() or 1
    return first, last


def _append_chunk(count: int, target: int, ids: tuple[int, int], plans: list[dict]) -> int:
    """Append `count` entries after the head, under the head's row lock, in one transaction."""
    with transaction.atomic():
        head, _ = LedgerHead.objects.select_for_update().get_or_create(pk=1)
        rows = list(_entries(head.seq, head.entry_hash, count, target, ids, plans))
        copy_rows(LedgerEntry._meta.db_table, COLUMNS, rows)
        last = rows[-1]
        with triggers.ignoring(HEAD_FORWARD_ONLY):
            LedgerHead.objects.filter(pk=1).update(seq=last[0], entry_hash=last[7])
    return count


def _entries(
    seq: int, prev_hash: str, count: int, target: int, ids: tuple[int, int], plans: list[dict]
) -> Iterator[tuple]:
    """The next `count` chained, signed rows after (seq, prev_hash), in COPY column order."""
    key = ledger.signing_key()
    key_id = ledger_format.key_id(key.public_key())
    start = datetime.now(UTC) - HISTORY
    step = HISTORY / max(target, 1)
    for n in range(seq + 1, seq + count + 1):
        rng = random.Random(n)
        kind, subject, actor, payload = _event(rng, ids, plans)
        recorded_at = start + step * n
        body = ledger_format.canonical_bytes(
            seq=n,
            recorded_at=recorded_at.isoformat(timespec="microseconds"),
            kind=kind,
            subject=subject,
            actor=actor,
            payload=payload,
            prev_hash=prev_hash,
        )
        digest = ledger_format.entry_hash(body)
        yield (
            n,
            recorded_at,
            kind,
            subject,
            actor,
            json.dumps(payload, ensure_ascii=False),
            prev_hash,
            digest,
            key_id,
            ledger_format.sign(key, digest),
        )
        prev_hash = digest


def _event(
    rng: random.Random, ids: tuple[int, int], plans: list[dict]
) -> tuple[str, str, str, dict]:
    """A (kind, subject, actor, payload) shaped like what approvals.services appends."""
    kind = rng.choices([k for k, _ in KINDS], [w for _, w in KINDS])[0]
    release = rng.randint(*ids)
    digest = f"sha256:{rng.getrandbits(256):064x}"
    actor = "bench-team-01-approver-1" if kind == "decision.recorded" else "bench-ci"
    return kind, f"release:{release}", actor, PAYLOADS[kind](rng, release, digest, plans)


def _requested(rng: random.Random, release: int, digest: str, plans: list[dict]) -> dict:
    return {
        "service": f"bench-svc-{rng.randint(1, 50):02d}",
        "environment": "production",
        "version": f"{rng.randint(1, 9)}.{rng.randint(0, 40)}.{rng.randint(0, 999)}",
        "image": "registry.example.com/bench/service",
        "digest": digest,
        "change": f"BENCH{rng.randint(0, 99_999_999):08d}",
        "requested_by": "bench-ci",
        "triggered_by": "bench-team-01-dev-1",
        "policy": "default@v1",
        "plan": rng.choice(plans),
    }


def _evidence(rng: random.Random, release: int, digest: str, plans: list[dict]) -> dict:
    return {
        "kind": "tests",
        "status": "passed",
        "url": f"https://ci.example.com/runs/{release}",
        "summary": {"passed": rng.randint(200, 3000), "failed": 0},
    }


def _decision(rng: random.Random, release: int, digest: str, plans: list[dict]) -> dict:
    return {
        "stage": "service",
        "verdict": "approve",
        "digest": digest,
        "on_behalf_of": None,
        "rationale": "Diff, tests and rollback plan reviewed; fine to ship.",
        "step_up": "",
        "channel": "ui",
    }


def _transition(rng: random.Random, release: int, digest: str, plans: list[dict]) -> dict:
    return {"from": "pending", "to": "approved", "valid_until": "2026-01-01T00:00:00.000000+00:00"}


def _deployment(rng: random.Random, release: int, digest: str, plans: list[dict]) -> dict:
    return {"status": "succeeded", "url": "", "digest": digest, "approval_status": "approved"}


PAYLOADS: dict[str, Callable[[random.Random, int, str, list[dict]], dict]] = {
    "approval.requested": _requested,
    "evidence.added": _evidence,
    "decision.recorded": _decision,
    "gate.transition": _transition,
    "deployment.reported": _deployment,
}
