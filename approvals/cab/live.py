"""A meeting page kept current while it runs: a version token of what it shows, and which of
its parts to swap when another member marks attendance, opens the meeting or records an outcome.

The page polls with the token it was rendered with and says what it shows: the phase (status,
whether this viewer may record outcomes), the items still open on it and the newest item. While
the token matches the answer is a 204. Otherwise the status panel is swapped, items recorded
since are swapped, new items are appended, and the open items' forms someone may be typing in are
left alone unless the phase changed (then every item is drawn again: its form appears or goes).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from django.http import QueryDict

from changes.cab.models import CabMeeting


def meeting_token(meeting: CabMeeting) -> str:
    """What the page shows, in 16 hex digits: status, attendance and every item's outcome."""
    attendees = sorted(meeting.attendees.values_list("pk", flat=True))
    items = list(meeting.items.order_by("pk").values_list("pk", "outcome", "recorded_at"))
    state = [meeting.status, meeting.chair_id, attendees, items]
    return hashlib.sha256(json.dumps(state, default=str).encode()).hexdigest()[:16]


def _ids(text: str) -> frozenset[int]:
    return frozenset(int(part) for part in text.split(",") if part.isdigit())


@dataclass(frozen=True)
class Shown:
    """What the polling page shows, as its query string says."""

    token: str = ""
    phase: str = ""
    open_items: frozenset[int] = frozenset()
    newest: int = 0

    @classmethod
    def from_query(cls, query: QueryDict) -> Shown:
        newest = query.get("newest", "")
        return cls(
            token=query.get("v", "")[:16],
            phase=query.get("phase", "")[:40],
            open_items=_ids(query.get("open", "")),
            newest=int(newest) if newest.isdigit() else 0,
        )

    def query(self) -> dict[str, str]:
        return {
            "v": self.token,
            "phase": self.phase,
            "open": ",".join(str(pk) for pk in sorted(self.open_items)),
            "newest": str(self.newest),
        }
