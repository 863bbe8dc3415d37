#!/usr/bin/env bash
# The GPU check's one command on the device machine (issue 17; docs/benchmarks.md, "GPU check"):
#
#     bash bench/gpu/run.sh [bench/gpu_check.py options]      e.g. --backend torch --checks boundary
#
# That machine has JAX, PyTorch, numpy and h5py but no TensorFlow and no package registry; the run carries
# bench/gpu/wheels/ (`make gpu-wheels`). This script
#   1. makes a venv over the machine's python3 that still sees its packages (a venv made from a venv sees
#      only the base interpreter's, so a .pth file adds the machine python's site-packages);
#   2. installs segtrain's dependencies (pyproject.toml's, TensorFlow left out) with pip, no index: what the
#      machine has is kept, only what it lacks comes from the wheels; segtrain itself runs from this tree
#      (PYTHONPATH), nothing to build;
#   3. runs bench/gpu_check.py --require-gpu --budget-s 480 (GPU_CHECK_BUDGET_S), which prints the table and
#      writes gpu-check.md, gpu-check.json and gpu-check-logs.tar.gz to $OUT.
# GPU_PYTHON (default python3) picks the interpreter; GPU_VENV=none installs into its own environment instead
# of a venv (the machine is thrown away after the lease); GPU_CHECK_REQUIRE_GPU=0 rehearses all this on a CPU.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
PY=${GPU_PYTHON:-python3}
VENV=${GPU_VENV:-/tmp/segtrain-gpu-venv}
WHEELS=bench/gpu/wheels
OUT=${OUT:-$PWD/bench/runs/gpu-check-out}
export OUT
t0=$(date +%s)

if [ ! -d "$WHEELS" ]; then
    echo "run.sh: no $WHEELS/ here: run 'make gpu-wheels' and name bench/gpu/wheels in the run's carry" >&2
    exit 2
fi
echo "== machine: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -4)"
"$PY" -c 'import sys; print("== python", sys.version.split()[0], sys.executable)' || exit 2
echo "== wheels from commit $(cat "$WHEELS/COMMIT" 2>/dev/null || echo '?'): $(ls "$WHEELS"/*.whl | wc -l) files"

PYBIN=$PY
if [ "$VENV" = none ]; then
    echo "== GPU_VENV=none: installing into $PY's own environment"
elif rm -rf "$VENV" && "$PY" -m venv --without-pip --system-site-packages "$VENV"; then
    # addsitedir, not a bare path: the machine's site-packages' own .pth files are read too
    site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    "$PY" -c 'import site; print("\n".join(f"import site; site.addsitedir({d!r})" for d in site.getsitepackages()))' \
        >"$site/_machine_python.pth"
    PYBIN=$VENV/bin/python
else
    echo "== no venv could be made: installing into $PY's own environment"
fi

# pyproject.toml's dependencies without TensorFlow (read without tomllib: any Python 3)
reqs=$("$PYBIN" - <<'PYEOF'
import re
text = open("pyproject.toml").read()
block = re.search(r"^dependencies = \[(.*?)^\]", text, re.S | re.M).group(1)
deps = [d.replace(" ", "") for d in re.findall(r'"([^"]+)"', block)]
print(" ".join(d for d in deps if not d.startswith("tensorflow")))
PYEOF
)
echo "== installing what is missing of: $reqs"
# shellcheck disable=SC2086
if ! "$PYBIN" -m pip install --no-index --find-links "$WHEELS" --no-cache-dir --disable-pip-version-check \
        --quiet $reqs; then
    echo "run.sh: pip could not install segtrain's dependencies from $WHEELS (above: which one is missing)" >&2
    exit 2
fi
"$PYBIN" - <<'PYEOF'
import importlib.metadata as m
names = ("keras", "jax", "jaxlib", "torch", "numpy", "h5py", "optuna", "sqlalchemy", "typer", "rich", "tqdm", "optree")
def version(n):
    try:
        return m.version(n)
    except m.PackageNotFoundError:
        return "-"
print("== versions: " + ", ".join(f"{n} {version(n)}" for n in names))
PYEOF
echo "== set up in $(($(date +%s) - t0)) s; results to $OUT"

export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
require=--require-gpu
[ "${GPU_CHECK_REQUIRE_GPU:-1}" = 0 ] && require=
# shellcheck disable=SC2086
exec "$PYBIN" bench/gpu_check.py $require --budget-s "${GPU_CHECK_BUDGET_S:-480}" --out "$OUT" "$@"
