"""The model's steps about policies imported from a folder of files, and what auditors take away.

`import_policy`: someone (administrators mostly) imports a folder of YAML files with
`manage.py policy_import` (the one entry that reads a folder: the command checks the folder and
proposes its policy through the same four-eyes service as the editor); a proposal is then
maybe approved on the Policies page by the other administrator, or by the importer or someone
who is no administrator (both refused). `auditor_exports`: someone (the auditor mostly) downloads
a compliance report (at once, or written in the background by Celery, run eagerly in the step),
an evidence pack, the audit trail or the ledger export, in the browser or with a token, or
peeks at another person's background export.

What only the step sees (what was imported and whether it loosens, what came back, which tables
changed) goes into the record for `evidence_checks`.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import yaml
from django.core.management import CommandError, call_command
from django.test import TestCase, override_settings
from django.urls import reverse
from hypothesis import strategies as st
from hypothesis.stateful import rule

from config.celery import app as celery_app
from governance.models import Policy, PolicyProposal, PolicyVersion, User
from reporting.models import ReportExport
from tests.invariants import fingerprint
from tests.invariants.checks import require
from tests.invariants.drawing import REFUSALS, actors, people, release_indexes, tally
from tests.invariants.evidence_checks import Export, Import, evidence_of

# The folders an import brings: the policy in force split in files, the same with one more
# rule (rules combine and the strictest wins, so an added rule never loosens), production
# loosened to one approver, a condition that does not parse, a section defined in two files.
IMPORTS = ("split", "tighten", "loosen", "invalid", "repeated")
# Who approves a proposal: the other administrator, nobody (it waits), the importer themselves
# or alice, who is no administrator (both refused).
SECOND = ("other", None, "importer", "alice")

# One approver everywhere but dev, and nothing else: looser on production than every policy the
# model publishes (two approvers, the CAB, dual control, evidence, a validity limit or a
# failing condition), and than itself with a tightening added.
LOOSE = {
    "10-staging.yaml": """\
# Development is free; staging needs one approver of the service.
rules:
  - id: dev-free
    when: environment.risk == "low"
    require: {stages: []}
  - id: staging-one-approver
    when: environment.risk == "medium"
    require:
      stages:
        - {key: service, name: Service approval, approvers: service_approvers, count: 1,
           order: 10}
""",
    "20-production.yaml": """\
rules:
  - id: production-one-approver
    description: Production needs one approver of the service (loosened from two).
    when: environment.risk == "high"
    require:
      stages:
        - {key: service, name: Service approval, approvers: service_approvers, count: 1,
           order: 10}
""",
}
INVALID = {
    "10-production.yaml": """\
rules:
  - id: half-written
    when: environment.risk ==
    require: {stages: []}
""",
}
REPEATED = {
    "10-production.yaml": LOOSE["20-production.yaml"] + "slas:\n  - {id: fast, due_hours: 4}\n",
    "20-staging.yaml": LOOSE["10-staging.yaml"] + "slas:\n  - {id: slow, due_hours: 48}\n",
}
# The rule a tightening adds: approvals to regulated environments last 12 hours at most.
GUARD = {
    "description": "Imported: approvals to regulated environments last 12 hours at most.",
    "when": "environment.regulated",
    "require": {"approval_valid_hours": 12},
}

# What an export step asks for; the compliance reports cover the last 31 days (answered at
# once) or 60 (written in the background).
EXPORTS = (
    "compliance_csv",
    "evidence_json",
    "audit_trail",
    "background_csv",
    "ledger",
    "evidence_pdf",
    "compliance_pdf",
    "background_pdf",
    "another_persons_export",
)


def policy_files(variant: str, source: str) -> dict[str, str]:
    """The folder an import of `variant` brings, from the policy in force (`source`)."""
    if variant == "loosen":
        return dict(LOOSE)
    if variant == "invalid":
        return dict(INVALID)
    if variant == "repeated":
        return dict(REPEATED)
    document = yaml.safe_load(source)
    rules = list(document["rules"])
    half = max(1, len(rules) // 2)
    files = {"10-rules.yaml": _dump({"rules": rules[:half]})}
    if rules[half:]:
        files["20-rules.yaml"] = _dump({"rules": rules[half:]})
    if variant == "tighten":
        used = {str(rule.get("id")) for rule in rules if isinstance(rule, dict)}
        number = next(n for n in range(1, len(used) + 2) if f"imported-guard-{n}" not in used)
        files["50-imported.yaml"] = _dump({"rules": [{"id": f"imported-guard-{number}", **GUARD}]})
    for index, section in enumerate(key for key in document if key != "rules"):
        files[f"{60 + index}-{section}.yaml"] = _dump({section: document[section]})
    return files


def _dump(part: dict) -> str:
    return yaml.safe_dump(part, sort_keys=False, default_flow_style=False, width=100)


@contextmanager
def eager_tasks():
    """Celery runs the tasks enqueued inside in this process, and the callbacks queued for the
    commit (which never comes: the example is rolled back) run when the block ends."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        with TestCase.captureOnCommitCallbacks(execute=True):
            yield
    finally:
        celery_app.conf.task_always_eager = previous


