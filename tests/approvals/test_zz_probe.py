import json
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from governance import policy
from tests import factories


def test_probe(org, service, production, pipeline_bot, client, production_release):
    tok = factories.token_for(pipeline_bot)
    h = {"HTTP_AUTHORIZATION": f"Bearer {tok}"}
    body = {"service": "payments-api", "environment": "production", "version": "1.2.3",
            "artifact": {"image": "r/p", "digest": factories.digest()},
            "change": {"ref": "CHG1", "type": "normal", "title": "t"},
            "evidence": [{"kind": "tests", "status": "passed", "summary": {"passed": 10**30, "failed": 0}}]}
    r = client.post("/api/v1/releases/", json.dumps(body), content_type="application/json", **h)
    print("bigint", r.status_code, r.content[:300])
    r = client.post("/api/v1/releases/", json.dumps({"x": "a" * 2_000_000}), content_type="application/json", **h)
    print("big", r.status_code, r.content[:300])
    r = client.post("/api/v1/releases/", "[1,2]", content_type="application/json", **h)
    print("list", r.status_code, r.content[:300])
    r = client.post("/api/v1/releases/", json.dumps({**body, "evidence": [{"kind": "tests", "status": "passed"}, {"kind": "x y"}]}), content_type="application/json", **h)
    print("ev", r.status_code, r.content[:500])
    client.get(f"/api/v1/releases/{production_release.pk}/gate", **h)
    with CaptureQueriesContext(connection) as c:
        r = client.get(f"/api/v1/releases/{production_release.pk}/gate", **h)
    print("gate", r.status_code, r.json())
    for q in c.captured_queries:
        print(q["sql"][:200])
    for src in ['rules:\n  - id: a\n    when: environment.risk ==\n', 'rules:\n  - id: a\n    when: >\n      environment.risk == "x" &&\n      (service.tier == \n', 'rules:\n - id: b\n   when: foo.x == 1\n', 'rules:\n - id: b\n   whenn: true\n']:
        try:
            policy.parse(src)
        except policy.PolicyError as e:
            print("ERR", e)
    print(policy.evaluate('rules:\n - id: b\n   when: evidence.tests.failed == 0\n', {"evidence": {}, "release": {}, "service": {}, "environment": {}, "change": {}}))
