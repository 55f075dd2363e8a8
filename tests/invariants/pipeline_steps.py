"""The model's steps about CI/CD deployment gates: GitHub deployment protection rules and GitLab
deployment approvals waiting on the gate.

An administrator has configured both integrations and mapped two repositories onto the model's
services (`setup_pipeline`, through the service). The model's CI builds commits and asks for
approval through the API with the commit and its run (`pipeline_builds`); its deployment jobs
then wait at an environment, and the provider tells Signoff with a signed delivery
(`pipeline_waits`): for a commit the CI built (maybe to an environment no release asked for,
which GitHub's integration opens a release for) or for a commit nobody asked about. Deliveries
come again (`pipeline_redelivers`: an exact replay, or a re-run of the job), or forged
(`pipeline_forged`: a wrong signature or token, refused with 401, and nothing written).
Someone listed decides a release a job waits on (`pipeline_release_decided`), and beat answers
the runs whose gate decided later (`pipelines_swept`); the existing steps' decisions,
withdrawals and expiries answer runs too.

Answers go to the outbox only: the integrations' API URL is a closed port on 127.0.0.1, the
outbox's deliveries are never sent (nothing commits, so no worker is kicked), and the model only
reads the rows queued. `pipeline_checks` judges every link and answer (invariant 22).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from approvals.gate import evaluate_gate
from approvals.models import ApprovalStage, Release
from approvals.pipelines import answers
from approvals.pipelines import services as pipelines
from approvals.pipelines.models import InboundDelivery, PipelineWait
from governance.models import Delivery, LedgerEntry, Service
from tests import factories
from tests.approvals.pipelines import payloads
from tests.invariants import fingerprint
from tests.invariants.checks import require
from tests.invariants.drawing import TRIGGERS, services, tally
from tests.invariants.organisation import BOT
from tests.invariants.pipeline_checks import HOOKS, PipelineRecord, Sent

# Nothing listens there: were anything to call out, it would fail at once, never reach a host.
API_URL = "http://127.0.0.1:9"
GITHUB_SECRET = "model-github-webhook-secret"
GITLAB_TOKEN = "model-gitlab-webhook-token"
REPOSITORIES = {"acme/payments-api": "payments-api", "acme/web": "web"}
GITLAB_PROJECTS = {"acme/payments-api": 30, "acme/web": 31}
# Where a job waits: where its release went (None), an environment by slug or by name, or one
# Signoff does not know.
WAITING_AT = (None, "dev", "staging", "production", "Production", "qa")
# The person who started the run (a release opened for it names them as its trigger).
SENDERS = ("dave", "alice")
TESTS_PASSED = {"passed": 10, "failed": 0}


@dataclass
class Commit:
    """A commit the model's CI built: its repository, the run that built it, where it went."""

    provider: str
    repository: str
    sha: str
    run: int
    environments: list[str]

    @property
    def run_url(self) -> str:
        if self.provider == "github":
            return f"https://github.com/{self.repository}/actions/runs/{self.run}"
        return f"https://gitlab.example.com/{self.repository}/-/jobs/{self.run}"


@dataclass(frozen=True)
class Delivered:
    """A delivery the provider made, kept to be replayed byte for byte."""

    provider: str
    body: bytes
    headers: dict
    commit: Commit
    environment: str
    sender: str


def _outside() -> tuple[int, int]:
    """What the fingerprint leaves out that a delivery may write: remembered deliveries and
    outbox rows, counted."""
    return InboundDelivery.objects.count(), Delivery.objects.count()


