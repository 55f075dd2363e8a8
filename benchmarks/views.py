"""The baseline the gate is compared with: the smallest authenticated DRF JSON view."""

from __future__ import annotations

from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.identity.authentication import BearerTokenAuthentication


class Baseline(APIView):
    """Same authentication, permission and renderer as the pipeline API; no work at all."""

    authentication_classes = [BearerTokenAuthentication]
    permission_classes = [IsAuthenticated]

    def get(self, request: Request) -> Response:
        return Response({"ok": True})
