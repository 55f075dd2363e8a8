"""The model's release steps: pipelines and people request, decide, take back and deploy
releases, and change records move on."""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from approvals.models import ApprovalRequest, Deployment, Release
from changes.models import ChangeRecord
from changes.records import services as records
from changes.records.services import set_change_state
from governance.models import Delegation, User
from tests import factories
from tests.invariants import fingerprint
from tests.invariants.checks import require
from tests.invariants.drawing import (
    TRIGGERS,
    deciders,
    environments,
    release_indexes,
    requesters,
    services,
    tally,
)
from tests.invariants.oracle import conflicted
from tests.invariants.organisation import BOT


class ReleaseSteps:
    """Releases are requested, decided, withdrawn and deployed (mixed into the model)."""

    @rule(
        requester=requesters,
        service=services,
        environment=environments,
        trigger=st.one_of(st.sampled_from(("alice", "bob")), st.sampled_from(tuple(TRIGGERS))),
        reuse_change=st.one_of(st.none(), release_indexes),
        change_type=st.sampled_from(("normal", "emergency", "standard")),
        tests=st.sampled_from(("passed", "failed", "none")),
        retry=st.booleans(),
        fixes=st.one_of(st.none(), st.integers(0, 3)),
    )
    def request_release(
        self,
        requester,
        service,
        environment,
        trigger,
        reuse_change,
        change_type,
        tests,
        retry,
        fixes,
    ) -> None:
        """A pipeline (or a person, with their own token) asks for approval through the API;
        its change may name an incident it fixes."""
        self.step("request_release")
        number = len(self.releases) + 1
        if reuse_change is not None and self.releases:
            ref = self.release(reuse_change).change.ref
        else:
            ref = f"MODEL-{number:04d}"
        body = {
            "service": service,
            "environment": environment,
            "version": f"1.{number}.0",
            "artifact": {
                "image": f"registry.example.com/{service}",
                "digest": factories.digest(f"{service}-{number}-{self.clock.now()}"),
            },
            "change": {"ref": ref, "type": change_type, "title": "Model change"},
            "pipeline": {"provider": "github", "triggered_by": trigger},
            "evidence": _tests(tests),
        }
        if fixes is not None and self.incidents:
            body["change"]["incident"] = self.incidents[fixes % len(self.incidents)]
        if self.token(requester) is None:
            return
        key = {"HTTP_IDEMPOTENCY_KEY": f"model-{number}"}
        before = fingerprint.take()
        response = self.api(requester, "releases/", body, **key)
        if not self.answered("request", response, (201,), before):
            return
        release = response.json()["id"]
        self.releases.append(release)
        self.record.meant_trigger[release] = TRIGGERS[trigger]
        if retry:
            again = fingerprint.take()
            response = self.api(requester, "releases/", body, **key)
            require(
                response.status_code == 200 and response.json()["id"] == release,
                8,
                f"a retried request answered {response.status_code}, not release #{release}",
            )
            require(not fingerprint.changed(again), 8, "a retried request wrote something")

    @precondition(lambda self: self.releases)
    @rule(
        name=deciders,
        release=release_indexes,
        verdict=st.sampled_from(("approve", "reject")),
    )
    def decide_in_the_browser(self, name: str, release: int, verdict: str) -> None:
        """A person approves or rejects on the release page."""
        self.step("decide_in_the_browser")
        self._decide_in_the_browser(name, release, verdict)

    def _decide_in_the_browser(self, name: str, release: int, verdict: str) -> None:
        user, target = self.user(name), self.release(release)
        if user is None:
            return
        browser = self.browser(user)
        must = self._must_record(user, target)
        before = fingerprint.take()
        response = browser.post(
            f"/approvals/releases/{target.pk}/decide/",
            {"verdict": verdict, "rationale": "Reviewed in the browser (model)"},
            HTTP_HX_REQUEST="true",
        )
        recorded = self.answered("decision", response, (200,), before)
        require(recorded or not must, 8, f"{must}, but the release page refused it")

    @precondition(lambda self: self.releases)
    @rule(
        name=deciders,
        release=release_indexes,
        verdict=st.sampled_from(("approve", "reject")),
        digest=st.sampled_from(("reviewed", "unsent", "another")),
    )
    def decide_through_the_api(self, name: str, release: int, verdict: str, digest: str) -> None:
        """A person approves or rejects with their token, naming the digest they reviewed."""
        self.step("decide_through_the_api")
        self._decide_through_the_api(name, release, verdict, digest)

    def _decide_through_the_api(self, name: str, release: int, verdict: str, digest: str) -> None:
        user, target = self.user(name), self.release(release)
        if user is None or self.token(name) is None:
            return
        body = {"decision": verdict, "rationale": "Reviewed through the API (model)"}
        if digest != "unsent":
            body["digest"] = target.digest if digest == "reviewed" else factories.digest("x")
        must = self._must_record(user, target) if digest != "another" else None
        before = fingerprint.take()
        response = self.api(name, f"releases/{target.pk}/decisions/", body)
        recorded = self.answered("decision", response, (201,), before)
        require(recorded or not must, 8, f"{must}, but the API refused it: {response.content}")
        if recorded and response.json().get("on_behalf_of"):
            tally["decision as a delegate"] += 1

    @precondition(lambda self: self.releases)
    @rule(
        release=release_indexes,
        pick=st.integers(0, 5),
        in_the_browser=st.booleans(),
        verdict=st.sampled_from(("approve", "approve", "approve", "reject")),
    )
    def decide_what_waits(self, release: int, pick: int, in_the_browser: bool, verdict) -> None:
        """Someone the release page lists for the open stage (or their delegate) decides it."""
        self.step("decide_what_waits")
        waiting = self.waiting_decider(release, pick)
        if waiting is None:
            return
        name, index = waiting
        if in_the_browser:
            self._decide_in_the_browser(name, index, verdict)
        else:
            self._decide_through_the_api(name, index, verdict, "reviewed")

    def waiting_decider(self, release: int, pick: int) -> tuple[str, int] | None:
        """Someone the release page lists for the open stage of a pending release (or their
        delegate), and that release's index; None when nothing waits on anybody."""
        pending = list(
            ApprovalRequest.objects.filter(status="pending", release__in=self.releases)
            .order_by("pk")
            .values_list("release_id", flat=True)
        )
        if not pending:
            return None
        target = Release.objects.get(pk=pending[release % len(pending)])
        stage = target.approval.stages.filter(status="active").first()
        if stage is None:
            return None
        listed = sorted(stage.eligible_approvers.values_list("username", flat=True))
        delegates = Delegation.objects.in_force(self.clock.now()).filter(
            delegator__username__in=listed
        )
        names = listed + sorted(d.delegate.username for d in delegates)
        if not names:
            return None
        return names[pick % len(names)], self.releases.index(target.pk)

    def _must_record(self, user: User, release: Release) -> str | None:
        """Why `user`'s own decision on `release` must be recorded now, or None when the rules
        may refuse it (the plain case only: on their own authority, nothing in the way)."""
        world, now = self.world, self.clock.now()
        approval = ApprovalRequest.objects.get(pk=release.approval.pk)
        if approval.status != "pending" or approval.expires_at <= now:
            return None
        stages = list(approval.stages.prefetch_related("eligible_approvers", "decisions"))
        active = next((s for s in stages if s.status == "active"), None)
        meant = self.people.get(self.record.meant_trigger.get(release.pk) or "")
        if (
            active is None
            or active.step_up
            or user.pk in conflicted(release, release.change, meant)
            or not world.holds(user.pk, active.approvers, release, now)
            or not world.in_teams(user.pk, active, release.service_id)
            or user.pk not in {u.pk for u in active.eligible_approvers.all()}
        ):
            return None
        counted = {
            person
            for stage in stages
            if stage.pk == active.pk or approval.dual_control
            for decision in stage.decisions.all()
            for person in (decision.approver_id, decision.on_behalf_of_id)
        }
        if user.pk in counted:
            return None
        return f"{user.username} may decide {active.name} of release #{release.pk}"

    @precondition(lambda self: self.releases)
    @rule(
        what=st.sampled_from(("approval", "request", "ask_again")),
        name=st.one_of(requesters, deciders),
        release=release_indexes,
    )
    def take_back(self, what: str, name: str, release: int) -> None:
        """An approver takes back their approval while its stage is open; the requester (or a
        release manager) withdraws a pending request, or asks again for a closed one."""
        self.step("take_back")
        target = self.release(release)
        if self.token(name) is None:
            return
        before = fingerprint.take()
        if what == "approval":
            path, body, ok = "decisions/revoke/", {"reason": "Second thoughts"}, 200
        elif what == "request":
            path, body, ok = "withdraw/", {"reason": "Not now"}, 200
        else:
            path, body, ok = "request-again/", {}, 201
        response = self.api(name, f"releases/{target.pk}/{path}", body)
        if self.answered(what, response, (ok,), before) and what == "ask_again":
            again = response.json()["id"]
            self.releases.append(again)
            self.record.meant_trigger[again] = self.record.meant_trigger.get(target.pk)

    @precondition(lambda self: self.releases)
    @rule(
        release=release_indexes,
        tests=st.sampled_from(("passed", "failed")),
        change_state=st.sampled_from((None, "cancelled", "authorise")),
    )
    def evidence_or_change(self, release: int, tests: str, change_state: str | None) -> None:
        """The pipeline reports new test results, or the change record moves on."""
        self.step("evidence_or_change")
        target = self.release(release)
        if change_state is None:
            self.token(BOT)
            before = fingerprint.take()
            response = self.api(BOT, f"releases/{target.pk}/evidence/", _tests(tests)[0])
            self.answered("evidence", response, (201,), before)
            return
        change = ChangeRecord.objects.get(pk=target.change_id)
        set_change_state(change=change, state=change_state, actor=self.user("dave"), reason="ITSM")
        self.record.moved_by_hand.add(change.pk)

    @precondition(lambda self: self.releases)
    @rule(
        actor=st.sampled_from(("dave", "ada", "alice", BOT)),
        release=release_indexes,
        to=st.sampled_from(tuple(ChangeRecord.State.values)),
        close_code=st.sampled_from(("successful", "")),
    )
    def move_change(self, actor: str, release: int, to: str, close_code: str) -> None:
        """A release manager or an administrator moves a release's change record along its
        life cycle by hand (anyone may try; only the moves MANUAL_MOVES lists are allowed)."""
        self.step("move_change")
        user, target = self.user(actor), self.release(release)
        if user is None:
            return
        change = ChangeRecord.objects.get(pk=target.change_id)
        before = change.state
        moved = self.attempt(
            "change move",
            lambda: records.move_change(
                change=change, to=to, actor=user, reason="Moved by the model", close_code=close_code
            ),
        )
        if moved is not None:
            require(
                to in records.MANUAL_MOVES[before],
                16,
                f"{actor} moved change {change.ref} from {before} to {to} by hand",
            )
            self.record.moved_by_hand.add(change.pk)

    @precondition(lambda self: self.releases)
    @rule(
        release=release_indexes,
        digest=st.sampled_from(("approved", "another")),
        status=st.sampled_from(("succeeded", "failed")),
    )
    def deploy(self, release: int, digest: str, status: str) -> None:
        """The pipeline asks the gate, deploys whatever it answered, and reports it."""
        self.step("deploy")
        target = self.release(release)
        deployed = target.digest if digest == "approved" else factories.digest("rogue")
        if self.token(BOT) is None:
            return
        gate = self.api(BOT, f"releases/{target.pk}/gate?digest={deployed}")
        if gate.status_code == 404:
            return  # The pipeline lost its role on this service: it sees nothing, reports nothing.
        answer = gate.json()["status"]
        response = self.api(
            BOT, f"releases/{target.pk}/deployments/", {"status": status, "digest": deployed}
        )
        require(response.status_code == 201, 10, f"a deployment report answered {response}")
        recorded = Deployment.objects.filter(release=target).latest("pk")
        require(
            recorded.gate_status == answer and recorded.approved == (answer == "approved"),
            10,
            f"the gate answered {answer}; the deployment was recorded as {recorded.gate_status}"
            f" (approved={recorded.approved})",
        )
        tally["deployment approved" if recorded.approved else "deployment unapproved"] += 1


def _tests(status: str) -> list[dict]:
    if status == "none":
        return []
    failed = 0 if status == "passed" else 2
    return [{"kind": "tests", "status": status, "summary": {"passed": 10, "failed": failed}}]
