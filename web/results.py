"""/results (tallies, public unless RESULTS_PUBLIC=0), /results.json (the
same tallies, for the page to update itself), and /results.csv and
/results.jsonl (every stored row, for the auditor only: web/auditor.py).
An erased answer is gone from the table, so from every one of these; its
tombstone has no answers to export."""

import csv
import io
import itertools
import json
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


def survey_state():
    """"open", "not_open" or "closed" (the survey file's dates and cap), for the exports."""
    return views.availability()["state"]


def chunked(lines, rows):
    """Join `lines` (text ending in newlines) into chunks of about CHUNK
    characters; closes `rows` when done or abandoned."""
    buffer = io.StringIO()
    try:
        for line in lines:
            buffer.write(line)
            if buffer.tell() >= CHUNK:
                heartbeat.beat()  # a long export is progress, not a stuck worker
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()
    finally:
        rows.close()


def csv_lines(rows, state):
    """The CSV header and rows, one line each; every row says whether the survey is open."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for cells in itertools.chain([[*EXPORT_COLUMNS, "survey"]], ([*map(csv_cell, row), state] for row in rows)):
        writer.writerow(cells)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def json_lines(rows, state):
    """One JSON object per row (JSON Lines), with whether the survey is open."""
    for row in rows:
        record = {name: value.astimezone(timezone.utc).isoformat() if isinstance(value, datetime) else str(value)
                  for name, value in zip(EXPORT_COLUMNS, row)}
        yield json.dumps({**record, "survey": state}, ensure_ascii=False) + "\n"


def _export(name, lines, content_type):
    conn = auditor.connect()  # the export runs as the auditor, on the auditor's connection
    try:
        rows = _store().export_rows(conn)
    except psycopg2.Error as exc:
        log.warning("results.%s: database unavailable: %s", name, exc)
        return _unavailable()
    filename = datetime.now(timezone.utc).strftime(f"cats-%Y%m%dT%H%M%SZ.{name}")
    return Response(chunked(lines(rows, survey_state()), rows), content_type=content_type,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@bp.get("/results.csv")
def results_csv():
    return _export("csv", csv_lines, "text/csv; charset=utf-8")


@bp.get("/results.jsonl")
def results_jsonl():
    return _export("jsonl", json_lines, "application/jsonl; charset=utf-8")
