"""The dashboard: what needs me, and how releases in my scope are doing."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from approvals.models import ApprovalStage, Release
from changes.reviews.selectors import late_post_mortems_by_team

RECENT = 8


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    since = now - timedelta(days=30)
    in_scope = Release.objects.restrict(request.user)
    counts = in_scope.filter(created_at__gte=since).aggregate(
        total=Count("pk"),
        pending=Count("pk", filter=Q(approval__status="pending")),
        approved=Count("pk", filter=Q(approval__status="approved", deployed_at__isnull=True)),
        deployed=Count("pk", filter=Q(deployed_at__isnull=False)),
        rejected=Count("pk", filter=Q(approval__status="rejected")),
        expired=Count("pk", filter=Q(approval__status="expired")),
        unapproved=Count("pk", filter=Q(unapproved_deployment_at__isnull=False)),
    )
    my_queue = ApprovalStage.objects.decidable_by(request.user)
    context = {
        "counts": counts,
        "my_queue_count": my_queue.count(),
        "next_up": my_queue.with_queue_related().order_by("request__requested_at", "pk")[:5],
        "recent": in_scope.with_list_related().order_by("-created_at", "-pk")[:RECENT],
        # Teams whose emergencies are not yet accounted for: post-mortems past their due time.
        "late_post_mortems": late_post_mortems_by_team(request.user, now),
    }
    return render(request, "reporting/dashboard.html", context)
