"""Pipeline API: request approval, ask the gate, add evidence, decide, report deployments."""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from approvals import services
from approvals.announcements import announce_blocked
from approvals.api import serializers as s
from approvals.exceptions import InvalidRequest
from approvals.gate import evaluate_gate
from approvals.models import DIGEST_PATTERN, Release
from governance import counters
from governance.api.openapi import errors
from governance.db import prepared_statements
from governance.identity.authentication import client_ip
from governance.models import holds_everywhere

IDEMPOTENCY_KEY_MAX = 200
NO_PAGE = "No such page."
NO_RELEASE = "No such release in your scope."
NO_REQUEST_SCOPE = "No such release among those you may request."
NOT_OPEN = "The request is no longer open (decided, withdrawn or expired)."
REQUEST_EXAMPLE = OpenApiExample(
    "Payments API to production",
    request_only=True,
    value={
        "service": "payments-api",
        "environment": "production",
        "version": "2.5.0",
        "artifact": {
            "image": "registry.example.com/payments/api",
            "digest": "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef",
        },
        "change": {"ref": "CHG0031400", "type": "normal", "title": "Payout limits per seller"},
        "pipeline": {
            "provider": "gitlab",
            "run_url": "https://gitlab.example.com/payments/api/-/pipelines/4711",
            "triggered_by": "dave",
        },
        "evidence": [
            {"kind": "tests", "status": "passed", "summary": {"passed": 812, "failed": 0}},
            {"kind": "coverage", "status": "passed", "summary": {"percent": 86.4}},
        ],
    },
)


def _release(
    request: Request,
    pk: int,
    action: str = "view",
    *,
    for_gate: bool = False,
    for_write: bool = False,
    delegated: bool = False,
) -> Release:
    queryset = Release.objects.restrict(request.user, action, delegated=delegated)
    if for_gate:
        queryset = queryset.for_gate()
    else:
        queryset = queryset.for_write() if for_write else queryset.with_list_related()
    return get_object_or_404(queryset, pk=pk)


def _gate_release(request: Request, pk: int) -> Release:
    """The release the gate reads; for callers who see every release, without the ORM's
    query building (see ReleaseQuerySet.gate_row)."""
    if holds_everywhere(request.user, "view"):
        release = Release.objects.gate_row(pk)
        if release is None:
            raise Http404("No such release.")
        return release
    return _release(request, pk, for_gate=True)


def _gate_payload(release_id: int, digest: str | None = None) -> dict:
    release = Release.objects.for_gate().get(pk=release_id)
    return evaluate_gate(release, digest=digest).as_dict()


class ReleaseListCreate(generics.ListAPIView):
    """List releases in your scope, or request approval for a new one."""

    serializer_class = s.ReleaseSerializer

    def get_queryset(self):
        return Release.objects.restrict(self.request.user).with_list_related().order_by("-pk")

    @extend_schema(responses={200: s.ReleaseSerializer(many=True), **errors(404, e404=NO_PAGE)})
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=s.ReleaseRequestSerializer,
        examples=[REQUEST_EXAMPLE],
        responses={
            201: s.ReleaseCreatedSerializer,
            200: s.ReleaseCreatedSerializer,
            **errors(409, e409="The Idempotency-Key was used before for another request."),
        },
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                description="Sent again with the same body: 200 and the same release. "
                f"Printable, at most {IDEMPOTENCY_KEY_MAX} characters.",
            )
        ],
    )
    def post(self, request: Request) -> Response:
        key = request.headers.get("Idempotency-Key", "").strip() or None
        if key and len(key) > IDEMPOTENCY_KEY_MAX:
            raise InvalidRequest(
                f"Idempotency-Key must be at most {IDEMPOTENCY_KEY_MAX} characters."
            )
        if key and not key.isprintable():
            raise InvalidRequest("Idempotency-Key must be printable text (no control characters).")
        serializer = s.ReleaseRequestSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        release, created = services.request_approval(
            data=_release_input(serializer.validated_data), actor=request.user, idempotency_key=key
        )
        release = Release.objects.with_list_related().get(pk=release.pk)
        release.gate = _gate_payload(release.pk)
        body = s.ReleaseCreatedSerializer(release, context={"request": request}).data
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


