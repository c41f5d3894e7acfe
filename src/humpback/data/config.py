"""The `seed`, `raw` and `corpus` sections: where the seed pairs and the unlabelled text come from, and how segments are cut, filtered and deduplicated."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import Field, field_validator, model_validator

from humpback.core.config import Fraction, NonNegInt, PositiveInt, Section


class SeedConfig(Section):
    source: Literal["local", "oasst"] = "local"
    # A local file, and a DVC dependency of the stage: for source local a .jsonl/.json/.parquet with
    # instruction and response columns; for oasst an OASST export (message trees or flat messages).
    path: str = "data/demo/seed.jsonl"
    # oasst only: load this hub dataset (OpenAssistant/oasst1) instead of `path`.
    hub_dataset: str | None = None
    instruction_column: str = "instruction"
    response_column: str = "response"
    oasst_splits: list[str] = ["train", "validation"]
    lang: str = "en"
    max_pairs: PositiveInt | None = None
    heldout: NonNegInt = 4  # demo; the held-out likelihood of every model is computed on these
    split_seed: int = 0


class FilesSource(Section):
    """Local files or directories: txt, md, rst, html, jsonl, parquet (optionally .gz).

    Rows of jsonl/json/parquet files may carry provenance columns ``name`` (e.g. ``requests==2.32.3``),
    ``license`` and ``format`` (markdown | rst | html | text); they are kept in data/raw.
    """

    type: Literal["files"]
    path: str
    text_column: str = "text"
    url_column: str | None = "url"
    format: Literal["auto", "markdown", "rst", "html", "text"] = "auto"
    max_documents: PositiveInt | None = None


class HubSource(Section):
    """A Hugging Face dataset, streamed (``datasets.load_dataset(..., streaming=True)``).

    A live source: pin ``revision`` (a commit of the dataset repo) so that the snapshot in data/raw
    can be taken again and give the same documents.
    """

    type: Literal["hub"]
    dataset: str
    config: str | None = None
    split: str = "train"
    revision: str | None = None
    data_files: list[str] | None = None
    text_column: str = "text"
    url_column: str | None = "url"
    format: Literal["markdown", "rst", "html", "text"] = "markdown"
    max_documents: PositiveInt | None = None


class WarcSource(Section):
    """WARC or WARC.gz crawl files (Common Crawl, wget --warc-file, Heritrix, ...): their HTML responses,
    with the target URL and the crawl date as provenance. Every record is read or counted: not a
    response, not HTML, an HTTP status other than 200, too large, undecodable, empty, broken.

    Which files: ``path``, a local file, folder or glob under raw.path (a DVC dependency of `raw`), or
    any fsspec URL (``https://data.commoncrawl.org/crawl-data/...warc.gz``, ``s3://commoncrawl/...``);
    or ``listing``, a file of paths one per line (Common Crawl's ``warc.paths.gz``), each prefixed with
    ``prefix``, the first ``max_files`` taken. A remote crawl is a live source, read again only when
    these params change or on ``dvc repro -f raw``, like ``hub``.
    """

    type: Literal["warc"]
    path: str | None = None
    listing: str | None = None
    prefix: str = ""  # Common Crawl: https://data.commoncrawl.org/
    max_files: PositiveInt | None = None
    max_documents: PositiveInt | None = None  # HTML documents kept, summed over the files in order
    max_record_bytes: PositiveInt = 5_000_000  # larger HTTP bodies are counted as too_large, not read

    @model_validator(mode="after")
    def _one_way(self) -> "WarcSource":
        if (self.path is None) == (self.listing is None):
            raise ValueError("give either path (files, a folder, a glob, a URL) or listing (a file of paths)")
        return self

    @property
    def local_paths(self) -> list[str]:
        """What of this source lies on this machine (and must lie under raw.path)."""
        return [p for p in (self.path, self.listing) if p is not None and "://" not in p]


RawSource = Annotated[Union[FilesSource, HubSource, WarcSource], Field(discriminator="type")]


class RawConfig(Section):
    """The raw corpus node: stage `raw` snapshots these sources into data/raw (Parquet + provenance).

    ``path`` is the stage's DVC dependency: every ``files`` source must lie inside it, so that an edit
    to any input file reruns the snapshot. Live sources (``hub``) are read again only when these params
    change or on ``dvc repro -f raw``: taking a new snapshot is an explicit act.
    """

    path: str = "data/demo/corpus"
    sources: Annotated[list[RawSource], Field(min_length=1)] = [FilesSource(type="files", path="data/demo/corpus")]
    max_document_chars: PositiveInt = 5_000_000
    shard_size: PositiveInt = 1000  # documents per Parquet shard

    @field_validator("sources", mode="before")
    @classmethod
    def _live_packages(cls, value):
        for i, src in enumerate(value if isinstance(value, list) else []):
            if isinstance(src, dict) and src.get("type") == "python_packages":
                raise ValueError(f"sources[{i}]: python_packages depends on what happens to be installed, so it is "
                                 "not a stage source: snapshot it once with `humpback snapshot packages OUT.jsonl.gz` "
                                 "and add OUT as a `files` source")
        return value

    @model_validator(mode="after")
    def _files_inside_path(self) -> "RawConfig":
        root = Path(self.path)
        for i, src in enumerate(self.sources):
            local = [src.path] if isinstance(src, FilesSource) else src.local_paths if isinstance(src, WarcSource) else []
            for path in local:
                if not _inside(Path(path), root):
                    key = "path" if path == getattr(src, "path", None) else "listing"
                    raise ValueError(f"sources[{i}].{key} '{path}' is outside raw.path '{self.path}', the stage's "
                                     "DVC dependency: move the files under it or widen raw.path")
        return self


def _inside(path: Path, root: Path) -> bool:
    """Lexically (no file system access: params are checked anywhere): is ``path`` at or under ``root``?"""
    path, root = Path(os.path.normpath(path)), Path(os.path.normpath(root))
    if root == Path("."):
        return not path.is_absolute() and path.parts[:1] != ("..",)
    return path.parts[: len(root.parts)] == root.parts


def _retired(value, keys: tuple[str, ...], message) -> object:
    """A section's params as given, unless they hold a key that no longer exists: then what replaced it."""
    found = sorted(k for k in keys if isinstance(value, dict) and k in value)
    if found:
        raise ValueError(message(found[0]))
    return value


class HeaderFilter(Section):
    drop_empty: bool = True
    drop_all_caps: bool = True
    # Navigation-style headers (matched as whole words, case-insensitive).
    blocked_words: list[str] = [
        "advertisement", "advertisements", "forum", "forums", "quick link", "quick links",
        "newsletter", "free newsletter", "subscribe", "related posts", "share this", "sponsored",
        "sign up", "log in", "login", "navigation", "menu", "sitemap", "cookie", "cookies",
        # the demo corpus (package pages): sections that are lists, not prose
        "changelog", "change log", "release history", "release notes", "contributors", "license",
        "table of contents", "contents",
    ]


class RepetitionFilter(Section):
    ngram: PositiveInt = 3
    jaccard: Fraction = 0.7
    # Drop a segment when more than this share of its sentences nearly repeats an earlier one.
    max_repeated_fraction: Fraction = 0.3


class LanguageFilter(Section):
    lang: str = "en"
    min_prob: Fraction = 0.5


class DedupConfig(Section):
    """Exact duplicates (the normalised text) first, then MinHash near-duplicates of what is left, both
    with datatrove's multi-stage dedup on disk (:mod:`humpback.data.corpus`). Near: the segments whose
    word ``shingle_words``-grams agree on all ``hashes_per_bucket`` MinHashes of any one of ``buckets``
    bands; likely above a Jaccard similarity of about (1/buckets)^(1/hashes_per_bucket): 0.72 for 14 x 8
    (FineWeb's setting; a pair at 0.8 is caught with probability 0.92)."""

    exact: bool = True
    near: bool = True
    shingle_words: PositiveInt = 5
    buckets: Annotated[int, Field(ge=1, le=64)] = 14
    hashes_per_bucket: Annotated[int, Field(ge=1, le=32)] = 8

    @model_validator(mode="before")
    @classmethod
    def _gone(cls, value):
        return _retired(value, ("threshold", "num_perm"), lambda k: (
            f"corpus.dedup.{k} is gone: near-duplicates are found by datatrove's MinHash, set by corpus.dedup.buckets "
            "and hashes_per_bucket (likely duplicates above a Jaccard similarity of about "
            "(1/buckets)^(1/hashes_per_bucket))"))

    @property
    def similarity(self) -> float:
        """The Jaccard similarity at which a pair is caught with probability about one half."""
        return (1 / self.buckets) ** (1 / self.hashes_per_bucket)


class CorpusConfig(Section):
    """Segments from the raw documents in data/raw: split at headers, filtered, deduplicated."""

    # datatrove tasks: data/raw is cut into this many contiguous blocks of documents, one task each. The
    # output depends on it (where duplicates meet), not on how many run at once (corpus_run.workers).
    tasks: Annotated[int, Field(ge=1, le=65_000)] = 4
    max_segments: PositiveInt | None = 16  # demo cap; null = the whole corpus
    max_segments_per_document: PositiveInt | None = 2  # demo: spread the cap over many documents
    shard_size: PositiveInt = 16  # demo; at scale about 10,000 segments per shard
    # HTML: also apply resiliparse's main-content heuristic (drops sidebars and link lists no landmark
    # names, but also most short list items: benchmarks/html_extraction.py); false = landmarks only
    html_main_content: bool = False
    min_chars: PositiveInt = 600
    max_chars: PositiveInt = 1500  # demo; the paper: 3,000
    allow_headerless: bool = False
    header: HeaderFilter = HeaderFilter()
    repetition: RepetitionFilter = RepetitionFilter()
    language: LanguageFilter = LanguageFilter()
    dedup: DedupConfig = DedupConfig()

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, value):
        return _retired(value, ("sources", "max_document_chars"), lambda k: (
            f"corpus.{k} is now raw.{k}: the raw corpus is its own stage and DVC node (data/raw); move the key "
            "to the `raw` section"))

    @model_validator(mode="after")
    def _length_window(self) -> "CorpusConfig":
        if self.min_chars > self.max_chars:
            raise ValueError(f"min_chars ({self.min_chars}) must not exceed max_chars ({self.max_chars})")
        return self


class SlurmConfig(Section):
    """datatrove's Slurm executor: one sbatch job array per step, each waiting on the one before."""

    partition: str | None = None  # required with executor: slurm
    time: str = "4:00:00"  # per task, sbatch's --time
    cpus_per_task: PositiveInt = 1
    mem_per_cpu_gb: Annotated[float, Field(gt=0)] = 2
    qos: str = "normal"
    env_command: str | None = None  # run before each task, e.g. "source .venv/bin/activate"
    sbatch_args: dict[str, str] = {}  # more #SBATCH options, e.g. {account: my-project}
    poll_seconds: Annotated[float, Field(gt=0)] = 30  # how often the stage looks for finished tasks

    @field_validator("time", mode="before")
    @classmethod
    def _seconds(cls, value):
        # YAML 1.1 reads an unquoted 4:00:00 as 14400 (base 60), and `dvc exp run -S` drops the quotes
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{value // 3600}:{value // 60 % 60:02d}:{value % 60:02d}"
        return value


class CorpusRunConfig(Section):
    """Where the corpus stage's datatrove pipeline runs. Not a DVC param of the stage: the same
    ``corpus.tasks`` give the same bytes whichever executor and however many workers run them."""

    executor: Literal["local", "ray", "slurm"] = "local"
    # Tasks at once: local, processes (null = every core of this machine); ray, tasks in flight (null =
    # every task); slurm, the job array's parallelism (null = no limit).
    workers: PositiveInt | None = None
    # Signatures, duplicate lists, per-task output and datatrove's logs; deleted when the stage ends well,
    # kept on a failure so a rerun does only the tasks that did not finish. ray/slurm: shared storage.
    work_dir: str = ".humpback/corpus"
    cpus_per_task: Annotated[float, Field(gt=0)] = 1  # ray
    mem_per_cpu_gb: Annotated[float, Field(gt=0)] = 1  # ray
    slurm: SlurmConfig = SlurmConfig()

    @model_validator(mode="after")
    def _slurm_partition(self) -> "CorpusRunConfig":
        if self.executor == "slurm" and not self.slurm.partition:
            raise ValueError("executor slurm needs slurm.partition (the partition sbatch submits to)")
        return self
