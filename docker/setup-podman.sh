#!/usr/bin/env bash
# Sets up what the container tests (tests/test_container.py) need to build docker/Dockerfile
# and run the image with podman, without any image registry. Run by `make test-container`
# (and so by `make test` and CI), as root on Debian or Ubuntu:
#
#   docker/setup-podman.sh [PYTHON]     # PYTHON: whose pip downloads the wheels (default .venv/bin/python)
#
# Each step is skipped when its result is already there, so a second run takes a second:
#
# 1. Debian's packages: podman, runc, catatonit (podman's --init), the CNI plugins and iptables
#    (podman-compose puts the service on a network of its own), debootstrap, podman-compose.
# 2. /etc/containers/containers.conf.d/50-segtrain-tests.conf: containers inherit podman's
#    own resource limits (`default_ulimits = []`; podman's defaults exceed what CI machines
#    allow, and every container fails with "setrlimit ... Operation not permitted") and run
#    with runc (crun refuses hybrid cgroups with "cgroups in hybrid mode not supported").
# 3. The base image localhost/segtrain-base:bookworm: Debian 12 with python3 and pip from
#    debootstrap, imported into podman's image store (the cache: it stays there). A label
#    records the recipe; another recipe makes a new base.
# 4. The wheelhouse docker/wheels/ (gitignored): every wheel the image needs, for the base's
#    Python and C library, at the versions of PYTHON's environment (the test venv), so that
#    the build installs offline and the tests on the host load what the container saved.
#    docker/wheels/.stamp says what the wheels were downloaded for (the base's Python and
#    platform, the venv's versions, pyproject.toml); a change to that downloads them again.
#
# As a user other than root without podman, it says loudly that the container tests will
# be skipped and exits 0 (it cannot install packages); in CI, which runs as root, a step
# that fails fails `make`.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${1:-$ROOT/.venv/bin/python}
SUITE=bookworm
BASE_IMAGE=localhost/segtrain-base:$SUITE
BASE_RECIPE="debootstrap --variant=minbase --include=python3,python3-pip $SUITE"
WHEELS=$ROOT/docker/wheels
CONF=/etc/containers/containers.conf.d/50-segtrain-tests.conf
PACKAGES=(podman runc catatonit containernetworking-plugins iptables debootstrap podman-compose)

step() { printf '\n== setup-podman: %s\n' "$*"; }
took() { printf '   (%d s)\n' "$((SECONDS - $1))"; }

loud_skip() {
    cat >&2 <<EOF

################################################################################
##  THE CONTAINER TESTS WILL BE SKIPPED: $1
##  They build docker/Dockerfile and run it with podman. Run \`make test-container\`
##  as root (it installs podman from Debian's packages), or install podman, runc and
##  podman-compose and build the base image (docker/setup-podman.sh, as root).
################################################################################

EOF
    exit 0
}

# ------------------------------------------------------------------ 1. packages
missing=()
for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "$(id -u)" != 0 ]; then
    command -v podman >/dev/null || loud_skip "podman is not installed, and only root can install it."
    podman image exists "$BASE_IMAGE" || loud_skip "the base image $BASE_IMAGE is missing, and only root can make it."
