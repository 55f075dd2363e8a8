"""ServiceNow actions: configure the integration, apply the records it pushes or we pull.

A record is applied once per `sys_updated_on`: the same version again changes nothing and an
older one is ignored ("stale"), so pushes and pulls may overlap and arrive in any order.
Each record is one transaction holding its ledger entries; a record refused leaves nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from django.db import IntegrityError, transaction
from django.utils import timezone

from changes.incidents.models import ExternalServiceMapping, Incident
from changes.incidents.services import IncidentReport, record_incident
from changes.records.models import ChangeRecord
from changes.records.services import set_change_state
from changes.servicenow import client, payloads
from changes.servicenow.exceptions import InvalidConfiguration, InvalidRecord, RecordConflict
from changes.servicenow.models import ServiceNowConfig, ServiceNowRecord
from governance.ledger import services as ledger
from governance.models import Service, User
from governance.people.selectors import person_named

ACTOR = "servicenow"
CREATED, UPDATED, UNCHANGED, STALE = "created", "updated", "unchanged", "stale"
OUTCOMES = (CREATED, UPDATED, UNCHANGED, STALE)
PULL_OVERLAP = timedelta(minutes=5)


@dataclass(frozen=True)
class Applied:
    """What applying one record did, for the push's answer and the pull's counts."""

    table: str
    sys_id: str
    number: str
    outcome: str
    sys_updated_on: datetime

    def as_dict(self) -> dict:
        return {
            "table": self.table,
            "sys_id": self.sys_id,
            "number": self.number,
            "status": self.outcome,
        }


# --- Configuration --------------------------------------------------------------------------


def current_config() -> ServiceNowConfig | None:
    return ServiceNowConfig.objects.filter(pk=1).first()


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str) -> bool:
    """Whether `token` is the one issued; compared in constant time, on digests."""
    config = current_config()
    if not token or config is None or not config.token_digest:
        return False
    return hmac.compare_digest(token_digest(token), config.token_digest)


def issue_token(*, actor: str, reason: str = "") -> str:
    """A new random token for ServiceNow to present; the previous one stops working at once.
    Only its digest is kept: the caller shows it to the administrator this one time."""
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        config = _locked_config()
        config.token_digest, config.token_hint = token_digest(token), token[-4:]
        config.updated_at = timezone.now()
        config.save()
        _ledger_config(config, actor, reason, token_issued=True)
    return token


def configure_pull(
    *, instance_url: str, username: str, password_file: str, actor: str, reason: str = ""
) -> ServiceNowConfig:
    """Set the instance the pull reads and who it signs in as (the password stays in its file)."""
    instance_url = normalise_instance(instance_url)
    username = username.strip()
    if not username or len(username) > 100 or not username.isprintable():
        raise InvalidConfiguration("The user is 1 to 100 printable characters.")
    path = Path(password_file).expanduser()
    if not path.is_file():
        raise InvalidConfiguration(f"No password file {password_file}.")
    with transaction.atomic():
        config = _locked_config()
        config.instance_url, config.username = instance_url, username
        config.password_file, config.updated_at = str(path.resolve()), timezone.now()
        config.save()
        _ledger_config(config, actor, reason)
    return config


def normalise_instance(url: str) -> str:
    """`https://acme.service-now.com` (scheme and host, no path); http only for a local host."""
    parts = urlsplit(url.strip())
    local = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and local):
        raise InvalidConfiguration(
            "The instance is an https:// URL, e.g. https://acme.service-now.com."
        )
    if not parts.hostname or parts.path.strip("/") or parts.query or parts.username:
        raise InvalidConfiguration("The instance is a scheme and host only, without a path.")
    return f"{parts.scheme}://{parts.netloc}"


def _locked_config() -> ServiceNowConfig:
    # One row, always pk 1: two first configurations racing end on the same row (the loser's
    # insert fails on the primary key and get_or_create re-reads the winner's), never two.
    config, _ = ServiceNowConfig.objects.select_for_update().get_or_create(pk=1)
    return config


def _ledger_config(config: ServiceNowConfig, actor: str, reason: str, **extra) -> None:
    ledger.append(
        kind="integration.configured",
        subject="integration:servicenow",
        actor=actor,
        payload={
            "source": "servicenow",
            "token": f"…{config.token_hint}" if config.token_hint else None,
            "instance": config.instance_url,
            "user": config.username,
            **extra,
            **({"reason": reason} if reason else {}),
        },
    )


# --- Applying records -----------------------------------------------------------------------


def apply_records(pairs: list[tuple[str, dict]], *, actor: str = ACTOR) -> list[Applied]:
    """Apply several records all or nothing (a push): one refused, none written."""
    with transaction.atomic():
        return [apply_record(table, record, actor=actor) for table, record in pairs]


def apply_record(table: str, record: dict, *, actor: str = ACTOR) -> Applied:
    """Apply one change_request or incident record as the Table API shapes it."""
    if table == payloads.CHANGE_REQUEST:
        change = payloads.read_change_request(record)
        try:
            outcome = _apply_change(change, actor)
        except IntegrityError:
            # A release request (or another delivery) created the same number meanwhile; its
            # savepoint is rolled back, and applying again updates or adopts that change.
            outcome = _apply_change(change, actor)
        return Applied(table, change.sys_id, change.number, outcome, change.sys_updated_on)
    incident = payloads.read_incident(record)
    outcome = _apply_incident(incident, actor)
    return Applied(table, incident.sys_id, incident.number, outcome, incident.sys_updated_on)


def _claim(table: str, sys_id: str, number: str, updated_on: datetime) -> tuple[str | None, str]:
    """Lock the record's row and say whether this version is new: (STALE/UNCHANGED or None,
    the number first seen for it). Must run inside the applying transaction."""
    tracked, created = ServiceNowRecord.objects.select_for_update().get_or_create(
        table=table, sys_id=sys_id, defaults={"number": number, "sys_updated_on": updated_on}
    )
    if not created:
        if updated_on < tracked.sys_updated_on:
            return STALE, tracked.number
        if updated_on == tracked.sys_updated_on:
            return UNCHANGED, tracked.number
        tracked.sys_updated_on, tracked.applied_at = updated_on, timezone.now()
        tracked.save(update_fields=["sys_updated_on", "applied_at"])
    return None, tracked.number or number


def mapped_services(service_ids: tuple[str, ...]) -> list[Service]:
    """The catalogue services ServiceNow's `cmdb_ci` / `business_service` sys_ids are mapped to."""
    if not service_ids:
        return []
    mappings = ExternalServiceMapping.objects.filter(
        source="servicenow", external_id__in=service_ids
    ).select_related("service")
    return sorted({m.service for m in mappings}, key=lambda s: s.slug)


