"""`/api/v1/changes/`: change records for tools and scripts, with the pages' rules.

Who sees a change: whoever may see releases of one of its services. Who opens, edits and moves
one: release managers of every service it affects, and administrators. Errors come in the API's
envelope; a refused write changes nothing.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from changes.records import selectors
from changes.records import services as records
from changes.records.exceptions import ChangeForbidden
from changes.records.models import ChangeRecord
from governance.api.openapi import OptionalURLField, errors
from governance.models import Service, User

MAX_SERVICES = 50
NO_CHANGE = "No such change among those of the services you may see."
FORBIDDEN = "Only release managers of every service the change affects, or administrators."


class ChangeSerializer(serializers.ModelSerializer):
    services = serializers.SlugRelatedField(slug_field="slug", many=True, read_only=True)
    author = serializers.SlugRelatedField(slug_field="username", read_only=True)
    implementer = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    external_url = OptionalURLField()
    close_code = serializers.ChoiceField(
        choices=ChangeRecord.CloseCode.choices, allow_blank=True, read_only=True
    )

    class Meta:
        model = ChangeRecord
        fields = [
            "ref",
            "title",
            "type",
            "state",
            "risk",
            "impact",
            "description",
            "planned_start",
            "planned_end",
            "time_zone",
            "services",
            "author",
            "implementer",
            "implementation_plan",
            "test_plan",
            "backout_plan",
            "source",
            "external_url",
            "incident",
            "close_code",
            "close_notes",
            "created_at",
            "updated_at",
            "closed_at",
        ]
        read_only_fields = fields


class ChangeDetailSerializer(ChangeSerializer):
    releases = serializers.SerializerMethodField()

    class Meta(ChangeSerializer.Meta):
        fields = [*ChangeSerializer.Meta.fields, "releases"]
        read_only_fields = fields

    def get_releases(self, change: ChangeRecord) -> list[dict]:
        rows = selectors.linked_releases(change, self.context["request"].user)
        keys = ("id", "label", "status", "gate", "reasons", "deployed_at")
        return [{key: row[key] for key in keys} for row in rows]


class ChangeRecordInputSerializer(serializers.Serializer):
    ref = serializers.RegexField(
        r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        required=False,
        help_text="Your ITSM number, e.g. CHG0012345; generated (SO-CHG-…) when left out.",
    )
    title = serializers.CharField(max_length=200)
    type = serializers.ChoiceField(choices=ChangeRecord.Type.choices, default="normal")
    risk = serializers.ChoiceField(choices=ChangeRecord.Level.choices, default="moderate")
    impact = serializers.ChoiceField(choices=ChangeRecord.Level.choices, default="moderate")
    description = serializers.CharField(required=False, allow_blank=True, default="")
    planned_start = serializers.DateTimeField(required=False, allow_null=True, default=None)
    planned_end = serializers.DateTimeField(required=False, allow_null=True, default=None)
    time_zone = serializers.CharField(max_length=64, default="UTC")
    services = serializers.ListField(
        child=serializers.SlugField(max_length=50), min_length=1, max_length=MAX_SERVICES
    )
    implementer = serializers.CharField(
        max_length=150, required=False, allow_null=True, default=None
    )
    implementation_plan = serializers.CharField(required=False, allow_blank=True, default="")
    test_plan = serializers.CharField(required=False, allow_blank=True, default="")
    backout_plan = serializers.CharField(required=False, allow_blank=True, default="")

    def validate_services(self, slugs: list[str]) -> list[Service]:
        found = {s.slug: s for s in Service.objects.filter(slug__in=slugs)}
        unknown = [slug for slug in dict.fromkeys(slugs) if slug not in found]
        if unknown:
            raise serializers.ValidationError(f"Unknown service(s): {', '.join(unknown)}.")
        return list(found.values())

    def validate_implementer(self, username: str | None) -> User | None:
        if not username:
            return None
        person = User.objects.filter(username__iexact=username).first()
        if person is None:
            raise serializers.ValidationError(f"No person named {username}.")
        return person

    def to_input(self) -> records.ChangeInput:
        data = self.validated_data
        return records.ChangeInput(
            ref=data.get("ref", ""),
            services=data["services"],
            **{name: data[name] for name in records.EDITABLE_FIELDS},
        )


class MoveSerializer(serializers.Serializer):
    to = serializers.ChoiceField(choices=ChangeRecord.State.choices)
    reason = serializers.CharField(max_length=2000)
    close_code = serializers.ChoiceField(
        choices=ChangeRecord.CloseCode.choices, required=False, allow_blank=True, default=""
    )


def _change(request: Request, ref: str) -> ChangeRecord:
    changes = selectors.changes_visible_to(request.user).prefetch_related("services")
    return get_object_or_404(changes.select_related("author", "implementer"), ref=ref)


class ChangeListCreate(generics.ListAPIView):
    """The changes of the services you may see, newest first; or open a change."""

    serializer_class = ChangeSerializer

    def get_queryset(self):
        params = self.request.query_params
        filters = selectors.ChangeFilters(
            q=params.get("q", "")[:100],
            state=params.get("state", ""),
            type=params.get("type", ""),
            risk=params.get("risk", ""),
            service=params.get("service", "")[:50],
        )
        visible = selectors.changes_visible_to(self.request.user)
        return selectors.search_changes(visible, filters).order_by("-created_at", "-pk")

    @extend_schema(
        parameters=[
            OpenApiParameter(name, str, description=f"Filter by {name}.")
            for name in ("q", "state", "type", "risk", "service")
        ],
        responses={200: ChangeSerializer(many=True), **errors(404, e404="No such page.")},
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=ChangeRecordInputSerializer,
        examples=[
            OpenApiExample(
                "A normal change",
                request_only=True,
                value={
                    "ref": "CHG0031401",
                    "title": "Payout limits per seller",
                    "services": ["payments-api"],
                    "planned_start": "2027-01-12T21:00:00Z",
                    "planned_end": "2027-01-12T23:00:00Z",
                    "time_zone": "Europe/Berlin",
                    "backout_plan": "Redeploy 2.4.3.",
                },
            )
        ],
        responses={201: ChangeDetailSerializer, **errors(403, e403=FORBIDDEN)},
    )
    def post(self, request: Request) -> Response:
        serializer = ChangeRecordInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        change = records.open_change(data=serializer.to_input(), actor=request.user)
        return Response(
            ChangeDetailSerializer(_change(request, change.ref), context={"request": request}).data,
            status=status.HTTP_201_CREATED,
        )


class ChangeDetail(APIView):
    """One change with its releases and their gates now; PATCH edits what you give."""

    @extend_schema(responses={200: ChangeDetailSerializer, **errors(404, e404=NO_CHANGE)})
    def get(self, request: Request, ref: str) -> Response:
        change = _change(request, ref)
        return Response(ChangeDetailSerializer(change, context={"request": request}).data)

    @extend_schema(
        request=ChangeRecordInputSerializer,
        responses={
            200: ChangeDetailSerializer,
            **errors(
                403,
                404,
                409,
                e403=FORBIDDEN,
                e404=NO_CHANGE,
                e409="The change is closed, or mirrored from an ITSM tool.",
            ),
        },
    )
    def patch(self, request: Request, ref: str) -> Response:
        change = _change(request, ref)
        if not records.may_write_change(request.user, change.services.all()):
            raise ChangeForbidden(
                "Only release managers of every service the change affects, or administrators, "
                "may write this change."
            )
        current = {
            **{name: getattr(change, name) for name in records.EDITABLE_FIELDS},
            "implementer": change.implementer.username if change.implementer else None,
            "services": [s.slug for s in change.services.all()],
        }
        if not isinstance(request.data, dict):
            raise serializers.ValidationError({"non_field_errors": ["Send a JSON object."]})
        serializer = ChangeRecordInputSerializer(
            data={**current, **request.data, "ref": change.ref}
        )
        serializer.is_valid(raise_exception=True)
        records.update_change(change=change, data=serializer.to_input(), actor=request.user)
        change = _change(request, ref)
        return Response(ChangeDetailSerializer(change, context={"request": request}).data)


class ChangeMove(APIView):
    """Move a change along its life cycle by hand: `{"to": "assess", "reason": "..."}`."""

    @extend_schema(
        request=MoveSerializer,
        responses={
            200: ChangeDetailSerializer,
            **errors(
                403,
                404,
                409,
                e403=FORBIDDEN,
                e404=NO_CHANGE,
                e409="The life cycle does not allow that move from the change's state.",
            ),
        },
    )
    def post(self, request: Request, ref: str) -> Response:
        change = _change(request, ref)
        serializer = MoveSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        records.move_change(change=change, actor=request.user, **serializer.validated_data)
        change = _change(request, ref)
        return Response(ChangeDetailSerializer(change, context={"request": request}).data)
