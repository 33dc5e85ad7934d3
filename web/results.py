"""The auditor's views: /results (tallies) and /results.csv (every stored row)."""

import csv
import io
import logging
from datetime import datetime, timezone

import psycopg2
from flask import Blueprint, Response, current_app, render_template

from .forms import COATS, DONUTS
from .store import EXPORT_COLUMNS

log = logging.getLogger(__name__)
bp = Blueprint("results", __name__)

# A spreadsheet runs a cell that starts with one of these as a formula
# (OWASP "CSV injection"); a leading apostrophe makes it plain text.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Flush the CSV to the client in pieces about this big.
CHUNK = 16 * 1024


def _store():
    return current_app.extensions["submission_store"]


def _unavailable(exc):
    log.warning("results: database unavailable: %s", exc)
    return render_template("error.html", title="Results unavailable",
                           message="The results can't be read just now; please try again in a moment."), 503


def tally(counts, choices):
    """Rows of (value, label, cats, percent) for a table: most cats first.

    Every choice of the form appears, with 0 if no cat has it yet; values
    stored under a choice since removed from the form still count.
    """
    labels = dict(choices)
    order = {value: i for i, (value, _) in enumerate(choices)}
    values = list(labels) + sorted(set(counts) - set(labels))
    total = sum(counts.values())
    rows = [(value, labels.get(value, value), counts.get(value, 0),
             round(100 * counts.get(value, 0) / total) if total else 0) for value in values]
    return sorted(rows, key=lambda row: (-row[2], order.get(row[0], len(order))))


@bp.get("/results")
def results():
    try:
        counts = _store().tallies()
    except psycopg2.Error as exc:
        return _unavailable(exc)
    return render_template("results.html", total=counts["total"],
                           coats=tally(counts["coat"], COATS), donuts=tally(counts["donut"], DONUTS))


def csv_cell(value):
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat()
    value = str(value)
    return "'" + value if value.startswith(FORMULA_START) else value


def csv_lines(rows):
    """The CSV text of the header and rows, in chunks; closes `rows` when done or abandoned."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    try:
        writer.writerow(EXPORT_COLUMNS)
        for row in rows:
            writer.writerow([csv_cell(value) for value in row])
            if buffer.tell() >= CHUNK:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()
    finally:
        rows.close()


@bp.get("/results.csv")
def results_csv():
    try:
        rows = _store().export_rows()
    except psycopg2.Error as exc:
        return _unavailable(exc)
    filename = datetime.now(timezone.utc).strftime("cats-%Y%m%dT%H%M%SZ.csv")
    return Response(csv_lines(rows), content_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
