"""One ledger entry as one CloudEvent 1.0, the same shape whatever platform the release targeted.

The ledger stays the record; an event is a view of one entry. Its attributes carry everything
the entry's hash covers (seq, time, kind, subject, actor, payload, previous hash), so a consumer
can recompute the hash and check the signature without asking Signoff (docs/lake.md shows how).
`data` adds what a lake query needs and the entry may not name: the release's service, team,
environment and platform, looked up in the catalogue at export time.

Only the approval process is exported (see EXPORTED_FAMILIES); sign-ins, tokens, roles, policy
editing and the outbox stay in the ledger alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa

from approvals.models import Release
from governance.models import Environment, Platform, Service, Target

SPEC_VERSION = "1.0"
TYPE_PREFIX = "com.signoff."
CONTENT_TYPE = "application/json"

# Ledger kinds are "<family>.<what happened>"; every kind of these families is exported, so a
# kind added later in one of them reaches the lake without a change here.
EXPORTED_FAMILIES = (
    "admission",
    "approval",
    "change",
    "decision",
    "deployment",
    "emergency",
    "evidence",
    "freeze",
    "gate",
    "iac",
    "incident",
    "release",
    "stage",
)

# The request's own kinds read as what happened to the release.
RENAMED_KINDS = {
    "approval.requested": "release.requested",
    "approval.standard_change": "release.preapproved",
    "approval.replanned": "release.replanned",
    "approval.withdrawn": "release.withdrawn",
}
# A gate transition is named for where the request went.
TRANSITION_TYPES = {
    "approved": "release.decided",
    "rejected": "release.decided",
    "expired": "release.expired",
}
TRANSITION_OTHERWISE = "release.status_changed"

# The outcome of kinds whose payload does not say it in a key of OUTCOME_KEYS.
KIND_OUTCOMES = {
    "approval.requested": "pending",
    "approval.standard_change": "approved",
    "approval.withdrawn": "withdrawn",
    "decision.revoked": "revoked",
    "deployment.health_reported": "healthy",
    "deployment.verified": "passed",
    "deployment.unverified": "unverified",
    "deployment.verification_failed": "failed",
    "admission.admitted": "admitted",
    "admission.denied": "denied",
}
OUTCOME_KEYS = ("verdict", "to", "outcome", "status")
REASON_KEYS = ("rationale", "reason", "justification", "notes")

PLATFORM_KINDS = {
    Platform.ON_PREMISES: "on_premises",
    Platform.AWS: "cloud",
    Platform.AZURE: "cloud",
    Platform.GCP: "cloud",
    Platform.SAAS: "saas",
    Platform.KUBERNETES: "kubernetes",
}

# The Parquet file's columns: the envelope, the flattened data, and `data` whole as JSON text.
DATA_COLUMNS = (
    ("kind", pa.string()),
    ("release_id", pa.int64()),
    ("change", pa.string()),
    ("service", pa.string()),
    ("team", pa.string()),
    ("environment", pa.string()),
    ("platform", pa.string()),
    ("platform_kind", pa.string()),
    ("cluster", pa.string()),
    ("version", pa.string()),
    ("digest", pa.string()),
    ("actor", pa.string()),
    ("outcome", pa.string()),
    ("reason", pa.string()),
)
ENVELOPE_COLUMNS = (
    ("specversion", pa.string()),
    ("id", pa.string()),
    ("source", pa.string()),
    ("type", pa.string()),
    ("subject", pa.string()),
    ("time", pa.timestamp("us", tz="UTC")),
    ("datacontenttype", pa.string()),
    ("signoffseq", pa.int64()),
    ("signoffhash", pa.string()),
    ("signoffprevhash", pa.string()),
    ("signoffkeyid", pa.string()),
    ("signoffsignature", pa.string()),
)
# What an event may leave empty: the data fields that do not apply to every kind.
NULLABLE_COLUMNS = frozenset(
    {"release_id", "change", "service", "team", "environment", "platform", "platform_kind"}
    | {"cluster", "version", "digest", "outcome", "reason"}
)
PARQUET_SCHEMA = pa.schema(
    [
        pa.field(name, kind, nullable=name in NULLABLE_COLUMNS)
        for name, kind in (*ENVELOPE_COLUMNS, *DATA_COLUMNS, ("data", pa.string()))
    ]
)


def event_type(kind: str, payload: dict) -> str:
    """The CloudEvents `type` of a ledger entry of `kind`."""
    if kind == "gate.transition":
        return TYPE_PREFIX + TRANSITION_TYPES.get(payload.get("to"), TRANSITION_OTHERWISE)
    return TYPE_PREFIX + RENAMED_KINDS.get(kind, kind)


@dataclass(frozen=True)
class ReleaseFacts:
    """What every event about a release says of it, from the catalogue."""

    service: str
    team: str
    environment: str
    platform: str
    version: str
    digest: str
    change: str


@dataclass
class Catalogue:
    """The catalogue facts events refer to, read once a chunk of entries (releases, services)
    or once an export (environments and clusters: a handful of rows)."""

    environments: dict[str, str] = field(default_factory=dict)
    clusters: dict[str, tuple[str, str]] = field(default_factory=dict)
    teams: dict[str, str | None] = field(default_factory=dict)
    releases: dict[int, ReleaseFacts] = field(default_factory=dict)

    @classmethod
    def load(cls) -> Catalogue:
        return cls(
            environments=dict(Environment.objects.values_list("slug", "platform")),
            clusters={
                slug: (environment, platform)
                for slug, environment, platform in Target.objects.values_list(
                    "slug", "environment__slug", "platform"
                )
            },
        )

    def prepare(self, entries: list[dict]) -> None:
        """Read the releases and services `entries` name (two queries), forgetting the last
        chunk's releases so memory stays bounded."""
        ids = {release_id(entry) for entry in entries} - {None}
        self.releases = {
            pk: ReleaseFacts(*facts)
            for pk, *facts in Release.objects.filter(pk__in=ids).values_list(
                "pk",
                "service__slug",
                "service__team__slug",
                "environment__slug",
                "environment__platform",
                "version",
                "digest",
                "change__ref",
            )
        }
        slugs = {entry["payload"].get("service") for entry in entries} - set(self.teams)
        slugs = {slug for slug in slugs if isinstance(slug, str)}
        if slugs:
            # A slug the catalogue no longer knows is remembered too, and not asked for again.
            self.teams.update(dict.fromkeys(slugs))
            self.teams.update(
                Service.objects.filter(slug__in=slugs).values_list("slug", "team__slug")
            )


