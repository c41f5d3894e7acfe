"""Training throughput against this machine's roofline, with and without padding, in one run.

    python benchmarks/training_throughput.py [--model models/base] [--steps 2] [--out bench.json]

The demo's training work: forward examples from the seed pairs (data/seed/train.parquet), the
project's trainer (trl SFTTrainer, loss on the response), micro batches of `--micro-batch`. Rows:

- padded: trl's default, every micro batch padded to its longest example;
- length-grouped: micro batches of similar lengths, less padding
  (`train.sft: {train_sampling_strategy: group_by_length}`);
- packing: examples packed best-fit-decreasing into rows of max_length and each row computed as one
  padding-free sequence (`train.sft: {packing: true}`): no pad token is computed, attention stays
  within each example (position ids restart per example). trl refuses `padding_free` alone when
  max_length must be enforced: packing is its padding-free form here.

Reports tokens/s of real (non-padding) tokens and the model FLOP/s they imply (6 N per token: forward
2 N, backward 4 N, N the parameters without the input embedding's lookup), as a share of this
machine's dense matmul GFLOP/s measured in the same run, and each row's ratio to the first; also
the first step's loss (packed rows hold other examples per step, so it moves a little).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import click
import pyarrow.parquet as pq
from _machine import hardware, matmul_gflops, random_copy

VARIANTS = {"padded": {}, "length_grouped": {"train_sampling_strategy": "group_by_length"},
            "packing": {"packing": True}}


@click.command(help=__doc__)
@click.option("--model", "model_dir", default="models/base", show_default=True, type=click.Path(exists=True))
@click.option("--seed-data", default="data/seed", show_default=True, type=click.Path(exists=True))
@click.option("--steps", default=2, show_default=True, help="Optimiser steps per row.")
@click.option("--micro-batch", default=8, show_default=True, help="Examples per forward pass (one step each).")
@click.option("--max-length", default=384, show_default=True)
@click.option("--precision", default="auto", show_default=True, type=click.Choice(["auto", "bf16", "fp32"]))
@click.option("--variants", default=",".join(VARIANTS), show_default=True, help="Rows to run, comma-separated.")
@click.option("--random-weights", is_flag=True, help="Draw the weights (architecture and tokenizer kept).")
@click.option("--out", default=None, help="Write the table as JSON here.")
def main(model_dir, seed_data, steps, micro_batch, max_length, precision, variants, random_weights, out):
    from humpback.core.logs import setup_logging
    from humpback.models.device import use_bf16
    from humpback.models.loading import count_parameters
    from humpback.prompts.config import PromptsConfig
    from humpback.train.config import TrainConfig
    from humpback.train.recipe import build_trainer, forward_examples

    setup_logging()
    if random_weights:
        model_dir = random_copy(Path(model_dir), Path(tempfile.mkdtemp(prefix="bench-model-")))
    prompts = PromptsConfig()
    pairs = pq.read_table(Path(seed_data) / "train.parquet", columns=["instruction", "response"]).to_pylist()
    need = steps * micro_batch
    examples = forward_examples((pairs * (need // len(pairs) + 1))[:need], prompts.seed_tag, prompts)
    dtype = "bfloat16" if use_bf16(precision) else "float32"
    gflops_before = matmul_gflops(dtype)
    rows: list[dict] = []

    def config(name: str) -> TrainConfig:
        return TrainConfig(max_steps=None, epochs=1.0, micro_batch_size=micro_batch, small_data_batch_size=micro_batch,
                           max_length=max_length, precision=precision, checkpoint_steps=None, dropout=0.0,
                           sft={**VARIANTS[name], "include_num_input_tokens_seen": "non_padding"})

    # one untimed step first: the first training in a process pays for the device's set-up (on a GPU
    # its context and kernel choices: the first row measured 5x slower than the same row run last)
    with tempfile.TemporaryDirectory(prefix="bench-warmup-") as work:
        build_trainer(model_dir, examples[:micro_batch], config("padded"), work, progress=False).train()
    for name in [v for v in variants.split(",") if v]:
        cfg = config(name)
        with tempfile.TemporaryDirectory(prefix="bench-train-") as work:
            trainer = build_trainer(model_dir, examples, cfg, work, progress=False)
            params = count_parameters(trainer.model) - trainer.model.get_input_embeddings().weight.numel() * (
                0 if trainer.model.config.tie_word_embeddings else 1)
            start = time.perf_counter()
            trainer.train()
            seconds = time.perf_counter() - start
        tokens = int(trainer.state.num_input_tokens_seen)
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        rows.append({"row": name, "steps": trainer.state.global_step, "tokens": tokens, "seconds": round(seconds, 2),
                     "tokens_per_s": round(tokens / seconds, 1), "model_gflops": round(6 * params * tokens / seconds / 1e9, 2),
                     "first_loss": round(losses[0], 4) if losses else None})
        click.echo(f"  {name}: {tokens / seconds:.1f} tokens/s over {trainer.state.global_step} steps", err=True)
    gflops = (gflops_before + matmul_gflops(dtype)) / 2
    hw = hardware() | {"matmul_gflops": round(gflops, 1), "dtype": dtype}
    click.echo(f"\n{hw} - {len(examples)} seed examples, micro batch {micro_batch}, max_length {max_length}, "
               f"{params / 1e6:.0f}M parameters{', random weights' if random_weights else ''}\n")
    click.echo("| batches | tokens/s | model GFLOP/s | share of matmul roofline | ratio | first loss |\n"
               "| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        r["roofline_share"] = round(r["model_gflops"] / gflops, 3)
        click.echo(f"| {r['row']} | {r['tokens_per_s']:.0f} | {r['model_gflops']:.1f} | {r['roofline_share']:.0%} | "
                   f"{r['tokens_per_s'] / rows[0]['tokens_per_s']:.2f}x | {r['first_loss']} |")
    if out:
        Path(out).write_text(json.dumps({"hardware": hw, "examples": len(examples), "micro_batch": micro_batch,
                                         "max_length": max_length, "parameters": params,
                                         "random_weights": random_weights, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
