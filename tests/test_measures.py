import pytest

from featurescope.measures import degenerate_fraction, looks_degenerate


@pytest.mark.parametrize("text", [
    "", "   ", "The---------------------------------------", "L-----------", "aaaaaaaaaaaaaaa",
    "the the the the the the the the the", "!!!!!!!!!!!!", "-.-.-.-.-.-.-.-.",
])
def test_degenerate_text_is_caught(text):
    assert looks_degenerate(text)


@pytest.mark.parametrize("text", [
    "The capital of France is Paris.", "Blue.", "4", "2 + 2 = 4", "Yes", "I'm a ghost. I've come to visit.",
    "Arr, under the old palm tree, matey!", "A spider has eight legs; insects have six.",
])
def test_ordinary_answers_are_not(text):
    assert not looks_degenerate(text)


def test_fraction():
    assert degenerate_fraction([]) == 0.0
    assert degenerate_fraction(["Paris.", "The-----------"]) == 0.5
