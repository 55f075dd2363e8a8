"""An evidence pack as a PDF (reportlab, A4), made from the same data as the JSON pack.

Every table repeats its header row on later pages; cells wrap; hashes and signatures are set
in a small monospace font, split so that a 64-character hash fits its column whole.
"""

from __future__ import annotations

import io
import json
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import LongTable, Paragraph, SimpleDocTemplate, Spacer, TableStyle

STYLES = getSampleStyleSheet()
CELL = ParagraphStyle("cell", parent=STYLES["BodyText"], fontSize=8, leading=10)
HEAD = ParagraphStyle("head", parent=CELL, fontName="Helvetica-Bold")
MONO = ParagraphStyle("mono", parent=CELL, fontName="Courier", fontSize=6, leading=7.5)
# Headings stay on the page of what follows them.
SECTION = ParagraphStyle(
    "section", parent=STYLES["Heading2"], spaceBefore=8, spaceAfter=4, keepWithNext=1
)
SUBSECTION = ParagraphStyle(
    "subsection", parent=STYLES["Heading4"], spaceBefore=4, spaceAfter=2, keepWithNext=1
)
MARGIN = 14 * mm
WIDTH = A4[0] - 2 * MARGIN
TABLE_STYLE = TableStyle(
    [
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e9ecef")),
        ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#adb5bd")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LEFTPADDING", (0, 0), (-1, -1), 3),
        ("RIGHTPADDING", (0, 0), (-1, -1), 3),
    ]
)


def _p(text, style: ParagraphStyle = CELL) -> Paragraph:
    # Paragraph reads a small markup language: stored text is escaped, line breaks kept.
    return Paragraph(escape("" if text is None else str(text)).replace("\n", "<br/>"), style)


def _when(value: str | None) -> str:
    """An ISO time from the pack as people read it (times are stored in UTC)."""
    if not value:
        return "-"
    return value[:19].replace("T", " ") + " UTC"


def _json(value) -> str:
    # Spaces after separators give long payloads places to wrap.
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def _table(headers: list[str], rows: list[list], widths: list[float]) -> LongTable:
    """A table of wrapped cells whose header row repeats on every page it spans."""
    total = sum(widths)
    body = [[_p(h, HEAD) for h in headers]]
    body += [[cell if isinstance(cell, Paragraph) else _p(cell) for cell in row] for row in rows]
    table = LongTable(body, colWidths=[WIDTH * w / total for w in widths], repeatRows=1)
    table.setStyle(TABLE_STYLE)
    return table


def _facts(pairs: list[tuple[str, object]]) -> LongTable:
    return _table(["Field", "Value"], [[name, value] for name, value in pairs], [1, 3])


def _section(title: str, *flowables, empty: str = "None.") -> list:
    content = [f for f in flowables if f is not None]
    return [Paragraph(escape(title), SECTION), *(content or [_p(empty)])]


def _release(pack: dict) -> list:
    release = pack["release"]
    pipeline = release["pipeline"]
    return _section(
        "Release",
        _facts(
            [
                ("Service", f"{release['service']['name']} ({release['service']['slug']})"),
                ("Environment", release["environment"]["slug"]),
                ("Version", release["version"]),
                ("Image", release["image"]),
                ("Digest", _p(release["digest"], MONO)),
                ("Requested by", release["requested_by"]),
                ("Triggered by", release["triggered_by"] or release["triggered_by_name"] or "-"),
                ("Pipeline", f"{pipeline['provider'] or '-'} {pipeline['run_url']}"),
                ("Requested at", _when(release["created_at"])),
                (
                    "Deployed at",
                    _when(release["deployed_at"]) if release["deployed_at"] else "not deployed",
                ),
            ]
        ),
    )


def _change(pack: dict) -> list:
    change = pack["change"]
    return _section(
        "Change record",
        _facts(
            [
                ("Reference", f"{change['ref']}: {change['title']}"),
                ("Type", change["type"]),
                ("Risk / impact", f"{change['risk']} / {change['impact']}"),
                ("Author", change["author"] or "-"),
                ("Status", change["state"]),
                ("Source", f"{change['source']} {change['external_url']}".strip()),
            ]
        ),
    )


