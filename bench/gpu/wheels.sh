#!/usr/bin/env bash
# `make gpu-wheels`: the wheels the GPU check (bench/gpu/run.sh) installs from on the device machine, which
# has JAX, PyTorch, numpy and h5py but no package registry. Downloads exactly the files of
# bench/gpu/requirements.txt (no dependency resolution) into bench/gpu/wheels/ (ignored by git; the run
# carries it): py3-none-any wheels for any Python, and the few binary ones (marked there) for Python
# GPU_PYTHON_VERSION (default 3.12, the machine's python3) on manylinux x86-64. Also writes
# bench/gpu/wheels/COMMIT: the device machine gets the working tree without .git.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
VERSION=${GPU_PYTHON_VERSION:-3.12}
DEST=bench/gpu/wheels
REQ=bench/gpu/requirements.txt

pure=$(grep -v '^#' "$REQ" | grep -v '# binary' | sed 's/#.*//' | xargs)
binary=$(grep '# binary' "$REQ" | sed 's/#.*//' | xargs)
rm -rf "$DEST"
mkdir -p "$DEST"
echo "gpu-wheels: py3-none-any: $pure"
# shellcheck disable=SC2086
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --implementation py --abi none --platform any \
    --python-version "$VERSION" -d "$DEST" $pure
echo "gpu-wheels: binary, CPython $VERSION manylinux x86-64: $binary"
# shellcheck disable=SC2086
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --implementation cp --abi "cp${VERSION/./}" \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --python-version "$VERSION" -d "$DEST" $binary

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then commit="$commit (with uncommitted changes)"; fi
echo "$commit" > "$DEST/COMMIT"
echo "gpu-wheels: $(find "$DEST" -name '*.whl' | wc -l) wheels, $(du -sh "$DEST" | cut -f1) in $DEST (commit $commit)"
