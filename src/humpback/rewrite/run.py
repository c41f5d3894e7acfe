"""rewrite@i, back-and-forth translation (Nguyen et al., 2024): an aligned model rewrites each curated response, given its instruction and the segment.

Resumable per pair through :class:`humpback.core.units.KeyedLines`: a rewrite is kept under the key
of the rewriting model (its DVC md5, or the endpoint and model name), engine, sampling settings,
template, instruction and segment, and saved as soon as its chunk of ``rewrite.chunk_size`` pairs
returns. So a kill loses at most one chunk, and a threshold sweep that adds pairs to A_k rewrites
only the new ones. The faithfulness check is not part of the key: new thresholds reuse every rewrite.
"""

from __future__ import annotations

import logging
import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from humpback.core.keys import content_key
from humpback.core.units import KeyedLines
from humpback.curate.select import CURATED_SCHEMA
from humpback.models.base import GenerationEngine, Sampling
from humpback.models.config import VLLMConfig
from humpback.models.engine import EngineSpec
from humpback.prompts import rewrite_messages
from humpback.rewrite.config import RewriteConfig
from humpback.rewrite.faithful import UNFAITHFUL_REASONS, faithfulness, strip_lead_in
from humpback.rewrite.schema import CACHE_FILE, REWRITTEN_SCHEMA

log = logging.getLogger(__name__)

def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 4) if values else None


@dataclass
class RewriteReport:
    pairs: int = 0  # curated pairs read
    rewritten: int = 0  # pairs kept with their rewrite
    kept_original: int = 0  # pairs whose rewrite failed the check, kept as curated (unfaithful: original)
    unfaithful: Counter = field(default_factory=Counter)  # rewrites that failed the check, by reason
    lead_in_removed: int = 0
    requested: int = 0  # rewrites asked of the model in this run
    reused: int = 0  # rewrites taken from the cache
    failed: int = 0  # requests that got no rewrite (an endpoint's errors): asked again on the next run
    reasons: tuple[str, ...] = ()
    measures: dict = field(default_factory=dict, repr=False)

    def metrics(self, rows: list[dict]) -> dict:
        """What the data determines (the same inputs give the same file, however the run went)."""
        from humpback.core.stats import length_stats

        dropped = sum(self.unfaithful.values()) - self.kept_original
        return {
            "enabled": True,
            "pairs": self.pairs,
            "kept": len(rows),
            "rewritten": self.rewritten,
            "kept_original": self.kept_original,
            "dropped": dropped,
            "unfaithful": {reason: self.unfaithful.get(reason, 0) for reason in UNFAITHFUL_REASONS},
            "lead_in_removed": self.lead_in_removed,
            # means over every rewrite (kept or not): how far the model strays from its segments
            "mean_overlap": _mean(self.measures.get("overlap", [])),
            "mean_coverage": _mean(self.measures.get("coverage", [])),
            "mean_length_ratio": _mean(self.measures.get("length_ratio", [])),
            "response_chars": length_stats([len(r["response"]) for r in rows]),
            "original_response_chars": length_stats([len(r["original_response"]) for r in rows]),
        }


def rewriter_identity(cfg: RewriteConfig, template: str, vllm: VLLMConfig) -> dict:
    """Everything that makes a rewrite what it is: part of every pair's key."""
    g = cfg.generation
    sampling = {"temperature": g.temperature, "top_p": g.top_p, "max_new_tokens": g.max_new_tokens, "seed": g.seed}
    if g.engine == "openai":
        model = {"base_url": cfg.openai.base_url, "model": cfg.openai.model}
    else:
        from humpback.core.keys import path_md5

        model = {"md5": path_md5(cfg.model), **EngineSpec(cfg.model, g, vllm).identity()}
    return {"engine": g.engine, "model": model, "sampling": sampling, "template": template,
            "max_input_tokens": g.max_input_tokens}


def make_rewriter(cfg: RewriteConfig, vllm: VLLMConfig) -> GenerationEngine:
    if cfg.generation.engine == "openai":
        from humpback.models.endpoint import OpenAIEngine

        return OpenAIEngine(cfg.openai, "rewrite.openai")
    return EngineSpec(cfg.model, cfg.generation, vllm).generator()


def pair_key(identity: dict, instruction: str, segment: str) -> str:
    return content_key({"rewriter": identity, "i": instruction, "r": segment}, length=24)


def rewrite_pairs(pairs: list[dict], out_dir: str | Path, cfg: RewriteConfig, template: str, identity: dict,
                  engine_factory: Callable[[], GenerationEngine], progress: bool = True) -> tuple[pa.Table, RewriteReport]:
    """The rewritten set of the curated ``pairs``, and its report; rewrites are cached in ``out_dir``.
    The engine is built only where a rewrite is missing. Pairs whose request failed are left out of
    the table and counted in ``report.failed`` (the caller must not record such a set as done)."""
    from tqdm.auto import tqdm

    cache = KeyedLines(Path(out_dir) / CACHE_FILE)
    keys = [pair_key(identity, p["instruction"], p["response"]) for p in pairs]
    # one request per missing key: two curated pairs with the same instruction and segment share it
    first: dict[str, int] = {}
    for i, k in enumerate(keys):
        if "text" not in cache.entries.get(k, {}):
            first.setdefault(k, i)
    todo = list(first.values())
    report = RewriteReport(pairs=len(pairs), requested=len(todo), reused=len(set(keys)) - len(todo))
    errors: list[str] = []
    if todo:
        engine = engine_factory()
        g = cfg.generation
        sampling = Sampling(g.temperature, g.top_p, g.max_new_tokens, g.seed)
        try:
            with tqdm(total=len(todo), desc="rewrite", unit="pair", disable=not progress) as bar:
                for start in range(0, len(todo), cfg.chunk_size):
                    chunk = todo[start : start + cfg.chunk_size]
                    texts = engine.generate([rewrite_messages(pairs[i]["instruction"], pairs[i]["response"], template)
                                             for i in chunk], sampling, bar.update)
                    for i, text in zip(chunk, texts):
                        if text is not None:  # None: an endpoint's failed request, asked again next run
                            cache.add(keys[i], {"text": text})
                    errors.extend(getattr(engine, "errors", []))
        finally:
            cache.close()
    cache.prune(set(keys))
    rows = []
    for pair, key in zip(pairs, keys):
        entry = cache.entries.get(key)
        if entry is None:
            report.failed += 1
            continue
        text, had_lead_in = strip_lead_in(entry["text"])
        report.lead_in_removed += had_lead_in
        f = faithfulness(text, pair["response"], cfg.faithfulness)
        for name in ("overlap", "coverage", "length_ratio"):
            report.measures.setdefault(name, []).append(getattr(f, name))
        measures = {"overlap": f.overlap, "coverage": f.coverage, "length_ratio": f.length_ratio}
        base = {k: pair[k] for k in CURATED_SCHEMA.names} | {"original_response": pair["response"]} | measures
        if f.problem is None:
            report.rewritten += 1
            rows.append(base | {"response": text, "rewritten": True})
            continue
        report.unfaithful[f.problem] += 1
        if cfg.unfaithful == "original":
            report.kept_original += 1
            rows.append(base | {"rewritten": False})
    report.reasons = tuple(sorted(set(errors)))
    return pa.Table.from_pylist(rows, schema=REWRITTEN_SCHEMA), report
