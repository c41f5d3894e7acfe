"""Device and precision choices shared by training and generation."""

from __future__ import annotations

import torch


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def bf16_supported() -> bool:
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    # On CPU, bf16 only pays off with native instructions (AVX-512 BF16 / AMX); emulated it is slower.
    # ATEN_CPU_CAPABILITY=avx2 caps torch's kernels below AVX-512: then bf16 is emulated too, so fp32.
    if not torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
        return False
    return bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)())


def use_bf16(precision: str) -> bool:
    """'auto' picks bf16 where the hardware runs it natively (measured: ~1.5x faster training here)."""
    if precision == "bf16":
        return True
    if precision == "fp32":
        return False
    return bf16_supported()
