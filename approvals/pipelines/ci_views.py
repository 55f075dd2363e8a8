"""CI integrations served under /integrations/: Azure DevOps checks (callback mode, and the gate
found by run for ApiResponse mode) and the signoff-gate client for download."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

from django.conf import settings
from django.http import FileResponse, Http404, HttpRequest
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import authentication, exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from approvals.api.serializers import GATE_STATUSES, GateSerializer
from approvals.gate import evaluate_gate
from approvals.models import Release
from approvals.pipelines import azure
from governance import counters
from governance.api.openapi import errors
from governance.identity.authentication import (
    BearerTokenAuthentication,
    FailedTokenThrottle,
    client_ip,
)
from governance.identity.tokens import authenticate_token

CLIENT_NAME = "signoff-gate"
# What an Azure check was answered: nothing yet, or the gate's final word.
CHECK_ANSWERS = ["", "approved", "rejected"]
CHECK_STATUSES = ["acknowledged"]
NO_RUN = "No release of yours was requested by this run for that environment."


class TokenPasswordAuthentication(authentication.BaseAuthentication):
    """`Authorization: Basic base64(<any user>:<token>)`: what an Azure DevOps "Generic"
    service connection sends, with a Signoff API token as its password. Failures count
    towards the same per-address limit as bearer tokens."""

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode(errors="replace")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        throttle = FailedTokenThrottle(client_ip(request))
        wait = throttle.retry_after()
        if wait is not None:
            raise exceptions.Throttled(
                wait=wait, detail="Too many failed token attempts from your address."
            )
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        token = authenticate_token(decoded.partition(":")[2].strip()) if ":" in decoded else None
        if token is None:
            throttle.record_failure()
            raise exceptions.AuthenticationFailed("Invalid, revoked or expired token.")
        return token.user, token


class TokenPasswordScheme(OpenApiAuthenticationExtension):
    target_class = TokenPasswordAuthentication
    name = "tokenPasswordAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "basic",
            "description": "Any user name, a Signoff API token as the password.",
        }


class RunLookupSerializer(serializers.Serializer):
    run_url = serializers.URLField(max_length=500)
    environment = serializers.SlugField(max_length=50)


class RunGateSerializer(GateSerializer):
    release = serializers.IntegerField(help_text="The release the run requested.")


class CheckAcknowledgedSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=CHECK_STATUSES, help_text="Always 'acknowledged'.")
    release = serializers.IntegerField()
    gate = serializers.ChoiceField(
        choices=GATE_STATUSES, help_text="The gate's status when the check arrived."
    )
    answer = serializers.ChoiceField(
        choices=CHECK_ANSWERS, help_text="'' while waiting; approved or rejected once sent."
    )


def _release_for_run(request: Request, data: object, action: str) -> Release:
    """The newest release this pipeline run requested for the environment, in the caller's
    scope: the check knows the run (predefined variables), not Signoff's release id."""
    lookup = RunLookupSerializer(data=data)
    lookup.is_valid(raise_exception=True)
    release = (
        Release.objects.restrict(request.user, action)
        .filter(
            pipeline_run_url=lookup.validated_data["run_url"],
            environment__slug=lookup.validated_data["environment"],
        )
        .order_by("-pk")
        .first()
    )
    if release is None:
        raise Http404(NO_RUN)
    return release


class AzureCheck(APIView):
    """An Azure DevOps "Invoke REST API" check in callback mode: acknowledged at once; the
    TaskCompleted event goes back to the job's plan when the gate decides."""

    authentication_classes = [BearerTokenAuthentication, TokenPasswordAuthentication]

    @extend_schema(
        request=RunLookupSerializer,
        responses={200: CheckAcknowledgedSerializer, **errors(404, e404=NO_RUN)},
    )
    def post(self, request: Request, pk: int | None = None) -> Response:
        if pk is None:
            release = _release_for_run(request, request.data, "request")
        else:
            release = get_object_or_404(Release.objects.restrict(request.user, "request"), pk=pk)
        check = azure.parse_check(request.headers)
        wait = azure.register_check(release=release, actor=request.user, check=check)
        gate = evaluate_gate(Release.objects.for_gate().get(pk=release.pk)).status
        return Response(
            {"status": "acknowledged", "release": release.pk, "gate": gate, "answer": wait.answer}
        )


class AzureGate(APIView):
    """The gate of the release a run requested, for an "Invoke REST API" check in ApiResponse
    mode (success criterion `eq(root['status'], 'approved')`)."""

    authentication_classes = [BearerTokenAuthentication, TokenPasswordAuthentication]

    @extend_schema(
        parameters=[
            OpenApiParameter("run_url", str, required=True),
            OpenApiParameter("environment", str, required=True),
        ],
        responses={200: RunGateSerializer, **errors(400, 404, e404=NO_RUN)},
    )
    def get(self, request: Request) -> Response:
        release = _release_for_run(request, request.query_params, "view")
        answer = evaluate_gate(Release.objects.for_gate().get(pk=release.pk)).as_dict()
        counters.increment(counters.GATE_ANSWERS, "azure", answer["status"])
        return Response({**answer, "release": release.pk})


@require_GET
def client_download(request: HttpRequest) -> FileResponse:
    """The signoff-gate client, to anyone: it is the repository's own public code."""
    path = Path(settings.BASE_DIR) / "tools" / CLIENT_NAME
    if not path.is_file():
        raise Http404("The client is not installed with this server.")
    return FileResponse(
        path.open("rb"),
        as_attachment=True,
        filename=CLIENT_NAME,
        content_type="text/x-python; charset=utf-8",
    )
