"""The admission webhook kube-apiserver calls (token first, then the body) and the
administrators' clusters page."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from approvals.admission import selectors, services
from approvals.admission.forms import ClusterForm
from approvals.admission.review import InvalidReview, read_review, review_response
from governance import counters
from governance.api.parsers import UnsafeJSON, load_json
from governance.authority.decorators import administrator_required
from governance.models import Target


def _error(code: str, message: str, status: int, fields: dict | None = None) -> JsonResponse:
    body = {"error": {"code": code, "message": message, "fields": fields or {}}}
    return JsonResponse(body, status=status)


@csrf_exempt
@require_POST
def admission_webhook(request: HttpRequest, cluster: str) -> JsonResponse:
    """A ValidatingAdmissionWebhook: an AdmissionReview v1 in, the same with `response` out
    (HTTP 200 whatever the decision). Anything that is not a review Signoff can answer is a
    JSON error, which kube-apiserver treats as a webhook failure (failurePolicy decides)."""
    target = selectors.cluster_by_slug(cluster)
    if target is None:
        return _error("not_found", f"No Kubernetes cluster {cluster} is registered.", 404)
    refused = _refused_token(target, request.headers.get("Authorization", ""))
    if refused:
        return refused
    try:
        body = load_json(request.body.decode())
    except RequestDataTooBig:
        return _error("payload_too_large", "The request body is too large.", 413)
    except UnsafeJSON as exc:
        return _error(exc.code, exc.message, 400)
    except (UnicodeDecodeError, ValueError):
        return _error("invalid", "The body is not JSON.", 400)
    try:
        review = read_review(body)
    except InvalidReview as exc:
        return _error("invalid_review", exc.message, 400, {exc.field or "body": [exc.message]})
    verdict = services.review_admission(cluster=target, review=review)
    counters.increment(counters.ADMISSION_REVIEWS, "allowed" if verdict.allowed else "denied")
    return JsonResponse(
        review_response(
            review.uid, allowed=verdict.allowed, message=verdict.message, warnings=verdict.warnings
        )
    )


def _refused_token(cluster: Target, header: str) -> JsonResponse | None:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _error("token_missing", "Send Authorization: Bearer <the cluster's token>.", 401)
    if not services.token_matches(cluster, token.strip()):
        return _error("token_invalid", f"The token is not the one issued for {cluster.slug}.", 401)
    return None


@never_cache  # the answer to a registration shows the token: never keep it in a cache
@administrator_required
@require_http_methods(["GET", "POST"])
def cluster_list(request: HttpRequest) -> HttpResponse:
    """Registered clusters, and the form registering one (or updating one of the same name)."""
    form = ClusterForm(request.POST or None)
    registration = _registered(form, request.user.username) if request.method == "POST" else None
    return _render_clusters(request, form, registration)


@never_cache
@administrator_required
@require_http_methods(["GET", "POST"])
def cluster_edit(request: HttpRequest, cluster: str) -> HttpResponse:
    """One cluster's form, filled in: change its environment or namespaces, rotate its token."""
    target = selectors.cluster_by_slug(cluster)
    if target is None:
        raise Http404("No such cluster.")
    initial = {
        "name": target.name,
        "environment": target.environment.slug,
        "namespaces": "\n".join(target.namespaces),
    }
    form = ClusterForm(request.POST or None, initial=initial)
    form.fields["name"].disabled = True  # the name is the slug in the webhook URL: fixed here
    registration = _registered(form, request.user.username) if request.method == "POST" else None
    return _render_clusters(request, form, registration, editing=target)


def _registered(form: ClusterForm, actor: str) -> services.Registration | None:
    """Call the one service the form is for; a refusal becomes the form's error."""
    if not form.is_valid():
        return None
    data = form.cleaned_data
    try:
        return services.register_cluster(
            name=data["name"],
            environment=data["environment"],
            namespaces=data["namespaces"],
            rotate_token=data["rotate_token"],
            actor=actor,
            reason=data["reason"],
        )
    except services.InvalidCluster as exc:
        for name, messages in exc.fields.items():
            for message in messages:
                form.add_error(name if name in form.fields else None, message)
        if not exc.fields:
            form.add_error(None, exc.message)
        return None


def _render_clusters(
    request: HttpRequest,
    form: ClusterForm,
    registration: services.Registration | None,
    editing: Target | None = None,
) -> HttpResponse:
    context = {
        "clusters": selectors.clusters(),
        "form": form if registration is None else ClusterForm(),
        "editing": editing if registration is None else None,
        "registration": registration,
        "kubeconfig": services.webhook_kubeconfig(registration.token)
        if registration and registration.token
        else "",
        "webhook_base": f"{settings.SITE_URL}/integrations/kubernetes/",
    }
    refused = request.method == "POST" and registration is None  # nothing was saved
    return render(
        request, "approvals/admission/clusters.html", context, status=400 if refused else 200
    )
