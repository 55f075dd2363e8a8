"""What the CAB's meeting page shows, computed once for the page and its live updates."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import Prefetch
from django.urls import NoReverseMatch, reverse

from approvals.cab.live import Shown, meeting_token
from approvals.cab.services import step_up_item_ids
from changes.cab.forms import OutcomeForm
from changes.cab.models import AgendaItem, CabMeeting
from governance.models import User


@dataclass
class ItemView:
    """One agenda item, its link, and its outcome form when the viewer may record one."""

    item: AgendaItem
    link: str
    link_label: str
    form: OutcomeForm | None = None
    step_up: bool = False
    error: str = ""


@dataclass
class MeetingPage:
    """The meeting as one viewer sees it."""

    meeting: CabMeeting
    items: list[ItemView]
    members: list[User]
    attendees: list[User]
    is_member: bool
    present: bool
    quorum_met: bool
    can_record: bool
    can_open: bool
    can_close: bool
    waiting_for: str  # why outcomes cannot be recorded yet ("" when they can)
    live: dict = field(default_factory=dict)

    @property
    def phase(self) -> str:
        return f"{self.meeting.status}:{int(self.can_record)}:{int(self.present)}"


def load_meeting(meetings, pk: int) -> CabMeeting:
    """The meeting with everything its page shows (raises DoesNotExist outside `meetings`)."""
    return (
        meetings.select_related("chair", "schedule")
        .prefetch_related(
            Prefetch("members", queryset=User.objects.order_by("username")),
            Prefetch("attendees", queryset=User.objects.order_by("username")),
            "services",
            Prefetch(
                "items",
                queryset=AgendaItem.objects.select_related(
                    "change", "review", "recorded_by", "added_by"
                ).order_by("position", "pk"),
            ),
        )
        .get(pk=pk)
    )


def _link(item: AgendaItem) -> tuple[str, str]:
    head, _, rest = item.key.partition(":")
    if head == "emergency" and rest.isdigit():
        return reverse("emergencies:emergency_detail", kwargs={"pk": int(rest)}), "Emergency"
    if item.release_id:
        return reverse("approvals:release_detail", kwargs={"pk": item.release_id}), "Release"
    if item.review_id:
        try:
            return reverse("changes:review_detail", kwargs={"pk": item.review_id}), "Review"
        except NoReverseMatch:
            pass
    if item.change_id:
        return reverse("changes:change_detail", kwargs={"pk": item.change_id}), item.change.ref
    return "", ""


def _waiting_for(meeting: CabMeeting, is_member: bool, present: bool, quorum_met: bool) -> str:
    if not is_member:
        return "Only the meeting's members record outcomes."
    if meeting.status == CabMeeting.Status.SCHEDULED:
        return "Outcomes are recorded once a member opens the meeting."
    if meeting.status != CabMeeting.Status.IN_PROGRESS:
        return f"The meeting is {meeting.get_status_display().lower()}."
    if not quorum_met:
        present_count = len(meeting.attendees.all())
        return (
            f"Quorum not met: {present_count} of the {meeting.quorum} members needed are present."
        )
    if not present:
        return "Mark yourself present to record outcomes."
    return ""


def meeting_page(
    meeting: CabMeeting, user: User, *, failed: dict[int, tuple[OutcomeForm, str]] | None = None
) -> MeetingPage:
    """The page's content for `user`; `failed` holds a refused outcome form per item id."""
    members, attendees = list(meeting.members.all()), list(meeting.attendees.all())
    is_member = any(m.pk == user.pk for m in members)
    present = any(a.pk == user.pk for a in attendees)
    quorum_met = len(attendees) >= meeting.quorum
    running = meeting.status == CabMeeting.Status.IN_PROGRESS
    can_record = is_member and present and running and quorum_met
    items = list(meeting.items.all())
    step_up = step_up_item_ids(items) if can_record else set()
    failed = failed or {}
    views = []
    for item in items:
        link, label = _link(item)
        form, error = failed.get(item.pk, (None, ""))
        if can_record and not item.outcome and form is None:
            form = OutcomeForm(item=item, prefix=f"item-{item.pk}")
        views.append(ItemView(item, link, label, form, item.pk in step_up, error))
    page = MeetingPage(
        meeting=meeting,
        items=views,
        members=members,
        attendees=attendees,
        is_member=is_member,
        present=present,
        quorum_met=quorum_met,
        can_record=can_record,
        can_open=is_member and meeting.status == CabMeeting.Status.SCHEDULED,
        can_close=is_member and running,
        waiting_for=_waiting_for(meeting, is_member, present, quorum_met),
    )
    page.live = _live(page)
    return page


def _live(page: MeetingPage) -> dict:
    meeting = page.meeting
    shown = Shown(
        token=meeting_token(meeting),
        phase=page.phase,
        open_items=frozenset(v.item.pk for v in page.items if not v.item.outcome),
        newest=max((v.item.pk for v in page.items), default=0),
    )
    url = reverse("cab:meeting_updates", kwargs={"pk": meeting.pk})
    over = meeting.status in (CabMeeting.Status.CLOSED, CabMeeting.Status.CANCELLED)
    return {
        "url": f"{url}?{urlencode(shown.query())}",
        "seconds": settings.SIGNOFF_LIVE_POLL_SECONDS,
        "final": over,
        "shown": shown,
    }
