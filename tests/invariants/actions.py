"""What every step of the model does through: the people and releases it names, service calls
whose refusal must change nothing, and the pipeline API, SCIM and browser clients it speaks with."""

from __future__ import annotations

import json

from django.test import Client

from approvals.models import Release
from governance.exceptions import GovernanceError
from governance.identity.tokens import issue_token
from governance.models import ApiToken, User
from tests.invariants import fingerprint
from tests.invariants.checks import require
from tests.invariants.drawing import REFUSALS, SCIM_JSON, tally


class Actions:
    """Helpers of the model's steps (mixed into `model.Organisation`)."""

    def step(self, name: str) -> None:
        self.trail.append(name)

    def user(self, name: str) -> User | None:
        pk = self.people.get(name)
        return User.objects.get(pk=pk) if pk else None

    def release(self, index: int) -> Release:
        return Release.objects.select_related("approval", "change", "service").get(
            pk=self.releases[index % len(self.releases)]
        )

    def attempt(self, what: str, call):
        """Run a service call; a domain refusal must leave every table as it was."""
        before = fingerprint.take()
        try:
            result = call()
        except GovernanceError as exc:
            changed = fingerprint.changed(before)
            require(not changed, 7, f"refused {what} ({exc.message}) still changed {changed}")
            tally[f"refused {what}: {exc.code}"] += 1
            return None
        tally[what] += 1
        return result

    def answered(self, what: str, response, ok: tuple[int, ...], before: dict) -> bool:
        """Whether an HTTP call did its work; a refusal must be clear and change nothing."""
        if response.status_code in ok:
            tally[what] += 1
            return True
        require(
            response.status_code in REFUSALS or response.status_code == 302,
            7,
            f"{what} answered {response.status_code}: {response.content[:300]!r}",
        )
        changed = fingerprint.changed(before)
        require(not changed, 7, f"refused {what} ({response.status_code}) changed {changed}")
        tally[f"refused {what}: {response.status_code}"] += 1
        return False

    def token(self, name: str) -> str | None:
        """A working API token of an active person, issued by themselves when first needed."""
        user = self.user(name)
        if user is None or not user.is_active:
            return None
        key = self.tokens.get(user.pk)
        if key is None or not ApiToken.objects.active().filter(key_hash=ApiToken.hash_key(key)):
            _, key = issue_token(user=user, name="model", actor=user)
            self.tokens[user.pk] = key
        return key

    def api(self, name: str, path: str, body: dict | None = None, **headers):
        """GET (no body) or POST JSON to the pipeline API as `name`; None when they cannot."""
        key = self.token(name)
        if key is None:
            return None
        auth = {"HTTP_AUTHORIZATION": f"Bearer {key}", **headers}
        if body is None:
            return self.client.get(f"/api/v1/{path}", **auth)
        return self.client.post(
            f"/api/v1/{path}", json.dumps(body), content_type="application/json", **auth
        )

    def scim(self, method: str, path: str, body: dict):
        call = getattr(self.client, method)
        return call(
            f"/scim/v2/{path}",
            json.dumps(body),
            content_type=SCIM_JSON,
            HTTP_AUTHORIZATION=f"Bearer {self.scim_key}",
        )

    def browser(self, user: User) -> Client:
        if user.pk not in self.browsers:
            browser = Client()
            browser.force_login(user)
            self.browsers[user.pk] = browser
        elif "_auth_user_id" not in self.browsers[user.pk].session:
            # The model's time outlived the session (two weeks): sign in again.
            self.browsers[user.pk].force_login(user)
        return self.browsers[user.pk]