def instance_link(table: str, sys_id: str) -> str:
    config = current_config()
    if config is None or not config.instance_url:
        return ""
    return f"{config.instance_url}/{table}.do?sys_id={sys_id}"


# --- Pulling over the Table API ---------------------------------------------------------------


@dataclass
class PullReport:
    """What a pull of one table did: counts by outcome and the records refused, with why."""

    table: str
    counts: Counter = field(default_factory=Counter)
    refused: list[str] = field(default_factory=list)


def pull_table(*, table: str, since: datetime | None = None, page_size: int = 100) -> PullReport:
    """Apply every record of `table` updated since `since`; by default since the last complete
    pull of it, less PULL_OVERLAP (a record saved while that pull ran may carry an earlier
    sys_updated_on than the last one it read; re-reading a few is cheap, they are unchanged).

    Each record is its own transaction, so a refused one is reported and the rest still land;
    a failing HTTP call raises PullFailed, keeping what earlier pages applied but not moving the
    mark, so the next pull reads them again. Pushes never move the mark: a push that arrived
    after an outage does not hide the records the outage lost.
    """
    config = current_config()
    if config is None or not config.instance_url:
        raise InvalidConfiguration(
            "No ServiceNow instance: manage.py configure_integration servicenow --instance URL "
            "--user NAME --password-file FILE."
        )
    if since is None and table in config.pulled_through:
        since = datetime.fromisoformat(config.pulled_through[table]) - PULL_OVERLAP
    report, newest = PullReport(table), None
    for page in client.table_pages(config, table, since, page_size):
        for record in page:
            try:
                applied = apply_record(table, record)
            except (InvalidRecord, RecordConflict) as exc:
                report.counts["refused"] += 1
                report.refused.append(f"{_label(record)}: {exc.message}")
                continue
            report.counts[applied.outcome] += 1
            newest = max(newest or applied.sys_updated_on, applied.sys_updated_on)
    if newest is not None:
        _mark_pulled(table, newest)
    return report


