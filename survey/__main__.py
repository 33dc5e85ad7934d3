"""`python -m survey check [FILE]`: is this survey file fit to run?
`python -m survey new-webhook-secret`: a secret for a [[webhooks]] table.

Without FILE it checks what the services would run: SURVEY_FILE (or the
default) with OPENS_AT, CLOSES_AT and MAX_RESPONSES applied.  Prints one line
and exits 0 if so; otherwise the one line naming the file, the key and what
is wrong, and exits 1."""

import os
import sys

from . import SurveyFileError, from_env, load, webhooks


def main(argv):
    if argv == ["new-webhook-secret"]:
        print(webhooks.new_secret())
        return 0
    if not argv or argv[0] != "check" or len(argv) > 2:
        print("usage: python -m survey check [FILE] | new-webhook-secret", file=sys.stderr)
        return 2
    try:
        survey = load(argv[1]) if len(argv) == 2 else from_env(os.environ)
    except SurveyFileError as exc:
        print(exc, file=sys.stderr)
        return 1
    kinds = ", ".join(f"{q.id} ({q.type}{', if ' + q.show_if.question if q.show_if else ''})"
                      for q in survey.questions)
    print(f"{survey.path}: ok: {survey.title!r}, stored in table {survey.table}, "
          f"{len(survey.questions)} questions: {kinds}"
          + "".join(f"; webhook {h.url} ({', '.join(h.events)})" for h in survey.webhooks))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
