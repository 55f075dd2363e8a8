"""The evidence ledger: append-only, hash-chained, signed entries.

PostgreSQL itself keeps the chain from being shortened: entries refuse UPDATE, DELETE and
TRUNCATE, and the head row only ever moves forward by one entry chained to it. A superuser can
still switch triggers off; signed checkpoints kept outside the database (governance.checkpoints)
are what catch that.
"""

from __future__ import annotations

import pgtrigger
from django.conf import settings
from django.db import models
from django.db.models import F
from django.db.models.fields.json import KeyTextTransform
from django.utils import timezone

from governance.ledger.format import GENESIS_HASH

ENTRY_TABLE = "governance_ledgerentry"


def _refuse_truncate(name: str, reason: str) -> pgtrigger.Trigger:
    """A statement-level guard: row triggers never fire on TRUNCATE, and pgtrigger's Protect
    works at statement level only with transition tables, which TRUNCATE has none of."""
    return pgtrigger.Trigger(
        name=name,
        level=pgtrigger.Statement,
        when=pgtrigger.Before,
        operation=pgtrigger.Truncate,
        func=f"RAISE EXCEPTION '{reason}: TRUNCATE of % is refused', TG_TABLE_NAME;",
    )


# The head may move from (seq, hash) to (seq + 1, the hash of the entry at seq + 1 whose prev_hash
# is the old hash) and nowhere else. append() inserts that entry first, in the same transaction,
# so the trigger sees it; a reset, a jump or a made-up hash is refused.
HEAD_MOVES_FORWARD = f"""
IF NEW.id IS DISTINCT FROM OLD.id OR NEW.seq IS DISTINCT FROM OLD.seq + 1 THEN
    RAISE EXCEPTION 'ledger head only moves forward one entry: #% to #% is refused',
        OLD.seq, NEW.seq;
END IF;
IF NOT EXISTS (
    SELECT 1 FROM {ENTRY_TABLE}
    WHERE seq = NEW.seq AND entry_hash = NEW.entry_hash AND prev_hash = OLD.entry_hash
) THEN
    RAISE EXCEPTION 'ledger head must move to entry #% chained to it (prev_hash = %)',
        NEW.seq, OLD.entry_hash;
END IF;
RETURN NEW;
"""

# One head row, created empty. The primary key makes a concurrent second insert fail as a
# unique violation, which get_or_create() in append() expects and recovers from.
HEAD_STARTS_EMPTY = f"""
IF NEW.id <> 1 OR NEW.seq <> 0 OR NEW.entry_hash <> '{GENESIS_HASH}' THEN
    RAISE EXCEPTION 'the ledger has one head, row 1, starting at #0 with the genesis hash';
END IF;
RETURN NEW;
"""


@pgtrigger.register(
    pgtrigger.Trigger(
        name="ledger_head_forward_only",
        when=pgtrigger.Before,
        operation=pgtrigger.Update,
        func=HEAD_MOVES_FORWARD,
    ),
    pgtrigger.Trigger(
        name="ledger_head_single_row",
        when=pgtrigger.Before,
        operation=pgtrigger.Insert,
        func=HEAD_STARTS_EMPTY,
    ),
    pgtrigger.Protect(name="ledger_head_no_delete", operation=pgtrigger.Delete),
    _refuse_truncate("ledger_head_no_truncate", "ledger head cannot be removed"),
)
class LedgerHead(models.Model):
    """The single row holding the chain's tip; locked to serialise appends."""

    seq = models.BigIntegerField(default=0)
    entry_hash = models.CharField(max_length=64, default=GENESIS_HASH)

    def __str__(self) -> str:
        return f"ledger head #{self.seq}"


@pgtrigger.register(
    pgtrigger.Protect(name="ledger_append_only", operation=pgtrigger.Update | pgtrigger.Delete),
    _refuse_truncate("ledger_no_truncate", "ledger entries are append-only"),
)
class LedgerEntry(models.Model):
    """One append-only, hash-chained, Ed25519-signed record of an approval-relevant event."""

    seq = models.BigIntegerField(unique=True)
    recorded_at = models.DateTimeField()
    kind = models.CharField(max_length=64)
    subject = models.CharField(max_length=100, db_index=True)
    actor = models.CharField(max_length=150, blank=True)
    payload = models.JSONField(default=dict)
    prev_hash = models.CharField(max_length=64)
    entry_hash = models.CharField(max_length=64, unique=True)
    key_id = models.CharField(max_length=16)
    signature = models.CharField(max_length=128)

    class Meta:
        ordering = ["seq"]
        verbose_name_plural = "ledger entries"
        # The audit trail's filters, newest first on each: kind, person, the service and the
        # environment an entry names in its payload, and the period.
        indexes = [
            models.Index(fields=["kind", "-seq"], name="ledger_kind_seq"),
            models.Index(fields=["actor", "-seq"], name="ledger_actor_seq"),
            models.Index(
                KeyTextTransform("service", "payload"), F("seq").desc(), name="ledger_service_seq"
            ),
            models.Index(
                KeyTextTransform("environment", "payload"),
                F("seq").desc(),
                name="ledger_environment_seq",
            ),
            models.Index(fields=["recorded_at"], name="ledger_recorded_at"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.kind} {self.subject}"


class LedgerVerification(models.Model):
    """One run of the whole-chain verification started from the browser (or by beat): its
    progress while it runs, and what it found."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        PASSED = "passed", "Passed"
        FAILED = "failed", "Failed"

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    requested_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    total = models.BigIntegerField(default=0, help_text="Entries in the ledger when the run began.")
    verified = models.BigIntegerField(default=0, help_text="Entries verified so far.")
    progressed_at = models.DateTimeField(
        null=True, blank=True, help_text="When the run last reported progress (a heartbeat)."
    )
    problem = models.TextField(blank=True, help_text="The first problem found, if any.")
    checkpoint_name = models.CharField(max_length=200, blank=True)
    checkpoint_seq = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at", "-pk"]

    def __str__(self) -> str:
        return f"ledger verification {self.requested_at:%Y-%m-%d %H:%M} ({self.status})"