def _mark_pulled(table: str, newest: datetime) -> None:
    with transaction.atomic():
        config = _locked_config()
        current = config.pulled_through.get(table)
        if current is None or datetime.fromisoformat(current) < newest:
            config.pulled_through = {**config.pulled_through, table: newest.isoformat()}
            config.save(update_fields=["pulled_through"])


def _label(record: dict) -> str:
    try:
        return payloads.value(record.get("number")) or payloads.value(record.get("sys_id"))
    except InvalidRecord:
        return "a record"


# --- Incidents --------------------------------------------------------------------------------


def _apply_incident(record: payloads.IncidentRecord, actor: str) -> str:
    with transaction.atomic():
        skipped, number = _claim(
            payloads.INCIDENT, record.sys_id, record.number, record.sys_updated_on
        )
        if skipped:
            return skipped
        before = (
            Incident.objects.filter(source=Incident.Source.SERVICENOW, external_id=number)
            .values_list("updated_at", flat=True)
            .first()
        )
        incident, created = record_incident(report=_incident_report(record, number), actor=actor)
    if created:
        return CREATED
    return UNCHANGED if incident.updated_at == before else UPDATED


def _incident_report(record: payloads.IncidentRecord, number: str) -> IncidentReport:
    """ServiceNow's priority 1 (Critical) and 2 (High) hold releases: the gate blocks on
    severity 1 or high urgency, so P1 and P2 are stored with high urgency, P3 to P5 low."""
    urgency = ""
    if record.priority:
        urgency = Incident.Urgency.HIGH if record.priority in ("1", "2") else Incident.Urgency.LOW
    link = instance_link(payloads.INCIDENT, record.sys_id)
    return IncidentReport(
        source=Incident.Source.SERVICENOW,
        external_id=number,
        title=record.title,
        status=record.status,
        external_url=link if link.startswith("https://") else "",
        priority=f"P{record.priority}" if record.priority else "",
        urgency=urgency,
        services=tuple(mapped_services(record.service_ids)),
        opened_at=record.opened_at,
    )


# --- Change requests --------------------------------------------------------------------------


def _apply_change(record: payloads.ChangeRequestRecord, actor: str) -> str:
    services = mapped_services(record.service_ids)
    with transaction.atomic():
        skipped, _ = _claim(
            payloads.CHANGE_REQUEST, record.sys_id, record.number, record.sys_updated_on
        )
        if skipped:
            return skipped
        change, adopted = _target_change(record)
        created = change is None
        if created:
            change = ChangeRecord(
                ref=record.number,
                source=ChangeRecord.Source.SERVICENOW,
                external_id=record.sys_id,
            )
        before = {} if created else _described(change)
        _fill(change, record, adopted=adopted)
        after = {**_described(change), "services": _slugs(change, services)}
        changed = _changed(before, after)
        change.external_updated_at = record.sys_updated_on
        if changed:
            change.updated_at = timezone.now()
            change.save()
            change.services.add(*services)
            _ledger_synced(change, record, changed, created=created, adopted=adopted, actor=actor)
        else:  # a newer version saying nothing new: remember it, nothing to record
            ChangeRecord.objects.filter(pk=change.pk).update(
                external_updated_at=record.sys_updated_on
            )
        if change.state != record.state:
            when = f"{record.sys_updated_on:%Y-%m-%d %H:%M:%S}"
            reason = f"ServiceNow {record.number} is {record.state_label} ({when} UTC)."
            set_change_state(change=change, state=record.state, actor=actor, reason=reason)
            changed["state"] = True
    if created:
        return CREATED
    return UPDATED if changed else UNCHANGED


