"""Invariant 21, checked after every step: about policies imported from a folder of files, and what
auditors take away.

21. A policy version that came from an import (`manage.py policy_import`) was published either at
    once by an administrator who approves nothing, the change loosening nothing on a regulated
    environment, or through a proposal that another administrator approved (and, when it
    loosens, confirmed as loosening) while the version it was proposed against was still the
    one in force; an import that loosens is always a proposal, whoever
    makes it, and lists what it loosens; a non-loosening import by an administrator who
    approves nothing is published at once (README, "Keeping policies in git"). Every
    publication and proposal is in the ledger; a refused import changes nothing (judged by the
    step, which holds the fingerprint).
    A report, evidence pack, audit trail or ledger export changes no approval state: at most
    the background export's own row is written (no ledger entry: the product ledgers none, it
    keeps the `ReportExport` row of who asked). Only auditors get one (the ledger and the audit
    trail only auditors of the whole organisation; a scoped auditor only packs of releases they
    may see); nobody sees another person's background export; an auditor of the whole
    organisation is never refused. What comes back is what the database holds: the compliance
    CSV lists exactly the releases in its scope, a row's requester and decisions are the
    stored ones, a pack holds its release's decisions and ledger entries, the ledger export
    announces every entry.

"Loosening" is the model's own judgement of what it imported (`Import.loosening`, from the
variant), never the product's simulation. The steps record what only they can see in an
`EvidenceRecord` kept with the model's `Record` (`evidence_of`); each import and each export
is judged once, in the step that made it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from approvals.models import Decision, Release
from governance.models import LedgerEntry, PolicyProposal, PolicyVersion, Role
from reporting.models import ReportExport
from tests.invariants.checks import Record, Requests, require
from tests.invariants.drawing import tally
from tests.invariants.oracle import World

# What a report may write: the row of a background export, nothing else.
EXPORT_TABLE = ReportExport._meta.db_table
# Reports of the whole organisation (README, "Reports for auditors").
ORGANISATION_WIDE = ("audit_trail", "ledger")


@dataclass
class Import:
    """A policy folder the model imported, as the step saw it."""

    variant: str
    importer: int
    loosening: bool  # the model's own judgement (see `evidence_steps.policy_files`)
    needs_second: bool  # the importer approves releases (the oracle's reading, before the step)
    versions: list[int]  # published at once by the import
    proposals: list[int]  # proposed by the import
    based_on: int = 0  # the policy's version in force when it was imported
    loose: bool = False  # means exactly the loosened policy (`loose_sources`)
    decider: int | None = None  # who approved the proposal, when someone did
    approved_version: int | None = None


@dataclass
class Export:
    """A report someone asked for, and what came back."""

    asker: int
    what: str
    at: datetime
    answered: int  # the HTTP status
    served: bool  # the report (or the background export's file) came back
    changed: list[str]  # tables the request and its background task changed
    exports: list[int] = field(default_factory=list)  # ReportExport rows the request created
    release: int | None = None  # an evidence pack's release
    window: tuple[date, date] | None = None  # a compliance report's period
    rows: list[dict[str, str]] | None = None  # a compliance CSV's rows
    pack: dict | None = None
    ledger_header: dict | None = None
    ledger_lines: int = 0
    owner: int | None = None  # whose background export was asked for


@dataclass
class EvidenceRecord:
    imports: list[Import] = field(default_factory=list)
    exports: list[Export] = field(default_factory=list)
    approved: list[Import] = field(default_factory=list)  # proposals approved, to judge
    judged_imports: int = 0
    judged_exports: int = 0
    # Published sources the model knows to mean exactly the loosened policy: importing the
    # loosened policy over one of them loosens nothing.
    loose_sources: set[str] = field(default_factory=set)


def evidence_of(record: Record) -> EvidenceRecord:
    """The evidence steps' part of the model's record (one per example), made by the first
    call (`EvidenceSteps.setup_evidence`)."""
    if getattr(record, "evidence", None) is None:
        record.evidence = EvidenceRecord()
    return record.evidence


def check_evidence(
    world: World, record: Record, requests: Requests, answers: dict[int, str], *, wrote: bool
) -> None:
    """Invariant 21 after every step (`wrote`: whether the step wrote anything)."""
    seen = evidence_of(record)
    fresh = seen.imports[seen.judged_imports :]
    for imported in fresh:
        check_import(world, imported)
    seen.judged_imports = len(seen.imports)
    # A proposal approved in a later step than its import's is judged again then.
    for imported in seen.approved:
        if all(imported is not other for other in fresh):
            check_proposal(world, imported, describe(world, imported))
    seen.approved.clear()
    for export in seen.exports[seen.judged_exports :]:
        check_export(world, export)
    seen.judged_exports = len(seen.exports)


# --- Imports ------------------------------------------------------------------------------------


def describe(world: World, imported: Import) -> str:
    return f"{world.users[imported.importer].username}'s import of the {imported.variant} folder"


def check_import(world: World, imported: Import) -> None:
    """An import, judged in the step that made it."""
    what = describe(world, imported)
    require(
        len(imported.versions) + len(imported.proposals) == 1,
        21,
        f"{what} made versions {imported.versions} and proposals {imported.proposals}",
    )
    require(
        world.is_administrator(imported.importer, world.now),
        21,
        f"{what} was accepted from someone who is no administrator",
    )
    if imported.versions:
        check_published_at_once(world, imported, what)
    else:
        check_proposal(world, imported, what)


def check_published_at_once(world: World, imported: Import, what: str) -> None:
    require(
        not imported.loosening,
        21,
        f"{what} loosens control on production, yet was published at once",
    )
    require(
        not imported.needs_second,
        4,
        f"{what} was published at once, though {world.users[imported.importer].username} "
        "approves releases",
    )
    version = PolicyVersion.objects.select_related("policy").get(pk=imported.versions[0])
    require(
        version.created_by_id == imported.importer,
        21,
        f"{what}: v{version.number} names {version.created_by_id} as its publisher",
    )
    check_published_ledgered(version, world.users[imported.importer].username, what)
    tally["import published at once"] += 1


def check_proposal(world: World, imported: Import, what: str) -> None:
    proposal = PolicyProposal.objects.get(pk=imported.proposals[0])
    require(
        imported.loosening or imported.needs_second,
        21,
        f"{what} loosens nothing and {world.users[imported.importer].username} approves "
        "nothing, yet it waits for a second administrator",
    )
    require(
        proposal.proposed_by_id == imported.importer,
        21,
        f"{what}: proposal #{proposal.pk} names someone else as its author",
    )
    require(
        not imported.loosening or bool(proposal.loosening),
        21,
        f"{what} loosens control on production; proposal #{proposal.pk} lists no loosening",
    )
    require(
        LedgerEntry.objects.filter(kind="policy.proposed", payload__proposal=proposal.pk).exists(),
        11,
        f"{what}: proposal #{proposal.pk} has no policy.proposed ledger entry",
    )
    if proposal.outcome == PolicyProposal.Outcome.PENDING:
        require(
            imported.approved_version is None,
            21,
            f"{what}: proposal #{proposal.pk} still waits, yet a version was published",
        )
        tally["import proposed, waiting"] += 1
        return
    check_approved(world, imported, proposal, what)


def check_approved(world: World, imported: Import, proposal: PolicyProposal, what: str) -> None:
    decider = proposal.decided_by_id
    require(
        proposal.outcome == PolicyProposal.Outcome.APPROVED
        and imported.approved_version is not None
        and decider == imported.decider,
        21,
        f"{what}: proposal #{proposal.pk} is {proposal.outcome} by {decider}, the model saw "
        f"{imported.decider} publish {imported.approved_version}",
    )
    require(
        decider != proposal.proposed_by_id,
        21,
        f"{what}: proposal #{proposal.pk} was approved by the administrator who proposed it",
    )
    require(
        world.is_administrator(decider, proposal.decided_at),
        21,
        f"{what}: proposal #{proposal.pk} was approved by {world.users[decider].username}, "
        "who is no administrator",
    )
    version = PolicyVersion.objects.select_related("policy").get(pk=imported.approved_version)
    require(
        version.number == imported.based_on + 1,
        21,
        f"{what}: proposal #{proposal.pk}, made against v{imported.based_on}, was published as "
        f"v{version.number}: approved after the policy changed, it undid the versions between "
        "and its loosening was judged against rules no longer in force",
    )
    require(
        version.created_by_id == decider and version.source == proposal.source,
        21,
        f"{what}: v{version.number} is not proposal #{proposal.pk} published by its approver",
    )
    check_published_ledgered(version, world.users[decider].username, what)
    if imported.loosening:
        require(
            proposal.loosening_confirmed
            and LedgerEntry.objects.filter(
                kind="policy.loosening_confirmed", payload__proposal=proposal.pk
            ).exists(),
            21,
            f"{what} loosens control on production; proposal #{proposal.pk} was published "
            "without its loosening confirmed (and ledgered)",
        )
        tally["loosening import published by a second administrator"] += 1
    tally["import published by a second administrator"] += 1


def check_published_ledgered(version: PolicyVersion, publisher: str, what: str) -> None:
    require(
        LedgerEntry.objects.filter(
            kind="policy.published",
            subject=f"policy:{version.policy_id}",
            actor=publisher,
            payload__version=version.number,
            payload__checksum=version.checksum,
        ).exists(),
        11,
        f"{what}: v{version.number} has no policy.published ledger entry by {publisher}",
    )


# --- Exports ------------------------------------------------------------------------------------


def auditor_grants(world: World, person: int, at: datetime) -> list:
    user = world.users[person]
    return world.grants_of(person, Role.AUDITOR, at) if user.is_active else []


def may_see(world: World, person: int, service_id: int) -> bool:
    """Whether `person` may see the service's releases: a grant of any role on it (on one
    service, its team's services or everything; environment limits are not view limits), or
    owning it. Expired grants count too: the view permission goes with the grant's row."""
    team = world.services[service_id].team_id
    return person in world.owners[service_id] or any(
        g.user_id == person
        and (g.service_id == service_id or (g.service_id is None and g.team_id in (None, team)))
        for g in world.grants
    )


