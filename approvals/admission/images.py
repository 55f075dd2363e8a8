"""Container image references, read and normalised the way Docker and containerd do.

A pod may name the same repository several ways (`nginx`, `docker.io/library/nginx`,
`index.docker.io/library/nginx`); a release names it once, however its pipeline spelled it.
Both sides are normalised before they are compared, following the grammar of
`github.com/distribution/reference` (`ParseNormalizedNamed`): a first path component without a
dot or a colon that is not `localhost` is not a registry, so the image is on Docker Hub, and a
Docker Hub repository without a namespace lives under `library/`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_NAMESPACE = "library"
NAME_TOTAL_LENGTH_MAX = 255

# distribution/reference's regular expressions, spelled out piece by piece.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_PATH = rf"{_COMPONENT}(?:/{_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
REFERENCE = re.compile(
    rf"^(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_PATH})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$"
)
SHA256_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class InvalidImage(ValueError):
    """Not an image reference a container runtime would pull; the message says why."""


@dataclass(frozen=True)
class ImageReference:
    """An image as written in a pod spec, with its repository normalised."""

    written: str
    repository: str  # e.g. docker.io/library/nginx
    tag: str  # "" when none was given
    digest: str  # "" when the image is not pinned

    @property
    def pinned(self) -> bool:
        return bool(self.digest)


def split_domain(name: str) -> tuple[str, str]:
    """(registry, path) as Docker splits a name: the registry is the first component only when
    it looks like a host (a dot, a port, `localhost`, or upper-case letters, which no path may
    hold)."""
    first, slash, rest = name.partition("/")
    looks_like_host = any(c in first for c in ".:") or first == "localhost"
    if not slash or not (looks_like_host or first.lower() != first):
        domain, path = DEFAULT_DOMAIN, name
    else:
        domain, path = first, rest
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = f"{OFFICIAL_NAMESPACE}/{path}"
    return domain, path


def parse_image(written: str) -> ImageReference:
    """Read `written` (`nginx:1.27@sha256:...`) into its normalised repository, tag and digest."""
    text = written.strip() if isinstance(written, str) else ""
    if not text:
        raise InvalidImage("An image reference is empty.")
    name, at, digest = text.partition("@")
    tag, tagged = "", False
    # A colon after the last slash starts the tag; one before it is a registry's port.
    head, colon, tail = name.rpartition(":")
    if colon and "/" not in tail:
        name, tag, tagged = head, tail, True
    domain, path = split_domain(name)
    full = f"{domain}/{path}"
    rebuilt = full + (f":{tag}" if tagged else "") + (f"@{digest}" if at else "")
    if not REFERENCE.match(rebuilt) or len(full) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidImage(
            f"{written!r} is not a valid image reference (repository names are lower-case, "
            "digests are algorithm:hex)."
        )
    return ImageReference(written=text, repository=full, tag=tag, digest=digest)


def normalised_repository(image: str) -> str:
    """The repository a release's `image` names, normalised; the text itself (lower-cased)
    when it is not a valid reference, so a malformed record still matches only itself."""
    try:
        return parse_image(image).repository
    except InvalidImage:
        return image.strip().lower()