def _release_input(data: dict) -> services.ReleaseInput:
    change, pipeline = data["change"], data.get("pipeline") or {}
    return services.ReleaseInput(
        service=data["service"],
        environment=data["environment"],
        version=data["version"],
        image=data["artifact"]["image"],
        digest=data["artifact"]["digest"],
        change_ref=change["ref"],
        change_type=change["type"],
        change_title=change["title"],
        change_incident=change.get("incident"),
        standard_change=change.get("template", ""),
        pipeline_provider=pipeline.get("provider", ""),
        pipeline_run_url=pipeline.get("run_url", ""),
        pipeline_sha=pipeline.get("sha", ""),
        triggered_by=pipeline.get("triggered_by", ""),
        evidence=tuple(data.get("evidence") or ()),
        planned_at=data.get("planned_at"),
    )


class ReleaseDetail(APIView):
    @extend_schema(responses={200: s.ReleaseSerializer, **errors(404, e404=NO_RELEASE)})
    def get(self, request: Request, pk: int) -> Response:
        release = _release(request, pk)
        return Response(s.ReleaseSerializer(release, context={"request": request}).data)


class ReleaseGate(APIView):
    """May this release go to its environment now? Use `status == "approved"` as the check."""

    @extend_schema(
        responses={
            200: s.GateSerializer,
            **errors(400, 404, e400="A malformed digest.", e404=NO_RELEASE),
        },
        parameters=[
            OpenApiParameter(
                "digest",
                str,
                description="The digest about to be deployed.",
                pattern=DIGEST_PATTERN.pattern,
            )
        ],
    )
    def get(self, request: Request, pk: int) -> Response:
        digest = request.query_params.get("digest")
        if digest is not None and not DIGEST_PATTERN.match(digest):
            raise InvalidRequest(
                "digest must be 'sha256:' followed by 64 lowercase hex digits.",
                fields={"digest": ["Malformed digest."]},
            )
        # Asked at every pipeline run: its few statements are planned once per connection.
        with prepared_statements():
            release = _gate_release(request, pk)
            result = evaluate_gate(release, digest=digest)
        counters.increment(counters.GATE_ANSWERS, "api", result.status)
        if result.status == "blocked" and result.holds:
            announce_blocked(release, result.holds)
        return Response(result.as_dict())


class ReleaseEvidence(APIView):
    @extend_schema(
        request=s.EvidenceInputSerializer,
        examples=[
            OpenApiExample(
                "A clean security scan",
                request_only=True,
                value={
                    "kind": "security_scan",
                    "status": "passed",
                    "summary": {"critical": 0, "high": 0},
                },
            )
        ],
        responses={201: s.GateSerializer, **errors(404, e404=NO_REQUEST_SCOPE)},
    )
    def post(self, request: Request, pk: int) -> Response:
        release = _release(request, pk, "request", for_write=True)
        serializer = s.EvidenceInputSerializer(data=request.data, context={"release": release})
        serializer.is_valid(raise_exception=True)
        services.add_evidence(release=release, actor=request.user, **serializer.validated_data)
        return Response(_gate_payload(release.pk), status=status.HTTP_201_CREATED)


