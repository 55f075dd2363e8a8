"""The audit trail page: every ledger event and configuration change, for auditors of the whole
organisation, filtered and paged by keyset."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from reporting.access import auditor_required
from reporting.audit.cursor import BadCursor, Cursor
from reporting.audit.forms import AuditFilterForm
from reporting.audit.presenters import present
from reporting.audit.trail import NEWER, OLDER, Filters, read_page

PAGE_SIZE = 50


def page_size() -> int:
    return getattr(settings, "SIGNOFF_AUDIT_PAGE_SIZE", PAGE_SIZE)


@require_GET
@auditor_required(organisation_wide=True)
def audit_trail(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET)
    context = {"form": form, "rows": [], "older": None, "newer": None, "error": ""}
    try:
        cursor, direction = _cursor(request)
    except BadCursor as exc:
        context["error"] = str(exc)
        return render(request, "reporting/audit/trail.html", context, status=400)
    if not form.is_valid():
        return render(request, "reporting/audit/trail.html", context, status=400)
    page = read_page(Filters(**form.cleaned_data), cursor, direction, page_size())
    context.update(
        rows=[present(row) for row in page.rows],
        older=_link(request, OLDER, page.older),
        newer=_link(request, NEWER, page.newer),
    )
    return render(request, "reporting/audit/trail.html", context)


def _cursor(request: HttpRequest) -> tuple[Cursor, str]:
    """The cut to read from: `older=` or `newer=` (one of them at most), or the top."""
    if OLDER in request.GET and NEWER in request.GET:
        raise BadCursor("A page link names one direction: older or newer, not both.")
    for direction in (OLDER, NEWER):
        if direction in request.GET:
            return Cursor.parse(request.GET[direction]), direction
    return Cursor(), OLDER


def _link(request: HttpRequest, direction: str, cursor: Cursor | None) -> str | None:
    """The current filters with the cursor of the neighbouring page."""
    if cursor is None:
        return None
    query = request.GET.copy()
    query.pop(OLDER, None)
    query.pop(NEWER, None)
    query[direction] = str(cursor)
    return f"?{query.urlencode()}"
