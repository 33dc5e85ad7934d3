"""The survey form: what a post answers, checked against the survey file's
questions (survey/questions/ has each type's rules and messages).

A question hidden by its condition (show_if) is decided here, on the
server: it is never required, and an answer posted for it is dropped."""

import uuid

from flask import has_request_context, request

import submission as payload
from survey.questions.kinds import Invalid

NAME_MAX = 50  # the cat survey's name (survey/cats.toml); db/schema.sql checks the same limit

NO_SUBMISSION_ID_MESSAGE = "This form is missing its submission id; please reload the page and try again."


class Field:
    """A form field of our own (the submission id): its value and its errors."""

    def __init__(self, field_id, data=None):
        self.id = self.name = field_id
        self.data = data
        self.errors = []


class SurveyForm:
    """One survey's form, from a post (`formdata`, by default the request's)
    or empty.  validate() checks every shown question; then `answers` holds
    what to store and `errors` {question id: [message]}."""

    survey = None  # set by form_class

    def __init__(self, formdata=None, meta=None):
        if formdata is None and has_request_context() and request.method == "POST":
            formdata = request.form
        self.formdata = formdata
        self.submission_id = Field("submission_id", formdata.get("submission_id") if formdata else None)
        # What the visitor sent, by question, to show again after an error.
        self.posted = {q.id: formdata.getlist(q.id) for q in self.survey.questions} if formdata else {}
        self.answers = {}
        self.errors = {}
        self._codes = []
        self.shown = self.survey.visible({})

    def value(self, question):
        """The first posted value of `question`, for a field that holds one."""
        values = self.posted.get(question.id)
        return values[0] if values else ""

    def picked(self, question):
        return set(self.posted.get(question.id) or ())

    def validate(self):
        self.errors, self._codes, self.answers = {}, [], {}
        self._check_submission_id()
        cleaned = {}
        for question in self.survey.questions:
            condition = question.show_if
            if condition and not (condition.question in cleaned
                                  and condition.holds(cleaned[condition.question])):
                continue  # hidden: not asked, so neither required nor stored
            try:
                answer = question.clean(self.posted.get(question.id) or [])
            except Invalid as exc:
                self.errors[question.id] = [exc.message]
                self._codes.append((question.id, exc.code))
                continue
            cleaned[question.id] = answer
        self.shown = self.survey.visible(cleaned)
        self.answers = {qid: answer for qid, answer in cleaned.items() if answer is not None}
        return not self.errors

    def _check_submission_id(self):
        field = self.submission_id
        try:
            # UUID(..., version=4) would rewrite any UUID into a v4 one; ours are all v4.
            parsed = uuid.UUID(field.data)
            if parsed.version != 4:
                raise ValueError(field.data)
            field.data = str(parsed)
        except (TypeError, ValueError, AttributeError):
            field.errors = [NO_SUBMISSION_ID_MESSAGE]
            self.errors["submission_id"] = field.errors
            self._codes.append(("submission_id", "invalid"))

    def rejections(self):
        """(field, reason) for each error, after a failed validate()."""
        return list(self._codes)

    def submission(self, submitted_at):
        """The job's payload, as the shared definition (submission/) builds it."""
        return payload.build(self.submission_id.data, self.survey, self.answers, submitted_at)


def form_class(survey):
    """The form of this survey."""
    return type("SurveyForm", (SurveyForm,), {"survey": survey})
