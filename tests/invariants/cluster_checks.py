"""Invariant 19, checked after every step: a cluster runs only what was approved for its
environment.

What each review sent and what the webhook answered only the sending step sees; it keeps them
in `Reviews` (on the model's `Record`, as `record.admission`), and they are judged here against
the gate's answers (`answers`, which `checks.check_gate` has already held to the oracle), the
emergency exceptions as `oracle.Holds` reads them, the ledger and the Admission rows. None of
the product's admission code is used: which release an image names is worked out from the
model's own releases.

- An image of a governed namespace is admitted exactly when it is pinned by digest and a release
  of the cluster's environment names that digest and repository, and the gate approves it now,
  or its change holds an emergency exception in force and it was not rejected (then with a
  warning, and its Admission row flagged emergency). Anything else is allowed untouched.
- A review never changes approval state (it writes ledger entries and Admission rows only), and
  a dry run, or an answer given again from the same state, writes nothing.
- Every denial that is not a dry run has exactly one `admission.denied` entry for its uid; every
  admission entry and Admission row written in a step comes from a review of that step that let
  its release in; a release's first row in a cluster has its `admission.admitted` entry.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from django.db.models import Q

from approvals.admission.models import Admission
from approvals.models import Release
from governance.models import LedgerEntry
from tests.invariants.checks import Record, Requests, require
from tests.invariants.oracle import World

# The only tables a review may write; a dry run writes none.
MAY_WRITE = {LedgerEntry._meta.db_table, Admission._meta.db_table}


@dataclass(frozen=True)
class Image:
    """An image as the model wrote it into a pod spec, and what it means: the repository as
    the model's releases spell it, and the digest it is pinned by (None when by tag only)."""

    written: str
    repository: str
    digest: str | None


@dataclass
class Cluster:
    """A registered cluster as the model registered it."""

    slug: str
    pk: int
    environment_id: int
    namespaces: tuple[str, ...]
    token: str


@dataclass
class Sent:
    """One AdmissionReview a step sent, and the webhook's answer."""

    uid: str
    cluster: str
    namespace: str
    new: list[Image]  # the images the request brings in (an UPDATE's old ones left out)
    dry_run: bool
    allowed: bool = False
    warnings: list[str] = field(default_factory=list)
    message: str = ""
    changed: list[str] = field(default_factory=list)  # tables the call wrote
    again: bool = False  # the same review sent at once again, from the same state


@dataclass
class Reviews:
    """The model's clusters, the reviews of the step not judged yet, and how far it checked."""

    clusters: dict[str, Cluster] = field(default_factory=dict)
    sent: list[Sent] = field(default_factory=list)
    denied: set[str] = field(default_factory=set)  # uids ever denied outside a dry run
    seen_seq: int = 0  # ledger entries judged
    seen_admission: int = 0  # Admission rows judged


@dataclass
class Verdict:
    """What the rules say of one image: admitted, and whether only an emergency lets it in."""

    admitted: bool
    why: str
    by: list[Release] = field(default_factory=list)  # releases that let it in
    emergency_only: bool = False  # none of them is approved: an exception lets it in
    excepted: bool = False  # one of them is inside an emergency exception


def repository(name: str) -> str:
    """A repository as Docker names it in full (the README's rule): a first component without a
    dot or a port that is not localhost is no registry, so the image is on Docker Hub, where a
    repository without a namespace is under library/."""
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        domain, path = first, rest
    else:
        domain, path = "docker.io", name
    if domain == "index.docker.io":
        domain = "docker.io"
    if domain == "docker.io" and "/" not in path:
        path = f"library/{path}"
    return f"{domain}/{path}"


