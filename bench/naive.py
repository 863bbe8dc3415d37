"""The naive baseline: one plain `model.fit` over all epochs, in one process, on a segtrain script.

    python bench/naive.py SCRIPT --epochs N --seed 0 --out RESULT.json [--pipeline keras|segtrain]

It does what a user's own `train.py` would do with the script's functions:
seed as `segtrain --seed` does (`keras.utils.set_random_seed` and TF op
determinism), `load_data()`, `build_model()`, `callbacks()`, then

    model.fit(x, y, epochs=N, callbacks=[...], verbose=0, **fit_kwargs)

with a last callback that records every epoch's wall seconds (from
`on_epoch_begin` to `on_epoch_end`, as segtrain's own callback does) and the
process' RSS at the epoch's end. `--pipeline segtrain` feeds `fit` through
segtrain's data pipeline (`segtrain.data`, one `fit` call over all steps)
instead of Keras' array adapter: a diagnostic that separates the pipeline's
cost from the boundaries' cost.

The result JSON has `epochs` (epoch, seconds, rss_mb), `peak_rss_mb` (the
process' ru_maxrss), and `timings` (seconds since this process started: imports
done, data loaded, model built, fit started and ended).
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def import_script(path: Path):
    path = path.resolve()
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(f"bench_script_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def split_data(raw):
    """(x, y) or ((x, y), (x_val, y_val)) -> (x, y), validation or None."""
    first, second = raw
    if isinstance(first, (tuple, list)) and isinstance(second, (tuple, list)):
        return tuple(first), tuple(second)
    return (first, second), None


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("script", type=Path)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pipeline", choices=("keras", "segtrain"), default="keras")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    import keras
    import tensorflow as tf

    timings = {"imports": time.perf_counter() - T0}
    keras.utils.set_random_seed(args.seed)
    tf.config.experimental.enable_op_determinism()
    script = import_script(args.script)
    raw = script.load_data()
    timings["data"] = time.perf_counter() - T0
    model = script.build_model()
    cbs = list(script.callbacks()) if hasattr(script, "callbacks") else []
    timings["model"] = time.perf_counter() - T0
    fit_kwargs = dict(getattr(script, "fit_kwargs", {}) or {})

    records: list[dict] = []

    class Recorder(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            now = time.perf_counter()
            seconds = now - self.t
            records.append({"epoch": epoch, "seconds": seconds, "rss_mb": rss_mb(),
                            "begin": self.t - T0, "end": now - T0,
                            "loss": float((logs or {}).get("loss", float("nan")))})

    callbacks = [*cbs, Recorder()]
    if hasattr(script, "train_epoch"):  # the script's own epoch (TF1 graph code), in one process
        timings["fit_start"] = time.perf_counter() - T0
        hooks = keras.callbacks.CallbackList(callbacks, model=model)
        hooks.on_train_begin()
        for epoch in range(args.epochs):
            hooks.on_epoch_begin(epoch)
            hooks.on_epoch_end(epoch, script.train_epoch(model, raw, epoch))
        hooks.on_train_end()
    elif args.pipeline == "keras":
        (x, y), validation = split_data(raw)
        timings["fit_start"] = time.perf_counter() - T0
        model.fit(x, y, epochs=args.epochs, callbacks=callbacks, validation_data=validation, verbose=0,
                  **fit_kwargs)
    else:
        from segtrain.training.data import prepare

        data = prepare(raw, fit_kwargs, args.seed, args.script)
        spe = data.steps_per_epoch
        timings["fit_start"] = time.perf_counter() - T0
        model.fit(data.train.fit_input(0, args.epochs * spe), epochs=args.epochs, steps_per_epoch=spe,
                  callbacks=callbacks, validation_data=data.validation, shuffle=False, verbose=0,
                  **data.fit_kwargs)
    timings["fit_end"] = time.perf_counter() - T0
    result = {
        "script": str(args.script),
        "epochs_total": args.epochs,
        "pipeline": args.pipeline,
        "epochs": records,
        "peak_rss_mb": peak_rss_mb(),
        "timings": timings,
    }
    args.out.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