def _approval(pack: dict) -> list:
    approval = pack["approval"]
    policy = approval["policy"]
    facts = _facts(
        [
            ("Status", approval["status"]),
            ("Policy", f"{policy['slug']} v{policy['version']}" if policy else "none"),
            ("Policy checksum", _p(policy["checksum"], MONO) if policy else "-"),
            (
                "Requested / expires",
                f"{_when(approval['requested_at'])} / {_when(approval['expires_at'])}",
            ),
            (
                "Decided / valid until",
                f"{_when(approval['decided_at'])} / {_when(approval['valid_until'])}",
            ),
            ("Dual control", "yes" if approval["dual_control"] else "no"),
            ("Retro review", "yes" if approval["retro_review"] else "no"),
        ]
    )
    rules = [[r.get("id"), r.get("description"), r.get("when")] for r in approval["matched_rules"]]
    flow = [facts, Paragraph("Policy rules that produced the plan", SUBSECTION)]
    flow.append(_table(["Rule", "Description", "When"], rules, [1, 2, 2]) if rules else _p("None."))
    return _section("Approval plan and policy", *flow)


def _evidence(pack: dict) -> list:
    rows = [
        [
            e["kind"],
            e["status"],
            _json(e["summary"]),
            e["url"],
            e["reported_by"],
            _when(e["created_at"]),
        ]
        for e in pack["evidence"]
    ]
    headers = ["Kind", "Status", "Summary", "URL", "Reported by", "Time"]
    table = _table(headers, rows, [1, 1, 2, 2, 1, 1.6]) if rows else None
    return _section("Evidence", table)


def _stages(pack: dict) -> list:
    flow = []
    for stage in pack["stages"]:
        title = (
            f"Stage {stage['position']}: {stage['name']} ({stage['status']}, "
            f"{stage['approval_count']}/{stage['required_count']} approvals"
            f"{', step-up required' if stage['step_up'] else ''})"
        )
        flow.append(Paragraph(escape(title), SUBSECTION))
        rows = [
            [
                d["approver"],
                d["on_behalf_of"] or "-",
                d["verdict"],
                d["rationale"],
                d["step_up_method"] or "-",
                d["channel"],
                _when(d["created_at"]),
                _when(d["revoked_at"]),
            ]
            for d in stage["decisions"]
        ]
        headers = [
            "Approver",
            "For",
            "Verdict",
            "Rationale",
            "Step-up",
            "Channel",
            "Time",
            "Revoked",
        ]
        widths = [1, 1, 0.9, 2.2, 0.8, 0.7, 1.5, 1.2]
        flow.append(_table(headers, rows, widths) if rows else _p("No decisions."))
    return _section("Stages and decisions", *flow)


def _brief(payload: dict) -> dict:
    # The frozen plan is shown whole above and in the ledger section; here it would repeat.
    return {key: value for key, value in payload.items() if key != "plan"}


def _gate(pack: dict) -> list:
    current = pack["gate"]["current"]
    reasons = "; ".join(current["reasons"]) or "-"
    flow = [_p(f"Current answer: {current['status']}. {reasons}")]
    rows = [
        [
            str(e["seq"]),
            _when(e["recorded_at"]),
            e["kind"],
            e["actor"],
            _p(_json(_brief(e["payload"])), MONO),
        ]
        for e in pack["gate"]["history"]
    ]
    if rows:
        flow.append(_table(["#", "Time", "Kind", "Actor", "Payload"], rows, [0.5, 1.6, 1.3, 1, 3]))
    return _section("Gate", *flow)


def _deployments(pack: dict) -> list:
    rows = [
        [
            d["status"],
            "yes" if d["approved"] else "NO (unapproved)",
            d["gate_status"],
            _p(d["digest"], MONO),
            d["reported_by"],
            _when(d["created_at"]),
        ]
        for d in pack["deployments"]
    ]
    headers = ["Status", "Approved", "Gate then", "Digest", "Reported by", "Time"]
    table = _table(headers, rows, [0.9, 1, 0.8, 3.2, 1, 1.5]) if rows else None
    return _section("Deployments", table)


def _exceptions(pack: dict) -> list:
    flow = []
    for item in pack["exceptions"]:
        review = item["retro_review"]
        flow.append(
            _facts(
                [
                    ("Kind", item["kind"]),
                    ("Declared by", item["declared_by"]),
                    ("Window", f"{_when(item['starts_at'])} to {_when(item['ends_at'])}"),
                    ("Justification", item["justification"]),
                    ("Incident / outage", item["incident"] or item["outage"]),
                    ("Controls", ", ".join(item["controls"]) + " " + item["control_notes"]),
                    ("Retro review", f"{review['outcome']} {review['reviewed_by'] or ''}".strip()),
                    ("Review notes", review["notes"] or "-"),
                ]
            )
        )
    return _section("Exceptions", *flow)


def _incidents(pack: dict) -> list:
    rows = [
        [
            f"{i['source']} {i['external_id']}",
            i["title"],
            i["priority"] or i["severity"] or "-",
            i["status"],
            _when(i["opened_at"]),
            _when(i["resolved_at"]),
        ]
        for i in pack["incidents"]
    ]
    headers = ["Incident", "Title", "Priority", "Status", "Opened", "Resolved"]
    table = _table(headers, rows, [1.2, 2.5, 0.7, 1, 1.5, 1.5]) if rows else None
    return _section("Incidents", table)


def _hashes(entry: dict) -> Paragraph:
    signature = entry["signature"]
    lines = [
        f"prev {entry['prev_hash']}",
        f"hash {entry['entry_hash']}",
        f"key  {entry['key_id']}",
        f"sig  {signature[:64]}",
        f"     {signature[64:]}",
    ]
    return Paragraph("<br/>".join(escape(line).replace(" ", "&nbsp;") for line in lines), MONO)


def _ledger(pack: dict) -> list:
    ledger = pack["ledger"]
    keys = "; ".join(f"{key_id}: {text}" for key_id, text in ledger["public_keys"].items())
    intro = _p(
        f"Entries about {' and '.join(ledger['subjects'])}, as /reports/ledger.jsonl writes "
        f"them. Public keys (base64, Ed25519): {keys}"
    )
    table = _ledger_table(ledger["entries"]) if ledger["entries"] else None
    return _section("Ledger entries", intro, table)


def _ledger_table(entries: list[dict]) -> LongTable:
    """Two rows an entry: what it records beside its chain fields, then its payload across."""
    body = [[_p(h, HEAD) for h in ("#", "Entry", "Chain (SHA-256, Ed25519)")]]
    style = list(TABLE_STYLE.getCommands())
    for entry in entries:
        what = f"{entry['recorded_at']}\n{entry['kind']} by {entry['actor']}\n{entry['subject']}"
        body.append([_p(str(entry["seq"])), _p(what), _hashes(entry)])
        body.append(["", _p("payload " + _json(entry["payload"]), MONO), ""])
        row = len(body) - 1
        style += [("SPAN", (1, row), (2, row)), ("SPAN", (0, row - 1), (0, row))]
    widths = [24, WIDTH - 24 - 262, 262]
    table = LongTable(body, colWidths=widths, repeatRows=1)
    table.setStyle(TableStyle(style))
    return table


def _footer(label: str):
    def draw(canvas, document) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 7.5)
        canvas.drawString(MARGIN, 8 * mm, label)
        canvas.drawRightString(A4[0] - MARGIN, 8 * mm, f"Page {document.page}")
        canvas.restoreState()

    return draw


def pack_pdf(pack: dict) -> bytes:
    """The PDF's bytes for a pack built by `reporting.evidence.pack.build_pack`."""
    release = pack["release"]
    title = (
        f"Evidence pack: {release['service']['name']} {release['version']} to "
        f"{release['environment']['name']}"
    )
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=MARGIN + 4 * mm,
        title=title,
        author="Signoff",
    )
    flow = [
        Paragraph(escape(title), STYLES["Title"]),
        _p(
            f"Release #{release['id']}. Generated {pack['generated_at']} by "
            f"{pack['generated_by']} ({pack['format']})."
        ),
        Spacer(1, 2 * mm),
    ]
    for part in (_release, _change, _approval, _evidence, _stages, _gate, _deployments):
        flow += part(pack)
    for part in (_exceptions, _incidents, _ledger):
        flow += part(pack)
    footer = _footer(f"Signoff evidence pack, release #{release['id']} ({release['digest'][:19]}…)")
    document.build(flow, onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()
