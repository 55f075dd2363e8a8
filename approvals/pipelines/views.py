"""The Integrations page: administrators configure GitHub and GitLab and map repositories;
everyone signed in sees the runs waiting on releases they may see."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from approvals.models import Release
from approvals.pipelines import services
from approvals.pipelines.forms import GitHubForm, GitLabForm, MappingForm
from approvals.pipelines.models import PipelineIntegration, PipelineWait, RepositoryMapping
from governance.authority.services import is_administrator
from governance.exceptions import GovernanceError

FORMS = {"github": GitHubForm, "gitlab": GitLabForm, "mapping": MappingForm}
MAX_WAITING = 50


@login_required
@require_http_methods(["GET", "POST"])
def integrations(request: HttpRequest) -> HttpResponse:
    administrator = is_administrator(request.user)
    if request.method == "POST" and not administrator:
        raise PermissionDenied("Only Signoff administrators configure integrations.")
    configured = {i.provider: i for i in PipelineIntegration.objects.all()}
    forms = _unbound_forms(configured) if administrator else {}
    action = request.POST.get("action")
    if request.method == "POST" and action in FORMS:
        form = forms[action] = FORMS[action](request.POST, prefix=action)
        if form.is_valid() and _saved(action, form, request.user.username):
            messages.success(request, "Saved; the ledger records it.")
            return redirect("pipelines-pages:integrations")
    context = {
        "administrator": administrator,
        "forms": forms,
        "configured": {p: services.masked_configuration(i) for p, i in configured.items()},
        "mappings": RepositoryMapping.objects.select_related("service") if administrator else [],
        "waiting": _waiting(request.user),
        "github_url": f"{settings.SITE_URL}/integrations/github/",
        "gitlab_url": f"{settings.SITE_URL}/integrations/gitlab/",
    }
    status = 400 if request.method == "POST" else 200  # a POST that gets here saved nothing
    return render(request, "approvals/pipelines/integrations.html", context, status=status)


def _unbound_forms(configured: dict) -> dict:
    forms = {}
    for name, form in FORMS.items():
        integration = configured.get(name)
        initial = {}
        if integration:
            initial = {"api_url": integration.api_url, "open_releases": integration.open_releases}
        elif name == "github":
            initial = {"api_url": "https://api.github.com"}
        forms[name] = form(prefix=name, initial=initial)
    return forms


def _waiting(user) -> list[PipelineWait]:
    """Runs still waiting, on releases `user` may see (a constant number of queries)."""
    return list(
        PipelineWait.objects.filter(
            state=PipelineWait.State.WAITING, release__in=Release.objects.restrict(user)
        )
        .select_related("release__service", "release__environment", "release__approval")
        .order_by("-created_at", "-pk")[:MAX_WAITING]
    )


def _saved(action: str, form, actor: str) -> bool:
    """Call the one service the form is for; a refusal becomes the form's error."""
    data = form.cleaned_data
    try:
        if action == "mapping":
            services.map_repository(
                provider=data["provider"],
                repository=data["repository"],
                service=data["service"],
                actor=actor,
                reason=data["reason"],
            )
        else:
            services.configure_integration(
                provider=action,
                actor=actor,
                reason=data["reason"],
                secret=data["secret"],
                api_url=data["api_url"],
                api_token=data.get("api_token"),
                open_releases=data["open_releases"],
            )
    except GovernanceError as exc:
        for field, problems in exc.fields.items():
            for problem in problems:
                form.add_error(field if field in form.fields else None, problem)
        if not exc.fields:
            form.add_error(None, exc.message)
        return False
    return True
