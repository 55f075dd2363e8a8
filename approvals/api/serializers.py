"""Pipeline API input validation and output shapes. Validation only; services do the work."""

from __future__ import annotations

from rest_framework import serializers

from approvals.models import (
    DIGEST_PATTERN,
    ApprovalRequest,
    ApprovalStage,
    Decision,
    Deployment,
    Release,
)
from changes.models import ChangeRecord, Incident
from governance.api.openapi import OptionalURLField
from governance.api.parsers import text_problem
from governance.authority.selectors import may_act
from governance.models import Environment, Service, User
from governance.people.names import skeletons
from governance.people.selectors import people_named, person_named
from governance.policy.evidence import summary_fields, validate_item

MAX_EVIDENCE_ITEMS = 50
MAX_SUMMARY_KEYS = 50
MAX_SUMMARY_KEY_LENGTH = 100
MAX_SUMMARY_TEXT = 500
# Counts fit PostgreSQL's bigint and every client's 64-bit integer.
MAX_COUNT = 2**63 - 1
# Summary keys read as counts whatever the kind (a policy's `max_failed`); the documented
# kinds' own fields are checked by governance.policy.evidence.validate_item.
COUNT_KEYS = frozenset({"failed"})
_COUNT = "a whole number of 0 or more"
EVIDENCE_STATUSES = ["passed", "failed", "warning", "skipped"]
DIGEST_MESSAGE = "Must be 'sha256:' followed by 64 lowercase hex digits."


class DigestField(serializers.RegexField):
    """An artifact digest, `sha256:` and 64 lowercase hex digits; the schema states the pattern."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("help_text", "sha256: followed by 64 lowercase hex digits.")
        super().__init__(
            DIGEST_PATTERN.pattern,
            max_length=71,
            error_messages={"invalid": DIGEST_MESSAGE},
            **kwargs,
        )


class ArtifactSerializer(serializers.Serializer):
    image = serializers.CharField(max_length=255)
    digest = DigestField()


class ChangeInputSerializer(serializers.Serializer):
    ref = serializers.RegexField(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$", max_length=64)
    type = serializers.ChoiceField(choices=ChangeRecord.Type.choices, default="normal")
    title = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    incident = serializers.PrimaryKeyRelatedField(
        queryset=Incident.objects.all(),
        required=False,
        allow_null=True,
        default=None,
        help_text="The Signoff id of the incident this change fixes (an emergency fix for it).",
        error_messages={"does_not_exist": "No incident {pk_value}."},
    )
    template = serializers.SlugField(
        max_length=100,
        required=False,
        allow_blank=True,
        default="",
        help_text="For a standard change: the id of the policy's pre-approved template it follows.",
    )

    def validate(self, attrs: dict) -> dict:
        if attrs.get("template") and attrs.get("type") != ChangeRecord.Type.STANDARD:
            raise serializers.ValidationError(
                {"template": ["Only a standard change follows a standard change template."]}
            )
        return attrs


class PipelineSerializer(serializers.Serializer):
    provider = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")
    run_url = serializers.URLField(max_length=500, required=False, allow_blank=True, default="")
    triggered_by = serializers.CharField(
        max_length=150, required=False, allow_blank=True, default=""
    )
    sha = serializers.RegexField(
        r"^(?:[0-9a-fA-F]{40}|[0-9a-fA-F]{64})$",
        required=False,
        allow_blank=True,
        default="",
        help_text="The commit the run built (40 or 64 hex digits); GitHub and GitLab "
        "deployment hooks find the release by it.",
        error_messages={"invalid": "Must be a commit id: 40 or 64 hex digits."},
    )

    def validate_sha(self, value: str) -> str:
        return value.lower()


class EvidenceInputSerializer(serializers.Serializer):
    kind = serializers.SlugField(max_length=50)
    status = serializers.ChoiceField(choices=EVIDENCE_STATUSES)
    summary = serializers.DictField(required=False, default=dict)
    url = serializers.URLField(max_length=500, required=False, allow_blank=True, default="")

    def validate_summary(self, value: dict) -> dict:
        if len(value) > MAX_SUMMARY_KEYS:
            raise serializers.ValidationError(f"At most {MAX_SUMMARY_KEYS} keys.")
        return value

    def validate(self, attrs: dict) -> dict:
        """The summary as its kind defines it (governance.policy.evidence), other keys by the
        general rules; on the evidence endpoint, a peer review by the release's own people."""
        kind, summary = attrs["kind"], attrs["summary"]
        typed = summary_fields(kind)
        problems = [
            problem
            for key, item in summary.items()
            if str(key) not in typed and (problem := _summary_problem(str(key), item))
        ]
        errors = validate_item(kind, attrs["status"], summary)
        if problems:
            errors["summary"] = [*problems, *errors.get("summary", [])]
        if errors:
            raise serializers.ValidationError(errors)
        release = self.context.get("release")
        # People are loaded only for a peer review: other evidence must not cost the queries.
        if release is not None and kind == "peer_review":
            conflict = _reviewer_conflict(
                attrs,
                requester=release.requested_by,
                triggered=release.triggered_by,
                triggered_name=release.triggered_by_name,
            )
            if conflict:
                raise serializers.ValidationError({"summary": [conflict]})
        return attrs


def _reviewer_conflict(
    item: dict, *, requester: User, triggered: User | None, triggered_name: str
) -> str | None:
    """Why a peer review cannot count: its reviewer is the requester or whoever triggered the
    pipeline (the bot's human). Matched like every conflict of interest: case, look-alike
    characters and e-mail addresses included, and a trigger name that matches nobody too."""
    reviewer = item["summary"].get("reviewer")
    if item["kind"] != "peer_review" or not isinstance(reviewer, str):
        return None
    names = [requester.username, triggered_name, triggered.username if triggered else ""]
    keys = set(skeletons(reviewer))
    same_name = any(keys & set(skeletons(name)) for name in names if name)
    people = [person.pk for person in (requester, triggered) if person]
    if same_name or people_named(reviewer).filter(pk__in=people).exists():
        return (
            f"'reviewer' must be someone other than the requester and whoever triggered the "
            f"pipeline; {reviewer} is one of them."
        )
    return None


