"""Catalogue pages: services, teams, people and environments, edited by administrators."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from governance.authority.decorators import administrator_required
from governance.catalogue import sections
from governance.catalogue import services as catalogue
from governance.catalogue.forms import CatalogueFilterForm
from governance.exceptions import GovernanceError
from governance.people.models import Team

PAGE_SIZE = 50


@administrator_required
@require_GET
def catalogue_list(request: HttpRequest, section: str) -> HttpResponse:
    """People, teams, services, environments or vendors, with search and filters."""
    config = _section(section)
    filters = CatalogueFilterForm(request.GET)
    # A filter that cannot be applied lists nothing: an unfiltered list would look like its answer.
    valid = filters.is_valid()
    rows = config.rows(filters.cleaned_data) if valid else config.model.objects.none()
    page = Paginator(rows.order_by("pk"), PAGE_SIZE).get_page(request.GET.get("page"))
    table = [(row, config.cells(row)) for row in page]
    context = {
        "section": section,
        "config": config,
        "filters": filters,
        "page": page,
        "table": table,
        "teams": Team.objects.all(),
        "tags": sections.compliance_tags_in_use() if "tag" in config.filters else [],
        "sections": sections.SECTIONS,
    }
    return render(
        request, "governance/catalogue/catalogue_list.html", context, status=200 if valid else 400
    )


@administrator_required
@require_http_methods(["GET", "POST"])
def catalogue_edit(request: HttpRequest, section: str, pk: int | None = None) -> HttpResponse:
    config = _section(section)
    if pk is None and not config.can_add:
        raise Http404("People are added by the identity provider (SCIM) or in /admin/.")
    instance = get_object_or_404(config.model, pk=pk) if pk else None
    form = config.form(request.POST or None, instance=instance)
    if request.method == "POST" and form.is_valid():
        try:
            catalogue.save_entry(form=form, actor=request.user, section=section)
        except GovernanceError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, "Saved.")
            return redirect("governance:catalogue_list", section=section)
    return render(
        request,
        "governance/catalogue/catalogue_edit.html",
        {"section": section, "config": config, "form": form, "instance": instance},
        status=400 if form.errors else 200,
    )


def _section(name: str) -> sections.Section:
    if name not in sections.SECTIONS:
        raise Http404("No such catalogue section.")
    return sections.SECTIONS[name]
