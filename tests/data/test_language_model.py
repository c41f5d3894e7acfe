"""py3langid's model from the unpacked cache: the same answers as py3langid's own loader, unpacked once,
and the packed model when the cache cannot be used."""

from __future__ import annotations

import logging
import shutil

import pytest

from _texts import TEXTS as PROSE
from humpback.data import language_model

TEXTS = [
    "The interpreter reads the module once and keeps its compiled form in a cache folder beside it.",
    "Le module est lu une fois, et sa forme compilée est gardée dans un dossier à côté.",
    "Das Modul wird einmal gelesen und seine übersetzte Form in einem Ordner daneben aufbewahrt.",
    "",
    "1234 5678",
    "ALL CAPITALS MAKE A HEADER THAT SHOUTS",
]


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory):
    """A cache this module's tests start from: unpacked once (the first test checks how)."""
    home = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(home))
        identifier = language_model.load_identifier()
    return home, identifier


@pytest.fixture(scope="module")
def packed():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def test_the_model_is_unpacked_once_then_mapped(unpacked, monkeypatch):
    home, _ = unpacked
    (folder,) = (home / "humpback").iterdir()
    assert folder.name.startswith("py3langid-")
    assert {p.name for p in folder.iterdir()} == {f"{key}.npy" for key in language_model._KEYS}
    import lzma

    def no_unpacking(*args, **kwargs):
        raise AssertionError("the packed model was read again")

    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    monkeypatch.setattr(lzma, "open", no_unpacking)
    assert language_model.load_identifier().classify(TEXTS[1])[0] == "fr"


def test_the_unpacked_model_answers_as_py3langids_own_loader(unpacked, packed):
    _, ours = unpacked
    for text in [*TEXTS, *PROSE.values()]:
        assert ours.classify(text) == packed.classify(text), text
        assert ours.rank(text)[:5] == packed.rank(text)[:5], text


def test_a_cache_that_cannot_be_written_falls_back_to_the_packed_model(tmp_path, monkeypatch, caplog, packed):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would go")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    with caplog.at_level(logging.WARNING, logger="humpback.data.language_model"):
        identifier = language_model.load_identifier()
    assert identifier.classify(TEXTS[0]) == packed.classify(TEXTS[0])
    assert "language model cache" in caplog.text and "not-a-folder" in caplog.text


def test_a_damaged_cache_file_is_unpacked_again(unpacked, tmp_path, monkeypatch, caplog, packed):
    home, _ = unpacked
    shutil.copytree(home, tmp_path / "cache")
    (folder,) = (tmp_path / "cache" / "humpback").iterdir()
    whole = (folder / "ptc.npy").read_bytes()
    (folder / "ptc.npy").write_bytes(b"not an array")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with caplog.at_level(logging.WARNING, logger="humpback.data.language_model"):
        identifier = language_model.load_identifier()
    assert identifier.classify(TEXTS[2]) == packed.classify(TEXTS[2])
    assert "is damaged" in caplog.text and str(folder) in caplog.text
    assert (folder / "ptc.npy").read_bytes() == whole
