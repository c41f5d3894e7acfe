"""precision: auto picks bf16 only where torch's own kernels run it natively."""

import torch

from humpback.models import device


def test_auto_is_fp32_when_torch_kernels_are_capped_below_avx512(monkeypatch):
    # ATEN_CPU_CAPABILITY=avx2 on an AVX-512 BF16 CPU: bf16 would be emulated (~300x slower), so fp32
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert device.use_bf16("auto") is False
    assert device.use_bf16("bf16") is True
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    assert device.use_bf16("auto") is True
    assert device.use_bf16("fp32") is False
