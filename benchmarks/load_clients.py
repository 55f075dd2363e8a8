"""The clients of `make load`: a pipeline and the people who decide its releases, over the
pipeline API on loopback, each request timed and recorded in a journal for the checks afterwards;
and a sampler of the lock waits PostgreSQL sees meanwhile."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import itertools
import json
import random
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from benchmarks.sampling import ActivitySampler

T = TypeVar("T")

HOST = "127.0.0.1"
REFUSED = frozenset({403, 409})  # a decision the service turned down: already decided, closed

# Approval patterns on the service stage (two distinct approvals of three eligible people),
# cycled through by the clients. "duplicate" and "race" are the concurrency checks.
PATTERNS = (
    "pair",  # two approvers at the same moment: both count
    "duplicate",  # one approver twice at the same moment, then another: counted once
    "race",  # all three at the same moment: two count, the third is refused
    "sequential",  # one, the gate, then another
    "pair",
    "duplicate",
    "race",
    "sequential",
    "pair",
    "reject",  # one approver rejects: the release is rejected and not deployed
)

# --- the organisation the clients act as ---


@dataclass(frozen=True)
class Person:
    username: str
    token: str


@dataclass(frozen=True)
class LoadService:
    slug: str
    tier: int
    approvers: tuple[Person, ...]


@dataclass(frozen=True)
class Org:
    environment: str
    pipeline: Person
    developers: tuple[str, ...]
    cab: tuple[Person, ...]
    services: tuple[LoadService, ...]


# --- HTTP client and what it records ---


@dataclass(frozen=True)
class Sample:
    endpoint: str
    status: int  # 0: no answer (connection refused, reset or timed out)
    seconds: float
    expected: bool


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict


@dataclass
class Journal:
    """Every request's timing, and what the clients were told, for the checks afterwards."""

    samples: list[Sample] = field(default_factory=list)
    # (release id, approver, HTTP status) of every decision sent.
    decisions: list[tuple[int, str, int]] = field(default_factory=list)
    # Idempotency-Key -> [(HTTP status, release id or None)] of every request sent with it.
    creations: dict[str, list[tuple[int, int | None]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    # (release id, HTTP status) of every deployment reported.
    deployments: list[tuple[int, int]] = field(default_factory=list)
    # What did not go as the scenario expects (a wrong count of 201s, a wrong gate answer).
    anomalies: list[str] = field(default_factory=list)
    # A few bodies of unexpected answers per (endpoint, status), to say what went wrong.
    examples: dict[tuple[str, int], list[str]] = field(default_factory=lambda: defaultdict(list))
    # Share of the machine's CPU time that was busy while the clients ran (anyone's processes).
    machine_busy: float = float("nan")
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, attribute: str, item: Any) -> None:
        with self.lock:
            getattr(self, attribute).append(item)


class Api:
    """The pipeline API over loopback, one connection per request (as pipelines' curl does),
    with a timeout; every request is timed and recorded, none raises. With several web
    replicas, requests go to each in turn, as a round-robin load balancer sends them."""

    EXPECTED = {
        "POST releases": {201},
        # A retry afterwards (200), or one of two sent at the same moment (either may win).
        "POST releases (same key)": {200, 201},
        "GET gate": {200},
        "POST decisions": {201, *REFUSED},
        "POST deployments": {201},
    }

    def __init__(self, ports: list[int], timeout: float, journal: Journal) -> None:
        self.ports, self.timeout, self.journal = ports, timeout, journal
        # next() on a count is atomic under the GIL: no lock needed between client threads.
        self._turn = itertools.count()

    def call(
        self,
        endpoint: str,
        method: str,
        path: str,
        token: str,
        body: dict | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        # What a TLS-terminating proxy adds: production settings redirect plain HTTP to HTTPS.
        sent = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "X-Forwarded-Proto": "https",
            **(headers or {}),
        }
        data = None if body is None else json.dumps(body).encode()
        if data is not None:
            sent["Content-Type"] = "application/json"
        port = self.ports[next(self._turn) % len(self.ports)]
        connection = http.client.HTTPConnection(HOST, port, timeout=self.timeout)
        started = time.perf_counter()
        try:
            connection.request(method, path, body=data, headers=sent)
            response = connection.getresponse()
            status, raw = response.status, response.read()
        except (OSError, http.client.HTTPException) as exc:
            status, raw = 0, f"{exc.__class__.__name__}: {exc}".encode()
        finally:
            connection.close()
        seconds = time.perf_counter() - started
        expected = status in self.EXPECTED[endpoint]
        self.journal.add("samples", Sample(endpoint, status, seconds, expected))
        if not expected:
            self._keep_example(endpoint, status, raw)
        try:
            parsed = json.loads(raw) if status else {}
        except ValueError:
            parsed = {}
        return Answer(status, parsed if isinstance(parsed, dict) else {})

    def _keep_example(self, endpoint: str, status: int, raw: bytes) -> None:
        with self.journal.lock:
            kept = self.journal.examples[(endpoint, status)]
            if len(kept) < 3:
                kept.append(raw[:500].decode(errors="replace"))


def parallel(calls: list[Callable[[], T]], timeout: float) -> list[T | None]:
    """Run `calls` at the same moment, one thread each, lined up on a barrier; results in order
    (None for one still running after `timeout`, which the per-request timeout prevents)."""
    barrier = threading.Barrier(len(calls))
    results: list[T | None] = [None] * len(calls)

    def run(index: int, call: Callable[[], T]) -> None:
        # A broken barrier starts the call anyway: a late thread makes the race milder, not wrong.
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=5)
        results[index] = call()

    threads = [
        threading.Thread(target=run, args=(i, call), daemon=True) for i, call in enumerate(calls)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return results


# --- one client: a pipeline and the people who decide its releases ---


@dataclass
class Client:
    index: int
    org: Org
    api: Api
    journal: Journal
    stop: threading.Event
    think: float
    timeout: float
    rng: random.Random

    def pause(self) -> None:
        """Think time between steps; returns early when the run is being stopped."""
        if self.think:
            self.stop.wait(self.think * self.rng.uniform(0.5, 1.5))

    def run(self, deadline: float, iterations: int) -> None:
        """Pipeline runs back to back until the deadline (a run in progress is finished)."""
        for iteration in range(iterations):
            if self.stop.is_set() or time.monotonic() >= deadline:
                return
            self.release_cycle(iteration)

    def release_cycle(self, iteration: int) -> None:
        """Request, gate, service approvals, (CAB,) gate, deployment."""
        service = self.org.services[(self.index + iteration) % len(self.org.services)]
        pattern = PATTERNS[(self.index * 7 + iteration) % len(PATTERNS)]
        key = f"load-{self.index}-{iteration}"
        body = self.release_body(service, key, iteration)
        release = self.request_release(key, body, retry=iteration % 4)
        if release is None:
            return
        digest = body["artifact"]["digest"]
        self.pause()
        self.expect_gate(release, "pending", "after the request")
        self.pause()
        if not self.service_stage(release, digest, service, pattern):
            return
        if service.tier == 1:
            self.expect_gate(release, "pending", "waiting for the CAB")
            self.pause()
            self.cab_stage(release, digest, both=iteration % 2 == 0)
            self.pause()
        self.expect_gate(release, "approved", "before deploying", digest=digest)
        self.pause()
        answer = self.api.call(
            "POST deployments",
            "POST",
            f"/api/v1/releases/{release}/deployments/",
            self.org.pipeline.token,
            body={"status": "succeeded", "digest": digest, "url": "https://ci.example.com/d"},
        )
        self.journal.add("deployments", (release, answer.status))
        if answer.status == 201 and not answer.body.get("deployment", {}).get("approved"):
            self.anomaly(release, f"deployment recorded as unapproved: {answer.body}")
        self.pause()

    def release_body(self, service: LoadService, key: str, iteration: int) -> dict:
        digest = "sha256:" + hashlib.sha256(f"{key}-{time.time()}".encode()).hexdigest()
        return {
            "service": service.slug,
            "environment": self.org.environment,
            "version": f"{iteration + 1}.{self.index}.0",
            "artifact": {"image": f"registry.example.com/load/{service.slug}", "digest": digest},
            "change": {"ref": f"CHG-{key}", "type": "normal", "title": "Load test release"},
            "pipeline": {
                "provider": "load",
                "run_url": f"https://ci.example.com/load/{key}",
                # The developer behind the run: a person who may never approve it.
                "triggered_by": self.org.developers[iteration % len(self.org.developers)],
            },
            # The production policy asks for passing tests with their counts (min_passed: 1).
            "evidence": [
                {"kind": "tests", "status": "passed", "summary": {"passed": 812, "failed": 0}}
            ],
        }

    def request_release(self, key: str, body: dict, retry: int) -> int | None:
        """POST the release; retry 1: a concurrent duplicate, 3: a retry afterwards, same key."""
        token = self.org.pipeline.token

        def post(endpoint: str) -> Callable[[], Answer]:
            headers = {"Idempotency-Key": key}
            return lambda: self.api.call(
                endpoint, "POST", "/api/v1/releases/", token, body, headers
            )

        if retry == 1:
            same = post("POST releases (same key)")
            answers = parallel([same, same], self.timeout + 5)
        else:
            answers = [post("POST releases")()]
            if retry == 3 and answers[0].status == 201:
                answers.append(post("POST releases (same key)")())
        ids = set()
        for answer in answers:
            status = answer.status if answer else 0
            release = answer.body.get("id") if answer else None
            with self.journal.lock:
                self.journal.creations[key].append((status, release))
            ids.add(release)
        statuses = sorted(a.status if a else 0 for a in answers)
        if statuses.count(201) != 1 or len(ids) != 1 or None in ids:
            self.anomaly(
                None, f"key {key}: statuses {statuses}, release ids {sorted(map(str, ids))}"
            )
            return None
        return ids.pop()

    def decide(self, release: int, person: Person, digest: str, verdict: str = "approve"):
        def send() -> Answer:
            answer = self.api.call(
                "POST decisions",
                "POST",
                f"/api/v1/releases/{release}/decisions/",
                person.token,
                body={
                    "decision": verdict,
                    "rationale": f"Load test: reviewed {digest[7:19]} ({verdict})",
                    "digest": digest,
                },
            )
            self.journal.add("decisions", (release, person.username, answer.status))
            return answer

        return send

    def decide_together(self, release: int, people: list[Person], digest: str) -> list[int]:
        """Decisions sent at the same moment; their HTTP statuses in order."""
        calls = [self.decide(release, person, digest) for person in people]
        return [a.status if a else 0 for a in parallel(calls, self.timeout + 5)]

    def service_stage(self, release: int, digest: str, service: LoadService, pattern: str) -> bool:
        """The service approvers' stage (two of three); False when the release was rejected."""
        first, second, third = service.approvers
        if pattern == "reject":
            self.check(release, "reject", [self.decide(release, first, digest, "reject")().status])
            self.pause()
            self.expect_gate(release, "rejected", "after a rejection")
            # A late approval of a rejected release changes nothing.
            late = self.decide(release, second, digest)().status
            if late not in REFUSED:
                self.anomaly(release, f"approval after rejection answered {late}")
            return False
        if pattern == "pair":
            statuses = self.decide_together(release, [first, second], digest)
            self.check(release, pattern, statuses, created=2)
        elif pattern == "duplicate":
            statuses = self.decide_together(release, [first, first], digest)
            self.check(release, pattern, statuses, created=1)
            self.pause()
            self.check(release, pattern, [self.decide(release, second, digest)().status])
        elif pattern == "race":
            statuses = self.decide_together(release, [first, second, third], digest)
            self.check(release, pattern, statuses, created=2)
        else:
            self.check(release, pattern, [self.decide(release, first, digest)().status])
            self.pause()
            self.expect_gate(release, "pending", "after one of two approvals")
            self.pause()
            self.check(release, pattern, [self.decide(release, second, digest)().status])
        self.pause()
        return True

    def cab_stage(self, release: int, digest: str, both: bool) -> None:
        """One CAB approval needed: sometimes both members at once, and only one counts."""
        people = list(self.org.cab) if both else [self.org.cab[self.index % len(self.org.cab)]]
        self.check(release, "cab", self.decide_together(release, people, digest), created=1)

    def check(self, release: int, step: str, statuses: list[int], created: int = 1) -> None:
        """Exactly `created` decisions accepted (201), every other one refused (403/409)."""
        refused = sum(status in REFUSED for status in statuses)
        if statuses.count(201) != created or refused != len(statuses) - created:
            self.anomaly(
                release, f"{step}: decisions answered {statuses}, {created} x 201 expected"
            )

    def expect_gate(self, release: int, status: str, when: str, digest: str | None = None) -> None:
        path = f"/api/v1/releases/{release}/gate" + (f"?digest={digest}" if digest else "")
        answer = self.api.call("GET gate", "GET", path, self.org.pipeline.token)
        if answer.status == 200 and answer.body.get("status") != status:
            reasons = "; ".join(answer.body.get("reasons", []))[:300]
            self.anomaly(release, f"gate {when}: {answer.body.get('status')} ({reasons})")

    def anomaly(self, release: int | None, message: str) -> None:
        self.journal.add("anomalies", f"release {release}: {message}" if release else message)


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine since boot, from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def ramp_up(args: argparse.Namespace) -> float:
    """Seconds over which the clients start: one second, plus two think times when they pause
    (their steps then spread out on their own), at most a quarter of the run."""
    return min(args.duration / 4, 1.0 + 2 * args.think)


def run_clients(
    args: argparse.Namespace, org: Org, ports: list[int], journal: Journal
) -> tuple[float, float]:
    """N clients for the duration; the wall-clock seconds the load lasted, and the CPU seconds
    the clients themselves used (they share the machine's cores with the servers)."""
    api = Api(ports, args.timeout, journal)
    stop = threading.Event()
    cpu_started = time.process_time()
    machine_started = cpu_times()
    started = time.monotonic()
    deadline = started + args.duration
    clients = [
        Client(i, org, api, journal, stop, args.think, args.timeout, random.Random(i))
        for i in range(args.clients)
    ]

    ramp = ramp_up(args)

    def start(client: Client) -> None:
        # Starts spread over the ramp-up: 50 release requests at the same instant would measure
        # one synchronised burst, not the steady load.
        stop.wait(ramp * client.index / args.clients)
        client.run(deadline, args.iterations)

    threads = [
        threading.Thread(target=start, args=(c,), name=f"client-{c.index}", daemon=True)
        for c in clients
    ]
    for thread in threads:
        thread.start()
    # A cycle in progress at the deadline is finished; each of its requests is bounded by the
    # timeout, so this bound is never reached unless something hangs.
    hard_stop = deadline + 20 * args.timeout
    try:
        for thread in threads:
            while thread.is_alive() and time.monotonic() < hard_stop:
                thread.join(0.5)  # short joins keep Ctrl-C responsive
    finally:
        stop.set()
    stuck = [t.name for t in threads if t.is_alive()]
    if stuck:
        journal.add("anomalies", f"clients still running at the hard stop: {', '.join(stuck)}")
    busy, total = (now - then for now, then in zip(cpu_times(), machine_started, strict=True))
    journal.machine_busy = busy / total if total else float("nan")
    return time.monotonic() - started, time.process_time() - cpu_started


class LockSampler(ActivitySampler):
    """Which tables sessions of the load database wait on for a lock, sampled once a second
    from pg_stat_activity while the clients run: the figures say where requests queue."""

    QUERY = (
        "SELECT query FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
    )
    TABLE = re.compile(r'(?:FROM|INTO|UPDATE)\s+"(\w+)"')

    name = "lock-sampler"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.waits: Counter = Counter()

    def sample(self, connection) -> None:
        for (query,) in connection.execute(self.QUERY).fetchall():
            found = self.TABLE.search(query or "")
            self.waits[found[1] if found else "other"] += 1

    def summary(self) -> str:
        """E.g. `governance_ledgerhead` 2.7 sessions waiting on average (of 60 samples)."""
        if self.error:
            return f"not sampled ({self.error})"
        if not self.waits:
            return f"none in {self.samples} samples"
        parts = [f"`{table}` {n / self.samples:.1f}" for table, n in self.waits.most_common()]
        return f"{', '.join(parts)} (mean sessions waiting, {self.samples} samples)"
