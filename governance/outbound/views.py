"""Pages for what goes out: a team's subscriptions, and the outbox for administrators."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from governance.authority.decorators import administrator_required
from governance.exceptions import GovernanceError
from governance.notifications.events import SUBSCRIBABLE
from governance.notifications.models import Delivery
from governance.outbound import services
from governance.outbound.forms import RedeliverForm, SubscriptionForm

PAGE_SIZE = 50


@login_required
@require_http_methods(["GET", "POST"])
def subscription_list(request: HttpRequest) -> HttpResponse:
    """The subscriptions of the viewer's teams, and a form to add one."""
    teams = services.subscribable_teams(request.user)
    form = SubscriptionForm(request.POST or None, teams=teams)
    if request.method == "POST" and form.is_valid():
        try:
            subscription = services.subscribe(actor=request.user, **form.cleaned_data)
        except GovernanceError as exc:
            for field, errors in (exc.fields or {"__all__": [exc.message]}).items():
                for error in errors:
                    form.add_error(field if field in form.fields else None, error)
        else:
            messages.success(request, f"Subscribed {subscription.name}.")
            return redirect("governance:subscription_list")
    subscriptions = services.visible_subscriptions(request.user).annotate(
        failing=Count("deliveries", filter=Q(deliveries__status=Delivery.Status.FAILED)),
        waiting=Count("deliveries", filter=Q(deliveries__status=Delivery.Status.PENDING)),
    )
    context = {
        "form": form,
        "subscriptions": [(s, urlsplit(s.url).hostname) for s in subscriptions],
        "event_labels": SUBSCRIBABLE,
        "has_teams": teams.exists(),
    }
    return render(
        request,
        "governance/outbound/subscriptions.html",
        context,
        status=400 if form.errors else 200,
    )


@login_required
@require_POST
def subscription_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """Remove a subscription, or send it a test message."""
    subscription = get_object_or_404(services.visible_subscriptions(request.user), pk=pk)
    try:
        if action == "remove":
            services.remove_subscription(subscription=subscription, actor=request.user)
            messages.success(request, f"Removed {subscription.name}.")
        else:
            services.send_test_message(subscription=subscription, actor=request.user)
            messages.success(request, f"Test message queued for {subscription.name}.")
    except GovernanceError as exc:
        messages.error(request, exc.message)
    return redirect("governance:subscription_list")


@administrator_required
@require_GET
def outbox_list(request: HttpRequest) -> HttpResponse:
    """Every outbound call: pending, delivered, or given up with its last error."""
    status = request.GET.get("status", "")
    rows = Delivery.objects.select_related("subscription__team").order_by("-created_at", "-pk")
    if status in Delivery.Status.values:
        rows = rows.filter(status=status)
    if request.GET.get("kind"):
        rows = rows.filter(kind__icontains=request.GET["kind"].strip())
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    counts = dict(
        Delivery.objects.values_list("status").annotate(n=Count("pk")).values_list("status", "n")
    )
    context = {
        "page": page,
        "deliveries": [(d, urlsplit(d.url).hostname) for d in page.object_list],
        "counts": [(v, label, counts.get(v, 0)) for v, label in Delivery.Status.choices],
        "status": status,
        "kind": request.GET.get("kind", ""),
    }
    return render(request, "governance/outbound/outbox.html", context)


@administrator_required
@require_POST
def outbox_redeliver(request: HttpRequest, pk: int) -> HttpResponse:
    delivery = get_object_or_404(Delivery, pk=pk)
    form = RedeliverForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    services.redeliver(delivery=delivery, actor=request.user, reason=reason)
    messages.success(request, f"Delivery {delivery.delivery_id} queued to be sent again.")
    return redirect("governance:outbox_list")