def _summary_problem(key: str, item: object) -> str | None:
    """Why one evidence summary entry cannot be kept, or None when it can.

    Numbers are counts (tests passed, findings by severity): whole and never negative, or
    "failed": -5 would satisfy a policy's "at most 0 failed". The gate and the policy context
    read "failed" only as a number, so there it must be one: text or a boolean there would be
    silently ignored or, since `True == 1` in Python, counted as one failure.
    """
    text = text_problem(key)
    if text:
        return text.key_message
    if len(key) > MAX_SUMMARY_KEY_LENGTH:
        return f"Keys are at most {MAX_SUMMARY_KEY_LENGTH} characters."
    if isinstance(item, bool):
        return f"'{key}' is a count: {_COUNT}, not true or false." if key in COUNT_KEYS else None
    if isinstance(item, int):
        if item < 0:
            return f"'{key}' must be {_COUNT}, not {item}."
        return f"'{key}' must be at most {MAX_COUNT}." if item > MAX_COUNT else None
    if not isinstance(item, str):
        return f"'{key}' must be a whole number, text or boolean."
    if key in COUNT_KEYS:
        return f"'{key}' is a count: {_COUNT}, not text."
    if len(item) > MAX_SUMMARY_TEXT:
        return f"'{key}' is longer than {MAX_SUMMARY_TEXT} characters."
    text = text_problem(item)
    return f"'{key}': {text.message}" if text else None


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
        self._refuse_own_reviews(attrs, user)
        return attrs

    def _refuse_own_reviews(self, attrs: dict, user: User) -> None:
        """A peer review by the requester or the pipeline's trigger counts for nothing."""
        reviews = [
            (index, item)
            for index, item in enumerate(attrs.get("evidence") or [])
            if item["kind"] == "peer_review"
        ]
        if not reviews:
            return
        name = (attrs.get("pipeline") or {}).get("triggered_by", "")
        triggered = person_named(name) if name else None
        errors = {}
        for index, item in reviews:
            conflict = _reviewer_conflict(
                item, requester=user, triggered=triggered, triggered_name=name
            )
            if conflict:
                errors[str(index)] = {"summary": [conflict]}
        if errors:
            raise serializers.ValidationError({"evidence": errors})


class GateStageSerializer(serializers.Serializer):
    key = serializers.CharField()
    order = serializers.IntegerField(
        help_text="Stages with the same order are open at the same time (parallel)."
    )
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=ApprovalStage.Status.choices)
    required = serializers.IntegerField()
    approvals = serializers.ListField(child=serializers.DictField())


GATE_STATUSES = ["approved", "pending", "rejected", "blocked", "expired"]


class GateSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=GATE_STATUSES)
    reasons = serializers.ListField(child=serializers.CharField())
    stages = GateStageSerializer(many=True)
    digest = DigestField(help_text="The digest the answer is for.")


class ReleaseSerializer(serializers.ModelSerializer):
    service = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    environment = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    change = serializers.SlugRelatedField(slug_field="ref", read_only=True)
    status = serializers.ChoiceField(
        choices=ApprovalRequest.Status.choices, source="approval.status", read_only=True
    )
    digest = DigestField(read_only=True)
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


class ReasonInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, help_text="Why; the gate and ledger say it.")


class DecisionInputSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=Decision.Verdict.choices)
    rationale = serializers.CharField(max_length=5000)
    digest = DigestField(
        required=False, help_text="The digest you reviewed; refused unless it is the release's."
    )
    step_up_code = serializers.CharField(max_length=10, required=False)


class DecisionSerializer(serializers.ModelSerializer):
    approver = serializers.SlugRelatedField(slug_field="username", read_only=True)
    stage = serializers.CharField(source="stage.name", read_only=True)
    decision = serializers.ChoiceField(
        choices=Decision.Verdict.choices, source="verdict", read_only=True
    )
    digest = DigestField(read_only=True)

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
    status = serializers.ChoiceField(choices=Deployment.Status.choices)
    url = serializers.URLField(max_length=500, required=False, allow_blank=True, default="")
    digest = DigestField(
        required=False, help_text="The digest actually deployed; defaults to the release's."
    )

    rollback_url = serializers.URLField(
        max_length=500,
        required=False,
        allow_blank=True,
        default="",
        help_text="The pipeline's rollback hook: called (POST, signed JSON) when post-deploy "
        "verification fails.",
    )

    def validate_rollback_url(self, value: str) -> str:
        if value and not value.lower().startswith(("http://", "https://")):
            raise serializers.ValidationError("Must be an http(s) URL.")
        return value


class DeploymentSerializer(serializers.ModelSerializer):
    digest = DigestField(read_only=True)
    gate_status = serializers.ChoiceField(
        choices=GATE_STATUSES,
        read_only=True,
        help_text="The gate's answer for that digest when reported.",
    )
    rollback_url = OptionalURLField(help_text="The pipeline's rollback hook, called on failure.")

    class Meta:
        model = Deployment
        fields = [
            "id",
            "status",
            "digest",
            "approved",
            "gate_status",
            "gate_reasons",
            "rollback_url",
            "verification",
            "verify_until",
            "verified_at",
            "verification_detail",
            "created_at",
        ]
        read_only_fields = fields


class DeploymentRecordedSerializer(GateSerializer):
    deployment = DeploymentSerializer(read_only=True)
