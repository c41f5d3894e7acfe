"""Stage `seed`: the human-written seed pairs, split into train and held-out Parquet files.

\b
    dvc repro seed
    python pipeline/seed.py --tokenizer models/base --out data/seed --metrics metrics/seed.json

Reads `seed.*`: the demo set (data/demo/seed.jsonl), any local jsonl/parquet with instruction and
response columns, or OASST1 with the paper's rule (first turn, English, rank-0 reply, 3,200 pairs).
Writes data/seed/{train,heldout}.parquet and metrics/seed.json (the paper's Table 2 columns:
mean ± std length of instructions and responses, in characters and in tokens).
"""

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import click

from _common import load_params, params_option, run_stage
from humpback.core.files import write_json
from humpback.core.shards import write_table_atomic
from humpback.core.stats import length_stats
from humpback.data.config import SeedConfig
from humpback.data.seed import SeedDataError, load_seed, split_heldout, to_table

log = logging.getLogger("humpback.seed")


def token_counter(checkpoint: str) -> Callable[[list[str]], list[int]]:
    """Tokens per text under the checkpoint's tokenizer, without special tokens. A fast tokenizer's
    own file goes through the `tokenizers` library (the same counts as AutoTokenizer, which would
    import most of transformers: ~4 s of a ~10 s stage); a slow-only tokenizer through AutoTokenizer."""
    path = Path(checkpoint) / "tokenizer.json"
    if path.is_file():
        from tokenizers import Tokenizer

        fast = Tokenizer.from_file(str(path))
        return lambda texts: [len(e.ids) for e in fast.encode_batch(texts, add_special_tokens=False)]
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(checkpoint)
    return lambda texts: [len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]] if texts else []


def _lengths(pairs: list[dict], count_tokens) -> dict:
    out = {}
    for col in ("instruction", "response"):
        texts = [p[col] for p in pairs]
        out[f"{col}_chars"] = length_stats([len(t) for t in texts])
        out[f"{col}_tokens"] = length_stats(count_tokens(texts))
    return out


@click.command(help=__doc__)
@params_option
@click.option("--tokenizer", default="models/base", show_default=True, type=click.Path(exists=True, file_okay=False),
              help="Checkpoint whose tokenizer counts tokens.")
@click.option("--out", default="data/seed", show_default=True, type=click.Path(file_okay=False))
@click.option("--metrics", "metrics_path", default="metrics/seed.json", show_default=True)
def main(params_path: str, tokenizer: str, out: str, metrics_path: str) -> None:
    cfg = load_params(params_path, seed=SeedConfig).seed
    try:
        pairs = load_seed(cfg)
        train, heldout = split_heldout(pairs, cfg.heldout, cfg.split_seed)
    except (SeedDataError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    count_tokens = token_counter(tokenizer)
    shutil.rmtree(out, ignore_errors=True)
    write_table_atomic(to_table(train), Path(out) / "train.parquet")
    write_table_atomic(to_table(heldout), Path(out) / "heldout.parquet")
    metrics = {
        "source": cfg.source,
        "pairs": {"total": len(pairs), "train": len(train), "heldout": len(heldout)},
        "train": _lengths(train, count_tokens),
        "heldout": _lengths(heldout, count_tokens),
    }
    write_json(metrics_path, metrics)
    s = metrics["train"]
    log.info("seed: %d train + %d held-out pairs; instruction %.0f ± %.0f chars, response %.0f ± %.0f chars",
             len(train), len(heldout), s["instruction_chars"]["mean"], s["instruction_chars"]["std"],
             s["response_chars"]["mean"], s["response_chars"]["std"])


if __name__ == "__main__":
    run_stage(main)
