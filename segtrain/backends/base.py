"""What JAX and PyTorch share, and TensorFlow overrides: Keras' own seeding and a `PyDataset` of steps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from segtrain.errors import ConfigError


class KerasBackend:
    """A backend with no specifics beyond Keras' own (see `segtrain.backends.Backend` for the methods)."""

    quiet_import = False
    formats = frozenset({"keras", "h5"})

    def __init__(self, name: str, library: str):
        self.name, self.library = name, library

    def seed(self, seed: int, keep_compiled: bool = False) -> None:
        import keras

        keras.utils.set_random_seed(seed)

    def array_input(self, batches: Any, first_step: int, last_step: int) -> Any:
        return _step_dataset_class()(batches, first_step, last_step)

    def accelerator_present(self) -> bool:
        """The device files of NVIDIA's and AMD's drivers: asking the library would start its runtime."""
        return any(Path("/dev").glob("nvidia[0-9]*")) or Path("/dev/kfd").exists()

    def runtime_started(self) -> bool:
        return False

    def device_memory_mb(self) -> dict[str, float] | None:
        return None

    def reset_device_peak(self) -> None:
        pass

    def global_rng_state(self) -> str | None:
        return None

    def set_global_rng_state(self, state: str) -> None:
        pass

    def split_cpu(self, devices: int) -> None:
        raise ConfigError(f"SEGTRAIN_CPU_DEVICES is not supported on the {self.name!r} backend (TensorFlow and JAX).")

    def data_parallel(self) -> Any:
        raise ConfigError(
            f"--distribute data-parallel is not offered on the {self.name!r} backend: segtrain uses the backends' "
            "own engines, TensorFlow's MirroredStrategy and Keras' DataParallel on JAX."
        )

    def join(self, hosts: Any) -> Any:
        raise ConfigError(
            f"Many hosts (process {hosts.index} of {hosts.count}, from {hosts.source}) train on the JAX backend only "
            f"(KERAS_BACKEND=jax); this process runs {self.name!r}. TensorFlow's MultiWorkerMirroredStrategy fails "
            "under Keras 3's fit (keras-team/keras#20585); on one host, --distribute data-parallel uses every GPU."
        )

    def peers_lost(self, text: str) -> bool:
        return False

    def compilation_cache(self, directory: str) -> dict[str, str]:
        """None on TensorFlow (its XLA persistent cache, measured, gave no faster first epoch) and torch."""
        return {}


def _step_dataset_class() -> type:
    import keras

    class StepDataset(keras.utils.PyDataset):
        """Steps [first, last) of an ArrayBatches, in order."""

        def __init__(self, batches: Any, first: int, last: int):
            super().__init__(workers=1, use_multiprocessing=False)
            self.batches, self.first, self.last = batches, first, last

        @property
        def num_batches(self) -> int:
            return self.last - self.first

        def __getitem__(self, i: int) -> tuple:
            return self.batches.batch(self.first + i)

    return StepDataset
