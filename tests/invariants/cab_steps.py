"""The model's steps about the CAB's meetings, their agendas and decisions, and the reviews that
follow an emergency.

An administrator calls a meeting on its page (anyone may try); beat prepares the agendas (queue
items on the next meetings within a week, overdue reviews chased onto them); members mark
themselves present, open the meeting, add items by hand, record outcomes with minutes (approved
or rejected on a release is the recording member's own decision) and close it, carrying
undecided items over. Outside meetings, a CAB member records an emergency's secondary review on
the emergency's page and an owner completes a post-implementation review or a post-mortem on
the review's page; the declarer and the change's author try too, and are refused.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from approvals.cab.services import prepare_cab_meetings
from approvals.emergencies.models import EmergencyException
from approvals.models import ApprovalStage, Release
from approvals.services import escalate_overdue_stages
from changes.cab.models import AgendaItem, CabMeeting
from changes.reviews.models import Review
from changes.reviews.services import chase_reviews
from changes.wall_time import WALL_FORMAT
from governance.models import LedgerEntry, User
from tests.invariants import fingerprint
from tests.invariants.cab_checks import ACTING, APPROVAL_KINDS, outcomes_of
from tests.invariants.checks import require
from tests.invariants.drawing import REFUSALS, actors, people, release_indexes, tally
from tests.invariants.organisation import SERVICES

# Who sits on a meeting and its quorum: the CAB member alone first (shrinking prefers it), then
# boards holding a service approver, an administrator, the auditor or a release manager.
BOARDS = (
    (("carol",), 1),
    (("carol", "bob"), 2),
    (("carol", "alice", "ada"), 2),
    (("carol", "erin"), 1),
    (("carol", "dave"), 2),
)
MEMBER = "a member of the meeting"
PRESENT = "a member present"
DECLARER = "the declarer"
AUTHOR = "the change's author"
OWNER = "an owner of the service"
MINUTES = "Discussed by the board (the model)."


class CabSteps:
    """CAB meetings are called, prepared, held and closed; emergencies are reviewed by the CAB
    and post-mortems completed by owners (mixed into `model.Organisation`)."""

    def setup_cab(self) -> None:
        """Called once when an example starts, before any step: the meetings it calls."""
        self.meetings: list[int] = []

    # --- Meetings ---------------------------------------------------------------------------

    @rule(
        actor=actors,
        board=st.integers(0, len(BOARDS) - 1),
        service=st.sampled_from((None, *SERVICES)),
        starts_in=st.sampled_from((1, 30, 200)),
    )
    def call_meeting(self, actor: str, board: int, service: str | None, starts_in: int) -> None:
        """Someone calls a one-off CAB meeting on its page, for every service or one, an hour,
        a day or more than a week ahead: administrators may, anyone else is refused."""
        self.step("call_meeting")
        self._call(actor, board, service, starts_in)

    @rule(
        board=st.integers(0, len(BOARDS) - 1),
        service=st.sampled_from((None, *SERVICES)),
        tomorrow=st.booleans(),
        choice=st.integers(0, 3),
        close=st.booleans(),
    )
    def cab_meets(self, board, service, tomorrow: bool, choice: int, close: bool) -> None:
        """A whole CAB meeting: an administrator calls it for the coming hour, or for tomorrow
        and the day passes while beat escalates overdue stages onto it; beat prepares its agenda
        from the queue; every member marks themselves present and one opens it; the members
        present, in turn, record an outcome of each item (the kind's first, or another, with
        minutes); maybe a member closes it. The same pages and tasks as the steps doing each
        of these alone."""
        self.step("cab_meets")
        meeting = self._call("ada", board, service, 25 if tomorrow else 1)
        if meeting is None:
            return
        if tomorrow:
            self.clock.at = meeting.starts_at - timedelta(minutes=30)
            escalate_overdue_stages()
        tally["agenda items added by beat"] += prepare_cab_meetings(now=self.clock.now())[
            "items_added"
        ]
        self._run(meeting, "convene", MEMBER, 0)
        present = list(meeting.attendees.order_by("username"))
        for turn, item in enumerate(meeting.items.order_by("position", "pk") if present else []):
            allowed = outcomes_of(item.kind)
            self._record(item, present[turn % len(present)], allowed[choice % len(allowed)])
        if close:
            self._run(meeting, "close", MEMBER, 0)

    def _call(self, actor: str, board: int, service: str | None, hours: int) -> CabMeeting | None:
        """`actor` calls a meeting of the board `hours` ahead on the page; the meeting, if
        called."""
        user = self.user(actor)
        if user is None:
            return None
        names, quorum = BOARDS[board]
        start = (self.clock.now().replace(second=0) + timedelta(hours=hours)).strftime(WALL_FORMAT)
        form = {
            "title": f"CAB {len(self.meetings) + 1}",
            "start": start,
            "time_zone": "UTC",
            "duration_minutes": 60,
            "quorum": quorum,
            "members": [self.people[name] for name in names if name in self.people],
            "services": [self.services[service]] if service else [],
        }
        last = CabMeeting.objects.order_by("-pk").values_list("pk", flat=True).first() or 0

        def called() -> bool:
            return CabMeeting.objects.filter(pk__gt=last).exists()

        if not self._post("meeting called", user, "/cab/meetings/new/", form, called):
            return None
        meeting = CabMeeting.objects.get(pk__gt=last)
        self.meetings.append(meeting.pk)
        return meeting

    @rule(twice=st.booleans())
    def prepare_agendas(self, twice: bool) -> None:
        """Beat's hourly CAB work: the meetings of the week ahead get the queue's items
        (escalated and CAB stages, emergencies to review, open reviews), and overdue reviews
        are chased onto the next meeting; handed out twice, the second run adds nothing."""
        self.step("prepare_agendas")
        now = self.clock.now()
        prepared = prepare_cab_meetings(now=now)
        chase_reviews(now)
        tally["agenda items added by beat"] += prepared["items_added"]
        if twice:
            before = fingerprint.take()
            again = prepare_cab_meetings(now=now)
            chase_reviews(now)
            changed = fingerprint.changed(before)
            require(
                again["items_added"] == 0 and not changed,
                7,
                f"preparing the agendas again added {again['items_added']} items, changed "
                f"{changed}",
            )

    @precondition(lambda self: self.meetings)
    @rule(
        pick=st.integers(0, 3),
        what=st.sampled_from(("convene", "attend", "open", "close", "leave")),
        name=st.one_of(st.just(MEMBER), people),
    )
    def run_meeting(self, pick: int, what: str, name: str) -> None:
        """A meeting moves on through its page: every member marks themselves present and one
        opens it (convene), or one person marks themselves present, leaves, opens or closes it
        with its general minutes (anyone may try; only members may, each for themselves)."""
        self.step("run_meeting")
        meeting = CabMeeting.objects.get(pk=self.meetings[pick % len(self.meetings)])
        self._run(meeting, what, name, pick)

    def _run(self, meeting: CabMeeting, what: str, name: str, pick: int) -> None:
        members = list(meeting.members.order_by("username"))
        if what == "convene":
            for member in members:
                self._attend(meeting, member, present=True)
            what, name = "open", MEMBER
        user = members[pick % len(members)] if name == MEMBER and members else self.user(name)
        if user is None:
            return
        if what in ("attend", "leave"):
            self._attend(meeting, user, present=what == "attend")
            return
        status = {"open": CabMeeting.Status.IN_PROGRESS, "close": CabMeeting.Status.CLOSED}[what]
        form = {"notes": "Closed by the model."} if what == "close" else {}

        def moved() -> bool:
            return CabMeeting.objects.filter(pk=meeting.pk, status=status).exists() and (
                meeting.status != status
            )

        self._post(f"meeting {what}", user, f"/cab/meetings/{meeting.pk}/{what}/", form, moved)

    def _attend(self, meeting: CabMeeting, user: User, *, present: bool) -> None:
        """`user` marks themselves present (or as having left) on the meeting's page."""
        was = meeting.attendees.filter(pk=user.pk).exists()
        last = LedgerEntry.objects.order_by("-pk").values_list("pk", flat=True).first() or 0

        def marked() -> bool:
            # The attendance list is not in the fingerprint: read it, and the ledger.
            now = meeting.attendees.filter(pk=user.pk).exists()
            return now != was or LedgerEntry.objects.filter(pk__gt=last).exists()

        what = "attendance" if present else "leaving"
        path = f"/cab/meetings/{meeting.pk}/attendance/"
        if self._post(what, user, path, {"present": "1" if present else "0"}, marked):
            where = f"{user.username} marked {'present' if present else 'absent'} at {meeting}"
            require(meeting.members.filter(pk=user.pk).exists(), 20, f"{where}: no member")
            require(
                LedgerEntry.objects.filter(
                    pk__gt=last, kind="cab.attendance", actor=user.username
                ).exists(),
                11,
                f"{where}: no cab.attendance ledger entry",
            )

    @precondition(lambda self: self.meetings and self.releases)
    @rule(pick=st.integers(0, 3), name=st.one_of(st.just(MEMBER), people), about=release_indexes)
    def add_item_by_hand(self, pick: int, name: str, about: int) -> None:
        """A member adds an item by hand naming a release's change (anyone may try)."""
        self.step("add_item_by_hand")
        meeting = CabMeeting.objects.get(pk=self.meetings[pick % len(self.meetings)])
        members = list(meeting.members.order_by("username"))
        user = members[pick % len(members)] if name == MEMBER and members else self.user(name)
        if user is None:
            return
        change = self.release(about).change
        form = {"title": f"About {change.ref}", "detail": "", "change_ref": change.ref}
        count = meeting.items.count()

        def added() -> bool:
            return meeting.items.count() > count

        self._post("item added by hand", user, f"/cab/meetings/{meeting.pk}/items/", form, added)

    @precondition(lambda self: self.meetings)
    @rule(
        pick=st.integers(0, 5),
        fresh=st.booleans(),
        name=st.one_of(st.just(PRESENT), people),
        choice=st.integers(0, 4),
        minutes=st.sampled_from((MINUTES, "")),
    )
    def record_outcome(self, pick: int, fresh: bool, name: str, choice: int, minutes) -> None:
        """A member present records an item's outcome with its minutes on the meeting page
        (htmx): the first outcome its kind allows, another, or one it does not allow. Mostly on
        an item of a meeting in progress that has none yet (`fresh`); else on any item of the
        example's meetings, whose outcome may be recorded already (and must be refused)."""
        self.step("record_outcome")
        item = self._item(pick, fresh)
        if item is None:
            return
        meeting = item.meeting
        # Nobody present: a member tries (and is refused).
        present = list(meeting.attendees.order_by("username")) or list(meeting.members.all())
        user = present[pick % len(present)] if name == PRESENT and present else self.user(name)
        if user is None:
            return
        allowed = outcomes_of(item.kind)
        self._record(item, user, allowed[choice] if choice < len(allowed) else "approved", minutes)

    def _record(self, item: AgendaItem, user: User, outcome: str, minutes: str = MINUTES) -> None:
        """`user` records `outcome` on the item through the meeting page's htmx form; it must
        be recorded when nothing in the rules stands in the way."""
        meeting = item.meeting
        must = self._must_outcome(item, user, outcome) if minutes else None
        data = {f"item-{item.pk}-outcome": outcome, f"item-{item.pk}-minutes": minutes}
        before = fingerprint.take()
        response = self._page(user).post(
            f"/cab/meetings/{meeting.pk}/items/{item.pk}/outcome/", data, HTTP_HX_REQUEST="true"
        )
        recorded = self.answered("outcome", response, (200,), before)
        require(recorded or not must, 8, f"{must}, but the meeting page refused it")
        if recorded:
            tally[f"outcome {outcome} on {item.kind}"] += 1

    def _item(self, pick: int, fresh: bool) -> AgendaItem | None:
        """An agenda item of the example's meetings: with `fresh`, one still open in a meeting
        in progress (approval items first); otherwise any."""
        items = AgendaItem.objects.filter(meeting__in=self.meetings).select_related("meeting")
        waiting = items.filter(outcome="", meeting__status=CabMeeting.Status.IN_PROGRESS)
        if fresh and waiting.exists():
            approvals = waiting.filter(kind__in=APPROVAL_KINDS)
            items = approvals if approvals.exists() else waiting
        chosen = list(items.order_by("pk"))
        return chosen[pick % len(chosen)] if chosen else None

    def _must_outcome(self, item: AgendaItem, user: User, outcome: str) -> str | None:
        """Why this outcome must be recorded, or None when the rules may refuse it: a member
        present in a meeting in progress with its quorum, on an item without an outcome, an
        outcome its kind takes that acts on nothing, or the recorder's own decision that the
        release page would record too."""
        meeting = CabMeeting.objects.get(pk=item.meeting_id)
        if (
            meeting.status != CabMeeting.Status.IN_PROGRESS
            or meeting.attendees.count() < meeting.quorum
            or not meeting.attendees.filter(pk=user.pk).exists()
            or item.outcome
            or outcome not in outcomes_of(item.kind)
        ):
            return None
        why = f"{user.username}, present, records {outcome} on item {item.key} of {meeting.title}"
        if outcome in ACTING:
            return None  # the emergency's own rules decide (judged by check_cab)
        if item.kind not in APPROVAL_KINDS or outcome not in ("approved", "rejected"):
            return why
        release = Release.objects.select_related("approval", "change", "service").get(
            pk=item.release_id
        )
        stage = ApprovalStage.objects.filter(pk=int(item.key.partition(":")[2])).first()
        if stage is None or stage.status != ApprovalStage.Status.ACTIVE:
            return None
        return why if self._must_record(user, release) else None

    # --- Emergencies and reviews --------------------------------------------------------------

    @rule(
        name=st.one_of(st.sampled_from(("carol", DECLARER, AUTHOR)), people),
        pick=st.integers(0, 3),
        outcome=st.sampled_from(("justified", "not_justified")),
        notes=st.sampled_from(("Actions: tighten the runbook (the model).", "")),
    )
    def secondary_review(self, name: str, pick: int, outcome: str, notes: str) -> None:
        """Someone records the CAB's secondary review of an emergency on its page: a CAB member
        of the service who neither declared it nor wrote its change may, once."""
        self.step("secondary_review")
        emergencies = list(EmergencyException.objects.select_related("change").order_by("pk"))
        if not emergencies:
            return
        emergency = emergencies[pick % len(emergencies)]
        user = self._person(name, emergency.declared_by_id, emergency.change.author_id, None)
        if user is None:
            return
        path = f"/approvals/emergencies/{emergency.pk}/review/"

        def reviewed() -> bool:
            now = EmergencyException.objects.get(pk=emergency.pk)
            return (now.reviewed_by_id, now.reviewed_at) != (
                emergency.reviewed_by_id,
                emergency.reviewed_at,
            )

        self._post("secondary review", user, path, {"outcome": outcome, "notes": notes}, reviewed)

    @rule(
        name=st.one_of(st.sampled_from((OWNER, DECLARER, AUTHOR)), people),
        pick=st.integers(0, 3),
        justified=st.sampled_from(("yes", "no", "")),
    )
    def complete_review(self, name: str, pick: int, justified: str) -> None:
        """Someone completes a post-implementation review or a post-mortem on its page: an
        owner of the service may, never the change's author or the emergency's declarer; a
        post-mortem must say whether the emergency was justified."""
        self.step("complete_review")
        reviews = list(Review.objects.select_related("change", "service").order_by("pk"))
        if not reviews:
            return
        review = reviews[pick % len(reviews)]
        emergency = EmergencyException.objects.filter(change=review.change_id).first()
        declarer = emergency.declared_by_id if emergency else None
        owners = sorted(review.service.owners.values_list("pk", flat=True))
        owner = owners[pick % len(owners)] if owners else None
        user = self._person(name, declarer, review.change.author_id, owner)
        if user is None:
            return
        form = {"what_happened": "It broke (the model).", "root_cause": "A bug (the model)."}
        if justified:
            form["justification_valid"] = justified
        path = f"/changes/reviews/{review.pk}/complete/"

        def completed() -> bool:
            now = Review.objects.get(pk=review.pk)
            return (now.status, now.completed_at) != (review.status, review.completed_at)

        self._post(f"{review.kind} completed", user, path, form, completed)

    def _person(
        self, name: str, declarer: int | None, author: int | None, owner: int | None
    ) -> User | None:
        """The person `name` stands for: someone by name, or the subject's declarer, author or
        owner (None when there is none)."""
        pk = {DECLARER: declarer, AUTHOR: author, OWNER: owner}.get(name, self.people.get(name))
        return User.objects.filter(pk=pk).first() if pk else None

    # --- Helpers ------------------------------------------------------------------------------

    def _page(self, user: User):
        """`user`'s browser, signed in again when the model's time outlived their session (two
        weeks: a few `time_passes` steps), so that a refusal is the page's, not the sign-in's."""
        browser = self.browser(user)
        if "_auth_user_id" not in browser.session:
            browser.force_login(user)
        return browser

    def _post(self, what: str, user: User, path: str, form: dict, done: Callable[[], bool]) -> bool:
        """POST a form whose answer does not say whether it did its work (a redirect follows a
        refusal as well, or the sign-in page): that is read from the rows (`done`); a refusal
        must be clear and change nothing."""
        before = fingerprint.take()
        response = self._page(user).post(path, form)
        if done():
            tally[what] += 1
            return True
        require(
            response.status_code in (200, 302, *REFUSALS),
            7,
            f"{what} answered {response.status_code}: {response.content[:300]!r}",
        )
        changed = fingerprint.changed(before)
        require(not changed, 7, f"refused {what} ({response.status_code}) changed {changed}")
        tally[f"refused {what}"] += 1
        return False
