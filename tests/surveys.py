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


# A survey with every question type and a conditional question (issue 24).
EVERY_TYPE = """
    title = "Pet survey"
    heading = "Tell us about your pets"

    [[questions]]
    id = "has_cat"
    type = "single_choice"
    label = "Do you have a cat?"
    choices = [{ value = "yes", label = "Yes" }, { value = "no", label = "No" }]

    [[questions]]
    id = "cat_name"
    type = "short_text"
    label = "Your cat's name"
    max_length = 20
    show_if = { question = "has_cat", equals = "yes" }

    [[questions]]
    id = "story"
    type = "long_text"
    label = "A story about your pet"
    required = false
    max_length = 100

    [[questions]]
    id = "colour"
    type = "dropdown"
    label = "Favourite colour"
    choices = [{ value = "red", label = "Red" }, { value = "blue", label = "Blue" }, { value = "green", label = "Green" }]

    [[questions]]
    id = "toys"
    type = "multiple_choice"
    label = "Toys"
    min_choices = 1
    max_choices = 2
    choices = [{ value = "ball", label = "Ball" }, { value = "mouse", label = "Mouse" },
               { value = "string", label = "String" }]

    [[questions]]
    id = "happiness"
    type = "scale"
    label = "How happy is your pet?"
    min = 0
    max = 10
    min_label = "Not at all"
    max_label = "Very"

    [[questions]]
    id = "age"
    type = "number"
    label = "Age in years"
    min = 0
    max = 40
    integer = true

    [[questions]]
    id = "weight"
    type = "number"
    label = "Weight in kg"
    min = 0
    max = 30
    required = false

    [[questions]]
    id = "contact"
    type = "email"
    label = "Your email"
    required = false

    [[questions]]
    id = "birthday"
    type = "date"
    label = "Birthday"
    min = 2000-01-01
    max = 2026-12-31
"""

# What a browser posts for EVERY_TYPE, every question answered.
EVERY_ANSWER = {"has_cat": "yes", "cat_name": "Tom", "story": "Line one\r\nline two", "colour": "blue",
                "toys": ["mouse", "ball"], "happiness": "9", "age": "3", "weight": "4.25",
                "contact": "owner@example.org", "birthday": "2023-05-01"}
