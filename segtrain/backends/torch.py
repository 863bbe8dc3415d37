"""PyTorch: the CUDA context is its device runtime, and `torch.cuda` reports its memory."""

from __future__ import annotations

import base64
import json
import sys

from segtrain.backends.base import KerasBackend


class Torch(KerasBackend):
    def __init__(self) -> None:
        super().__init__("torch", "torch")

    def global_rng_state(self) -> str | None:
        """torch's CPU generator, and each CUDA device's where CUDA runs: an unseeded Dropout draws from them."""
        import torch

        states = [torch.get_rng_state()]
        if torch.cuda.is_initialized():
            states += torch.cuda.get_rng_state_all()
        return json.dumps([base64.b64encode(s.numpy().tobytes()).decode() for s in states])

    def set_global_rng_state(self, state: str) -> None:
        import torch

        cpu, *cuda = (torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8) for s in json.loads(state))
        torch.set_rng_state(cpu)
        if cuda and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(cuda)

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
