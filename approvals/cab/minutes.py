"""A meeting's minutes as a PDF (reportlab): who attended, the quorum, and every item's
outcome with its minutes, who recorded it and when."""

from __future__ import annotations

import io
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import LongTable, Paragraph, SimpleDocTemplate, Spacer, TableStyle

from changes.cab.models import CabMeeting

STYLES = getSampleStyleSheet()
CELL = ParagraphStyle("cell", parent=STYLES["BodyText"], fontSize=8.5, leading=10.5)
HEAD = ParagraphStyle("head", parent=CELL, fontName="Helvetica-Bold")


def _p(text: str, style: ParagraphStyle = CELL) -> Paragraph:
    # Paragraph reads a small markup language: what people typed is escaped, line breaks kept.
    return Paragraph(escape(text or "").replace("\n", "<br/>"), style)


def _names(people) -> str:
    return ", ".join(person.display_name for person in people) or "nobody"


def _header(meeting: CabMeeting) -> list:
    zone = meeting.time_zone
    start, end = meeting.local_start, meeting.local_end
    attendees = list(meeting.attendees.all())
    quorum = "met" if len(attendees) >= meeting.quorum else "not met"
    lines = [
        f"{start:%A %d %B %Y, %H:%M} to {end:%H:%M} ({zone}); "
        f"status: {meeting.get_status_display().lower()}.",
        f"Chair: {meeting.chair.display_name if meeting.chair else 'none'}. "
        f"Quorum {meeting.quorum}, {len(attendees)} present: {quorum}.",
        f"Present: {_names(attendees)}.",
        f"Members: {_names(meeting.members.all())}.",
    ]
    if meeting.opened_at:
        closed = meeting.closed_at.astimezone(meeting.zone) if meeting.closed_at else None
        opened = meeting.opened_at.astimezone(meeting.zone)
        lines.append(f"Opened {opened:%H:%M}" + (f", closed {closed:%H:%M}." if closed else "."))
    flow = [Paragraph(escape(f"CAB minutes: {meeting.title}"), STYLES["Title"])]
    flow += [_p(line, STYLES["BodyText"]) for line in lines]
    return flow


def _items_table(meeting: CabMeeting) -> LongTable:
    rows = [[_p(h, HEAD) for h in ("#", "Item", "Outcome", "Minutes", "Recorded")]]
    for number, item in enumerate(meeting.items.all(), start=1):
        recorded = ""
        if item.recorded_at:
            when = item.recorded_at.astimezone(meeting.zone)
            recorded = f"{item.recorded_by.display_name}, {when:%Y-%m-%d %H:%M}"
        rows.append(
            [
                _p(str(number)),
                _p(f"{item.title}\n{item.get_kind_display()}"),
                _p(item.get_outcome_display() if item.outcome else "not recorded"),
                _p(item.minutes),
                _p(recorded),
            ]
        )
    table = LongTable(rows, colWidths=[8 * mm, 55 * mm, 27 * mm, 60 * mm, 32 * mm], repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e9ecef")),
                ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#adb5bd")),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    return table


def minutes_pdf(meeting: CabMeeting) -> bytes:
    """The PDF's bytes; `meeting` comes with its people and items loaded (load_meeting)."""
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=14 * mm,
        rightMargin=14 * mm,
        topMargin=14 * mm,
        bottomMargin=14 * mm,
        title=f"CAB minutes: {meeting.title}",
        author="Signoff",
    )
    flow = [*_header(meeting), Spacer(1, 4 * mm), _items_table(meeting)]
    if meeting.notes:
        flow += [Spacer(1, 4 * mm), _p("General minutes", HEAD), _p(meeting.notes)]
    document.build(flow)
    return buffer.getvalue()
