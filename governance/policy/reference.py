"""What a policy's conditions see: every variable, with the value a typical release gives it.

`approvals.context.policy_context` builds the real thing for a release; this sample has the
same shape. The engine evaluates each new condition against it when a policy is published, so a
`when:` that gives a number or a string instead of true or false is refused at once, and the
README's context reference is this dictionary.
"""

from __future__ import annotations

# What `plan` holds for a release without a Terraform plan: nothing to tighten for.
NO_PLAN = {
    "present": False,
    "creates": 0,
    "updates": 0,
    "deletes": 0,
    "replaces": 0,
    "no_ops": 0,
    "sensitive": [],
    "world_open": [],
}
# What `incidents` holds for a service without any.
NO_INCIDENTS = {
    "open": 0,
    "open_blocking": 0,
    "last_7_days": dict.fromkeys(("P1", "P2", "P3", "P4", "P5", "unknown", "total"), 0),
    "last_30_days": dict.fromkeys(("P1", "P2", "P3", "P4", "P5", "unknown", "total"), 0),
}
_SEVERITY_COUNTS = {"P1": 0, "P2": 1, "P3": 0, "P4": 0, "P5": 0, "unknown": 0, "total": 1}

SAMPLE_CONTEXT: dict = {
    "release": {
        "version": "2.4.1",
        "image": "registry.example.com/payments-api",
        "digest": "sha256:" + "0" * 64,
        "standard_change": "",
    },
    "service": {
        "slug": "payments-api",
        "name": "Payments API",
        "tier": 1,
        "compliance_tags": ["SOX", "PCI"],
        "team": "payments",
        "teams": ["payments"],
        "vendor": "",
        "business_function": "payments",
    },
    "environment": {
        "slug": "production",
        "name": "Production",
        "risk": "high",
        "regulated": True,
        "platform": "kubernetes",
        "platforms": ["kubernetes", "aws"],
        "targets": [{"slug": "eu-west-1", "platform": "kubernetes"}],
    },
    "change": {
        "ref": "CHG0031337",
        "type": "normal",
        "state": "assess",
        "risk": "moderate",
        "impact": "medium",
    },
    "evidence": {
        "tests": {"status": "passed", "passed": 812, "failed": 0, "skipped": 3},
        "coverage": {"status": "passed", "percent": 87},
        "security_scan": {"status": "passed", "critical": 0, "high": 0, "medium": 2, "low": 5},
    },
    "incidents": {
        "open": 1,
        "open_blocking": 0,
        "last_7_days": dict(_SEVERITY_COUNTS),
        "last_30_days": dict(_SEVERITY_COUNTS),
    },
    "plan": dict(NO_PLAN),
}