def check_clusters(
    world: World, record: Record, requests: Requests, answers: dict[int, str], *, wrote: bool
) -> None:
    """Invariant 19 after every step (`wrote`: whether the step wrote anything)."""
    reviews: Reviews = record.admission
    sent, reviews.sent = reviews.sent, []
    admitted: list[tuple[Sent, Verdict]] = []
    first: dict[str, Sent] = {}
    for review in sent:
        verdicts = check_answer(world, requests, answers, reviews, review)
        if review.again:
            was = first[review.uid]
            require(
                (review.allowed, review.warnings, review.message)
                == (was.allowed, was.warnings, was.message),
                19,
                f"review {review.uid} sent again from the same state was answered "
                f"allowed={review.allowed} {review.message!r}, first allowed={was.allowed} "
                f"{was.message!r}",
            )
        first.setdefault(review.uid, review)
        if review.allowed and not review.dry_run:
            admitted.extend((review, v) for v in verdicts)
    if wrote or sent:
        check_records(world, requests, reviews, sent, admitted)


def expected(
    world: World, requests: Requests, answers: dict[int, str], cluster: Cluster, image: Image
) -> Verdict:
    """What the rules say of `image` in `cluster` now, from the model's releases."""
    if image.digest is None:
        return Verdict(False, f"{image.written} is not pinned by digest")
    releases = [
        r
        for r in requests.releases.values()
        if r.environment_id == cluster.environment_id
        and r.digest == image.digest
        and repository(r.image) == repository(image.repository)
    ]
    if not releases:
        return Verdict(False, f"no release of this environment names {image.written}")
    approved = [r for r in releases if answers.get(r.pk) == "approved"]
    excepted = [
        r
        for r in releases
        if world.held_back.excepted(r.change, world.now) and answers.get(r.pk) != "rejected"
    ]
    gates = ", ".join(f"#{r.pk} {answers.get(r.pk)}" for r in releases)
    inside = f" (#{', #'.join(str(r.pk) for r in excepted)} inside an emergency exception)"
    return Verdict(
        bool(approved or excepted),
        f"{image.written}: release {gates}{inside if excepted else ''}",
        by=approved or excepted,
        emergency_only=not approved and bool(excepted),
        excepted=bool(excepted),
    )


def check_answer(
    world: World, requests: Requests, answers: dict[int, str], reviews: Reviews, review: Sent
) -> list[Verdict]:
    """The webhook's answer to one review is what the rules say, and it wrote only what it may;
    returns the verdicts of the images it brought in (none when it was not looked at)."""
    cluster = reviews.clusters[review.cluster]
    where = f"review {review.uid} in {review.cluster}/{review.namespace}"
    require(
        not review.dry_run or not review.changed,
        19,
        f"{where} is a dry run but wrote {review.changed}",
    )
    require(
        set(review.changed) <= MAY_WRITE,
        19,
        f"{where} changed approval state: {review.changed}",
    )
    require(
        not review.again or not review.changed,
        19,
        f"{where} sent again from the same state wrote {review.changed}",
    )
    if review.namespace not in cluster.namespaces or not review.new:
        require(
            review.allowed and not review.warnings and not review.changed,
            19,
            f"{where} brings in no image to check, yet was answered allowed={review.allowed} "
            f"{review.warnings} and wrote {review.changed}",
        )
        return []
    verdicts = [expected(world, requests, answers, cluster, image) for image in review.new]
    allowed = all(v.admitted for v in verdicts)
    require(
        review.allowed == allowed,
        19,
        f"{where} was {'admitted' if review.allowed else 'denied: ' + review.message}; the "
        f"rules {'admit' if allowed else 'deny'} it: " + "; ".join(v.why for v in verdicts),
    )
    if allowed:
        require(
            bool(review.warnings) >= any(v.emergency_only for v in verdicts),
            19,
            f"{where} was let in by an emergency exception without a warning",
        )
        require(
            bool(review.warnings) <= any(v.excepted for v in verdicts),
            19,
            f"{where} warns {review.warnings} with no emergency exception in force",
        )
    elif not review.dry_run:
        reviews.denied.add(review.uid)
    return verdicts


