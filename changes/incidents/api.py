"""`POST /api/v1/incidents/`: report an incident from any tool (the pipeline API's conventions).

Who may report: an administrator, or someone who may request releases of every service named
(release managers and the pipelines' service accounts). Re-sending the same `external_id` updates
the incident, so a tool resolves what it opened by sending `"status": "resolved"`.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from changes.incidents import services
from changes.incidents.models import Incident
from governance.api.openapi import OptionalURLField
from governance.authority.services import is_administrator
from governance.models import Service

MAX_SERVICES = 20


class IncidentInputSerializer(serializers.Serializer):
    external_id = serializers.RegexField(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}$", max_length=100)
    title = serializers.CharField(max_length=500)
    url = serializers.URLField(max_length=500, required=False, allow_blank=True, default="")
    priority = serializers.RegexField(
        r"^P[1-5]$", required=False, allow_blank=True, default="", help_text="P1 (worst) to P5."
    )
    urgency = serializers.ChoiceField(
        choices=Incident.Urgency.choices, required=False, allow_blank=True, default=""
    )
    status = serializers.ChoiceField(
        choices=Incident.Status.choices, required=False, default=Incident.Status.TRIGGERED
    )
    services = serializers.ListField(
        child=serializers.SlugField(max_length=50), min_length=1, max_length=MAX_SERVICES
    )
    opened_at = serializers.DateTimeField(required=False)

    def validate_services(self, slugs: list[str]) -> list[Service]:
        user = self.context["request"].user
        allowed = (
            Service.objects.all()
            if is_administrator(user)
            else Service.objects.restrict(user, "request")
        )
        found = {s.slug: s for s in allowed.filter(slug__in=slugs)}
        unknown = [slug for slug in dict.fromkeys(slugs) if slug not in found]
        if unknown:
            raise serializers.ValidationError(
                f"Unknown service(s) {', '.join(unknown)}, or you may not report incidents "
                "for them (release managers of the service and administrators may)."
            )
        return list(found.values())


class IncidentSerializer(serializers.ModelSerializer):
    services = serializers.SlugRelatedField(slug_field="slug", many=True, read_only=True)
    url = OptionalURLField(source="external_url")
    blocking = serializers.BooleanField(source="is_blocking", read_only=True)
    urgency = serializers.ChoiceField(
        choices=Incident.Urgency.choices, allow_blank=True, read_only=True
    )

    class Meta:
        model = Incident
        fields = [
            "id",
            "source",
            "external_id",
            "url",
            "title",
            "priority",
            "severity",
            "urgency",
            "status",
            "blocking",
            "services",
            "opened_at",
            "acknowledged_at",
            "resolved_at",
        ]
        read_only_fields = fields


class IncidentReport(APIView):
    """Report an incident (or update one reported before under the same `external_id`)."""

    @extend_schema(
        request=IncidentInputSerializer,
        examples=[
            OpenApiExample(
                "A P1 on payments",
                request_only=True,
                value={
                    "external_id": "INC-4711",
                    "title": "Payouts failing",
                    "priority": "P1",
                    "services": ["payments-api"],
                },
            )
        ],
        responses={
            201: IncidentSerializer,
            200: OpenApiResponse(IncidentSerializer, description="Updated: the same external_id."),
        },
    )
    def post(self, request: Request) -> Response:
        serializer = IncidentInputSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        existing = Incident.objects.filter(source="api", external_id=data["external_id"]).first()
        if existing is not None:
            # Updating also needs authority over the services it was reported on.
            IncidentInputSerializer(context={"request": request}).validate_services(
                list(existing.services.values_list("slug", flat=True)) or data["services"]
            )
        report = services.IncidentReport(
            source=Incident.Source.API,
            external_id=data["external_id"],
            title=data["title"],
            status=data["status"],
            external_url=data["url"],
            priority=data["priority"],
            urgency=data["urgency"],
            services=tuple(data["services"]),
            opened_at=data.get("opened_at"),
        )
        incident, created = services.record_incident(
            report=report, actor=request.user.username, reporter=request.user
        )
        incident = Incident.objects.prefetch_related("services").get(pk=incident.pk)
        return Response(
            IncidentSerializer(incident).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )
