from _texts import TEXTS
from humpback.data.config import DedupConfig, HeaderFilter, LanguageFilter, RepetitionFilter
from humpback.data.dedup import content_id
from humpback.data.filters import (
    header_reason,
    language_reason,
    length_reason,
    repeated_fraction,
    repetition_reason,
)
from humpback.data.steps import duplicates_within

PROSE = TEXTS["tea"]


def test_header_rules():
    cfg = HeaderFilter()
    assert header_reason("", cfg) == "empty_header"
    assert header_reason("", cfg, allow_headerless=True) is None
    assert header_reason("FREQUENTLY ASKED QUESTIONS", cfg) == "all_caps_header"
    assert header_reason("Quick Links", cfg) == "navigation_header"
    assert header_reason("Join our free   newsletter!", cfg) == "navigation_header"
    assert header_reason("Forums and menus", cfg) == "navigation_header"
    assert header_reason("Brewing green tea", cfg) is None
    assert header_reason("Informal discussion", cfg) is None  # 'forum' only as a whole word
    assert header_reason("Using the API", cfg) is None  # an acronym is not an all-caps header


def test_length_window():
    assert length_reason("x" * 599, 600, 3000) == "too_short"
    assert length_reason("x" * 600, 600, 3000) is None
    assert length_reason("x" * 3001, 600, 3000) == "too_long"


def test_repetition_filter():
    cfg = RepetitionFilter()
    assert repetition_reason(PROSE, cfg) is None
    spam = "Buy cheap tea online today. " * 3 + "Buy cheap tea online now. " * 3 + PROSE
    assert repeated_fraction(spam, 3, 0.7) > 0.3
    assert repetition_reason(spam, cfg) == "repetitive"


def test_language_filter():
    cfg = LanguageFilter()
    assert language_reason(PROSE, cfg) is None
    german = (
        "Tee wird seit Jahrtausenden in vielen Kulturen getrunken. Grüner Tee wird aus Blättern hergestellt, "
        "die kurz nach der Ernte gedämpft werden, damit ihr frischer Geschmack erhalten bleibt."
    )
    assert language_reason(german, cfg) == "wrong_language"


def test_dedup_exact_and_near_copy():
    """The in-file check of `humpback segment`: the stage's normalisation and MinHash bands."""
    near = PROSE.replace("thousands of years", "many centuries").replace("stronger, malty", "strong, malty")
    texts = [PROSE, "  " + PROSE.upper() + "\n", near, TEXTS["bikes"]]  # case and spacing do not hide a copy
    assert duplicates_within(texts, DedupConfig()) == [None, "exact_duplicate", "near_duplicate", None]
    assert duplicates_within(texts, DedupConfig(exact=False, near=False)) == [None] * 4
    assert duplicates_within(texts, DedupConfig(exact=False)) == [None, "near_duplicate", "near_duplicate", None]


def test_old_dedup_keys_say_what_replaced_them():
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="corpus.dedup.threshold is gone.*buckets and hashes_per_bucket"):
        DedupConfig(threshold=0.8)
    assert round(DedupConfig().similarity, 2) == 0.72


def test_content_id_is_stable_and_exact():
    assert content_id("abc") == content_id("abc") == "ba7816bf8f01cfea"
    assert content_id("abc ") != content_id("abc")