class ReleaseDecisions(APIView):
    @extend_schema(
        request=s.DecisionInputSerializer,
        examples=[
            OpenApiExample(
                "Approve",
                request_only=True,
                value={"decision": "approve", "rationale": "Reviewed the limits diff"},
            )
        ],
        responses={
            201: s.DecisionSerializer,
            **errors(
                403,
                404,
                409,
                e403="Not yours to decide: self_approval_forbidden, not_eligible, or "
                "step_up_required (send step_up_code).",
                e404="No such release among those you may decide (yourself or as a delegate).",
                e409=NOT_OPEN,
            ),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        release = _release(request, pk, delegated=True, for_write=True)
        serializer = s.DecisionInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        decision = services.record_decision(
            release=release,
            actor=request.user,
            verdict=data["decision"],
            rationale=data["rationale"],
            digest=data.get("digest"),
            step_up_code=data.get("step_up_code"),
            channel="api",
            client_address=client_ip(request),
            user_agent=request.headers.get("User-Agent", ""),
        )
        return Response(s.DecisionSerializer(decision).data, status=status.HTTP_201_CREATED)


class ReleaseDeployments(APIView):
    """Report a deployment. Always recorded; `deployment.approved` is false when the gate had
    not approved this digest, and the release is then flagged as deployed without approval."""

    @extend_schema(
        request=s.DeploymentInputSerializer,
        examples=[
            OpenApiExample(
                "Deployed",
                request_only=True,
                value={"status": "succeeded", "url": "https://ci.example.com/deploy/88"},
            )
        ],
        responses={201: s.DeploymentRecordedSerializer, **errors(404, e404=NO_REQUEST_SCOPE)},
    )
    def post(self, request: Request, pk: int) -> Response:
        release = _release(request, pk, "request", for_write=True)
        serializer = s.DeploymentInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        deployment = services.record_deployment(
            release=release, actor=request.user, **serializer.validated_data
        )
        body = {**_gate_payload(release.pk), "deployment": s.DeploymentSerializer(deployment).data}
        return Response(body, status=status.HTTP_201_CREATED)


class ReleaseWithdraw(APIView):
    """Withdraw a pending request (the requester, whoever triggered the pipeline, or a release
    manager of the service); the gate then answers 'rejected' with who withdrew it and why."""

    @extend_schema(
        request=s.ReasonInputSerializer,
        responses={
            200: s.GateSerializer,
            **errors(
                403,
                404,
                409,
                e403="Neither the requester, whoever triggered the pipeline, nor a release "
                "manager of the service.",
                e404=NO_RELEASE,
                e409=NOT_OPEN,
            ),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        release = _release(request, pk, for_write=True)
        serializer = s.ReasonInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.withdraw_request(
            release=release, actor=request.user, reason=serializer.validated_data["reason"]
        )
        return Response(_gate_payload(release.pk))


class ReleaseRequestAgain(APIView):
    """Ask again for a rejected, withdrawn or expired request: a new release of the same artifact
    and change, linked to this one (`previous`), planned from today's policy."""

    @extend_schema(
        request=None,
        responses={
            201: s.ReleaseCreatedSerializer,
            **errors(
                403,
                404,
                409,
                e403="Neither the requester, whoever triggered the pipeline, nor a release "
                "manager of the service.",
                e404=NO_RELEASE,
                e409="Still open, or already requested again.",
            ),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        release = _release(request, pk, for_write=True)
        again = services.request_again(release=release, actor=request.user)
        again = Release.objects.with_list_related().get(pk=again.pk)
        again.gate = _gate_payload(again.pk)
        body = s.ReleaseCreatedSerializer(again, context={"request": request}).data
        return Response(body, status=status.HTTP_201_CREATED)


class ReleaseDecisionRevoke(APIView):
    """Take back your own approval while its stage is still open (a reason is required)."""

    @extend_schema(
        request=s.ReasonInputSerializer,
        responses={
            200: s.GateSerializer,
            **errors(
                404,
                409,
                e404=NO_RELEASE,
                e409="No approval of yours in a stage that is still open.",
            ),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        release = _release(request, pk, delegated=True, for_write=True)
        serializer = s.ReasonInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.revoke_approval(
            release=release, actor=request.user, reason=serializer.validated_data["reason"]
        )
        return Response(_gate_payload(release.pk))
