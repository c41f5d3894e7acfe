"""The model card every trained model folder carries (README.md, huggingface_hub's ModelCard), so
uploading the folder to a hub is complete: base model, training data with DVC's md5, the recipe,
the held-out likelihood, how to prompt the model, intended use and limits.

Written by the train stage from what it knows when it ends; nothing that changes from run to run
(time, git commit: they are in the MLflow run) goes in, so the folder's bytes, and DVC's md5 of it,
stay what the data and params determine. Win rates are measured after training (evaluate@<name>),
so the card names where they are instead of holding them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from humpback.core.files import atomic_write
from humpback.models.config import ModelConfig
from humpback.train.config import TrainConfig

PAPER = "https://arxiv.org/abs/2308.06259"


@dataclass
class TrainingData:
    name: str  # seed, curated/iter1, ...
    path: str
    rows: int
    md5: str  # DVC's md5 of the path


@dataclass
class CardFacts:
    name: str  # backward, m0, m1, ...
    role: str  # backward | forward
    base: ModelConfig
    base_md5: str
    data: list[TrainingData]
    train: TrainConfig
    summary: dict  # the stage's metrics: steps, batch size, tokens, final loss, held-out NLL
    prompt: str  # how to prompt it: the backward template, or the tags
    tags: list[str] = field(default_factory=list)


def hub_base_model(base: ModelConfig) -> str | None:
    """The base's hub id where it has one (a pretrained hub model; not a local folder, a GGUF file
    from a Python package or a random tiny model)."""
    if base.source != "pretrained" or base.tiny_random is not None or Path(base.name).exists():
        return None
    return base.name if base.name.count("/") == 1 else None


def card_text(f: CardFacts) -> str:
    from huggingface_hub import ModelCardData

    hub_id = hub_base_model(f.base)
    meta = ModelCardData(library_name="transformers", base_model=hub_id, pipeline_tag="text-generation",
                         tags=["humpback", "instruction-backtranslation",
                               "backward-model" if f.role == "backward" else "instruction-tuned", *f.tags],
                         model_name=f.name)
    s, h, t = f.summary, f.summary.get("heldout") or {}, f.train
    what = ("the backward model M_yx: given a text, it writes the instruction the text answers "
            "(self-augmentation, paper §2.2)" if f.role == "backward" else
            f"the forward model {f.name}: it answers instructions"
            + (" (the seed model M0, paper §2.3)" if f.name == "m0" else
               " (trained on the seed and the curated pairs of its iteration, paper §2.3)"))
    base = f.base.name + (f" ({f.base.gguf_file})" if f.base.gguf_file else "")
    if f.base.tiny_random is not None:
        base += ", random tiny weights with its tokenizer (tests)"
    rows = "\n".join(f"| {d.name} | `{d.path}` | {d.rows} | `{d.md5}` |" for d in f.data)
    nll = (f"{h['nll']} per target token on {h['pairs']} held-out seed pairs"
           + (f" (base model: {h['nll_base']})" if h.get("nll_base") is not None else "")
           if h.get("nll") is not None else "not measured (no held-out seed pairs)")
    lora = f" (`{t.lora}`, merged into the weights)" if t.method == "lora" else ""
    extra = f"\n- Other SFTConfig fields: `{t.sft}`" if t.sft else ""
    evaluation = ("The backward model is judged by what it writes: `metrics/augment.json` (`well_formed`) "
                  "and the curated sets." if f.role == "backward" else
                  f"Win rates against the reference model: `metrics/eval/{f.name}.json` (stage "
                  f"`evaluate@{f.name}`), where `evaluate.models` lists it.")
    body = f"""
# {f.name}

{what[0].upper() + what[1:]}. Made by humpback, an implementation of instruction backtranslation
([Li et al., 2023]({PAPER})): `{base}` fine-tuned {"in full" if t.method == "full" else "with LoRA"}{lora}.

## Base model

`{base}` (source: {f.base.source}{f", revision {f.base.revision}" if f.base.revision else ""}); DVC md5 of the
checkpoint it was trained from: `{f.base_md5}`.

## Training data

| set | path | pairs | DVC md5 |
| --- | --- | --- | --- |
{rows}

## Recipe

- {s.get('steps')} optimiser steps of {s.get('batch_size')} examples, drawn from a training set of \
{s.get('examples')} examples ({s.get('prompt_tokens')} prompt and {s.get('completion_tokens')} completion \
tokens in all); loss on the completion only
- Learning rate {t.learning_rate} decaying linearly to {t.final_learning_rate}, weight decay {t.weight_decay}, \
dropout {t.dropout}
- Up to {t.max_length} tokens per example; {s.get('precision')} training, saved as {t.save_dtype}; seed {t.seed}
- Final training loss {s.get('final_loss')}{extra}

## Results

- Held-out likelihood: {nll}.
- {evaluation}

## How to prompt it

{f.prompt}

## Intended use and limits

For research on instruction tuning and data curation. The model has had no safety tuning beyond its
base model's and inherits that model's licence, languages and limits. A model trained for a handful
of steps on a laptop CPU (the offline demo) shows the pipeline working, not a useful model; the
paper's results need its scale (a 7B-65B base, 3,200 seed pairs, hundreds of thousands of segments).
"""
    return f"---\n{meta.to_yaml()}\n---\n{body}"


def write_card(out_dir: str | Path, facts: CardFacts) -> Path:
    from huggingface_hub import ModelCard

    card = ModelCard(card_text(facts))  # parses the YAML header: a broken card fails here, not on upload
    path = Path(out_dir) / "README.md"
    with atomic_write(path) as tmp:
        tmp.write_text(str(card), encoding="utf-8")
    return path
