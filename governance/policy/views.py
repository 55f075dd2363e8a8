"""Policy pages: the active policy, its versions, and four-eyes proposals."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from governance.authority.decorators import administrator_required
from governance.exceptions import GovernanceError
from governance.policy import services as policy_changes
from governance.policy.models import Policy, PolicyProposal


@administrator_required
@require_GET
def policies(request: HttpRequest) -> HttpResponse:
    """Policies, their versions, and changes waiting for a second administrator."""
    proposals = list(
        PolicyProposal.objects.filter(outcome=PolicyProposal.Outcome.PENDING).select_related(
            "policy", "proposed_by"
        )
    )
    for proposal in proposals:
        proposal.diff = policy_changes.diff(proposal)
        proposal.mine = proposal.proposed_by_id == request.user.pk
    context = {
        "policies": Policy.objects.prefetch_related("versions__created_by"),
        "proposals": proposals,
        "decided": PolicyProposal.objects.exclude(
            outcome=PolicyProposal.Outcome.PENDING
        ).select_related("policy", "proposed_by", "decided_by")[:10],
    }
    return render(request, "governance/policy/policies.html", context)


@administrator_required
@require_POST
def policy_proposal_decide(request: HttpRequest, pk: int) -> HttpResponse:
    proposal = get_object_or_404(PolicyProposal, pk=pk)
    reason = request.POST.get("reason", "")
    try:
        if request.POST.get("decision") == "approve":
            version = policy_changes.approve_proposal(
                proposal=proposal,
                actor=request.user,
                reason=reason,
                # A loosening change is published only with this box ticked.
                confirm_loosening=request.POST.get("confirm_loosening") == "yes",
            )
            messages.success(request, f"Published {version}.")
        else:
            policy_changes.reject_proposal(proposal=proposal, actor=request.user, reason=reason)
            messages.success(request, "Proposal rejected.")
    except GovernanceError as exc:
        messages.error(request, exc.message)
    return redirect("governance:policy_list")
