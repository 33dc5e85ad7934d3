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
from decimal import Decimal

import psycopg2
from flask import Blueprint, Response, current_app, jsonify, render_template

from . import auditor, heartbeat, views

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


def _summaries(survey, counts, questions):
    """Per question, what /results shows: bars for choices, a distribution
    and the mean for a scale, the count and range for numbers and dates, and
    only how many answered for text and email (free text is not public)."""
    asked = {q.id: q for q in survey.questions}
    summaries = []
    for entry in questions:
        question = asked.get(entry["id"])
        kind = entry["type"]
        got = counts.get(entry["id"], {"values": {}, "answered": 0})
        summary = {"id": entry["id"], "type": kind, "label": question.label if question else entry["label"],
                   "asked": question is not None, "answered": got["answered"]}
        if kind in ("single_choice", "dropdown", "multiple_choice"):
            choices = list(question.labels().items()) if question else [tuple(c) for c in entry["choices"]]
            summary["rows"] = tally(got["values"], choices)
            summary["summary"] = "choices"
        elif kind == "scale":
            low, high = (question.rule("min"), question.rule("max")) if question else (None, None)
            values = {int(v): n for v, n in got["values"].items()}
            points = range(low, high + 1) if question else sorted(values)
            shares = tally({str(p): values.get(p, 0) for p in points}, [(str(p), str(p)) for p in points])
            summary["rows"] = sorted(shares, key=lambda row: int(row[0]))
            summary["mean"] = got.get("mean")
            summary["summary"] = "scale"
        elif kind in ("number", "date"):
            summary.update(summary="range", min=got.get("min"), max=got.get("max"))
        else:
            summary["summary"] = "count"
        summaries.append(summary)
    return summaries


def _tallies():
    """The counts, read as an anonymous visitor or, with RESULTS_PUBLIC=0, as
    the signed-in auditor; None while the database is down."""
    survey = views.current_survey()
    conn = None if current_app.config["RESULTS_PUBLIC"] else auditor.connect()
    try:
        questions = _store().questions(survey, conn)
        counts = _store().tallies(survey, questions, conn)
    except psycopg2.Error as exc:
        log.warning("results: database unavailable: %s", exc)
        if conn is not None:
            conn.close()
        return None
    return {"total": counts["total"], "questions": _summaries(survey, counts, questions)}


@bp.get("/results", defaults={"slug": None})
@bp.get("/s/<slug>/results")
def results():
    counts = _tallies()
    if counts is None:
        return _unavailable()
    return render_template("results.html", total=counts["total"], questions=counts["questions"],
                           availability=views.availability(count=True))


@bp.get("/results.json", defaults={"slug": None})
@bp.get("/s/<slug>/results.json")
def results_json():
    """Tallies only, never a row: what results.js redraws the page from.
    Each choice or scale question's rows under its id, as the page's tables."""
    counts = _tallies()
    if counts is None:
        return jsonify(status="unavailable"), 503
    rows = {q["id"]: [{"value": v, "label": label, "cats": n, "percent": pct} for v, label, n, pct in q["rows"]]
            for q in counts["questions"] if "rows" in q}
    figures = {q["id"]: {key: q.get(key) for key in ("answered", "mean", "min", "max") if key in q}
               for q in counts["questions"]}
    return jsonify(status="ok", total=counts["total"], figures=figures, **rows)


def csv_cell(value):
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat()
    if isinstance(value, list):
        # Several picks in one cell, in the survey file's order (docs/survey.md).
        value = ";".join(value)
    value = "" if value is None else str(value)
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


def csv_lines(columns, rows, state):
    """The CSV header and rows, one line each; every row says whether the survey is open."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for cells in itertools.chain([[*columns, "survey"]], ([*map(csv_cell, row), state] for row in rows)):
        writer.writerow(cells)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def json_value(value):
    """As JSON keeps it: lists as lists, numbers as numbers, NULL as null."""
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat()
    if value is None or isinstance(value, (list, int, str)):
        return value
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return str(value)  # a date, a UUID


def json_lines(columns, rows, state):
    """One JSON object per row (JSON Lines), with whether the survey is open."""
    for row in rows:
        record = {name: json_value(value) for name, value in zip(columns, row)}
        yield json.dumps({**record, "survey": state}, ensure_ascii=False) + "\n"


def _export(name, lines, content_type):
    survey = views.current_survey()
    conn = auditor.connect()  # the export runs as the auditor, on the auditor's connection
    try:
        columns, rows = _store().export_rows(survey, conn)
    except psycopg2.Error as exc:
        log.warning("results.%s: database unavailable: %s", name, exc)
        return _unavailable()
    filename = datetime.now(timezone.utc).strftime(f"{survey.table}-%Y%m%dT%H%M%SZ.{name}")
    return Response(chunked(lines(columns, rows, survey_state()), rows), content_type=content_type,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@bp.get("/results.csv", defaults={"slug": None})
@bp.get("/s/<slug>/results.csv")
def results_csv():
    return _export("csv", csv_lines, "text/csv; charset=utf-8")


@bp.get("/results.jsonl", defaults={"slug": None})
@bp.get("/s/<slug>/results.jsonl")
def results_jsonl():
    return _export("jsonl", json_lines, "application/jsonl; charset=utf-8")
