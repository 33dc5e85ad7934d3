"""/results (tallies, public unless RESULTS_PUBLIC=0), /results.json (the
same tallies, for the page to update itself) and /results.csv (every stored
row, for the auditor only: web/auditor.py)."""

import csv
import io
import logging
from datetime import datetime, timezone

import psycopg2
from flask import Blueprint, Response, current_app, jsonify, render_template

from . import auditor, heartbeat, views
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


def _unavailable():
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


def _tallies():
    """The counts, read as an anonymous visitor or, with RESULTS_PUBLIC=0, as
    the signed-in auditor; None while the database is down."""
    conn = None if current_app.config["RESULTS_PUBLIC"] else auditor.connect()
    try:
        counts = _store().tallies(conn)
    except psycopg2.Error as exc:
        log.warning("results: database unavailable: %s", exc)
        return None
    survey = current_app.config["SURVEY"]
    return {"total": counts["total"], "coat": tally(counts["coat"], list(survey.coat.labels().items())),
            "donut": tally(counts["donut"], list(survey.donut.labels().items()))}


@bp.get("/results")
def results():
    counts = _tallies()
    if counts is None:
        return _unavailable()
    return render_template("results.html", total=counts["total"], coats=counts["coat"], donuts=counts["donut"],
                           availability=views.availability(count=True))


@bp.get("/results.json")
def results_json():
    """Tallies only, never a row: what results.js redraws the page from."""
    counts = _tallies()
    if counts is None:
        return jsonify(status="unavailable"), 503
    rows = {key: [{"value": v, "label": label, "cats": n, "percent": pct} for v, label, n, pct in counts[key]]
            for key in ("coat", "donut")}
    return jsonify(status="ok", total=counts["total"], **rows)


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
                heartbeat.beat()  # a long export is progress, not a stuck worker
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()
    finally:
        rows.close()


@bp.get("/results.csv")
def results_csv():
    conn = auditor.connect()  # the export runs as the auditor, on the auditor's connection
    try:
        rows = _store().export_rows(conn)
    except psycopg2.Error as exc:
        log.warning("results.csv: database unavailable: %s", exc)
        return _unavailable()
    filename = datetime.now(timezone.utc).strftime("cats-%Y%m%dT%H%M%SZ.csv")
    return Response(csv_lines(rows), content_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
