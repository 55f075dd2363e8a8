"""Image references read as Docker and containerd read them."""

from __future__ import annotations

import pytest

from approvals.admission.images import InvalidImage, normalised_repository, parse_image

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("written", "repository", "tag", "digest"),
    [
        ("nginx", "docker.io/library/nginx", "", ""),
        ("nginx:1.27", "docker.io/library/nginx", "1.27", ""),
        ("docker.io/library/nginx", "docker.io/library/nginx", "", ""),
        ("index.docker.io/library/nginx:latest", "docker.io/library/nginx", "latest", ""),
        ("docker.io/nginx", "docker.io/library/nginx", "", ""),
        ("fluent/fluent-bit", "docker.io/fluent/fluent-bit", "", ""),
        ("fluent/fluent-bit:3.1@" + DIGEST, "docker.io/fluent/fluent-bit", "3.1", DIGEST),
        ("registry:5000/x", "registry:5000/x", "", ""),
        ("registry:5000/x:v1", "registry:5000/x", "v1", ""),
        ("registry:5000/x@" + DIGEST, "registry:5000/x", "", DIGEST),
        ("localhost/x", "localhost/x", "", ""),
        ("localhost:5000/team/x", "localhost:5000/team/x", "", ""),
        ("gcr.io/google-containers/pause:3.9", "gcr.io/google-containers/pause", "3.9", ""),
        ("ghcr.io/acme/api@" + DIGEST, "ghcr.io/acme/api", "", DIGEST),
        (
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/api",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/api",
            "",
            "",
        ),
        ("[::1]:5000/x", "[::1]:5000/x", "", ""),
        ("  nginx  ", "docker.io/library/nginx", "", ""),
    ],
)
def test_references_normalise_as_docker_does(written, repository, tag, digest):
    reference = parse_image(written)

    assert (reference.repository, reference.tag, reference.digest) == (repository, tag, digest)
    assert reference.pinned is bool(digest)


@pytest.mark.parametrize(
    "written",
    [
        "",
        "   ",
        "NGINX",
        "nginx:",
        "nginx@sha256:abc",
        "nginx@",
        "-x/y",
        "a//b",
        "x:tag/with/slash:1",
        "a" * 300,
    ],
)
def test_malformed_references_are_refused(written):
    with pytest.raises(InvalidImage):
        parse_image(written)


def test_a_release_image_that_is_not_a_reference_matches_only_itself():
    assert normalised_repository("Not An Image") == "not an image"
    assert normalised_repository("nginx:1.27") == "docker.io/library/nginx"
