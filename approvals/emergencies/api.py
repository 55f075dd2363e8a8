"""`/api/v1/emergencies/`: declaring an emergency from a script or an incident tool, and reading
one back. Bearer token or session, as the rest of the API; errors in the API's envelope; a
refused declaration writes nothing (no change record either)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from approvals.emergencies import selectors
from approvals.emergencies import services as emergencies
from approvals.emergencies.models import EmergencyException
from changes.incidents.models import Incident
from changes.records.models import ChangeRecord
from governance.api.openapi import errors
from governance.models import Service

MAX_CONTROLS = 20


class EmergencySerializer(serializers.ModelSerializer):
    change = serializers.SlugRelatedField(slug_field="ref", read_only=True)
    service = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    declared_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    reviewed_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    in_force = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = EmergencyException
        fields = [
            "id",
            "change",
            "service",
            "declared_by",
            "justification",
            "incident",
            "outage",
            "controls",
            "control_notes",
            "starts_at",
            "ends_at",
            "in_force",
            "enhanced_monitoring",
            "secondary_review",
            "secondary_review_notes",
            "reviewed_by",
            "reviewed_at",
            "url",
        ]
        read_only_fields = fields

    def get_in_force(self, emergency: EmergencyException) -> bool:
        return emergency.in_force_at(timezone.now())

    def get_url(self, emergency: EmergencyException) -> str:
        return reverse("emergencies:emergency_detail", args=[emergency.pk])


class DeclareSerializer(serializers.Serializer):
    service = serializers.SlugField(max_length=50)
    title = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    justification = serializers.CharField(max_length=5000)
    incident = serializers.IntegerField(required=False, allow_null=True, default=None)
    outage = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
    controls = serializers.ListField(
        child=serializers.CharField(max_length=64), max_length=MAX_CONTROLS, default=list
    )
    control_notes = serializers.CharField(
        max_length=2000, required=False, allow_blank=True, default=""
    )
    hours = serializers.IntegerField(
        required=False, allow_null=True, default=None, help_text="Default: the policy's."
    )
    change = serializers.CharField(
        max_length=64,
        required=False,
        allow_blank=True,
        default="",
        help_text="An existing change of the service to mark as the emergency; else one opens.",
    )

    def validate_service(self, slug: str) -> Service:
        service = Service.objects.filter(slug=slug).first()
        if service is None:
            raise serializers.ValidationError(f"Unknown service {slug}.")
        return service

    def validate_incident(self, pk: int | None) -> Incident | None:
        if pk is None:
            return None
        incident = Incident.objects.filter(pk=pk).first()
        if incident is None:
            raise serializers.ValidationError(f"No incident {pk}.")
        return incident

    def validate_change(self, ref: str) -> ChangeRecord | None:
        if not ref:
            return None
        change = ChangeRecord.objects.filter(ref=ref).first()
        if change is None:
            raise serializers.ValidationError(f"No change record {ref}.")
        return change


def _emergency(request: Request, pk: int) -> EmergencyException:
    seen = selectors.emergencies_visible_to(request.user).select_related(
        "change", "service", "declared_by", "reviewed_by"
    )
    return get_object_or_404(seen, pk=pk)


class EmergencyCreate(APIView):
    """Declare an emergency: an emergency change with a time-bound exception."""

    @extend_schema(
        request=DeclareSerializer,
        examples=[
            OpenApiExample(
                "Payments are failing",
                request_only=True,
                value={
                    "service": "payments-api",
                    "title": "Roll forward the payout fix",
                    "justification": "Payouts fail for every seller since 09:12.",
                    "outage": "All payouts",
                    "control_notes": "A second engineer watches the rollout.",
                    "hours": 4,
                },
            )
        ],
        responses={
            201: EmergencySerializer,
            **errors(
                403,
                409,
                e403="Not a release manager of the service, nor an administrator.",
                e409="The change named cannot become this emergency (another service's, "
                "closed, or an emergency already).",
            ),
        },
    )
    def post(self, request: Request) -> Response:
        serializer = DeclareSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        emergency = emergencies.declare_emergency(actor=request.user, **serializer.validated_data)
        return Response(
            EmergencySerializer(_emergency(request, emergency.pk)).data,
            status=status.HTTP_201_CREATED,
        )


class EmergencyDetail(APIView):
    """One emergency on a service whose releases you may see."""

    @extend_schema(
        responses={200: EmergencySerializer, **errors(404, e404="No such emergency you may see.")}
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(EmergencySerializer(_emergency(request, pk)).data)
