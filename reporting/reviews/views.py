"""Pages of the quarterly review and of workflow feedback.

The review: administrators, CAB members and auditors read it; administrators start and close
it; administrators and CAB members record outcomes (never on their own act). Everyone else: 403.
Feedback by rule: administrators. A release's feedback card: its requester, loaded into the
release page by htmx so that the approvals app never imports this one.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from approvals.models import Release
from governance.authority.decorators import administrator_required
from governance.exceptions import GovernanceError
from governance.exceptions import PermissionDenied as Refused
from reporting.reviews import exports, feedback, services
from reporting.reviews.forms import CloseForm, FeedbackForm, OutcomeForm, PeriodForm
from reporting.reviews.models import QuarterlyReview, QuarterlyReviewItem, WorkflowFeedback

PAGE_SIZE = 50
Outcome = QuarterlyReviewItem.Outcome


def _require_reader(request: HttpRequest) -> services.Access:
    access = services.access_of(request.user)
    if not access.reads:
        raise PermissionDenied("Quarterly reviews are for administrators, the CAB and auditors.")
    return access


@login_required
@require_http_methods(["GET", "POST"])
def review_list(request: HttpRequest) -> HttpResponse:
    """The reviews so far; an administrator starts the last quarter's here (beat does it too)."""
    admin = _require_reader(request).administrator
    if request.method == "POST":
        if not admin:
            raise PermissionDenied("Only administrators start a quarterly review.")
        review, created = services.start_quarterly_review(actor=request.user)
        said = "Started" if created else "Already started:"
        messages.success(request, f"{said} {review.name}.")
        return redirect("reporting:quarterly_detail", pk=review.pk)
    reviews = QuarterlyReview.objects.annotate(
        item_count=Count("items"),
        pending_count=Count("items", filter=Q(items__outcome=Outcome.PENDING)),
    ).order_by("-quarter_start")
    page = Paginator(reviews, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"page": page, "can_start": admin}
    return render(request, "reporting/reviews/review_list.html", context)


@login_required
@require_GET
def review_detail(request: HttpRequest, pk: int) -> HttpResponse:
    access = _require_reader(request)
    review = get_object_or_404(_reviews(), pk=pk)
    context = _detail(request, review, access)
    return render(request, "reporting/reviews/review_detail.html", context)


def _reviews():
    return QuarterlyReview.objects.select_related("started_by", "closed_by")