def check_export(world: World, export: Export) -> None:
    who = world.users[export.asker].username
    where = f"{who}'s {export.what} ({export.answered})"
    allowed = {EXPORT_TABLE} if export.exports else set()
    require(
        set(export.changed) <= allowed,
        21,
        f"{where} changed {sorted(set(export.changed) - allowed)}: a report changes nothing",
    )
    grants = auditor_grants(world, export.asker, export.at)
    everywhere = any(g.service_id is None and g.team_id is None for g in grants)
    if export.what == "another_persons_export":
        require(not export.served, 21, f"{where}: shown an export someone else asked for")
        return
    if export.served:
        require(bool(grants), 21, f"{where}: served to someone who holds no auditor role")
        if export.what in ORGANISATION_WIDE:
            require(everywhere, 21, f"{where}: served to an auditor of part of the organisation")
        check_content(world, export, everywhere)
        tally[f"export done: {export.what}"] += 1
    elif everywhere and export.answered != 429:
        require(False, 21, f"{where}: an auditor of the whole organisation was refused")
    for pk in export.exports:
        row = ReportExport.objects.get(pk=pk)
        require(
            row.requested_by_id == export.asker and row.status == ReportExport.Status.DONE,
            21,
            f"{where}: background export #{pk} is {row.status}, asked for by "
            f"{world.users[row.requested_by_id].username}",
        )


