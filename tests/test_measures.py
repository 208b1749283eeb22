import pytest

from featurescope.measures import degenerate_fraction, looks_degenerate


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "The---------------------------------------",
        "L-----------",
        "aaaaaaaaaaaaaaa",
        "the the the the the the the the the",
        "!!!!!!!!!!!!",
        "-.-.-.-.-.-.-.-.",
    ],
)
def test_degenerate_text_is_caught(text):
    assert looks_degenerate(text)


@pytest.mark.parametrize(
    "text",
    [
        "The capital of France is Paris.",
        "Blue.",
        "4",
        "2 + 2 = 4",
        "Yes",
        "I'm a ghost. I've come to visit.",
        "Arr, under the old palm tree, matey!",
        "A spider has eight legs; insects have six.",
    ],
)
def test_ordinary_answers_are_not(text):
    assert not looks_degenerate(text)


def test_fraction():
    assert degenerate_fraction([]) == 0.0
    assert degenerate_fraction(["Paris.", "The-----------"]) == 0.5


def test_one_negation_aware_ai_identity_detector():
    from featurescope.axis import identifies_as_ai as axis_detector
    from featurescope.measures import identifies_as_ai
    from featurescope.posttrain import calls_itself_ai

    yes = [
        "I am an AI assistant made to help.",
        "I'm a large language model.",
        "As a chatbot, I can't.",
        "I’m an A.I. built by a lab.",
    ]
    no = [
        "I'm not an AI, I am a pirate of the seven seas.",
        "I am a farmer from Ohio.",
        "The rain in Spain stays mainly in the plain.",
        "I am no assistant of yours.",
        "I'm never a chatbot.",
    ]
    for t in yes:
        assert identifies_as_ai(t) and calls_itself_ai(t) and axis_detector(t), t
    for t in no:
        assert not identifies_as_ai(t) and not calls_itself_ai(t) and not axis_detector(t), t