def check_records(
    world: World,
    requests: Requests,
    reviews: Reviews,
    sent: list[Sent],
    admitted: list[tuple[Sent, Verdict]],
) -> None:
    """The ledger's admission entries and the Admission rows written since the last step come
    from this step's reviews, and each denial is ledgered once per uid."""
    slugs = {c.pk: c.slug for c in reviews.clusters.values()}
    let_in = {(s.cluster, r.pk) for s, v in admitted for r in v.by}
    emergency = {(s.cluster, r.pk) for s, v in admitted if v.emergency_only for r in v.by}
    entries = list(
        LedgerEntry.objects.filter(seq__gt=reviews.seen_seq, kind__startswith="admission.")
        .filter(subject__in=[f"cluster:{slug}" for slug in slugs.values()])
        .order_by("seq")
        .values_list("seq", "kind", "subject", "payload")
    )
    uids = {s.uid for s in sent if not s.dry_run}
    for seq, kind, subject, payload in entries:
        slug = subject.removeprefix("cluster:")
        if kind == "admission.denied":
            require(
                payload.get("uid") in uids and payload["uid"] in reviews.denied,
                19,
                f"ledger #{seq} denies {payload.get('uid')} in {slug}: no review of this step "
                "was denied with that uid",
            )
        else:
            require(
                (slug, payload.get("release")) in let_in,
                19,
                f"ledger #{seq} admits release #{payload.get('release')} into {slug}: no "
                "review of this step let it in",
            )
    check_denials_once(reviews, uids)
    touched = check_rows(world, requests, reviews, slugs, let_in, emergency, admitted)
    check_first_admissions(reviews, slugs, touched, entries)
    reviews.seen_seq = max([reviews.seen_seq, *(e[0] for e in entries)])


def check_denials_once(reviews: Reviews, uids: set[str]) -> None:
    """Each uid sent in this step (outside a dry run) has one denial entry if it was ever
    denied, none otherwise: a replayed denial is not ledgered again."""
    if not uids:
        return
    counted = Counter(
        LedgerEntry.objects.filter(kind="admission.denied", payload__uid__in=sorted(uids))
        .values_list("payload__uid", flat=True)
        .order_by()
    )
    for uid in uids:
        want = 1 if uid in reviews.denied else 0
        require(
            counted[uid] == want,
            19,
            f"review {uid} has {counted[uid]} admission.denied entries, not {want}",
        )


def check_rows(
    world: World,
    requests: Requests,
    reviews: Reviews,
    slugs: dict[int, str],
    let_in: set[tuple[str, int]],
    emergency: set[tuple[str, int]],
    admitted: list[tuple[Sent, Verdict]],
) -> list[Admission]:
    """Rows touched now are releases let in now, with their digest, flagged emergency when
    only an exception let them in; every image let in touched a row. Returns the rows."""
    touched = list(
        Admission.objects.filter(cluster_id__in=slugs).filter(
            Q(last_admitted_at=world.now) | Q(pk__gt=reviews.seen_admission)
        )
    )
    rows = {(slugs[a.cluster_id], a.release_id): a for a in touched}
    for (slug, release), row in rows.items():
        where = f"the Admission of release #{release} into {slug}"
        require((slug, release) in let_in, 19, f"{where} was written by no review letting it in")
        require(row.last_admitted_at == world.now, 19, f"{where} is new but dated before now")
        require(
            row.digest == requests.releases[release].digest,
            19,
            f"{where} records {row.digest}, not its release's digest",
        )
        require(
            row.emergency or (slug, release) not in emergency,
            19,
            f"{where} was let in by an emergency exception but is not flagged emergency",
        )
    for review, verdict in admitted:
        require(
            any((review.cluster, r.pk) in rows for r in verdict.by),
            19,
            f"review {review.uid} let {verdict.why} into {review.cluster}, with no Admission row",
        )
    return touched


def check_first_admissions(
    reviews: Reviews, slugs: dict[int, str], touched: list[Admission], entries: list[tuple]
) -> None:
    """A release's first row in a cluster comes with its admission.admitted entry."""
    ledgered = {
        (subject.removeprefix("cluster:"), payload.get("release"))
        for _, kind, subject, payload in entries
        if kind == "admission.admitted"
    }
    for row in touched:
        if row.pk > reviews.seen_admission:
            key = (slugs[row.cluster_id], row.release_id)
            require(
                key in ledgered,
                19,
                f"release #{row.release_id} was first admitted into {key[0]} with no "
                "admission.admitted entry",
            )
            reviews.seen_admission = max(reviews.seen_admission, row.pk)
