"""PyTorch: the CUDA context is its device runtime, and `torch.cuda` reports its memory."""

from __future__ import annotations

import sys

from segtrain.backends.base import KerasBackend


class Torch(KerasBackend):
    def __init__(self) -> None:
        super().__init__("torch", "torch")

    def runtime_started(self) -> bool:
        torch = sys.modules.get("torch")
        return torch is not None and bool(torch.cuda.is_initialized())

    def device_memory_mb(self) -> dict[str, float] | None:
        import torch

        try:
            if not torch.cuda.is_available():
                return None
            return {"current": torch.cuda.memory_allocated() / 1e6, "peak": torch.cuda.max_memory_allocated() / 1e6}
        except (RuntimeError, AttributeError):
            return None

    def reset_device_peak(self) -> None:
        import torch

        try:
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
        except (RuntimeError, AttributeError):
            pass
