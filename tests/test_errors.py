"""activity.errors: the one-line forms of library messages."""

from __future__ import annotations

from activity.errors import describe, first_line


def test_first_line_is_the_first_non_blank_line_stripped_and_cut():
    assert first_line(ValueError("\n  bad header  \nmore detail")) == "bad header"
    assert first_line(ValueError("x" * 300), 120) == "x" * 120
    assert first_line(ValueError("")) == "" and first_line(ValueError(" \n ")) == ""


def test_describe_names_the_type_and_the_first_line():
    assert describe(OSError("\n disk full \n errno 28")) == "OSError: disk full"
    assert describe(ValueError("y" * 300), 10) == "ValueError: " + "y" * 10