def check_content(world: World, export: Export, everywhere: bool) -> None:
    if export.rows is not None:
        check_compliance_rows(world, export, everywhere)
    if export.pack is not None:
        check_pack(world, export, everywhere)
    if export.ledger_header is not None:
        entries = LedgerEntry.objects.count()
        require(
            export.ledger_header.get("entries") == entries == export.ledger_lines - 1,
            21,
            f"the ledger export announces {export.ledger_header.get('entries')} entries in "
            f"{export.ledger_lines - 1} lines; the ledger holds {entries}",
        )


def in_window(window: tuple[date, date]):
    """Releases requested in the report's period of whole UTC days (both included) to a
    regulated environment, of a service tagged SOX (the framework the model asks for)."""
    start = datetime.combine(window[0], time.min, UTC)
    end = datetime.combine(window[1] + timedelta(days=1), time.min, UTC)
    releases = Release.objects.filter(
        environment__regulated=True, created_at__gte=start, created_at__lt=end
    ).select_related("service", "requested_by")
    return [r for r in releases if "SOX" in {str(t).upper() for t in r.service.compliance_tags}]


def check_compliance_rows(world: World, export: Export, everywhere: bool) -> None:
    who = world.users[export.asker].username
    expected = [
        r
        for r in in_window(export.window)
        if everywhere or may_see(world, export.asker, r.service_id)
    ]
    listed = Counter((row["digest"], row["version"]) for row in export.rows)
    stored = Counter((r.digest, r.version) for r in expected)
    require(
        listed == stored,
        21,
        f"{who}'s compliance CSV lists {sorted(listed.elements())}; the releases in its scope "
        f"are {sorted(stored.elements())}",
    )
    if export.rows:
        spot_check(export.rows[0], expected, who)


