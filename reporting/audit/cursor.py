"""Where a page of the audit trail stands in each of its two sources.

The trail merges the ledger (ordered by seq) and django-auditlog's entries (ordered by
timestamp, then id). A cursor holds one position in each: the key of the first row on the newer
side of a cut. "Older" pages read rows strictly below the positions, "newer" pages rows at or
above them, so paging either way never skips or repeats a row, whatever the interleaving and
however many rows share a timestamp. A missing position (`*`) lies above every row.

Written in links as `<seq>.<microseconds since the epoch>.<id>`, for example
`1201.1733500000000000.88`, or `*.*.*` for the top of both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PATTERN = re.compile(r"^(\*|\d{1,18})\.(?:(\*)\.\*|(\d{1,20})\.(\d{1,18}))$")


class BadCursor(ValueError):
    """A cursor in a link that Signoff did not write (edited, truncated)."""


@dataclass(frozen=True)
class Cursor:
    """A cut through both sources: ledger seq, and auditlog (timestamp, id); None is the top."""

    seq: int | None = None
    logged: tuple[datetime, int] | None = None

    def __str__(self) -> str:
        seq = "*" if self.seq is None else str(self.seq)
        if self.logged is None:
            return f"{seq}.*.*"
        at, pk = self.logged
        return f"{seq}.{(at - EPOCH) // timedelta(microseconds=1)}.{pk}"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        found = PATTERN.match(text)
        if not found:
            raise BadCursor("This page link is damaged: open the audit trail again from its start.")
        seq, _, micros, pk = found.groups()
        logged = None
        if micros is not None:
            try:
                logged = (EPOCH + timedelta(microseconds=int(micros)), int(pk))
            except OverflowError:
                raise BadCursor("This page link names a time out of range.") from None
        return cls(seq=None if seq == "*" else int(seq), logged=logged)