def release_id(entry: dict) -> int | None:
    """The release an entry is about: its subject `release:<id>`, or a `release` in its payload."""
    kind, _, key = entry["subject"].partition(":")
    if kind == "release" and key.isdigit():
        return int(key)
    named = entry["payload"].get("release")
    return named if isinstance(named, int) and not isinstance(named, bool) else None


def cluster_slug(entry: dict) -> str | None:
    kind, _, key = entry["subject"].partition(":")
    return key if kind == "cluster" else _text(entry["payload"], "cluster")


def _text(payload: dict, *keys: str) -> str | None:
    """The first of `keys` whose value in `payload` is a non-empty string."""
    for key in keys:
        value = payload.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def event_data(entry: dict, catalogue: Catalogue) -> dict:
    """The normalised body: the same fields for every event, null where they do not apply."""
    payload, kind = entry["payload"], entry["kind"]
    release = release_id(entry)
    facts = catalogue.releases.get(release)
    cluster = cluster_slug(entry)
    service = facts.service if facts else _text(payload, "service")
    environment = (
        facts.environment
        if facts
        else _text(payload, "environment") or catalogue.clusters.get(cluster, (None,))[0]
    )
    # Where it landed: a cluster is more precise than its environment's main platform.
    platform = (
        catalogue.clusters[cluster][1]
        if cluster in catalogue.clusters
        else (facts.platform if facts else catalogue.environments.get(environment))
    ) or _text(payload, "platform")
    return {
        "kind": kind,
        "release_id": release,
        "change": facts.change if facts else _text(payload, "change", "ref"),
        "service": service,
        "team": facts.team if facts else catalogue.teams.get(service),
        "environment": environment,
        "platform": platform,
        "platform_kind": PLATFORM_KINDS.get(platform),
        "cluster": cluster,
        "version": facts.version if facts else _text(payload, "version"),
        # What was decided or deployed, which may differ from the release's own digest.
        "digest": _text(payload, "digest") or (facts.digest if facts else None),
        "actor": entry["actor"],
        "outcome": KIND_OUTCOMES.get(kind) or _text(payload, *OUTCOME_KEYS),
        "reason": _text(payload, *REASON_KEYS),
        "payload": payload,
    }


@dataclass(frozen=True)
class Event:
    """One exported event: its JSON line, its Parquet row and the UTC date it is filed under."""

    seq: int
    time: datetime
    line: str
    row: dict


def to_event(entry: dict, catalogue: Catalogue, source: str) -> Event:
    """The CloudEvent of one stored ledger entry (a dict of ENTRY_FIELDS)."""
    recorded_at: datetime = entry["recorded_at"]
    data = event_data(entry, catalogue)
    envelope = {
        "specversion": SPEC_VERSION,
        "id": f"signoff:{entry['seq']}",
        "source": source,
        "type": event_type(entry["kind"], entry["payload"]),
        "subject": entry["subject"],
        # Exactly the text the entry's hash covers: RFC 3339, UTC, microseconds.
        "time": recorded_at.isoformat(timespec="microseconds"),
        "datacontenttype": CONTENT_TYPE,
        "signoffseq": entry["seq"],
        "signoffhash": entry["entry_hash"],
        "signoffprevhash": entry["prev_hash"],
        "signoffkeyid": entry["key_id"],
        "signoffsignature": entry["signature"],
    }
    data_json = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    # The payload is the costly part to encode: encode it once for the line and the row.
    line = json.dumps(envelope, ensure_ascii=False, separators=(",", ":"))[:-1]
    line += ',"data":' + data_json + "}\n"
    row = {**envelope, "time": recorded_at, **data, "data": data_json}
    del row["payload"]
    return Event(seq=entry["seq"], time=recorded_at, line=line, row=row)