def spot_check(row: dict[str, str], expected: list[Release], who: str) -> None:
    """One row's requester and decisions against the database."""
    release = next(r for r in expected if (r.digest, r.version) == (row["digest"], row["version"]))
    decisions = list(
        Decision.all_objects.filter(stage__request__release=release)
        .select_related("stage", "approver", "on_behalf_of")
        .order_by("created_at", "pk")
    )
    listed = [part for part in row["decisions"].split(" | ") if part]
    where = f"{who}'s compliance CSV, release #{release.pk}"
    require(
        row["requester"] == release.requested_by.username,
        21,
        f"{where}: requester {row['requester']}, stored {release.requested_by.username}",
    )
    require(
        len(listed) == len(decisions),
        21,
        f"{where}: {len(listed)} decisions listed, {len(decisions)} stored",
    )
    for part, decision in zip(listed, decisions, strict=True):
        person = decision.approver.username
        if decision.on_behalf_of is not None:
            person += f" on behalf of {decision.on_behalf_of.username}"
        said = f"{decision.stage.name} ({decision.stage.approvers}): {person} "
        require(
            said + decision.verdict_past in part,
            21,
            f"{where}: {part!r} does not say {said + decision.verdict_past!r}",
        )
    tally["compliance CSV row checked against the database"] += 1


def check_pack(world: World, export: Export, everywhere: bool) -> None:
    pack, who = export.pack, world.users[export.asker].username
    release = Release.objects.get(pk=export.release)
    where = f"{who}'s evidence pack of release #{release.pk}"
    require(
        everywhere or may_see(world, export.asker, release.service_id),
        21,
        f"{where}: {world.services[release.service_id].slug} is outside their scope",
    )
    require(
        pack["generated_by"] == who
        and (pack["release"]["id"], pack["release"]["digest"]) == (release.pk, release.digest),
        21,
        f"{where}: the pack is of {pack['release']['id']} for {pack['generated_by']}",
    )
    listed = sorted(
        (d["approver"], d["verdict"], d["revoked_at"] is not None)
        for stage in pack["stages"]
        for d in stage["decisions"]
    )
    stored = sorted(
        (d.approver.username, d.verdict, d.revoked_at is not None)
        for d in Decision.all_objects.filter(stage__request__release=release).select_related(
            "approver"
        )
    )
    require(listed == stored, 21, f"{where}: decisions {listed}, stored {stored}")
    subjects = [f"release:{release.pk}", f"change:{release.change_id}"]
    seqs = list(
        LedgerEntry.objects.filter(subject__in=subjects)
        .order_by("seq")
        .values_list("seq", flat=True)
    )
    require(
        [e["seq"] for e in pack["ledger"]["entries"]] == seqs,
        21,
        f"{where}: ledger entries {[e['seq'] for e in pack['ledger']['entries']]}, stored {seqs}",
    )