class EvidenceSteps:
    """Mixed into the model (`model.Organisation`)."""

    def setup_evidence(self) -> None:
        """Called once when an example starts, before any step."""
        evidence_of(self.record)

    # --- Policies from files ----------------------------------------------------------------

    @rule(
        actor=actors,
        variant=st.sampled_from(IMPORTS),
        second=st.sampled_from(SECOND),
        confirm=st.sampled_from((True, False)),
    )
    def import_policy(self, actor: str, variant: str, second: str | None, confirm: bool) -> None:
        """Someone imports a policy folder; a proposal may be approved by another administrator
        (ticking "confirm the loosening" or not), or by someone who may not."""
        self.step("import_policy")
        seen = evidence_of(self.record)
        policy = Policy.objects.get(slug="default")
        user = self.user(actor)  # None: not provisioned; the command refuses the name
        # The model's own judgement: the loosened policy loosens unless it is already in force.
        loosening = variant == "loosen" and policy.source not in seen.loose_sources
        loose = variant == "loosen" or (variant == "split" and policy.source in seen.loose_sources)
        needs_second = user is not None and self.world.needs_second_administrator(user.pk)
        before = fingerprint.take()
        last_version, last_proposal = _last(PolicyVersion), _last(PolicyProposal)
        with tempfile.TemporaryDirectory() as folder:
            for name, text in policy_files(variant, policy.source).items():
                (Path(folder) / name).write_text(text, encoding="utf-8")
            try:
                call_command(
                    *("policy_import", folder, "--as", actor, "--policy", "default"),
                    comment=f"Imported {variant} (the model)",
                    stdout=io.StringIO(),
                )
            except CommandError as exc:
                changed = fingerprint.changed(before)
                require(not changed, 21, f"refused import ({exc}) still changed {changed}")
                tally[f"import refused: {variant}"] += 1
                return
        imported = Import(
            variant,
            user.pk,
            loosening,
            needs_second,
            versions=list(_after(PolicyVersion, last_version)),
            proposals=list(_after(PolicyProposal, last_proposal)),
            based_on=policy.version,
        )
        seen.imports.append(imported)
        if imported.versions and loose:
            seen.loose_sources.add(PolicyVersion.objects.get(pk=imported.versions[0]).source)
        imported.loose = loose
        if imported.proposals and second is not None:
            other = "adam" if actor == "ada" else "ada"
            self._approve_import(
                imported, {"other": other, "importer": actor}.get(second, second), confirm
            )

    @rule(decider=actors, pick=st.integers(0, 3), confirm=st.sampled_from((True, False)))
    def decide_import(self, decider: str, pick: int, confirm: bool) -> None:
        """Someone approves an imported policy that waits for a second administrator, maybe
        after the policy in force has changed since it was proposed."""
        self.step("decide_import")
        seen = evidence_of(self.record)
        waiting = [
            imported
            for imported in seen.imports
            if imported.proposals
            and imported.decider is None
            and PolicyProposal.objects.filter(
                pk=imported.proposals[0], outcome=PolicyProposal.Outcome.PENDING
            ).exists()
        ]
        if waiting:
            imported = waiting[pick % len(waiting)]
            self._approve_import(imported, decider, confirm)

    def _approve_import(self, imported: Import, name: str, confirm: bool) -> None:
        decider = self.user(name)
        if decider is None:
            return
        proposal = PolicyProposal.objects.get(pk=imported.proposals[0])
        data = {"decision": "approve", "reason": "Read the diff (the model)"}
        if confirm:
            data["confirm_loosening"] = "yes"
        before, last_version = fingerprint.take(), _last(PolicyVersion)
        response = self.browser(decider).post(
            reverse("governance:policy_proposal_decide", args=[proposal.pk]), data
        )
        require(response.status_code in (302, 403), 7, f"approval answered {response.status_code}")
        proposal.refresh_from_db()
        if proposal.outcome == PolicyProposal.Outcome.PENDING:
            changed = fingerprint.changed(before)
            require(not changed, 21, f"refused approval of a policy import changed {changed}")
            by = "the importer" if decider.pk == imported.importer else "another"
            if Policy.objects.get(slug="default").version != imported.based_on:
                by += ", stale"
            tally[f"import approval refused: {by}, confirm={confirm}"] += 1
            return
        imported.decider = decider.pk
        imported.approved_version = next(iter(_after(PolicyVersion, last_version)), None)
        seen = evidence_of(self.record)
        seen.approved.append(imported)
        if imported.loose and imported.approved_version is not None:
            seen.loose_sources.add(PolicyVersion.objects.get(pk=imported.approved_version).source)

    # --- What auditors take away -------------------------------------------------------------

    @rule(
        # The auditor mostly; anyone may try (and people may have become auditors).
        asker=st.one_of(st.just("erin"), people),
        what=st.sampled_from(EXPORTS),
        token=st.booleans(),
        release=release_indexes,
    )
    def auditor_exports(self, asker: str, what: str, token: bool, release: int) -> None:
        """Someone downloads a report, an evidence pack, the audit trail or the ledger, in the
        browser or with their token; a long report is written in the background first."""
        self.step("auditor_exports")
        user = self.user(asker)
        if user is None:
            return
        key = self.token(asker) if token else None  # issued (and ledgered) before the request
        seen = evidence_of(self.record)
        today = self.clock.now().date()
        export = Export(
            asker=user.pk, what=what, at=self.clock.now(), answered=0, served=False, changed=[]
        )
        path, params = self._report_path(export, release, today)
        if path is None:
            return
        before, last_export = fingerprint.take(), _last(ReportExport)
        with tempfile.TemporaryDirectory() as media, override_settings(MEDIA_ROOT=media):
            with eager_tasks():
                response = self._get(user, key, path, params)
            export.answered = response.status_code
            export.exports = list(_after(ReportExport, last_export))
            self._take_away(export, user, key, response)
        export.changed = fingerprint.changed(before)
        if not export.served:
            require(
                response.status_code in (*REFUSALS, 302, 401, 429),
                7,
                f"{asker}'s {what} answered {response.status_code}: {response.content[:300]!r}",
            )
            tally[f"export refused: {what} ({response.status_code})"] += 1
        seen.exports.append(export)

    def _report_path(self, export: Export, release: int, today) -> tuple[str | None, dict]:
        what = export.what
        if what.startswith(("compliance", "background")):
            days = 60 if what.startswith("background") else 31
            export.window = (today - timedelta(days=days - 1), today)
            name = "compliance_pdf" if what.endswith("pdf") else "compliance_csv"
            params = {"framework": "sox", "from": export.window[0], "to": export.window[1]}
            return reverse(f"reporting:{name}"), {k: str(v) for k, v in params.items()}
        if what.startswith("evidence"):
            export.release = self.releases[release % len(self.releases)]
            return reverse(f"reporting:{what}", args=[export.release]), {}
        if what == "another_persons_export":
            others = ReportExport.objects.exclude(requested_by=export.asker).order_by("pk")
            other = others.filter(pk__in=self._model_exports()).first()
            if other is None:
                return None, {}
            export.owner = other.requested_by_id
            return reverse("reporting:export", args=[other.pk]), {}
        return reverse(
            {"audit_trail": "reporting:audit", "ledger": "reporting:ledger_export"}[what]
        ), {}

    def _model_exports(self) -> list[int]:
        return [pk for e in evidence_of(self.record).exports for pk in e.exports]

    def _get(self, user: User, key: str | None, path: str, params: dict):
        if key is not None:
            return self.client.get(path, params, HTTP_AUTHORIZATION=f"Bearer {key}")
        return self.browser(user).get(path, params)

    def _take_away(self, export: Export, user: User, key: str | None, response) -> None:
        """What came back: the report itself, or the background export's file."""
        if export.exports and response.status_code in (202, 302):
            location = response.get("Location", "")
            if response.status_code == 302 and location != reverse(
                "reporting:export", args=[export.exports[0]]
            ):
                return
            download = reverse("reporting:export_download", args=[export.exports[0]])
            response = self._get(user, key, download, {})
        if response.status_code != 200:
            return
        export.served = True
        body = _body(response)
        if export.what in ("compliance_csv", "background_csv"):
            export.rows = list(csv.DictReader(io.StringIO(body.decode("utf-8"))))
        elif export.what == "evidence_json":
            export.pack = json.loads(body)
        elif export.what == "ledger":
            lines = body.decode("utf-8").splitlines()
            export.ledger_header, export.ledger_lines = json.loads(lines[0]), len(lines)
        elif export.what.endswith("pdf"):
            require(body.startswith(b"%PDF"), 21, f"{export.what} is no PDF: {body[:40]!r}")


def _body(response) -> bytes:
    if response.streaming:
        # Read to the end, the test client closes the response (and the export's file).
        return b"".join(response.streaming_content)
    return response.content


def _last(model) -> int:
    return model.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def _after(model, pk: int):
    return model.objects.filter(pk__gt=pk).order_by("pk").values_list("pk", flat=True)
