"""What every benchmark reports beside its table: the hardware, its measured matmul speed, and a
random-weight copy of a model for machines the real weights cannot reach."""

from __future__ import annotations

import platform
import time
from pathlib import Path


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


# The CPU flags that decide the speed of the demo's matmuls (bf16 native or emulated, ~300x apart).
SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return [f for f in SPEED_FLAGS if f in flags]


def hardware() -> dict:
    import torch

    from humpback.models.device import bf16_supported

    info = {"cpu": cpu_name(), "cores": torch.get_num_threads(), "native_bf16": bf16_supported()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def matmul_gflops(dtype_name: str = "float32", n: int = 1024, seconds: float = 2.0) -> float:
    """Dense matmul throughput of this device in GFLOP/s (2 n^3 per product), best of a few rounds."""
    import torch

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(n, n, device=dev, dtype=dtype), torch.randn(n, n, device=dev, dtype=dtype)
    a @ b  # warm-up
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        for _ in range(4):
            a @ b
        if dev == "cuda":
            torch.cuda.synchronize()
        best = max(best, 4 * 2 * n**3 / (time.perf_counter() - start) / 1e9)
    return best


def random_copy(model_dir: Path, dest: Path) -> Path:
    """The same architecture and tokenizer with seeded random weights."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir))
    model.save_pretrained(dest)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(dest)
    return dest
