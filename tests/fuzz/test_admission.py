"""Kubernetes AdmissionReview v1: `approvals.admission.review.read_review` with the image
references it carries (`images.parse_image`), and the cluster's admission webhook."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from approvals.admission.images import InvalidImage, parse_image
from approvals.admission.review import InvalidReview, read_review
from approvals.admission.services import register_cluster
from approvals.models import Deployment
from tests.approvals.admission.conftest import RESOURCES, review
from tests.fuzz.helpers import ENDPOINT, PARSER, assert_api_error, bodies, documents, fingerprint
from tests.test_bad_input import hostile_text

DIGEST = "sha256:" + "ab" * 32
KINDS = ["Pod", "Deployment", "CronJob", "Job", "EphemeralContainers", "Service"]
images = st.one_of(
    hostile_text,
    st.sampled_from(
        [
            "nginx",
            f"registry.example.com:5000/payments-api:2.14@{DIGEST}",
            "localhost/app@sha256:zz",
            "[::1]:5000/app:1",
            "UPPER/case",
            "a" * 300,
            "app:" + "t" * 200,
            "docker.io/library/",
            "@" + DIGEST,
        ]
    ),
)


@st.composite
def reviews(draw) -> dict:
    """An AdmissionReview v1 for a kind Signoff governs or not, with a drawn image."""
    kind = draw(st.sampled_from(KINDS))
    operation = draw(st.sampled_from(["CREATE", "UPDATE", "DELETE", "CONNECT"]))
    pinned = [f"registry.example.com/payments-api@{DIGEST}", draw(images)]
    old = [draw(images)] if operation == "UPDATE" and kind in RESOURCES else None
    document = review(kind, pinned, operation=operation, old_images=old)
    if kind == "EphemeralContainers":
        document["request"]["object"] = {"ephemeralContainers": [{"name": "d", "image": pinned[1]}]}
    return document


@PARSER
@given(written=images)
@example(written="\u0130")  # İ lower-cases to two characters
def test_an_image_reference_is_read_or_refused_as_invalid(written):
    try:
        reference = parse_image(written)
    except InvalidImage as exc:
        assert str(exc)
    else:
        assert reference.repository == reference.repository.strip() != ""


@PARSER
@given(body=documents(reviews()))
def test_a_review_is_read_or_refused_naming_the_field(body):

    try:
        request = read_review(body)
    except InvalidReview as exc:
        assert isinstance(exc.message, str) and exc.message
        assert isinstance(exc.field, str)
    else:
        assert isinstance(request.uid, str) and request.uid.strip()
        assert all(isinstance(image, str) for image in request.new_images)


@pytest.fixture
def cluster_token(org, production) -> tuple[str, str]:
    registration = register_cluster(
        name="prod-eu-1", environment=production, namespaces=["payments"], actor="test"
    )
    return registration.cluster.slug, registration.token


@pytest.mark.django_db
@ENDPOINT
@given(body=bodies(reviews()))
def test_a_review_gets_an_answer_or_a_clear_error_and_a_refusal_writes_nothing(
    client, cluster_token, body
):
    slug, token = cluster_token
    before = fingerprint(Deployment)

    response = client.post(
        f"/integrations/kubernetes/{slug}/admission",
        body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )

    answer = assert_api_error(response, {200, 400, 413})
    if response.status_code == 200:
        assert answer["kind"] == "AdmissionReview"
        assert isinstance(answer["response"]["allowed"], bool)
    else:
        assert fingerprint(Deployment) == before
