"""The auditors' exports in the OpenAPI schema.

They are plain Django views (streamed CSV, JSON Lines, PDF), which drf-spectacular does not see;
this post-processing hook adds them, so `/api/docs/` lists every path a script may call with a
token (DESIGN.md, "Public interface").
"""

from __future__ import annotations

TAG = "reports"
AUTH = [{"bearerAuth": []}, {"cookieAuth": []}]
ERRORS = {
    "401": {"description": "No session and no valid bearer token."},
    "403": {"description": "Not an auditor (administrators are not auditors)."},
}


def _date(name: str, description: str) -> dict:
    return {
        "name": name,
        "in": "query",
        "required": True,
        "description": description,
        "schema": {"type": "string", "format": "date"},
    }


def _id(description: str) -> dict:
    return {
        "name": "id",
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "integer"},
    }


def _file(media_type: str, description: str) -> dict:
    schema = {"type": "string", "format": "binary"}
    return {"200": {"description": description, "content": {media_type: {"schema": schema}}}}


COMPLIANCE_PARAMETERS = [
    {
        "name": "framework",
        "in": "query",
        "required": True,
        "description": "A compliance tag of the services, any case: sox, pci, hipaa, gdpr, "
        "iso27001, soc2.",
        "schema": {"type": "string"},
    },
    _date("from", "First UTC day of the period (requested at), included."),
    _date("to", "Last UTC day of the period, included."),
]
QUEUED = {
    "202": {
        "description": "Longer than 31 days: written in the background. The answer names the "
        "export's status URL and download URL.",
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
    "400": {"description": "Unknown framework, a bad date, or from after to."},
}


def _operation(summary: str, responses: dict, parameters: list | None = None) -> dict:
    return {
        "get": {
            "operationId": "reports_" + summary.lower().replace(" ", "_").replace(",", ""),
            "summary": summary,
            "tags": [TAG],
            "security": AUTH,
            "parameters": parameters or [],
            "responses": {**responses, **ERRORS},
        }
    }


PATHS = {
    "/reports/compliance.csv": _operation(
        "Compliance report CSV",
        {**_file("text/csv", "One row per release, streamed."), **QUEUED},
        COMPLIANCE_PARAMETERS,
    ),
    "/reports/compliance.pdf": _operation(
        "Compliance report PDF",
        {**_file("application/pdf", "Summary figures, then one row per release."), **QUEUED},
        COMPLIANCE_PARAMETERS,
    ),
    "/reports/exports/{id}/": _operation(
        "Background export status",
        {
            "200": {
                "description": "Status and progress (JSON with a token, a page in a browser).",
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            "404": {"description": "No such export of yours."},
        },
        [_id("The export's id.")],
    ),
    "/reports/exports/{id}/download": _operation(
        "Background export download",
        {
            **_file("application/octet-stream", "The CSV or PDF."),
            "404": {"description": "No such export of yours."},
            "409": {"description": "Not finished yet."},
        },
        [_id("The export's id.")],
    ),
    "/reports/releases/{id}/evidence.json": _operation(
        "Evidence pack JSON",
        {
            "200": {
                "description": "Everything about one release, with its signed ledger entries.",
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            "404": {"description": "No such release in your scope."},
        },
        [_id("The release's id.")],
    ),
    "/reports/releases/{id}/evidence.pdf": _operation(
        "Evidence pack PDF",
        {
            **_file("application/pdf", "The evidence pack as A4."),
            "404": {"description": "No such release in your scope."},
        },
        [_id("The release's id.")],
    ),
    "/reports/ledger.jsonl": _operation(
        "Ledger export",
        _file(
            "application/x-ndjson",
            "A header line with the public keys, then one signed entry a line, oldest first "
            "(auditors of the whole organisation).",
        ),
    ),
    "/reports/ledger/public-key.pem": _operation(
        "Ledger public keys",
        _file("application/x-pem-file", "The current Ed25519 public key, then retired ones."),
    ),
    "/reports/ledger/verify_ledger.py": _operation(
        "Offline ledger verifier",
        _file("text/x-python", "tools/verify_ledger.py, self-contained."),
    ),
}


def add_report_paths(result: dict, generator, request, public) -> dict:
    """drf-spectacular POSTPROCESSING_HOOKS entry: the report paths and their tag."""
    result.setdefault("paths", {}).update(PATHS)
    tags = result.setdefault("tags", [])
    if not any(tag.get("name") == TAG for tag in tags):
        tags.append({"name": TAG, "description": "Auditors' exports (session or bearer token)."})
    return result
