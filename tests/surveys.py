"""The default survey's choices, and survey files of the tests' own."""

import textwrap

import survey

DEFAULT = survey.load()
COATS = [(c.value, c.label) for c in DEFAULT.coat.choices]
DONUTS = [(c.value, c.label) for c in DEFAULT.donut.choices]

# A survey of the tests' own: other questions, other choices, one picture.
DOGS = """
    title = "Dog survey"
    heading = "Tell us about your dog"
    introduction = "Three questions about your dog."

    [name]
    label = "Your dog's name"

    [coat]
    label = "Fur"
    choices = [
        { value = "curly", label = "Curly", picture = "curly.svg" },
        { value = "wiry", label = "Wiry" },
    ]

    [donut]
    label = "Treat"
    choices = [
        { value = "bone", label = "A bone" },
        { value = "cheese", label = "Cheese" },
    ]
"""

PICTURE = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 2 2"><rect width="2" height="2"/></svg>\n'


def write(directory, text=DOGS, extra="", name="survey.toml"):
    """A survey file (and its picture) in `directory`; its path."""
    (directory / "curly.svg").write_text(PICTURE)
    path = directory / name
    path.write_text(textwrap.dedent(text) + textwrap.dedent(extra))
    return path
