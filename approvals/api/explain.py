"""`GET /api/v1/releases/<id>/explain`: why the plan asks what it asks."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from approvals.api.views import _release
from approvals.explain import explain
from governance.api.openapi import errors


class ReleaseExplain(APIView):
    @extend_schema(
        responses={
            200: OpenApiResponse(
                description="Each requirement of the release's plan, with the policy rules (id, "
                "policy version) that made it and the context values that made each rule's "
                "condition true."
            ),
            **errors(404, e404="No such release in your scope."),
        }
    )
    def get(self, request: Request, pk: int) -> Response:
        release = _release(request, pk, delegated=True)
        return Response(explain(release))
