"""An open release page kept current: a version token of what it shows, and what changed since.

The page polls with the token it was rendered with. While the token still matches, the answer is
a 204 costing one small query (`ReleaseQuerySet.live_rows`); otherwise the live parts are
rendered again, what happened meanwhile is put into words for the page's live region, and the
action boxes someone may be typing in are left alone, with a notice when one no longer applies.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from django.http import QueryDict
from django.utils import timezone

from approvals.models import ApprovalRequest, ReleaseQuerySet
from approvals.presenters import ReleasePage
from governance.models import LedgerEntry

# Nothing more happens to a request in these states: the page stops asking.
FINAL_STATUSES = {
    ApprovalRequest.Status.REJECTED,
    ApprovalRequest.Status.WITHDRAWN,
    ApprovalRequest.Status.EXPIRED,
}
BOXES = ("decide", "revoke", "withdraw")
# The gate's answers (approvals.gate): a page can only have shown one of these.
GATE_ANSWERS = ("approved", "pending", "rejected", "blocked", "expired")


@dataclass(frozen=True)
class LiveVersion:
    """What the page shows, as a token: "<newest ledger seq>-<digest of everything else>"."""

    token: str
    ledger_seq: int
    final: bool


def live_version(
    releases: ReleaseQuerySet, pk: int, now: datetime | None = None
) -> LiveVersion | None:
    """The version of release `pk` among `releases` (restricted by the caller), or None."""
    row = releases.filter(pk=pk).live_rows().first()
    if row is None:
        return None
    now = now or timezone.now()
    status = row["approval__status"]
    # Time alone turns a pending request expired, or an approval stale: no row changes then.
    lapsed = (status == ApprovalRequest.Status.PENDING and row["approval__expires_at"] <= now) or (
        status == ApprovalRequest.Status.APPROVED
        and row["approval__valid_until"] is not None
        and row["approval__valid_until"] <= now
    )
    seq = row["ledger_seq"] or 0
    rest = [status, lapsed, row["change__state"], row["decision_summary"]]
    rest += [row["deployment_summary"], row["approval__gate_snapshot"]]
    digest = hashlib.sha256(json.dumps(rest, sort_keys=True, default=str).encode()).hexdigest()
    return LiveVersion(
        token=f"{seq}-{digest[:16]}", ledger_seq=seq, final=lapsed or status in FINAL_STATUSES
    )


@dataclass(frozen=True)
class Shown:
    """What the polling page shows, as it says in its query string."""

    token: str = ""
    gate: str = ""
    decide_stage: int | None = None  # the stage its decision form decides, if it has one
    boxes: frozenset[str] = frozenset()

    @classmethod
    def from_query(cls, query: QueryDict) -> Shown:
        stage, gate = query.get("stage", ""), query.get("gate", "")
        return cls(
            token=query.get("v", ""),
            # Only a known answer: the announcement repeats it, so a crafted link cannot put
            # words of its own into the page.
            gate=gate if gate in GATE_ANSWERS else "",
            decide_stage=int(stage) if stage.isdigit() else None,
            boxes=frozenset(query.get("boxes", "").split(",")) & set(BOXES),
        )

    @classmethod
    def from_page(cls, page: ReleasePage, version: LiveVersion) -> Shown:
        boxes = {
            "decide": page.can_decide,
            "revoke": page.revocable is not None,
            "withdraw": page.can_withdraw,
        }
        return cls(
            token=version.token,
            gate=page.gate.status,
            decide_stage=page.decide_stage.pk if page.decide_stage else None,
            boxes=frozenset(name for name, shown in boxes.items() if shown),
        )

    @property
    def seen_seq(self) -> int | None:
        """The newest ledger entry the page had shown, read from its token."""
        head = self.token.partition("-")[0]
        return int(head) if head.isdigit() else None

    def query(self) -> dict[str, str]:
        """The query string the page polls with."""
        return {
            "v": self.token,
            "gate": self.gate,
            "stage": str(self.decide_stage or ""),
            "boxes": ",".join(sorted(self.boxes)),
        }

    def after(self, version: LiveVersion, page: ReleasePage) -> Shown:
        """What the page shows once the live parts are swapped: the boxes stay as they were."""
        return Shown(version.token, page.gate.status, self.decide_stage, self.boxes)


def announcements(page: ReleasePage, entries: list[LedgerEntry], shown: Shown) -> list[str]:
    """What happened since the page's version, one sentence each, for its live region."""
    seen = shown.seen_seq
    stages = {view.stage.key: view.stage.name for view in page.stages}
    news = [_describe(entry, stages) for entry in entries if seen is not None and entry.seq > seen]
    if shown.gate and shown.gate != page.gate.status:
        news.append(f"The gate now answers {page.gate.status} (it was {shown.gate}).")
    return [sentence for sentence in news if sentence]


def _describe(entry: LedgerEntry, stages: dict[str, str]) -> str:
    payload, who = entry.payload, entry.actor
    stage = stages.get(payload.get("stage", ""), payload.get("stage", ""))
    for_whom = f" for {payload['on_behalf_of']}" if payload.get("on_behalf_of") else ""
    if entry.kind == "decision.recorded":
        verdict = "approved" if payload.get("verdict") == "approve" else "rejected"
        return f"{who}{for_whom} {verdict} stage {stage}."
    if entry.kind == "decision.revoked":
        return f"{who}{for_whom} revoked their approval of stage {stage}."
    if entry.kind == "evidence.added":
        return f"New evidence: {payload.get('kind')} {payload.get('status')}."
    if entry.kind in ("deployment.reported", "deployment.unapproved"):
        flag = " the gate had not approved" if entry.kind == "deployment.unapproved" else ""
        return f"{who} reported a {payload.get('status')} deployment{flag}."
    if entry.kind == "approval.withdrawn":
        return f"{who} withdrew the request."
    return ""  # gate transitions are told once, as the gate's new answer


def box_notices(page: ReleasePage, shown: Shown) -> dict[str, str]:
    """For each action box on the page, why it no longer applies ('' while it still does).

    The boxes are never replaced, so nothing typed into them is lost; the notice tells the
    person before the server refuses what they were about to send.
    """
    notices = {"decide": _decide_notice(page, shown)}
    if "revoke" in shown.boxes and not page.revocable:
        notices["revoke"] = "You have no approval on an open stage to take back any more."
    elif "revoke" in shown.boxes:
        notices["revoke"] = ""
    if "withdraw" in shown.boxes:
        notices["withdraw"] = "" if page.can_withdraw else _withdraw_notice(page)
    return notices


def _decide_notice(page: ReleasePage, shown: Shown) -> str:
    stage = page.decide_stage.name if page.decide_stage else ""
    if "decide" not in shown.boxes:
        return f"You can decide {stage} now: reload the page for the form." if stage else ""
    if not page.can_decide:
        return f"This form no longer applies: {page.blocker} What you typed is kept."
    if page.decide_stage.pk != shown.decide_stage:
        return f"The stage you were deciding has closed; sending now decides {stage}."
    return ""


def _withdraw_notice(page: ReleasePage) -> str:
    approval = page.release.approval
    if approval.status == ApprovalRequest.Status.PENDING:
        return "You may no longer withdraw this request."
    return f"This no longer applies: the request is {approval.get_status_display().lower()}."