def _detail(
    request: HttpRequest, review: QuarterlyReview, access: services.Access, **extra
) -> dict:
    """The review's page: a summary per kind, then its items (filtered, paginated)."""
    kind, outcome = request.GET.get("kind", ""), request.GET.get("outcome", "")
    items = review.items.select_related("service", "decided_by")
    if kind in QuarterlyReviewItem.Kind.values:
        items = items.filter(kind=kind)
    if outcome in Outcome.values:
        items = items.filter(outcome=outcome)
    page = Paginator(items.order_by("kind", "occurred_at", "pk"), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    page.object_list = services.mark_recordable(
        request.user, access, list(page.object_list), review
    )
    return {
        "review": review,
        "page": page,
        "kind": kind,
        "outcome": outcome,
        "kinds": QuarterlyReviewItem.Kind.choices,
        "outcomes": Outcome.choices,
        "summary": _summary(review),
        "can_close": not review.is_closed and access.administrator,
        "recordable": [c for c in Outcome.choices if c[0] != Outcome.PENDING],
        **extra,
    }


def _summary(review: QuarterlyReview) -> list[dict]:
    """Per kind: how many items, and how many have each outcome (one GROUP BY query)."""
    counts = {
        (row["kind"], row["outcome"]): row["n"]
        for row in review.items.values("kind", "outcome").annotate(n=Count("pk")).order_by()
    }
    return [
        {
            "kind": value,
            "label": label,
            "total": sum(n for (k, _), n in counts.items() if k == value),
            "outcomes": [counts.get((value, o), 0) for o in Outcome.values],
        }
        for value, label in QuarterlyReviewItem.Kind.choices
    ]


@login_required
@require_POST
def item_outcome(request: HttpRequest, pk: int, item_pk: int) -> HttpResponse:
    """Record one item's outcome, then back to the review (a refusal re-renders it)."""
    access = _require_reader(request)
    review = get_object_or_404(_reviews(), pk=pk)
    item = get_object_or_404(review.items.select_related("review"), pk=item_pk)
    form = OutcomeForm(request.POST)
    if not form.is_valid():
        return _refused(request, review, access, item, _first_error(form), 400)
    try:
        services.record_outcome(item=item, actor=request.user, **form.cleaned_data)
    except Refused as exc:
        raise PermissionDenied(exc.message) from exc
    except GovernanceError as exc:
        return _refused(request, review, access, item, exc.message, exc.status)
    messages.success(request, f"Recorded: {Outcome(form.cleaned_data['outcome']).label}.")
    # Back to the same filters and page, which the form's address carries.
    url = reverse("reporting:quarterly_detail", args=[review.pk])
    return redirect(f"{url}?{request.GET.urlencode()}" if request.GET else url)


def _refused(request, review, access, item, message: str, status: int) -> HttpResponse:
    error = f"{item.title}: {message} Nothing was recorded."
    context = _detail(request, review, access, error=error)
    return render(request, "reporting/reviews/review_detail.html", context, status=status)


def _first_error(form) -> str:
    return next(error for errors in form.errors.values() for error in errors)


@administrator_required
@require_POST
def review_close(request: HttpRequest, pk: int) -> HttpResponse:
    """Close the review with items still open, naming them; an administrator's act."""
    review = get_object_or_404(_reviews(), pk=pk)
    form = CloseForm(request.POST)
    status, error = 400, "Say why the review closes with items open. Nothing was recorded."
    if form.is_valid():
        try:
            services.close_review(review=review, actor=request.user, **form.cleaned_data)
        except GovernanceError as exc:
            status, error = exc.status, exc.message
        else:
            messages.success(request, f"{review.name} closed.")
            return redirect("reporting:quarterly_detail", pk=review.pk)
    context = _detail(request, review, services.access_of(request.user), error=error)
    return render(request, "reporting/reviews/review_detail.html", context, status=status)


@login_required
@require_GET
def review_export(request: HttpRequest, pk: int) -> HttpResponse:
    """The review's items and outcomes as CSV."""
    _require_reader(request)
    return exports.review_csv(get_object_or_404(QuarterlyReview, pk=pk))


# --- Workflow feedback ----------------------------------------------------------------------------


@administrator_required
@require_GET
def feedback_by_rule(request: HttpRequest, as_csv: bool = False) -> HttpResponse:
    """Per policy rule: releases, ratings, comments, waiting and what it caught; or as CSV."""
    form = PeriodForm.with_defaults(request.GET)
    if not form.is_valid():
        if as_csv:
            return HttpResponse(_first_error(form), status=400, content_type="text/plain")
        context = {"form": form}
        return render(request, "reporting/reviews/feedback_by_rule.html", context, status=400)
    period = form.cleaned_data
    rows = feedback.feedback_by_rule(period["start"], period["end"])
    if as_csv:
        return exports.feedback_csv(rows, period["start"], period["end"])
    context = {
        "form": form,
        "rows": rows,
        "chart": feedback.ratings_chart(rows),
        "period": f"{period['start']:%-d %b %Y} to {period['end']:%-d %b %Y}",
        "query": request.GET.urlencode(),
    }
    return render(request, "reporting/reviews/feedback_by_rule.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def release_feedback(request: HttpRequest, pk: int) -> HttpResponse:
    """The release page's feedback card (htmx): its requester rates the workflow there."""
    release = _rateable_release(request, pk)
    current = WorkflowFeedback.objects.filter(release=release).first()
    form = FeedbackForm(request.POST or None, initial=_initial(current))
    status = 200
    if request.method == "POST":
        if form.is_valid():
            current = services.give_feedback(
                release=release, actor=request.user, **form.cleaned_data
            )
            form, saved = FeedbackForm(initial=_initial(current)), True
        else:
            status, saved = 422, False
    else:
        saved = False
    context = {"release": release, "form": form, "current": current, "saved": saved}
    return render(request, "reporting/reviews/partials/_feedback_card.html", context, status=status)


def _rateable_release(request: HttpRequest, pk: int) -> Release:
    """The release if the viewer may see it (else 404) and rate it now (else 403)."""
    # The requester's own release: a delegation lent to them adds nothing here.
    releases = Release.objects.restrict(request.user).select_related("approval")
    release = releases.filter(pk=pk).first()
    if release is None:
        raise Http404("No such release in your scope.")
    refusal = services.feedback_refusal(request.user, release)
    if refusal:
        raise PermissionDenied(refusal)
    return release


def _initial(current: WorkflowFeedback | None) -> dict:
    return {"rating": current.rating, "comment": current.comment} if current else {}
