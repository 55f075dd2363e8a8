"""Reading an AdmissionReview (`admission.k8s.io/v1`) as kube-apiserver sends it, and writing
the answer it expects back.

Only what the decision needs is read: the request's uid, operation, dryRun, namespace, the
object's kind and name, and the images of its pod template, wherever the kind keeps it.
Anything malformed is refused with `InvalidReview` naming the field, never a 500.
"""

from __future__ import annotations

from dataclasses import dataclass, field

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"

# Where each governed kind keeps its pod spec (the kinds the manifest's rules send).
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
# Before Kubernetes 1.22, `kubectl debug` sent the pods/ephemeralcontainers subresource as an
# object of its own kind holding only the list.
LEGACY_EPHEMERAL_KIND = "EphemeralContainers"
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
UID_MAX_LENGTH = 128


class InvalidReview(ValueError):
    """Not an AdmissionReview v1 request Signoff can answer; `field` names what is wrong."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class Container:
    """One container of the object: which list it is in, its name, its image as written."""

    list_name: str
    name: str
    image: str


@dataclass
class ReviewRequest:
    """What Signoff decides on, read from `request` of the AdmissionReview."""

    uid: str
    operation: str
    kind: str
    namespace: str
    name: str
    dry_run: bool
    user: str
    owner: str = ""  # Kind/name of the controller owning a pod, when one does
    containers: list[Container] = field(default_factory=list)
    previous_images: frozenset[str] = frozenset()

    @property
    def governed_kind(self) -> bool:
        return self.kind in POD_SPEC_PATHS or self.kind == LEGACY_EPHEMERAL_KIND

    @property
    def workload(self) -> str:
        """`Kind/name` for people: a pod made by a controller is named by that controller."""
        return self.owner or f"{self.kind}/{self.name or '(generated name)'}"

    @property
    def new_images(self) -> list[str]:
        """Images this request brings in, in order, once each: on UPDATE an image the object
        already ran (a scale, a label change) lets nothing new into the cluster."""
        seen: dict[str, None] = {}
        for container in self.containers:
            if container.image not in self.previous_images:
                seen.setdefault(container.image, None)
        return list(seen)


def read_review(body: object) -> ReviewRequest:
    """The request of an AdmissionReview v1 document; InvalidReview when it is not one."""
    if not isinstance(body, dict):
        raise InvalidReview("The body is not an AdmissionReview object.")
    if body.get("apiVersion") != API_VERSION or body.get("kind") != KIND:
        raise InvalidReview(
            f"Send apiVersion {API_VERSION} and kind {KIND} "
            '(admissionReviewVersions: ["v1"] in the webhook configuration).',
            "apiVersion",
        )
    request = body.get("request")
    if not isinstance(request, dict):
        raise InvalidReview("The AdmissionReview has no request.", "request")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid.strip() or len(uid) > UID_MAX_LENGTH:
        raise InvalidReview("request.uid is missing or not a short string.", "request.uid")
    kind = _mapping(request, "kind", "request.kind").get("kind")
    review = ReviewRequest(
        uid=uid,
        operation=_text(request, "operation", "request.operation"),
        kind=kind if isinstance(kind, str) else "",
        namespace=_text(request, "namespace", "request.namespace"),
        name=_text(request, "name", "request.name"),
        dry_run=_flag(request, "dryRun"),
        user=_text(_mapping(request, "userInfo", "request.userInfo"), "username", "userInfo"),
    )
    if review.operation in ("CREATE", "UPDATE") and review.governed_kind:
        obj = _mapping(request, "object", "request.object")
        review.containers = containers_of(obj, review.kind, "request.object")
        review.owner = _controller(obj)
        if review.operation == "UPDATE" and isinstance(request.get("oldObject"), dict):
            old = containers_of(request["oldObject"], review.kind, "request.oldObject")
            review.previous_images = frozenset(c.image for c in old)
        if not review.name:
            review.name = _text(_mapping(obj, "metadata", "object.metadata"), "name", "name")
    return review


def containers_of(obj: dict, kind: str, where: str) -> list[Container]:
    """Every container of the object's pod spec: init, regular and ephemeral."""
    spec, path = obj, where
    if kind != LEGACY_EPHEMERAL_KIND:
        for key in POD_SPEC_PATHS[kind]:
            path = f"{path}.{key}"
            spec = _mapping(spec, key, path)
    found = []
    for list_name in CONTAINER_LISTS:
        items = spec.get(list_name) or []
        if not isinstance(items, list):
            raise InvalidReview(f"{path}.{list_name} is not a list.", f"{path}.{list_name}")
        for index, item in enumerate(items):
            here = f"{path}.{list_name}[{index}]"
            if not isinstance(item, dict) or not isinstance(item.get("image", ""), str):
                raise InvalidReview(f"{here} is not a container with an image.", here)
            found.append(Container(list_name, str(item.get("name", "")), item.get("image", "")))
    return found


def _controller(obj: dict) -> str:
    metadata = obj.get("metadata")
    owners = metadata.get("ownerReferences") if isinstance(metadata, dict) else None
    for owner in owners if isinstance(owners, list) else []:
        if isinstance(owner, dict) and owner.get("controller") is True:
            return f"{owner.get('kind', '')}/{owner.get('name', '')}"
    return ""


def _mapping(data: dict, key: str, path: str) -> dict:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidReview(f"{path} is not an object.", path)
    return value


def _text(data: dict, key: str, path: str) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidReview(f"{path} is not a string.", path)
    return value


def _flag(data: dict, key: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise InvalidReview(f"request.{key} is not a boolean.", f"request.{key}")
    return value


def review_response(
    uid: str, *, allowed: bool, message: str = "", warnings: list[str] | None = None
) -> dict:
    """The AdmissionReview answer: allowed or a 403 with the message people will read in
    `kubectl` output and events."""
    response: dict = {"uid": uid, "allowed": allowed}
    if not allowed:
        response["status"] = {"code": 403, "reason": "Forbidden", "message": message}
    if warnings:
        response["warnings"] = warnings
    return {"apiVersion": API_VERSION, "kind": KIND, "response": response}
