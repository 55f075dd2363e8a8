"""The policy editor: a draft validated as it is typed, its diff, a simulation against past
releases, and a proposal through the four-eyes service. Administrators only."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from approvals.policy_editor import presenters
from approvals.policy_editor import services as editor
from approvals.policy_editor import simulation as simulator
from approvals.policy_editor.forms import ProposeForm, SourceForm
from governance.authority.decorators import administrator_required
from governance.exceptions import GovernanceError
from governance.policy.models import Policy

TEMPLATE = "approvals/policy_editor/editor.html"


@administrator_required
@require_GET
def editor_home(request: HttpRequest) -> HttpResponse:
    """The editor of the active policy (the one new approval requests are planned with)."""
    policy_obj = Policy.objects.filter(is_active=True).order_by("name").first()
    if policy_obj is None:
        messages.error(request, "There is no active policy to edit.")
        return redirect("governance:policy_list")
    return redirect("policy_editor:policy_edit", slug=policy_obj.slug)


@administrator_required
@require_http_methods(["GET", "POST"])
def policy_edit(request: HttpRequest, slug: str) -> HttpResponse:
    """GET: the published source to start from. POST: the draft's diff and simulation."""
    policy_obj = get_object_or_404(Policy, slug=slug)
    if request.method == "GET":
        form = ProposeForm(initial={"source": policy_obj.source})
        return render(request, TEMPLATE, _page(policy_obj, form))
    form = ProposeForm(request.POST, comment_required=False)
    if not form.is_valid():
        return render(request, TEMPLATE, _page(policy_obj, form), status=400)
    context = {**_page(policy_obj, form), **_preview(policy_obj, form.cleaned_data)}
    return render(request, TEMPLATE, context)


@administrator_required
@require_POST
def policy_propose(request: HttpRequest, slug: str) -> HttpResponse:
    """Propose the draft; loosening found by the simulation forces a second administrator."""
    policy_obj = get_object_or_404(Policy, slug=slug)
    form = ProposeForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            proposed = editor.propose_policy(
                policy_obj=policy_obj,
                source=data["source"],
                actor=request.user,
                comment=data["comment"],
                days=data["days"],
            )
        except GovernanceError as exc:
            form.add_error("source", exc.message)
        else:
            messages.success(request, _outcome(proposed))
            return redirect("governance:policy_list")
    return render(request, TEMPLATE, _page(policy_obj, form), status=400)


@administrator_required
@require_POST
def policy_validate(request: HttpRequest) -> HttpResponse:
    """The validation fragment for the draft as typed so far (htmx, on each pause)."""
    form = SourceForm(request.POST)
    if form.is_valid():
        verdict = presenters.verdict(form.cleaned_data["source"])
    else:
        verdict = presenters.Verdict(message=" ".join(form.errors.get("source", [])))
    return render(
        request,
        "approvals/policy_editor/partials/_validation.html",
        {"verdict": verdict},
        status=200 if verdict.valid else 422,
    )


def _page(policy_obj: Policy, form: ProposeForm) -> dict:
    return {"policy": policy_obj, "form": form, "max_releases": simulator.MAX_RELEASES}


def _preview(policy_obj: Policy, data: dict) -> dict:
    """The diff, the verdict and, for a valid draft, the simulation."""
    source = data["source"]
    verdict = presenters.verdict(source)
    preview = {"verdict": verdict, "diff": presenters.diff_lines(policy_obj, source)}
    if verdict.valid and policy_obj.version:
        preview["simulation"] = simulator.simulate(
            draft=source, published=policy_obj.source, days=data["days"]
        )
    return preview


def _outcome(proposed: editor.Proposed) -> str:
    if proposed.published:
        return f"Published {proposed.result}."
    found = proposed.simulation.loosening()
    why = " It loosens control on regulated environments." if found else ""
    return f"Proposal #{proposed.result.pk} waits for a second administrator.{why}"
