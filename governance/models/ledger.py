"""The evidence ledger: append-only, hash-chained, signed entries."""

from __future__ import annotations

import pgtrigger
from django.db import models


class LedgerHead(models.Model):
    """The single row holding the chain's tip; locked to serialise appends."""

    seq = models.BigIntegerField(default=0)
    entry_hash = models.CharField(max_length=64, default="0" * 64)

    def __str__(self) -> str:
        return f"ledger head #{self.seq}"


@pgtrigger.register(
    pgtrigger.Protect(name="ledger_append_only", operation=pgtrigger.Update | pgtrigger.Delete)
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

    def __str__(self) -> str:
        return f"#{self.seq} {self.kind} {self.subject}"
