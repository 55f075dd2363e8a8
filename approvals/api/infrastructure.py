"""Pipeline API: submit the Terraform plan of a release (`terraform show -json <planfile>`)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from approvals.api.serializers import GateSerializer
from approvals.gate import evaluate_gate
from approvals.models import Release
from approvals.services.infrastructure import check_may_submit_plan, submit_plan
from governance.api.openapi import errors
from governance.exceptions import GovernanceError
from governance.policy.terraform import MAX_PLAN_BYTES


class PlanTooLarge(GovernanceError):
    code = "payload_too_large"
    status = 413


PLAN_ARTIFACTS = ["plan", "image"]


class PlanSummarySerializer(serializers.Serializer):
    creates = serializers.IntegerField()
    updates = serializers.IntegerField()
    deletes = serializers.IntegerField()
    replaces = serializers.IntegerField()
    no_ops = serializers.IntegerField()
    sensitive = serializers.ListField(child=serializers.CharField())
    world_open = serializers.ListField(child=serializers.CharField())


class PlanSubmittedSerializer(GateSerializer):
    """The gate re-evaluated with the plan, the plan's summary, and what the artifact is."""

    summary = PlanSummarySerializer()
    sha256 = serializers.CharField(help_text="sha256:<hex> of the plan's bytes.")
    artifact = serializers.ChoiceField(
        choices=PLAN_ARTIFACTS,
        help_text="`plan` when the release's digest is the plan's own (an infrastructure "
        "release); `image` when the plan accompanies the release's image.",
    )


class ReleaseInfrastructurePlan(APIView):
    """Submit the release's Terraform plan: the JSON of `terraform show -json <planfile>` as
    the body, up to 20 MiB. Once per release; the policy then sees it as `plan`."""

    @extend_schema(
        request={"application/json": OpenApiTypes.OBJECT},
        responses={
            201: PlanSubmittedSerializer,
            **errors(
                403,
                404,
                409,
                413,
                e403="Not the requester, whoever triggered the pipeline, or a release manager "
                "of the service.",
                e404="No such release in your scope.",
                e409="A plan was submitted already, or the request is no longer open.",
                e413=f"The plan is larger than {MAX_PLAN_BYTES // (1024 * 1024)} MiB.",
            ),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        release = get_object_or_404(Release.objects.restrict(request.user).for_write(), pk=pk)
        check_may_submit_plan(release, request.user)  # 403 before reading up to 20 MiB
        submitted = submit_plan(release=release, actor=request.user, body=_plan_bytes(request))
        gate = evaluate_gate(Release.objects.for_gate().get(pk=release.pk)).as_dict()
        body = {
            **gate,
            "summary": submitted.plan.summary,
            "sha256": submitted.plan.sha256,
            "artifact": submitted.artifact,
        }
        return Response(body, status=status.HTTP_201_CREATED)


def _plan_bytes(request: Request) -> bytes:
    """The raw body, read here rather than parsed by DRF: the plan's digest is taken over its
    exact bytes, and plans may pass the 1 MiB that other bodies are held to (read from the
    stream, which Django's DATA_UPLOAD_MAX_MEMORY_SIZE check on `request.body` does not see)."""
    if request.content_type.split(";")[0].strip().lower() != "application/json":
        raise exceptions.UnsupportedMediaType(request.content_type)
    too_large = PlanTooLarge(f"The plan is larger than {MAX_PLAN_BYTES // (1024 * 1024)} MiB.")
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > MAX_PLAN_BYTES:
        raise too_large  # refused before a byte is read
    stream = request.stream
    body = stream.read(MAX_PLAN_BYTES + 1) if stream is not None else b""
    if len(body) > MAX_PLAN_BYTES:
        raise too_large
    return body
