"""The survey form: its fields, their rules, and their choices and labels from
the survey file (survey/, SURVEY_FILE)."""

import re
import unicodedata
import uuid

from flask_wtf import FlaskForm
from wtforms import HiddenField, RadioField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import AnyOf, DataRequired, InputRequired, Length, ValidationError

import submission as payload

NAME_MAX = 50  # db/schema.sql checks the same limit

# C0 and C1 controls, line and paragraph separators, and the bidi overrides
# and isolates that make a name display as something it is not.
CONTROL_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# What a decoder leaves for bytes that were not UTF-8 (a multipart field, say).
UNREADABLE = "\ufffd"
# A name needs one character you can see: a letter, mark, number, punctuation or symbol.
VISIBLE = ("L", "M", "N", "P", "S")

# Every message the form can show, by a short reason code: the codes label the
# rejection counter in /metrics, where the messages would be too long.
REASONS = {}


def _reason(code, message):
    REASONS[message] = code
    return message


CONTROL_CHARS_MESSAGE = _reason(
    "control_chars", "The name can't contain control characters such as tabs or line breaks.")
NO_SUBMISSION_ID_MESSAGE = _reason(
    "invalid", "This form is missing its submission id; please reload the page and try again.")


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def _no_control_chars(form, field):
    if field.data and CONTROL_CHARS.search(field.data):
        raise ValidationError(CONTROL_CHARS_MESSAGE)


def _readable(missing):
    def check(form, field):
        if not field.data:
            return
        if UNREADABLE in field.data:
            raise ValidationError("Part of the name could not be read; please type it again.")
        if not any(unicodedata.category(c)[0] in VISIBLE for c in field.data):
            # Zero-width spaces and the like look like nothing at all.
            raise ValidationError(missing)
    return check


def _uuid(form, field):
    try:
        # UUID(..., version=4) would rewrite any UUID into a v4 one; ours are all v4.
        parsed = uuid.UUID(field.data)
        if parsed.version != 4:
            raise ValueError(field.data)
        field.data = str(parsed)
    except (TypeError, ValueError, AttributeError):
        raise ValidationError(NO_SUBMISSION_ID_MESSAGE)


def _choice(question):
    label = question.label
    return RadioField(
        label,
        choices=[SelectChoice(choice.value, choice.label) for choice in question.choices],
        # The stock message ("Not a valid choice") doesn't say which field.
        validate_choice=False,
        validators=[
            InputRequired(message=_reason("missing", f"Please pick a {label.lower()}.")),
            AnyOf([choice.value for choice in question.choices],
                  message=_reason("not_a_choice", f"Please pick a {label.lower()} from the list.")),
        ],
    )


class BaseForm(FlaskForm):
    class Meta:
        # CSRFProtect (web/__init__.py) checks every POST's token before any
        # view runs.  The form's own CSRF field would sign a fresh token for
        # every post, accepted ones included, which never show the form again;
        # form.html asks for a token (csrf_token()) only when it is shown.
        csrf = False

    submission_id = HiddenField(validators=[_uuid])

    def rejections(self):
        """(field, reason) for each error, after a failed validate()."""
        return [(field, REASONS.get(message, "invalid"))
                for field, messages in self.errors.items() for message in messages]

    def submission(self, submitted_at):
        """The job's payload, as the shared definition (submission/) builds it."""
        return payload.build(self.submission_id.data, self.name.data, self.coat.data, self.donut.data, submitted_at)


def form_class(survey):
    """The form of this survey: its labels, and only its choices accepted."""
    # "Your cat's name" asks "Please tell us your cat's name."
    missing = _reason("missing", f"Please tell us {survey.name.label[:1].lower()}{survey.name.label[1:]}.")

    class SurveyForm(BaseForm):
        name = StringField(
            survey.name.label,
            filters=[_strip],
            validators=[
                # DataRequired sees the stripped value, so whitespace alone counts as missing.
                DataRequired(message=missing),
                Length(min=1, max=NAME_MAX,
                       message=_reason("too_long", f"The name must be 1 to {NAME_MAX} characters long.")),
                _no_control_chars,
                _readable(missing),
            ],
        )
        coat = _choice(survey.coat)
        donut = _choice(survey.donut)

    return SurveyForm
