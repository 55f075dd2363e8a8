"""The quarterly review and the feedback by rule as CSV.

Both are small (a quarter's exceptions, a policy's rules), so they are written whole rather than
streamed. Cells people typed (notes, comments) are guarded against spreadsheet formulas.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import date

from django.http import HttpResponse

from reporting.compliance.formats import safe_cell
from reporting.reviews.feedback import RuleFeedback, csv_rows
from reporting.reviews.models import QuarterlyReview

# Words first for people; the codes at the end stay stable for scripts.
REVIEW_HEADER = [
    "kind",
    "title",
    "service",
    "occurred_at",
    "detail",
    "involved",
    "outcome",
    "note",
    "decided_by",
    "decided_at",
    "kind_code",
    "outcome_code",
    "source_id",
]


def review_rows(review: QuarterlyReview) -> Iterator[list[str]]:
    yield REVIEW_HEADER
    items = review.items.select_related("service", "decided_by").order_by("kind", "occurred_at")
    for item in items:
        yield [
            safe_cell(value)
            for value in (
                item.get_kind_display(),
                item.title,
                item.service.name if item.service else "",
                item.occurred_at.isoformat(),
                item.detail,
                item.involved_names,
                item.get_outcome_display(),
                item.note,
                item.decided_by.username if item.decided_by else "",
                item.decided_at.isoformat() if item.decided_at else "",
                item.kind,
                item.outcome,
                item.source_id,
            )
        ]


def csv_response(rows, filename: str) -> HttpResponse:
    response = HttpResponse(content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    csv.writer(response).writerows(rows)
    return response


def review_csv(review: QuarterlyReview) -> HttpResponse:
    return csv_response(review_rows(review), f"quarterly-review-{review.quarter_start:%Y-%m}.csv")


def feedback_csv(rows: list[RuleFeedback], start: date, end: date) -> HttpResponse:
    lines = ([safe_cell(value) for value in line] for line in csv_rows(rows))
    return csv_response(lines, f"feedback-by-rule-{start:%Y%m%d}-{end:%Y%m%d}.csv")
