"""What the model's steps draw from: the people, services and environments they pick, the names
a pipeline may send, and the tally of outcomes seen across a run."""

from __future__ import annotations

from collections import Counter

from hypothesis import strategies as st

from governance.models import Role
from tests.invariants.organisation import ADMINISTRATORS, BOT, LOOK_ALIKE, PEOPLE, SERVICES, TEAMS

SCIM_JSON = "application/scim+json"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
REFUSALS = {400, 403, 404, 409, 422}

# What the strategies draw from. Administrators come first so that shrinking prefers them.
people = st.sampled_from(PEOPLE)
# Most administrative acts come from administrators; anyone may try (and must be refused).
actors = st.one_of(st.sampled_from(ADMINISTRATORS), st.sampled_from(ADMINISTRATORS), people)
# Most decisions come from people who approve something; anyone may try.
deciders = st.one_of(st.sampled_from(("alice", "bob", "carol", "frank")), people)
requesters = st.one_of(st.sampled_from((BOT, "dave")), st.sampled_from((BOT, *PEOPLE)))
services = st.sampled_from(SERVICES)
# Staging first: a shrunk example prefers the one-approver environment.
environments = st.sampled_from(("staging", "production", "dev"))
release_indexes = st.integers(min_value=0, max_value=7)
# Names a pipeline may send as `triggered_by`: people as they are spelt, in capitals, as e-mail,
# as a look-alike, someone who has not joined yet, and nobody at all.
TRIGGERS = {
    "": None,
    **{name: name for name in PEOPLE},
    "ALICE": "alice",
    "bob@example.com": "bob",
    LOOK_ALIKE: "alice",
    "ghost": None,
}
ROLES = (Role.APPROVER, Role.CAB_MEMBER, Role.RELEASE_MANAGER, Role.AUDITOR, Role.ADMINISTRATOR)
SCOPES = ("everything", *SERVICES, *(f"team:{slug}" for slug in TEAMS))

# Outcomes seen across a whole run, so the test can show the model reached the states it should.
tally: Counter[str] = Counter()
