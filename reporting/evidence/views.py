"""Evidence packs: one release, everything about it, as JSON or PDF, for any auditor.

A scoped auditor sees releases of their own services only; another release is a 404, as if it
did not exist (the restricted queryset decides, as everywhere else).
"""

from __future__ import annotations

import json

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from reporting.access import auditor_required
from reporting.evidence.pack import build_pack, releases_for_pack
from reporting.evidence.pdf import pack_pdf


def _pack(request: HttpRequest, pk: int) -> dict:
    release = releases_for_pack(request.user).filter(pk=pk).first()
    if release is None:
        raise Http404("No such release in your scope.")
    return build_pack(release, generated_by=request.user)


@require_GET
@auditor_required
def evidence_json(request: HttpRequest, pk: int) -> HttpResponse:
    """The pack as one JSON document, keys in a fixed order."""
    body = json.dumps(_pack(request, pk), indent=2, ensure_ascii=False) + "\n"
    response = HttpResponse(body, content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="release-{pk}-evidence.json"'
    return response


@require_GET
@auditor_required
def evidence_pdf(request: HttpRequest, pk: int) -> HttpResponse:
    """The same pack as a PDF, for people."""
    response = HttpResponse(pack_pdf(_pack(request, pk)), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="release-{pk}-evidence.pdf"'
    return response
