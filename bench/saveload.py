"""Workload 4: save and load cost of a ~50M-parameter model (with Adam) per checkpoint format.

    python bench/saveload.py --format keras|h5|savedmodel --dir DIR --out RESULT.json [--params 50e6]

One format per process, so that loads do not pile up in one process (TensorFlow
keeps about one model + optimizer per load alive) and every format starts from
the same state; bench/run.py runs the formats interleaved.

Two measurements on the same trained model (one Adam step, so the moments are
non-zero), both with the file in the page cache as at a real segment boundary:

* **raw** — the Keras/TF calls alone, as a user would write them, made durable:
  `.keras` = `model.save` / `keras.saving.load_model`; `h5` = `save_weights`
  (optimizer built first) / `build_model()` + `optimizer.build` + `load_weights`;
  `savedmodel` = `tf.train.Checkpoint(model, optimizer).write` / `.read`.
  save = write + fsync of every file; load = everything until the model can train
  again (for h5 and savedmodel that includes building the model).
* **segtrain** — the core's own boundary path: `model_state.fingerprint`
  (CRC-32 of every variable), `checkpoint.save` (write; fsync of every file
  while its CRC-32 is computed; state.json, rename), `checkpoint.is_complete`
  with sizes, as the next segment checks the checkpoint the supervisor has just
  seen committed, `checkpoint.load_model_files`, then `model_state.verify`
  (the fingerprint again). `digest_seconds` is the CRC-32 of the model files
  alone, for attribution; `resume_check_seconds` is `is_complete` with every
  digest, what `segtrain resume` pays once before loading (not in the total).
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402


def layer_sizes(params: float) -> tuple[int, int]:
    """Width and number of square Dense layers that make about `params` parameters."""
    layers = 3
    width = int((params / layers) ** 0.5)
    return width - width % 64, layers


def build_model(width: int, layers: int):
    import keras

    model = keras.Sequential([keras.Input(shape=(width,))]
                             + [keras.layers.Dense(width, activation="relu") for _ in range(layers)]
                             + [keras.layers.Dense(10)])
    model.compile(optimizer=keras.optimizers.Adam(1e-4),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def fsync_tree(path: Path) -> None:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for p in files:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    fd = os.open(path.parent if path.is_file() else path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def raw(model, fmt: str, folder: Path, rebuild) -> dict:
    import keras
    import tensorflow as tf

    folder.mkdir(parents=True, exist_ok=True)
    out: dict = {}
    t = time.perf_counter()
    if fmt == "keras":
        target = folder / "model.keras"
        model.save(target)
    elif fmt == "h5":
        target = folder / "model.weights.h5"
        model.save_weights(target)
    else:
        target = folder / "model"
        tf.train.Checkpoint(model=model, optimizer=model.optimizer).write(str(target))
        target = folder  # the checkpoint is several files in the folder
    out["write_seconds"] = time.perf_counter() - t
    t = time.perf_counter()
    fsync_tree(target)
    out["fsync_seconds"] = time.perf_counter() - t
    out["save_seconds"] = out["write_seconds"] + out["fsync_seconds"]
    out["size_mb"] = size_mb(target)

    t = time.perf_counter()
    if fmt == "keras":
        loaded = keras.saving.load_model(target, compile=True)
        out["rebuild_seconds"] = 0.0
    else:
        loaded = rebuild()
        out["rebuild_seconds"] = time.perf_counter() - t
        if fmt == "h5":
            loaded.load_weights(target)
        else:
            status = tf.train.Checkpoint(model=loaded, optimizer=loaded.optimizer).read(str(folder / "model"))
            status.assert_existing_objects_matched()
    out["load_seconds"] = time.perf_counter() - t
    out["read_seconds"] = out["load_seconds"] - out["rebuild_seconds"]
    out["total_seconds"] = out["save_seconds"] + out["load_seconds"]
    same = all(np.array_equal(a, b) for a, b in zip(model.get_weights(), loaded.get_weights()))
    opt_same = (len(model.optimizer.variables) == len(loaded.optimizer.variables) and all(
        np.array_equal(a.numpy(), b.numpy()) for a, b in zip(model.optimizer.variables, loaded.optimizer.variables)))
    out["restores_weights"], out["restores_optimizer"] = bool(same), bool(opt_same)
    del loaded
    gc.collect()
    return out


def via_segtrain(model, fmt: str, folder: Path, rebuild, sample) -> dict:
    from segtrain.paths import RunPaths
    from segtrain.state import atomic, checkpoint, model_state

    folder.mkdir(parents=True, exist_ok=True)
    paths = RunPaths(folder)
    out: dict = {}
    t = time.perf_counter()
    fp = model_state.fingerprint(model)
    out["fingerprint_seconds"] = time.perf_counter() - t
    t = time.perf_counter()
    ckpt = checkpoint.save(model, paths, fmt, checkpoint.Snapshot(
        epoch=1, state={"fingerprint": fp, "rng": model_state.seed_states(model)}))
    out["checkpoint_save_seconds"] = time.perf_counter() - t
    t = time.perf_counter()
    for name in ckpt.state.files:
        atomic.file_digest(ckpt.path / name)
    out["digest_seconds"] = time.perf_counter() - t
    t = time.perf_counter()
    ok, why = checkpoint.is_complete(ckpt.path, hashed=True)
    out["resume_check_seconds"] = time.perf_counter() - t
    if not ok:
        raise RuntimeError(f"checkpoint not complete: {why}")
    t = time.perf_counter()
    ok, why = checkpoint.is_complete(ckpt.path, hashed=False)
    out["is_complete_seconds"] = time.perf_counter() - t
    t = time.perf_counter()
    loaded = checkpoint.load_model_files(ckpt, rebuild, {}, sample)
    out["load_model_seconds"] = time.perf_counter() - t
    t = time.perf_counter()
    model_state.verify(loaded, fp, "bench")
    out["verify_seconds"] = time.perf_counter() - t
    out["save_seconds"] = out["fingerprint_seconds"] + out["checkpoint_save_seconds"]
    out["load_seconds"] = out["is_complete_seconds"] + out["load_model_seconds"] + out["verify_seconds"]
    out["total_seconds"] = out["save_seconds"] + out["load_seconds"]
    out["checksum_seconds"] = out["digest_seconds"] + out["fingerprint_seconds"] + out["verify_seconds"]
    del loaded
    gc.collect()
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--format", choices=("keras", "h5", "savedmodel"), required=True)
    parser.add_argument("--params", type=float, default=50e6)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--keep-files", action="store_true")
    parser.add_argument("--segtrain-first", action="store_true", help="measure segtrain's path before the raw one")
    args = parser.parse_args(argv)

    import keras

    keras.utils.set_random_seed(0)
    width, layers = layer_sizes(args.params)
    t = time.perf_counter()
    model = build_model(width, layers)
    x = np.random.default_rng(0).normal(size=(32, width)).astype("float32")
    y = np.zeros(32, dtype="int32")
    model.train_on_batch(x, y)  # one Adam step: moments non-zero, iterations 1
    build_seconds = time.perf_counter() - t

    def rebuild():
        m = build_model(width, layers)
        m(x[:1], training=False)
        m.optimizer.build(m.trainable_variables)
        return m

    result = {
        "format": args.format,
        "params": int(model.count_params()),
        "width": width,
        "layers": layers,
        "build_and_first_step_seconds": build_seconds,
        "order": "segtrain,raw" if args.segtrain_first else "raw,segtrain",
    }
    # The second save + load in a process runs warmer (imports, allocator): alternate the order.
    paths = {"raw": lambda: raw(model, args.format, args.dir / "raw", rebuild),
             "segtrain": lambda: via_segtrain(model, args.format, args.dir / "segtrain", rebuild, lambda: x[:1])}
    for name in result["order"].split(","):
        result[name] = paths[name]()
    result |= {
        "peak_rss_mb": __import__("resource").getrusage(__import__("resource").RUSAGE_SELF).ru_maxrss / 1e3,
        "rss_mb": rss_mb(),
    }
    if not args.keep_files:
        shutil.rmtree(args.dir, ignore_errors=True)
    args.out.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
