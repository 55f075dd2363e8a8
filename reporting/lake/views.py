"""The data-lake export's status page, for administrators and auditors of the organisation."""

from __future__ import annotations

import functools

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from governance.authority.services import is_administrator
from reporting.access import is_organisation_auditor
from reporting.lake.status import lake_status


def lake_readers_only(view):
    """The export covers the whole organisation's approvals: administrators (who configure it)
    and organisation-wide auditors (who rely on it) see it; everyone else gets 403."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        user = request.user
        if not (is_administrator(user) or is_organisation_auditor(user)):
            raise PermissionDenied("The data-lake export is for administrators and auditors.")
        return view(request, *args, **kwargs)

    return wrapper


@require_GET
@login_required
@lake_readers_only
def lake_status_page(request: HttpRequest) -> HttpResponse:
    return render(request, "reporting/lake/status.html", lake_status())
