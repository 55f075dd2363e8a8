"""Pipeline API for post-deploy verification: health reports inside a deployment's window."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from approvals.api.serializers import DeploymentSerializer
from approvals.models import Deployment, Release
from approvals.verification import services
from approvals.verification.models import HealthCheck
from governance.api.openapi import OptionalURLField, errors


class HealthReportInputSerializer(serializers.Serializer):
    healthy = serializers.BooleanField(
        help_text="false fails the deployment at once: rollback hook, event, review."
    )
    detail = serializers.CharField(
        max_length=500,
        required=False,
        allow_blank=True,
        default="",
        help_text="What was seen (a smoke test's name, an error rate).",
    )


class HealthCheckSerializer(serializers.ModelSerializer):
    url = OptionalURLField(help_text="The URL polled, for polled checks.")

    class Meta:
        model = HealthCheck
        fields = ["id", "source", "healthy", "url", "detail", "reported_by", "checked_at"]
        read_only_fields = fields


class HealthReportedSerializer(serializers.Serializer):
    check = HealthCheckSerializer(read_only=True)
    deployment = DeploymentSerializer(read_only=True)


class DeploymentHealth(APIView):
    """Report a deployment's health during its post-deploy verification window.

    Same permission as reporting the deployment. An unhealthy report fails the deployment at
    once (its rollback hook is called, subscribers hear `release.verification_failed`, a
    post-implementation review opens). Outside the window (none opened, ended, or already
    decided) the answer is 409 and nothing is recorded.
    """

    @extend_schema(
        request=HealthReportInputSerializer,
        responses={
            201: HealthReportedSerializer,
            **errors(
                404,
                409,
                e404="No such release or deployment in your scope.",
                e409="The deployment's verification window is not open.",
            ),
        },
    )
    def post(self, request: Request, pk: int, deployment_id: int) -> Response:
        release = get_object_or_404(
            Release.objects.restrict(request.user, "request").for_write(), pk=pk
        )
        deployment = get_object_or_404(Deployment, pk=deployment_id, release=release)
        serializer = HealthReportInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        check = services.report_health(
            deployment=deployment, actor=request.user, **serializer.validated_data
        )
        deployment.refresh_from_db()
        body = {
            "check": HealthCheckSerializer(check).data,
            "deployment": DeploymentSerializer(deployment).data,
        }
        return Response(body, status=status.HTTP_201_CREATED)