elif [ ${#missing[@]} -gt 0 ]; then
    step "installing ${missing[*]} (Debian packages)"
    start=$SECONDS
    command -v apt-get >/dev/null || { echo "no apt-get: install ${missing[*]} yourself" >&2; exit 1; }
    apt-get update -qq
    # Without recommends: crun (which cannot run here) and buildah are left out.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    took "$start"
fi

# ------------------------------------------------------------------ 2. podman's settings
if [ "$(id -u)" = 0 ]; then
    wanted='# Written by docker/setup-podman.sh (segtrain), for its container tests.
[containers]
# Containers inherit the limits podman runs with: its defaults (nofile 1048576, ...)
# exceed what some machines allow, and every container fails in setrlimit.
default_ulimits = []

[engine]
# crun refuses hybrid cgroups ("cgroups in hybrid mode not supported").
runtime = "runc"'
    if [ "$(cat "$CONF" 2>/dev/null)" != "$wanted" ]; then
        step "writing $CONF"
        mkdir -p "$(dirname "$CONF")"
        printf '%s\n' "$wanted" >"$CONF"
    fi
fi

# ------------------------------------------------------------------ 3. the base image
label() { podman image inspect --format "{{ index .Labels \"$2\" }}" "$1" 2>/dev/null || true; }
if [ "$(label "$BASE_IMAGE" org.segtrain.recipe)" != "$BASE_RECIPE" ]; then
    [ "$(id -u)" = 0 ] || loud_skip "the base image $BASE_IMAGE is missing or stale, and only root can make it."
    step "making $BASE_IMAGE: $BASE_RECIPE"
    start=$SECONDS
    work=$(mktemp -d /var/tmp/segtrain-base.XXXXXX)
    rootfs=$work/rootfs
    trap 'umount "$work" 2>/dev/null; rm -rf --one-file-system "$work"' EXIT
    # In memory where we may mount: dpkg syncs every file it unpacks, which on a disk
    # makes debootstrap take half as long again (on a tmpfs a sync costs nothing).
    mount -t tmpfs -o size=2g,mode=0755 tmpfs "$work" 2>/dev/null || true
    # shellcheck disable=SC2086  # the recipe is words; it ends with the suite, the target follows
    $BASE_RECIPE "$rootfs" >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
    python=$(chroot "$rootfs" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    glibc=$(chroot "$rootfs" python3 -c 'import platform; print(platform.libc_ver()[1])')
    tar -C "$rootfs" -c . | podman import \
        --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        --change "ENV LANG=C.UTF-8" \
        --change "LABEL org.segtrain.recipe=\"$BASE_RECIPE\"" \
        --change "LABEL org.segtrain.python=$python" \
        --change "LABEL org.segtrain.glibc=$glibc" \
        --quiet - "$BASE_IMAGE" >/dev/null
    umount "$work" 2>/dev/null || true
    rm -rf --one-file-system "$work"
    trap - EXIT
    took "$start"
fi

# ------------------------------------------------------------------ 4. the wheelhouse
python=$(label "$BASE_IMAGE" org.segtrain.python)
glibc=$(label "$BASE_IMAGE" org.segtrain.glibc)
arch=$(uname -m)
# pip takes a --platform literally: list every manylinux tag the base's C library accepts.
platforms=(--platform manylinux1_"$arch" --platform manylinux2010_"$arch" --platform manylinux2014_"$arch")
for ((minor = 5; minor <= ${glibc#2.}; minor++)); do
    platforms+=(--platform "manylinux_2_${minor}_$arch")
done
# The versions of the test venv (what the tests load the container's checkpoints with).
constraints=$("$PYTHON" -m pip freeze --exclude-editable | grep -E '^[A-Za-z0-9._-]+==' || true)
stamp=$(printf '%s\n' "$python" "${platforms[*]}" "$constraints" | cat - "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$WHEELS/.stamp" 2>/dev/null)" != "$stamp" ]; then
    step "downloading the wheels for Python $python, glibc $glibc, $arch into docker/wheels/"
    start=$SECONDS
    mkdir -p "$WHEELS"
    rm -f "$WHEELS"/*.whl "$WHEELS/.stamp"
    printf '%s\n' "$constraints" >"$WHEELS/.constraints.txt"
    # setuptools: the build backend of segtrain's pyproject.toml, which pip fetches offline too.
    # -qq: errors only (a pip configured with extra indexes warns about every package).
    "$PYTHON" -m pip download -qq --dest "$WHEELS" --only-binary=:all: \
        --python-version "$python" --implementation cp "${platforms[@]}" \
        --constraint "$WHEELS/.constraints.txt" "$ROOT" 'setuptools>=77'
    rm -f "$WHEELS/.constraints.txt"
    printf '%s\n' "$stamp" >"$WHEELS/.stamp"
    took "$start"
fi

step "ready: podman $(podman version --format '{{.Client.Version}}'), base $BASE_IMAGE, $(find "$WHEELS" -name '*.whl' | wc -l) wheels"