class PipelineSteps:
    """CI builds, deployment jobs waiting on the gate, and beat answering them (mixed into
    the model)."""

    def setup_pipeline(self) -> None:
        """An administrator configures GitHub (which opens releases for runs of a known
        artifact) and GitLab, and maps both repositories on each."""
        self.record.pipelines = PipelineRecord(service_of=dict(REPOSITORIES))
        self.ci_commits: list[Commit] = []
        self.ci_deliveries: list[Delivered] = []
        self.ci_sent = 0  # numbers delivery and deployment ids
        github = {"secret": GITHUB_SECRET, "open_releases": True}
        gitlab = {"secret": GITLAB_TOKEN, "api_token": "glpat-model-approver"}
        for provider, given in (("github", github), ("gitlab", gitlab)):
            pipelines.configure_integration(
                provider=provider, actor="ada", api_url=API_URL, reason="The model's CI", **given
            )
        for provider in HOOKS:
            for repository, slug in REPOSITORIES.items():
                pipelines.map_repository(
                    provider=provider,
                    repository=repository,
                    service=Service.objects.get(slug=slug),
                    actor="ada",
                )

    # --- The CI asks for approval -------------------------------------------------------------

    @rule(
        provider=st.sampled_from(HOOKS),
        service=services,
        # Dev first: its releases need nobody, so their jobs are answered at once.
        environment=st.sampled_from(("dev", "staging", "production")),
        again=st.one_of(st.none(), st.integers(0, 3)),
        then_waits=st.sampled_from((True, False)),  # mostly, as a deploy job follows
    )
    def pipeline_builds(self, provider, service, environment, again, then_waits) -> None:
        """The CI builds a commit (or takes one it built before on to another environment) and
        asks for approval through the API, naming the commit and its run; its deployment job
        may start waiting at once."""
        self.step("pipeline_builds")
        if again is not None and self.ci_commits:
            commit = self.ci_commits[again % len(self.ci_commits)]
        else:
            commit = self._ci_build(provider, service)
        body = {
            "service": REPOSITORIES[commit.repository],
            "environment": environment,
            "version": f"3.{commit.run}.0",
            "artifact": {
                "image": f"registry.example.com/{commit.repository}",
                "digest": self.record.pipelines.digests[commit.sha],
            },
            "change": {"ref": f"CI-{commit.run}", "type": "normal", "title": "Built by the CI"},
            "pipeline": {
                "provider": commit.provider,
                "run_url": commit.run_url,
                "sha": commit.sha,
                "triggered_by": "dave",
            },
            "evidence": [{"kind": "tests", "status": "passed", "summary": TESTS_PASSED}],
        }
        if self.token(BOT) is None:
            return
        key = {"HTTP_IDEMPOTENCY_KEY": f"ci-{commit.run}-{len(self.releases)}"}
        before = fingerprint.take()
        response = self.api(BOT, "releases/", body, **key)
        if not self.answered("pipeline request", response, (201,), before):
            return
        self.releases.append(response.json()["id"])
        self.record.meant_trigger[self.releases[-1]] = "dave"
        commit.environments.append(environment)
        if then_waits:
            self._ci_wait(commit, environment, "dave")

    def _ci_build(self, provider: str, service: str) -> Commit:
        repository = next(r for r, slug in REPOSITORIES.items() if slug == service)
        run = 7001 + len(self.ci_commits)
        sha = hashlib.sha1(f"{repository}@{run}".encode()).hexdigest()
        self.record.pipelines.digests[sha] = factories.digest(f"{repository}@{sha}")
        commit = Commit(provider, repository, sha, run, [])
        self.ci_commits.append(commit)
        return commit

    # --- Deployment jobs wait -----------------------------------------------------------------

    @precondition(lambda self: self.ci_commits)
    @rule(
        pick=st.integers(0, 5),
        # Mostly where the commit's release went.
        environment=st.one_of(st.none(), st.sampled_from(WAITING_AT)),
        sender=st.sampled_from(SENDERS),
        stranger=st.booleans(),
    )
    def pipeline_waits(self, pick: int, environment, sender: str, stranger: bool) -> None:
        """A deployment job waits at an environment and its provider tells Signoff: for a
        commit the CI built (where its release went, or on to another environment), or for a
        commit nobody asked Signoff about."""
        self.step("pipeline_waits")
        if stranger:
            commit = self._ci_stranger(pick)
        else:
            commit = self.ci_commits[pick % len(self.ci_commits)]
        self._ci_wait(commit, self._ci_where(commit, environment), sender)

    @precondition(lambda self: self.ci_deliveries)
    @rule(
        replay=st.booleans(),
        pick=st.integers(0, 5),
        sender=st.sampled_from(SENDERS),
    )
    def pipeline_redelivers(self, replay: bool, pick: int, sender: str) -> None:
        """An earlier delivery comes again: byte for byte with its delivery id (redelivered
        from the provider's webhook page), or as a re-run of its job (a new deployment of the
        same commit to the same environment, answered from the same approval)."""
        self.step("pipeline_redelivers")
        earlier = self.ci_deliveries[pick % len(self.ci_deliveries)]
        if replay:
            self._ci_send(earlier, replay=True)
        else:
            self._ci_wait(earlier.commit, earlier.environment, sender, earlier.provider)

    @precondition(lambda self: self.ci_commits)
    @rule(pick=st.integers(0, 5), environment=st.one_of(st.none(), st.sampled_from(WAITING_AT)))
    def pipeline_forged(self, pick: int, environment) -> None:
        """Someone who is not the provider sends a delivery for a commit the CI built (each
        kind of forgery in turn): refused with 401, and nothing is written."""
        self.step("pipeline_forged")
        commit = self.ci_commits[pick % len(self.ci_commits)]
        self._ci_forge(commit, self._ci_where(commit, environment), "dave")

    def _ci_where(self, commit: Commit, environment: str | None) -> str:
        """Where a job waits: `environment`, or (None) where the commit's release last went."""
        if environment is None:
            return commit.environments[-1] if commit.environments else "dev"
        return environment

    def _ci_stranger(self, pick: int) -> Commit:
        """A commit of a mapped repository that the CI never asked Signoff about."""
        repository = list(REPOSITORIES)[pick // 2 % len(REPOSITORIES)]
        sha = hashlib.sha1(f"{repository}@unknown-{self.ci_sent}".encode()).hexdigest()
        return Commit(HOOKS[pick % 2], repository, sha, 9001 + self.ci_sent, [])

    def _ci_event(self, commit: Commit, environment: str, sender: str, provider: str) -> Delivered:
        """A fresh deployment of `commit` waiting at `environment`, as `provider` delivers it."""
        self.ci_sent += 1
        number = self.ci_sent
        if provider == "github":
            event = payloads.github_event(
                API_URL,
                run_id=commit.run,
                repository=commit.repository,
                environment=environment,
                sha=commit.sha,
                deployment_id=500000 + number,
                sender={"login": sender},
            )
            body = payloads.dumps(event)
            headers = payloads.github_headers(
                body, secret=GITHUB_SECRET, HTTP_X_GITHUB_DELIVERY=f"model-delivery-{number}"
            )
            external_id = f"deployment:{500000 + number}:{environment}"
        else:
            event = payloads.gitlab_event(
                sha=commit.sha,
                deployment_id=number,
                environment=environment,
                project={
                    "id": GITLAB_PROJECTS[commit.repository],
                    "path_with_namespace": commit.repository,
                },
                deployable_url=commit.run_url,
                user={"username": sender},
            )
            body = payloads.dumps(event)
            key = f"model-delivery-{number}"
            headers = payloads.gitlab_headers(
                token=GITLAB_TOKEN, HTTP_IDEMPOTENCY_KEY=key, HTTP_X_GITLAB_EVENT_UUID=key
            )
            external_id = str(number)
        self.record.pipelines.sent[(provider, external_id)] = Sent(
            commit.repository, environment, commit.sha
        )
        return Delivered(provider, body, headers, commit, environment, sender)

    def _ci_wait(self, commit: Commit, environment: str, sender: str, provider: str = "") -> None:
        delivered = self._ci_event(commit, environment, sender, provider or commit.provider)
        self.ci_deliveries.append(delivered)
        self._ci_send(delivered, replay=False)

    def _ci_send(self, delivered: Delivered, *, replay: bool) -> None:
        """Deliver to Signoff's hook; what it answers must be what it did."""
        before, outside = fingerprint.take(), _outside()
        response = self._ci_post(delivered.provider, delivered.body, delivered.headers)
        document = response.json()
        status = document.get("status")
        what = f"pipeline {'replay' if replay else 'wait'}"
        if response.status_code == 200 and status == "linked":
            self._ci_linked(document, delivered.sender, what)
        elif response.status_code == 200 and status == "duplicate":
            changed = fingerprint.changed(before)
            require(
                not changed and _outside() == outside,
                22,
                f"a delivery answered duplicate still changed {changed or 'the outbox'}",
            )
            tally[f"{what}: duplicate, nothing changed"] += 1
        else:
            require(
                response.status_code == 202 and status == "unlinked",
                7,
                f"a delivery answered {response.status_code}: {response.content[:300]!r}",
            )
            changed = fingerprint.changed(before)
            require(
                set(changed) <= {LedgerEntry._meta.db_table} and _outside() == outside,
                22,
                f"a delivery that linked nothing wrote {changed or 'to the outbox'}",
            )
            tally[f"{what}: unlinked"] += 1

    def _ci_linked(self, document: dict, sender: str, what: str) -> None:
        release = document["release"]
        if release not in self.releases:
            # Opened for a run of a known artifact; the run's sender is its trigger.
            self.releases.append(release)
            self.record.meant_trigger[release] = TRIGGERS.get(sender)
            tally["pipeline wait opened a release"] += 1
        tally[f"{what}: linked, answered {document.get('answer') or 'later'}"] += 1

    def _ci_forge(self, commit: Commit, environment: str, sender: str) -> None:
        delivered = self._ci_event(commit, environment, sender, commit.provider)
        headers = dict(delivered.headers)
        body = delivered.body
        if delivered.provider == "github":
            forgeries = ("wrong secret", "SHA-1 only", "changed after signing")
            forgery = forgeries[self.ci_sent % 3]
            if forgery == "wrong secret":
                headers = payloads.github_headers(body, secret="not-the-webhook-secret")
            elif forgery == "SHA-1 only":
                del headers["HTTP_X_HUB_SIGNATURE_256"]
            else:
                body = body.replace(b'"requested"', b'"requested" ', 1)
        else:
            forgery = ("wrong token", "no token")[self.ci_sent % 2]
            if forgery == "wrong token":
                headers["HTTP_X_GITLAB_TOKEN"] = "not-the-webhook-token"
            else:
                del headers["HTTP_X_GITLAB_TOKEN"]
        before, outside = fingerprint.take(), _outside()
        response = self._ci_post(delivered.provider, body, headers)
        changed = fingerprint.changed(before)
        require(
            response.status_code == 401,
            22,
            f"a {delivered.provider} delivery with a {forgery} answered {response.status_code}",
        )
        require(
            not changed and _outside() == outside,
            22,
            f"a refused {delivered.provider} delivery ({forgery}) changed "
            f"{changed or 'the outbox'}",
        )
        tally[f"forged delivery refused: {delivered.provider} {forgery}"] += 1

    def _ci_post(self, provider: str, body: bytes, headers: dict):
        return self.client.post(
            f"/integrations/{provider}/", body, content_type="application/json", **headers
        )

    @precondition(lambda self: self.ci_deliveries)
    @rule(pick=st.integers(0, 5), verdict=st.sampled_from(("approve", "reject")))
    def pipeline_release_decided(self, pick: int, verdict: str) -> None:
        """Someone the release page lists for the open stage of a release a job waits on
        decides it through the API (what the waiting job waits for)."""
        self.step("pipeline_release_decided")
        waited_on = list(
            PipelineWait.objects.filter(
                provider__in=HOOKS,
                state=PipelineWait.State.WAITING,
                release__approval__status="pending",
            )
            .order_by("pk")
            .values_list("release_id", flat=True)
        )
        if not waited_on:
            return
        release = waited_on[pick % len(waited_on)]
        stage = ApprovalStage.objects.filter(
            request__release_id=release, status=ApprovalStage.Status.ACTIVE
        ).first()
        names = sorted(stage.eligible_approvers.values_list("username", flat=True)) if stage else []
        if names and release in self.releases:
            name = names[pick % len(names)]
            self._decide_through_the_api(name, self.releases.index(release), verdict, "reviewed")

    # --- Beat answers what the gate decided later ---------------------------------------------

    @precondition(lambda self: self.ci_deliveries)
    @rule()
    def pipelines_swept(self) -> None:
        """Beat answers the runs whose gate decided after their release did (a freeze that
        ended, an approval that expired), then runs again at the same moment, as a task
        redelivered by the broker: the second run answers nothing. Afterwards no run waits on
        a gate that has decided."""
        self.step("pipelines_swept")
        swept = answers.answer_waiting()
        tally["pipeline runs answered by beat"] += swept
        before, outside = fingerprint.take(), _outside()
        again = answers.answer_waiting()
        changed = fingerprint.changed(before)
        require(
            again == 0 and not changed and _outside() == outside,
            22,
            f"beat run twice at one moment answered {again} more and changed {changed}",
        )
        now = self.clock.now()
        waiting = PipelineWait.objects.filter(provider__in=HOOKS, state=PipelineWait.State.WAITING)
        for release_id, external_id in waiting.values_list("release_id", "external_id"):
            gate = evaluate_gate(Release.objects.for_gate().get(pk=release_id), now=now).status
            require(
                gate in ("pending", "blocked"),
                22,
                f"run {external_id} still waits after beat although release #{release_id}'s "
                f"gate says {gate}",
            )
