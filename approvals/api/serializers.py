"""Pipeline API input validation and output shapes. Validation only; services do the work."""

from __future__ import annotations

from rest_framework import serializers

from approvals.models import DIGEST_PATTERN, Decision, Release
from changes.models import ChangeRecord
from governance.models import Environment, Service
from governance.selectors import may_act

MAX_EVIDENCE_ITEMS = 50


class ArtifactSerializer(serializers.Serializer):
    image = serializers.CharField(max_length=255)
    digest = serializers.CharField(max_length=71)

    def validate_digest(self, value: str) -> str:
        if not DIGEST_PATTERN.match(value):
            raise serializers.ValidationError(
                "Must be 'sha256:' followed by 64 lowercase hex digits."
            )
        return value


class ChangeInputSerializer(serializers.Serializer):
    ref = serializers.RegexField(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$", max_length=64)
    type = serializers.ChoiceField(choices=ChangeRecord.Type.choices, default="normal")
    title = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class PipelineSerializer(serializers.Serializer):
    provider = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")
    run_url = serializers.URLField(max_length=500, required=False, allow_blank=True, default="")
    triggered_by = serializers.CharField(
        max_length=150, required=False, allow_blank=True, default=""
    )


class EvidenceInputSerializer(serializers.Serializer):
    kind = serializers.SlugField(max_length=50)
    status = serializers.ChoiceField(choices=["passed", "failed", "warning", "skipped"])
    summary = serializers.DictField(required=False, default=dict)
    url = serializers.URLField(max_length=500, required=False, allow_blank=True, default="")

    def validate_summary(self, value: dict) -> dict:
        if len(value) > 50:
            raise serializers.ValidationError("At most 50 keys.")
        for key, item in value.items():
            if not isinstance(item, (int, str, bool)) or isinstance(item, float):
                raise serializers.ValidationError(
                    f"'{key}' must be a whole number, text or boolean."
                )
            if isinstance(item, str) and len(item) > 500:
                raise serializers.ValidationError(f"'{key}' is longer than 500 characters.")
        return value


class ReleaseRequestSerializer(serializers.Serializer):
    service = serializers.SlugField(max_length=50)
    environment = serializers.SlugField(max_length=50)
    version = serializers.RegexField(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$", max_length=100)
    artifact = ArtifactSerializer()
    change = ChangeInputSerializer(required=False)
    pipeline = PipelineSerializer(required=False)
    evidence = EvidenceInputSerializer(many=True, required=False)
    planned_at = serializers.DateTimeField(
        required=False, help_text="When the release will go out (vendor releases: for the SLA)."
    )

    def validate_service(self, value: str) -> Service:
        user = self.context["request"].user
        service = Service.objects.restrict(user, "request").filter(slug=value).first()
        if service is None:
            raise serializers.ValidationError(
                f"Unknown service '{value}', or you may not request releases for it."
            )
        return service

    def validate_environment(self, value: str) -> Environment:
        environment = Environment.objects.filter(slug=value).first()
        if environment is None:
            raise serializers.ValidationError(f"Unknown environment '{value}'.")
        return environment

    def validate_change(self, value: dict) -> dict:
        if not value:
            raise serializers.ValidationError("A linked change record is required.")
        return value

    def validate_evidence(self, value: list) -> list:
        if len(value) > MAX_EVIDENCE_ITEMS:
            raise serializers.ValidationError(f"At most {MAX_EVIDENCE_ITEMS} evidence items.")
        return value

    def validate(self, attrs: dict) -> dict:
        user = self.context["request"].user
        service, environment = attrs.get("service"), attrs.get("environment")
        if service and environment and not may_act(user, "request", service, environment):
            raise serializers.ValidationError(
                {
                    "environment": [
                        f"You may not request releases of {service.slug} to {environment.slug}."
                    ]
                }
            )
        if not attrs.get("change"):
            raise serializers.ValidationError(
                {"change": ['A linked change record is required: {"ref": "CHG..."}.']}
            )
        return attrs


class GateStageSerializer(serializers.Serializer):
    name = serializers.CharField()
    status = serializers.CharField()
    required = serializers.IntegerField()
    approvals = serializers.ListField(child=serializers.DictField())


class GateSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=["approved", "pending", "rejected", "blocked", "expired"]
    )
    reasons = serializers.ListField(child=serializers.CharField())
    stages = GateStageSerializer(many=True)
    digest = serializers.CharField()


class ReleaseSerializer(serializers.ModelSerializer):
    service = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    environment = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    change = serializers.SlugRelatedField(slug_field="ref", read_only=True)
    status = serializers.CharField(source="approval.status", read_only=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = Release
        fields = [
            "id",
            "service",
            "environment",
            "version",
            "image",
            "digest",
            "change",
            "status",
            "created_at",
            "url",
        ]
        read_only_fields = fields

    def get_url(self, release: Release) -> str:
        return self.context["request"].build_absolute_uri(f"/approvals/releases/{release.pk}/")


class ReleaseCreatedSerializer(ReleaseSerializer):
    gate = GateSerializer(read_only=True)

    class Meta(ReleaseSerializer.Meta):
        fields = [*ReleaseSerializer.Meta.fields, "gate"]
        read_only_fields = fields


class DecisionInputSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=Decision.Verdict.values)
    rationale = serializers.CharField(max_length=5000)
    digest = serializers.CharField(max_length=71, required=False)
    step_up_code = serializers.CharField(max_length=10, required=False)


class DecisionSerializer(serializers.ModelSerializer):
    approver = serializers.SlugRelatedField(slug_field="username", read_only=True)
    stage = serializers.CharField(source="stage.name", read_only=True)
    decision = serializers.CharField(source="verdict", read_only=True)

    class Meta:
        model = Decision
        fields = [
            "id",
            "stage",
            "approver",
            "decision",
            "rationale",
            "digest",
            "step_up_method",
            "created_at",
        ]
        read_only_fields = fields


class EvidenceSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    kind = serializers.CharField(read_only=True)
    status = serializers.CharField(read_only=True)
    summary = serializers.DictField(read_only=True)
    url = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)


class DeploymentInputSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["succeeded", "failed"])
    url = serializers.URLField(max_length=500, required=False, allow_blank=True, default="")
