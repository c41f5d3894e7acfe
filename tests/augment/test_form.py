"""The instruction-form rules on real generations of the demo's backward model (SmolLM2-135M after
one training step, from data/candidates of a fresh clone's `make demo`), quoted verbatim."""

import pytest

from humpback.augment.config import HygieneConfig
from humpback.augment.form import reads_as_request, well_formed_share
from humpback.augment.hygiene import clean_instruction, hygiene_problem
from humpback.prompts import read_template

TEMPLATE = read_template("backward", None)
SEGMENT = ("Issues\n------\n\nWhat is the code to extract the current IP address from a given JSON payload? "
           "The library reads the payload, validates it and returns the address as a string.")
ISSUES_SEGMENT = "Issues\n------\n\nReport bugs and ask for features on the project's tracker; say which version you run."
LIST_SEGMENT = "1. Easy-to-use state-of-the-art models: high performance on natural language understanding."


@pytest.mark.parametrize("generation, expected, rules", [
    ("Here is the instruction:  Create a Python package that implements ASN.1 types and codecs in Python.",
     "Create a Python package that implements ASN.1 types and codecs in Python.", ["lead_in"]),
    ('The text is intended to answer the question "Why does the Cloudpickle project aim to serialize lambdas?"',
     "Why does the Cloudpickle project aim to serialize lambdas?", ["answers_question"]),
    ("Instruction: Explain how to pin a dependency.", "Explain how to pin a dependency.", ["label"]),
    ('"Explain tides."', "Explain tides.", ["quotes"]),
    ("Here's an instruction: \"How do I escape characters in Python?\"",
     "How do I escape characters in Python?", ["lead_in", "quotes"]),
    ("How do I escape characters in Python?", "How do I escape characters in Python?", []),
])
def test_wrappers_around_a_request_are_removed_by_rule(generation, expected, rules):
    assert clean_instruction(generation, 2000) == (expected, False, rules)
    if rules and rules != ["quotes"]:  # unwrap off: only surrounding quotes go
        assert clean_instruction(generation, 2000, unwrap=False)[0] != expected


@pytest.mark.parametrize("generation, segment, reason", [
    ("This is an excellent example of using a tool like Typer to debug a script in the terminal.",
     SEGMENT, "describes_text"),
    ("The text explains how the library validates payloads.", SEGMENT, "describes_text"),
    ("To add to the previous text, I would recommend the following improvements: more tests.",
     SEGMENT, "continues_text"),
    ("Text: Issues ------  What is the code to extract the current IP address from a given JSON payload?",
     ISSUES_SEGMENT, "text_label"),
    ("1. Easy-to-use state-of-the-art models: high performance", LIST_SEGMENT, "copies_opening"),
    ("- Easy-to-use models for language understanding", LIST_SEGMENT, "list_fragment"),
    ("::  ::  ::  ::  ::", SEGMENT, "symbol_noise"),
    ("Why?", SEGMENT, "symbol_noise"),  # one word: fewer than min_words
    ("How do I extract an IP address from JSON in Python?", SEGMENT, None),
    ("Write a Python script that validates a JSON payload.", SEGMENT, None),
    ("What is the code to get an address out of a payload?", SEGMENT, None),  # not the segment's opening
])
def test_what_is_no_request_is_dropped_by_a_named_rule(generation, segment, reason):
    instruction, _, _ = clean_instruction(generation, 2000)
    assert hygiene_problem(instruction, segment, TEMPLATE, HygieneConfig()) == reason
    off = HygieneConfig(prompt_words=None, segment_words=None, opening_words=None, min_words=None,
                        min_letter_share=None, describes_text=False, continues_text=False, text_label=False,
                        list_fragment=False)
    assert hygiene_problem(instruction, segment, TEMPLATE, off) is None


@pytest.mark.parametrize("instruction, is_request", [
    ("How do I escape characters in Python?", True),
    ("Why should I use Transformers?", True),
    ("Write a Python script to rename files by date.", True),
    ("Please summarise the release notes.", True),
    ("I want to deploy a model on a GPU server", True),
    ("The package supports Python 3.9 and later.", False),
    ("Easy-to-use state-of-the-art models", False),
    ("", False),
])
def test_reads_as_request(instruction, is_request):
    assert reads_as_request(instruction) is is_request


def test_well_formed_share():
    assert well_formed_share([]) is None
    assert well_formed_share(["How?", "Write a poem.", "Some text.", "Nothing here"]) == 0.5


def test_report_counts_unwrapped_rules_and_well_formed_shares():
    from collections import Counter

    from humpback.augment.generate import AugmentReport

    report = AugmentReport(segments=4, candidates=2, unwrapped=Counter(label=1),
                           instructions=["How do I pin a dependency?", "The package supports Python 3.9."])
    m = report.metrics()
    assert m["unwrapped"] == {"lead_in": 0, "label": 1, "answers_question": 0, "quotes": 0}
    assert m["well_formed"] == 0.5 and m["well_formed_of_segments"] == 0.25  # drops count against it
    empty = AugmentReport().metrics()
    assert empty["well_formed"] is None and empty["well_formed_of_segments"] is None