def _target_change(record: payloads.ChangeRequestRecord) -> tuple[ChangeRecord | None, bool]:
    """The change this record is (by sys_id), or the Signoff change with its number to adopt.

    Adopting is safe for segregation of duties because the author is kept: the person whose
    release opened the change stays its author, so they still may not approve it.
    """
    mirrored = (
        ChangeRecord.objects.select_for_update()
        .filter(source=ChangeRecord.Source.SERVICENOW, external_id=record.sys_id)
        .first()
    )
    if mirrored is not None:
        if (
            mirrored.ref != record.number
            and ChangeRecord.objects.filter(ref=record.number).exists()
        ):
            raise _number_taken(record)
        return mirrored, False
    same_ref = ChangeRecord.objects.select_for_update().filter(ref=record.number).first()
    if same_ref is None:
        return None, False
    if same_ref.source != ChangeRecord.Source.SIGNOFF:
        raise _number_taken(record)
    return same_ref, True


def _number_taken(record: payloads.ChangeRequestRecord) -> RecordConflict:
    return RecordConflict(
        f"Change {record.number} in Signoff mirrors another ServiceNow record than "
        f"{record.sys_id}; nothing was changed.",
        fields={"number": ["Belongs to another ServiceNow record."]},
    )


def _fill(change: ChangeRecord, record: payloads.ChangeRequestRecord, *, adopted: bool) -> None:
    """Copy what ServiceNow owns onto the change; the state moves through set_change_state."""
    change.ref = record.number
    change.source, change.external_id = ChangeRecord.Source.SERVICENOW, record.sys_id
    change.external_url = instance_link(payloads.CHANGE_REQUEST, record.sys_id)
    for name in (
        "title",
        "description",
        "type",
        "risk",
        "impact",
        "planned_start",
        "planned_end",
        "implementation_plan",
        "test_plan",
        "backout_plan",
        "close_code",
        "close_notes",
    ):
        setattr(change, name, getattr(record, name))
    change.time_zone = "UTC"  # the Table API writes dates in UTC
    if record.assigned_to is not None:  # None: the plain shape names nobody, only a sys_id
        change.implementer = _active_person(record.assigned_to)
    if change.author_id is None and not adopted:
        # Filling an empty author only adds someone who may not approve; an author is never
        # replaced, so an update from ServiceNow cannot free anyone to approve their own work.
        change.author = _active_person(record.requested_by)


def _active_person(name: str | None) -> User | None:
    person = person_named(name) if name else None
    if person is None or person.is_service_account or not person.is_active:
        return None
    return person


def _described(change: ChangeRecord) -> dict:
    return {
        "ref": change.ref,
        "source": change.source,
        "title": change.title,
        "description": change.description,
        "type": change.type,
        "risk": change.risk,
        "impact": change.impact,
        "planned_start": change.planned_start.isoformat() if change.planned_start else None,
        "planned_end": change.planned_end.isoformat() if change.planned_end else None,
        "time_zone": change.time_zone,
        "implementer": change.implementer.username if change.implementer else None,
        "author": change.author.username if change.author else None,
        "services": _slugs(change),
        "implementation_plan": change.implementation_plan,
        "test_plan": change.test_plan,
        "backout_plan": change.backout_plan,
        "close_code": change.close_code,
        "close_notes": change.close_notes,
        "external_url": change.external_url,
    }


def _slugs(change: ChangeRecord, added: list[Service] | None = None) -> list[str]:
    """The change's services' slugs, with those ServiceNow names now (they are only added)."""
    current = set(change.services.values_list("slug", flat=True)) if change.pk else set()
    return sorted(current | {s.slug for s in added or ()})


def _changed(before: dict, after: dict) -> dict:
    return {
        name: {"from": before.get(name), "to": value}
        for name, value in after.items()
        if before.get(name) != value
    }


def _ledger_synced(change, record, changed, *, created: bool, adopted: bool, actor: str) -> None:
    ledger.append(
        kind="change.synced",
        subject=f"change:{change.pk}",
        actor=actor,
        payload={
            "ref": change.ref,
            "sys_id": record.sys_id,
            "sys_updated_on": record.sys_updated_on.isoformat(),
            "created": created,
            "adopted": adopted,
            "author": change.author.username if change.author else None,
            "changed": changed,
        },
    )
