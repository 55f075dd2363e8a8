"""The CAB's pages: its queue, its meetings, and a meeting run live."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from approvals.cab import queue
from approvals.cab.forms import QueueFilterForm
from approvals.cab.live import Shown, meeting_token
from approvals.cab.minutes import minutes_pdf
from approvals.cab.presenters import load_meeting, meeting_page
from approvals.cab.services import record_item_outcome
from changes.cab import services as cab
from changes.cab.forms import CloseForm, ItemForm, OutcomeForm
from changes.cab.models import AgendaItem, CabMeeting
from governance.authority.services import is_administrator
from governance.exceptions import GovernanceError
from governance.models import Service, holds_everywhere

PAGE_SIZE = 25


def _cab_services(user):
    """Services the member sits on the CAB for; None when that is every service."""
    return None if holds_everywhere(user, "cab") else Service.objects.restrict(user, "cab")


@login_required
@require_GET
def cab_queue(request: HttpRequest) -> HttpResponse:
    """What the CAB has to look at on the member's services, with filters and counts per kind.
    Someone sitting on no CAB sees an empty queue that says so."""
    now = timezone.now()
    services = _cab_services(request.user)
    member = services is None or services.exists()
    form = QueueFilterForm(request.GET or None, services=services)
    chosen = form.chosen()
    sets = queue.filtered(services if member else Service.objects.none(), chosen, now)
    page = Paginator(queue.union(sets, chosen.kind, now), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    context = {
        "page": page,
        "rows": queue.page_rows(list(page.object_list)),
        "counts": [(k, queue.Kind(k).label, n) for k, n in queue.counts(sets).items()],
        "form": form,
        "chosen": chosen,
        "member": member,
        "now": now,
    }
    template = (
        "approvals/cab/partials/_queue_table.html" if request.htmx else "approvals/cab/queue.html"
    )
    return render(request, template, context)


@login_required
@require_GET
def meeting_list(request: HttpRequest) -> HttpResponse:
    """Meetings the person may see: those to come (soonest first), then past ones."""
    now = timezone.now()
    meetings = CabMeeting.objects.restrict(request.user).prefetch_related("services")
    upcoming = meetings.upcoming(now)[:20]
    past = meetings.exclude(pk__in=meetings.upcoming(now).values("pk")).order_by(
        "-starts_at", "-pk"
    )
    page = Paginator(past, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "upcoming": list(upcoming),
        "page": page,
        "administrator": is_administrator(request.user),
    }
    return render(request, "approvals/cab/meeting_list.html", context)


def _meeting_or_404(request: HttpRequest, pk: int) -> CabMeeting:
    try:
        return load_meeting(CabMeeting.objects.restrict(request.user), pk)
    except CabMeeting.DoesNotExist:
        raise Http404("No such meeting in your scope.") from None


@login_required
@require_GET
def meeting_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The meeting page: attendance, the agenda, outcomes; kept current while it runs."""
    meeting = _meeting_or_404(request, pk)
    context = {
        "page": meeting_page(meeting, request.user),
        "item_form": ItemForm(user=request.user),
        "close_form": CloseForm(),
    }
    return render(request, "approvals/cab/meeting_detail.html", context)


@login_required
@require_GET
@never_cache
def meeting_updates(request: HttpRequest, pk: int) -> HttpResponse:
    """An open meeting page's poll: 204 while current, else the parts that changed."""
    meetings = CabMeeting.objects.restrict(request.user)
    meeting = get_object_or_404(meetings, pk=pk)
    shown = Shown.from_query(request.GET)
    if shown.token == meeting_token(meeting):
        return HttpResponse(status=204)
    page = meeting_page(load_meeting(meetings, pk), request.user)
    redraw = shown.phase != page.phase
    context = {
        "page": page,
        "swapped": [
            view
            for view in page.items
            if view.item.pk <= shown.newest
            and (redraw or (view.item.pk in shown.open_items and view.item.outcome))
        ],
        "appended": [view for view in page.items if view.item.pk > shown.newest],
    }
    return render(request, "approvals/cab/partials/_meeting_updates.html", context)


