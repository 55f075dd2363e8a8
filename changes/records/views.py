"""Change pages: the list (search and filters), a change with everything that touches it, and
open / edit / move for release managers of its services and administrators."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from changes.incidents.models import Incident
from changes.records import selectors
from changes.records import services as records
from changes.records.forms import ChangeForm, MoveForm
from changes.records.models import ChangeRecord
from changes.reviews.selectors import reviews_for_change
from governance.authority.models import holds_everywhere
from governance.authority.services import is_administrator
from governance.exceptions import GovernanceError
from governance.forms import form_errors_from
from governance.models import Service

PAGE_SIZE = 50


@login_required
@require_GET
def change_list(request: HttpRequest) -> HttpResponse:
    """Changes on the services a person may see, newest first, searched and filtered."""
    filters = selectors.ChangeFilters(
        q=request.GET.get("q", "").strip()[:100],
        state=_choice(request.GET.get("state"), ChangeRecord.State.values),
        type=_choice(request.GET.get("type"), ChangeRecord.Type.values),
        risk=_choice(request.GET.get("risk"), ChangeRecord.Level.values),
        service=request.GET.get("service", "").strip()[:50],
    )
    changes = selectors.search_changes(selectors.changes_visible_to(request.user), filters)
    page = Paginator(changes.order_by("-created_at", "-pk"), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    context = {
        "page": page,
        "filters": filters,
        "states": ChangeRecord.State.choices,
        "types": ChangeRecord.Type.choices,
        "levels": ChangeRecord.Level.choices,
        "services": Service.objects.restrict(request.user, "view").order_by("name"),
        "may_open": _writable_services(request.user).exists(),
    }
    return render(request, "changes/records/change_list.html", context)


@login_required
@require_GET
def change_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One change: its record, releases and gates, incidents, conflicts and history."""
    change = _visible_or_404(request, pk)
    services = list(change.services.all())
    writable = records.may_write_change(request.user, services)
    # Conflicts may name changes on other services (dependencies): only ones the viewer may see.
    visible = None
    if not holds_everywhere(request.user, "view"):
        visible = set(Service.objects.restrict(request.user, "view").values_list("pk", flat=True))
    context = {
        "change": change,
        "services": services,
        "releases": selectors.linked_releases(change, request.user),
        "incidents": _incidents(change, services),
        "conflicts": [c.seen_by(visible) for c in selectors.change_conflicts(change)],
        "history": selectors.change_history(change),
        "reviews": reviews_for_change(change),
        "may_write": writable and change.source == ChangeRecord.Source.SIGNOFF,
        "move_form": MoveForm(change=change) if writable else None,
    }
    return render(request, "changes/records/change_detail.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def change_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    """Open a change, or edit one opened in Signoff that has not ended."""
    change = _visible_or_404(request, pk) if pk else None
    allowed = _writable_services(request.user)
    if not allowed.exists() or (
        change and not records.may_write_change(request.user, change.services.all())
    ):
        raise Http404("No change you may write here.")
    initial = ChangeForm.initial_for(change) if change else None
    form = ChangeForm(request.POST or None, initial=initial, services=allowed)
    if request.method == "POST" and form.is_valid():
        try:
            if change:
                change = records.update_change(
                    change=change, data=form.to_input(), actor=request.user
                )
            else:
                change = records.open_change(data=form.to_input(), actor=request.user)
        except GovernanceError as exc:
            form_errors_from(form, exc)
        else:
            messages.success(request, f"Change {change.ref} saved.")
            return redirect("changes:change_detail", pk=change.pk)
    return render(
        request,
        "changes/records/change_edit.html",
        {"form": form, "change": change},
        status=400 if form.errors else 200,
    )


@login_required
@require_POST
def change_move(request: HttpRequest, pk: int) -> HttpResponse:
    """Move a change along its life cycle by hand (assess, schedule, close, cancel)."""
    change = _visible_or_404(request, pk)
    if not records.may_write_change(request.user, change.services.all()):
        raise Http404("No change you may move here.")
    form = MoveForm(request.POST, change=change)
    if not form.is_valid():
        field, errors = next(iter(form.errors.items()))
        messages.error(request, f"Change not moved: {field.replace('_', ' ')}: {errors[0]}")
        return redirect("changes:change_detail", pk=change.pk)
    try:
        records.move_change(
            change=change,
            to=form.cleaned_data["to"],
            actor=request.user,
            reason=form.cleaned_data["reason"],
            close_code=form.cleaned_data.get("close_code", ""),
        )
    except GovernanceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Change {change.ref} moved to {change.get_state_display()}.")
    return redirect("changes:change_detail", pk=change.pk)


def _visible_or_404(request: HttpRequest, pk: int) -> ChangeRecord:
    changes = selectors.changes_visible_to(request.user).select_related(
        "author", "implementer", "incident"
    )
    return get_object_or_404(changes, pk=pk)


def _writable_services(user):
    if is_administrator(user):
        return Service.objects.all()
    return Service.objects.restrict(user, "request")


def _choice(value: str | None, allowed: list[str]) -> str:
    return value if value in allowed else ""


def _incidents(change: ChangeRecord, services: list[Service]) -> list[Incident]:
    """The incident the change fixes, and the open ones on its services."""
    found = {i.pk: i for i in Incident.objects.open().filter(services__in=services).distinct()}
    if change.incident is not None:
        found[change.incident.pk] = change.incident
    return sorted(found.values(), key=lambda i: i.opened_at, reverse=True)
