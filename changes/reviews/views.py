"""Review pages: the list (filters), one review with its completion form and actions.

Everyone who may see a service's releases sees its reviews; its owners complete them (never the
change's author) and manage their actions. Out-of-scope reviews are a 404.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from changes.reviews import selectors
from changes.reviews import services as reviews
from changes.reviews.forms import ActionForm, CompleteReviewForm
from changes.reviews.models import Review, ReviewAction
from governance.exceptions import GovernanceError
from governance.forms import form_errors_from
from governance.models import Service, Team

PAGE_SIZE = 50


@login_required
@require_GET
def review_list(request: HttpRequest) -> HttpResponse:
    """Reviews of the services a person may see, soonest due first, filtered."""
    now = timezone.now()
    filters = selectors.ReviewFilters(
        status=_choice(request.GET.get("status"), Review.Status.values),
        kind=_choice(request.GET.get("kind"), Review.Kind.values),
        service=request.GET.get("service", "").strip()[:50],
        team=request.GET.get("team", "").strip()[:50],
        overdue=request.GET.get("overdue") == "1",
    )
    rows = selectors.search_reviews(selectors.reviews_visible_to(request.user), filters, now)
    # Open ones first ("open" sorts after "completed"), then the soonest due.
    page = Paginator(rows.order_by("-status", "due_at", "pk"), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    context = {
        "page": page,
        "filters": filters,
        "now": now,
        "statuses": Review.Status.choices,
        "kinds": Review.Kind.choices,
        "services": Service.objects.restrict(request.user, "view").order_by("name"),
        "teams": Team.objects.filter(
            services__in=Service.objects.restrict(request.user, "view")
        ).distinct(),
    }
    return render(request, "changes/reviews/review_list.html", context)


@login_required
@require_GET
def review_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One review: why it was opened, when it is due, what was found, its actions."""
    review = _visible_or_404(request, pk)
    return _render_detail(request, review)


@login_required
@require_POST
def review_complete(request: HttpRequest, pk: int) -> HttpResponse:
    """Complete a review: an owner of the service who did not write the change."""
    review = _visible_or_404(request, pk)
    form = CompleteReviewForm(request.POST, review=review)
    if form.is_valid():
        try:
            reviews.complete_review(
                review=review,
                actor=request.user,
                what_happened=form.cleaned_data["what_happened"],
                root_cause=form.cleaned_data["root_cause"],
                justification_valid=form.cleaned_data.get("justification_valid"),
                reason=form.cleaned_data["reason"],
            )
        except GovernanceError as exc:
            form_errors_from(form, exc)
        else:
            messages.success(request, f"{review.get_kind_display()} completed.")
            return redirect("changes:review_detail", pk=review.pk)
    return _render_detail(request, review, complete_form=form, status=400)


@login_required
@require_POST
def action_add(request: HttpRequest, pk: int) -> HttpResponse:
    """Add a follow-up action with an owner and a due date."""
    review = _visible_or_404(request, pk)
    form = ActionForm(request.POST)
    if form.is_valid():
        try:
            reviews.add_action(review=review, actor=request.user, **form.cleaned_data)
        except GovernanceError as exc:
            form_errors_from(form, exc)
        else:
            messages.success(request, "Action added.")
            return redirect("changes:review_detail", pk=review.pk)
    return _render_detail(request, review, action_form=form, status=400)


@login_required
@require_http_methods(["POST"])
def action_done(request: HttpRequest, pk: int, action_pk: int) -> HttpResponse:
    """Mark an action done: its owner, or an owner of the service."""
    review = _visible_or_404(request, pk)
    action = get_object_or_404(ReviewAction, pk=action_pk, review=review)
    try:
        reviews.complete_action(
            action=action, actor=request.user, reason=request.POST.get("reason", "")[:500]
        )
    except GovernanceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Action done: {action.description}")
    return redirect("changes:review_detail", pk=review.pk)


def _render_detail(
    request: HttpRequest,
    review: Review,
    *,
    complete_form: CompleteReviewForm | None = None,
    action_form: ActionForm | None = None,
    status: int = 200,
) -> HttpResponse:
    may_complete = review.status == Review.Status.OPEN and reviews.may_complete(
        request.user, review
    )
    may_manage = reviews.may_manage_actions(request.user, review)
    actions = list(review.actions.select_related("owner"))
    context = {
        "review": review,
        "is_author": request.user.pk == review.change.author_id,
        "is_declarer": request.user.pk == review.declared_by_id,
        # A refused form is shown with its error, whoever sent it; a fresh one only to those
        # who may use it.
        "complete_form": complete_form
        or (CompleteReviewForm(review=review) if may_complete else None),
        "action_form": action_form or (ActionForm() if may_manage else None),
        # Each action with whether this person may mark it done (its owner, or a service owner).
        "action_rows": [
            (a, a.done_at is None and (may_manage or a.owner_id == request.user.pk))
            for a in actions
        ],
        "history": selectors.review_history(review),
    }
    return render(request, "changes/reviews/review_detail.html", context, status=status)


def _visible_or_404(request: HttpRequest, pk: int) -> Review:
    visible = selectors.reviews_visible_to(request.user).select_related(
        "change__author", "service", "completed_by"
    )
    return get_object_or_404(visible, pk=pk)


def _choice(value: str | None, allowed: list[str]) -> str:
    return value if value in allowed else ""