def _act(request: HttpRequest, pk: int, action, done: str, **kwargs) -> HttpResponse:
    """Run a meeting action as the signed-in member; say how it went on the meeting page."""
    meeting = get_object_or_404(CabMeeting.objects.restrict(request.user), pk=pk)
    try:
        action(meeting=meeting, actor=request.user, **kwargs)
    except GovernanceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done)
    return redirect("cab:meeting_detail", pk=meeting.pk)


@login_required
@require_POST
def meeting_attendance(request: HttpRequest, pk: int) -> HttpResponse:
    """A member marks themselves present, or leaves."""
    present = request.POST.get("present") == "1"
    done = "You are marked present." if present else "You are marked as having left."
    return _act(request, pk, cab.mark_attendance, done, present=present)


@login_required
@require_POST
def meeting_open(request: HttpRequest, pk: int) -> HttpResponse:
    """A member opens the meeting (and chairs it unless a chair was named)."""
    return _act(request, pk, cab.open_meeting, "Meeting opened.")


@login_required
@require_POST
def meeting_close(request: HttpRequest, pk: int) -> HttpResponse:
    """A member closes the meeting; open items go on the next one."""
    form = CloseForm(request.POST)
    notes = form.cleaned_data["notes"] if form.is_valid() else ""
    return _act(request, pk, cab.close_meeting, "Meeting closed.", notes=notes)


@login_required
@require_POST
def item_add(request: HttpRequest, pk: int) -> HttpResponse:
    """A member adds an item by hand."""
    get_object_or_404(CabMeeting.objects.restrict(request.user), pk=pk)
    form = ItemForm(request.POST, user=request.user)
    if not form.is_valid():
        field, errors = next(iter(form.errors.items()))
        messages.error(request, f"Item not added: {field.replace('_', ' ')}: {errors[0]}")
        return redirect("cab:meeting_detail", pk=pk)
    data = form.cleaned_data
    return _act(
        request,
        pk,
        cab.add_item_by_hand,
        "Item added to the agenda.",
        title=data["title"],
        detail=data["detail"],
        change=data["change_ref"],
    )


@login_required
@require_POST
def item_outcome(request: HttpRequest, pk: int, item_pk: int) -> HttpResponse:
    """Record an item's outcome. htmx swaps the item; a plain POST returns to the page."""
    meeting = get_object_or_404(CabMeeting.objects.restrict(request.user), pk=pk)
    item = get_object_or_404(
        AgendaItem.objects.select_related("meeting"), pk=item_pk, meeting=meeting
    )
    form = OutcomeForm(request.POST, item=item, prefix=f"item-{item.pk}")
    status, error = 200, ""
    if form.is_valid():
        try:
            record_item_outcome(
                item=item,
                actor=request.user,
                outcome=form.cleaned_data["outcome"],
                minutes=form.cleaned_data["minutes"],
                step_up_code=form.cleaned_data["step_up_code"] or None,
            )
        except GovernanceError as exc:
            status, error = 409, exc.message
    else:
        status = 422
    if not request.htmx:
        if error or status == 422:
            messages.error(request, error or "Outcome not recorded: minutes are required.")
        return redirect("cab:meeting_detail", pk=meeting.pk)
    failed = {item.pk: (form, error)} if status != 200 else None
    page = meeting_page(_meeting_or_404(request, pk), request.user, failed=failed)
    view = next(v for v in page.items if v.item.pk == item.pk)
    return render(
        request, "approvals/cab/partials/_item.html", {"page": page, "view": view}, status=status
    )


@login_required
@require_GET
def meeting_minutes(request: HttpRequest, pk: int) -> HttpResponse:
    """The minutes as a PDF: attendance, quorum, each item's outcome, minutes and recorder."""
    meeting = _meeting_or_404(request, pk)
    response = HttpResponse(minutes_pdf(meeting), content_type="application/pdf")
    name = f"cab-minutes-{meeting.starts_at:%Y%m%d}-{meeting.pk}.pdf"
    response["Content-Disposition"] = f'inline; filename="{name}"'
    return response
