"""What every question type shares: the question itself and its refusal."""

from dataclasses import dataclass, field


class Invalid(ValueError):
    """A posted answer the question's rules refuse: `code` labels the
    rejection counter in /metrics, `message` is what the visitor reads."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def given(question, values, missing):
    """The one value posted for `question`, stripped; None if it is empty
    and the question optional; Invalid("missing", `missing`) if required."""
    text = (values[0] if values else "").strip()
    if not text and question.required:
        raise Invalid("missing", missing)
    return text or None


@dataclass(frozen=True)
class Choice:
    value: str
    label: str
    picture: object = None  # a Path, or None: a plain tile


@dataclass(frozen=True)
class Condition:
    """show_if: the question shows only when `question`'s answer is one of `values`."""
    question: str
    values: tuple

    def holds(self, answer):
        if isinstance(answer, list):
            return any(value in self.values for value in answer)
        return answer in self.values


@dataclass(frozen=True)
class Question:
    id: str
    type: str
    label: str
    hint: str = ""
    required: bool = True
    choices: tuple = ()
    show_if: Condition | None = None
    rules: dict = field(default_factory=dict, compare=False, hash=False)

    def labels(self):
        return {choice.value: choice.label for choice in self.choices}

    def rule(self, name):
        return self.rules.get(name)

    @property
    def kind(self):
        from . import TYPES
        return TYPES[self.type]

    def clean(self, values):
        """The answer to store from the posted strings; None if none was
        given and none is required; Invalid otherwise."""
        return self.kind.clean(self, values)

    @property
    def noun(self):
        """How a message names the field when its label would read badly: "the name"."""
        return self.id.replace("_", " ")

    @property
    def quoted(self):
        return f"\u201c{self.label}\u201d"

    @property
    def asks(self):
        """A label that is a question ("Do you have a cat?") reads badly
        inside a sentence: a message then quotes it instead."""
        return self.label.endswith("?")


@dataclass(frozen=True)
class Kind:
    """A question type: see survey/questions/__init__.py."""
    name: str
    keys: frozenset
    read: object
    clean: object
    column: object  # column(question) -> the PostgreSQL type
    summary: str    # "choices", "scale", "range" or "count"
