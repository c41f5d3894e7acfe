"""py3langid's language model, unpacked once into the user's cache.

py3langid ships its model inside the package (no download, deterministic), as an LZMA-packed npz:
unpacking it takes 0.5-0.6 s, paid at the start of every corpus run before its workers fork (so one
core waits while the other idles) and by every fresh process that filters a segment. The unpacked
arrays are written once to ``$XDG_CACHE_HOME/humpback`` (else ``~/.cache/humpback``), a folder named
by py3langid's version and the packed file's hash, and mapped from there in a few hundredths of a
second. A damaged cache is unpacked again. Where the cache cannot be written or read, the packed
model is read as py3langid reads it: the same model, only slower.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from array import array
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

_KEYS = ("ptc", "pc", "classes", "nextmove", "nextmove_row", "out_feat")


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "humpback"


def unpacked_path(packed: Path) -> Path:
    from importlib.metadata import version

    digest = hashlib.sha256(packed.read_bytes()).hexdigest()[:16]
    return cache_dir() / f"py3langid-{version('py3langid')}-{digest}"


def load_identifier():
    """py3langid's ``LanguageIdentifier`` with normalised probabilities, from the unpacked cache."""
    from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

    packed = Path(MODEL_DIR) / MODEL_FILE
    folder = unpacked_path(packed)
    try:
        arrays = _cached(packed, folder)
    except (OSError, ValueError) as e:  # a cache that cannot be written or read: the slow way
        log.warning("language model cache %s not used (%s); reading py3langid's packed model", folder, e)
        return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    return LanguageIdentifier(arrays["ptc"], arrays["pc"], arrays["classes"].tolist(),
                              _stdlib_array(arrays["nextmove"]), arrays["out_feat"].tolist(), norm_probs=True,
                              tk_row=_stdlib_array(arrays["nextmove_row"]))


def _cached(packed: Path, folder: Path) -> dict[str, np.ndarray]:
    if folder.exists():
        try:
            return _read(folder)
        except (OSError, ValueError) as e:
            log.warning("language model cache %s is damaged (%s); unpacking it again", folder, e)
            shutil.rmtree(folder, ignore_errors=True)  # a process that mapped it keeps its pages
    _unpack(packed, folder)
    return _read(folder)


def _read(folder: Path) -> dict[str, np.ndarray]:
    # mapped, not read: pages come from the OS's cache as the classifier touches them, and forked
    # workers share them
    return {key: np.load(folder / f"{key}.npy", mmap_mode="r", allow_pickle=False) for key in _KEYS}


def _unpack(packed: Path, folder: Path) -> None:
    import lzma

    with tempfile.TemporaryFile(suffix=".npz") as npz:  # seekable: np.load seeks to the zip's directory
        with lzma.open(packed) as src:
            shutil.copyfileobj(src, npz, length=1 << 20)
        npz.seek(0)
        with np.load(npz, allow_pickle=False) as data:
            arrays = {key: data[key] for key in _KEYS}
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=folder.name, suffix=".partial"))
    try:
        for key, values in arrays.items():
            np.save(tmp / f"{key}.npy", values, allow_pickle=False)
        tmp.chmod(0o755)
        os.rename(tmp, folder)  # whole or absent
    except OSError:
        if not folder.exists():  # else another process unpacked it first: the same arrays
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _stdlib_array(values: np.ndarray) -> array:
    """The DFA tables as py3langid keeps them: stdlib arrays, indexed faster than numpy's in its loop."""
    out = array({2: "H", 4: "I", 8: "L"}[values.dtype.itemsize])
    out.frombytes(memoryview(np.ascontiguousarray(values)).cast("B"))
    return out
