"""The compliance report written out: CSV lines (streamed) and a landscape A4 PDF (reportlab)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import datetime
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfgen import canvas
from reportlab.platypus import LongTable, Paragraph, SimpleDocTemplate, Spacer, TableStyle

from reporting.compliance.report import COLUMNS, ReportQuery, Row, Summary, stamp

# A spreadsheet runs a cell starting with one of these as a formula (CSV injection, OWASP).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    """The cell as text, with a leading apostrophe when a spreadsheet would read a formula."""
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


class _Echo:
    """A file-like object whose write returns the line, for streaming csv.writer output."""

    def write(self, value: str) -> str:
        return value


def csv_lines(batches: Iterable[list[Row]]) -> Iterator[str]:
    """The header, then one CSV line per row; one batch of releases in memory at a time."""
    writer = csv.writer(_Echo())
    yield writer.writerow(COLUMNS)
    for batch in batches:
        for row in batch:
            yield writer.writerow([safe_cell(value) for value in row.values()])


# --- PDF ---------------------------------------------------------------------------------------

STYLES = getSampleStyleSheet()
CELL = ParagraphStyle("cell", parent=STYLES["BodyText"], fontSize=6.5, leading=8)
HEAD = ParagraphStyle("head", parent=CELL, fontName="Helvetica-Bold", fontSize=7)
BODY = ParagraphStyle("body", parent=STYLES["BodyText"], fontSize=9, leading=11)

# The sixteen CSV columns folded into seven, so each stays readable on a landscape page.
PDF_COLUMNS = (
    ("Release", 46),
    ("Decisions", 72),
    ("Segregation of duties", 24),
    ("Evidence", 42),
    ("Exceptions", 36),
    ("Deployments", 35),
    ("Outcome", 22),
)


def _p(text: str, style: ParagraphStyle = CELL) -> Paragraph:
    # Paragraph reads a small markup language: what people typed is escaped, line breaks kept.
    return Paragraph(escape(text or "").replace("\n", "<br/>"), style)


def _lines(text: str, separator: str = " | ") -> str:
    return "\n".join(part for part in text.split(separator) if part)


def _pdf_cells(row: Row) -> list[Paragraph]:
    c = row.cells
    release = "\n".join(
        [
            f"{c['change_ref']}: {c['service']} {c['version']} to {c['environment']}",
            c["digest"],
            f"Requested {c['requested_at']} by {c['requester']}",
        ]
        + ([f"Triggered by {c['triggered_by']}"] if c["triggered_by"] else [])
    )
    evidence = "\n".join(
        [
            f"Required: {c['required_evidence'] or 'none'}",
            f"Present: {c['present_evidence'] or 'none'}",
        ]
        + ([f"Checks: {c['required_checks']}"] if c["required_checks"] else [])
    )
    return [
        _p(release),
        _p(_lines(c["decisions"]) or "none"),
        _p(_lines(c["sod_check"], "; ")),
        _p(evidence),
        _p(_lines(c["exceptions"], "; ") or "none"),
        _p(_lines(c["deployments"]) or "none"),
        _p(c["outcome"]),
    ]


def _summary(summary: Summary) -> list:
    outcomes = ", ".join(f"{name} {count}" for name, count in sorted(summary.by_outcome.items()))
    figures = [
        ("Releases", summary.releases),
        ("By outcome", outcomes or "none"),
        ("Unapproved deployments", summary.unapproved_deployments),
        ("Emergency changes", summary.emergency_changes),
        ("Passed without a required check", summary.passed_without_check),
        ("Segregation of duties failures", summary.sod_failures),
    ]
    table = LongTable(
        [[_p(label, HEAD), _p(str(value), CELL)] for label, value in figures],
        colWidths=[60 * mm, 150 * mm],
        hAlign="LEFT",
    )
    table.setStyle(_GRID)
    return [table]


_GRID = TableStyle(
    [
        ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#adb5bd")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]
)


def _rows_table(rows: list[Row]) -> LongTable:
    data = [[_p(name, HEAD) for name, _ in PDF_COLUMNS]]
    data += [_pdf_cells(row) for row in rows]
    if not rows:
        data.append([_p("No releases in this period."), *[""] * (len(PDF_COLUMNS) - 1)])
    table = LongTable(data, colWidths=[w * mm for _, w in PDF_COLUMNS], repeatRows=1)
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


class _NumberedCanvas(canvas.Canvas):
    """Writes "page X of Y" at the foot of every page: pages are kept until the total is known."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._pages: list[dict] = []

    def showPage(self) -> None:
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        total = len(self._pages)
        for state in self._pages:
            self.__dict__.update(state)
            self.setFont("Helvetica", 7)
            width, _ = self._pagesize
            self.drawRightString(width - 10 * mm, 6 * mm, f"page {self._pageNumber} of {total}")
            super().showPage()
        super().save()


def compliance_pdf(
    query: ReportQuery, rows: list[Row], summary: Summary, generated_by: str, generated_at: datetime
) -> bytes:
    """The PDF's bytes: title, period, who made it and when, the figures, then every row."""
    buffer = io.BytesIO()
    title = f"Compliance report: {query.framework}"
    document = SimpleDocTemplate(
        buffer,
        pagesize=landscape(A4),
        leftMargin=10 * mm,
        rightMargin=10 * mm,
        topMargin=10 * mm,
        bottomMargin=12 * mm,
        title=title,
        author="Signoff",
    )
    flow = [
        Paragraph(escape(title), STYLES["Title"]),
        _p(
            f"Framework {query.framework}; releases to regulated environments requested from "
            f"{query.start} to {query.end} (whole UTC days, inclusive).",
            BODY,
        ),
        _p(f"Generated {stamp(generated_at)} by {generated_by}.", BODY),
        Spacer(1, 3 * mm),
        *_summary(summary),
        Spacer(1, 4 * mm),
        _rows_table(rows),
    ]
    document.build(flow, canvasmaker=_NumberedCanvas)
    return buffer.getvalue()
