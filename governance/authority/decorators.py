"""View decorators built on authority: pages only administrators may open."""

from __future__ import annotations

import functools

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from governance.authority.services import is_administrator


def administrator_required(view):
    """Administrators only; everyone else gets 403 (the page exists, it is just not theirs)."""

    @functools.wraps(view)
    @login_required
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not is_administrator(request.user):
            raise PermissionDenied("This page is for Signoff administrators.")
        return view(request, *args, **kwargs)

    return wrapper
