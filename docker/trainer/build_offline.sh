#!/usr/bin/env bash
# Build the trainer image without a registry, for the local cluster rehearsal (tests/rehearsal/): the same steps as
# docker/trainer/Dockerfile, but CPU torch and Debian bookworm's python3 (3.11, as on the host) in a root filesystem
# made by mmdebstrap and imported into Docker -- the way sandbox/build_image_offline.sh builds the grader's image.
# No Dockerfile FROM, so no base image is pulled.
#
# Usage: docker/trainer/build_offline.sh [TAG]      (default valley-trainer:rehearsal; VALLEY_TRAINER_IMAGE overrides)
#
# Two stages, so that a code change rebuilds in seconds:
# 1. `<repo>-base:<key>` (e.g. valley-trainer-base:1a2b...): bookworm + /opt/venv with torch and every dependency at
#    the pins, imported as one layer; rebuilt only when the key changes (the dependency list, constraints.txt, the
#    torch version, the install recipe, the suite).
# 2. the image: a container of the base copies the working tree's pyproject.toml, README.md, docker/trainer/
#    constraints.txt and valley_assets/ (what Dockerfile.dockerignore lets through, tracked or not) to /opt/valley
#    and installs it non-editable (`pip install --no-deps "/opt/valley[s3]"`, then `pip check`); `docker commit`
#    gives it the Dockerfile's ENV, WORKDIR and CMD.
#
# Wheels: every wheel is collected on the host by pip (its own indexes and find-links, so this works offline where
# pip does) into ${VALLEY_WHEEL_CACHE:-~/.cache/valley-wheels}, keyed like the base, and installed in the image with
# `pip install --no-index --find-links` (they are copied in and removed in the same step, never part of a layer).
#
# The git revision of the working tree is baked in: env VALLEY_GIT_REVISION (and VALLEY_GIT_DIRTY=1 when the tree had
# uncommitted changes to tracked files), label org.opencontainers.image.revision.
set -euo pipefail

started=$(date +%s)
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tag="${1:-${VALLEY_TRAINER_IMAGE:-valley-trainer:rehearsal}}"
suite="${VALLEY_TRAINER_SUITE:-bookworm}"
torch_version="${VALLEY_TORCH_VERSION:-$(sed -n 's/^ARG TORCH_VERSION=//p' "$repo/docker/trainer/Dockerfile")}"
extras="${VALLEY_TRAINER_EXTRAS:-s3}"
cache="${VALLEY_WHEEL_CACHE:-$HOME/.cache/valley-wheels}"
# The host's pip (same CPython minor as bookworm's python3: the wheels are for cp311). The venv's pip carries the host
# configuration (find-links /opt/wheels, local extra indexes, the global constraints file).
host_pip=("${VALLEY_HOST_PYTHON:-$repo/.venv/bin/python}" -m pip)
extra_pins=("dagster-postgres==0.29.27" "dagster-docker==0.29.27")

for tool in mmdebstrap docker sha256sum; do
    command -v "$tool" >/dev/null || { echo "build_offline: '$tool' is not installed" >&2; exit 1; }
done
[[ -n "$torch_version" ]] || { echo "build_offline: no ARG TORCH_VERSION in docker/trainer/Dockerfile" >&2; exit 1; }
host_minor=$("${host_pip[0]}" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
[[ "$host_minor" == "3.11" ]] || {
    echo "build_offline: the host python is $host_minor; bookworm's python3 is 3.11, the wheels must match" >&2; exit 1; }

workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT

# --- the build context: what the Dockerfile copies ---------------------------------------------------------------
src="$workdir/src"
mkdir -p "$src/docker/trainer"
cp "$repo/pyproject.toml" "$repo/README.md" "$src/"
cp "$repo/docker/trainer/constraints.txt" "$src/docker/trainer/"
tar -C "$repo" --exclude='__pycache__' --exclude='*.pyc' -cf - valley_assets | tar -C "$src" -xf -

revision="$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)"
dirty=0
if [[ "$revision" != unknown ]] && [[ -n "$(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
    dirty=1
fi

# --- wheels -------------------------------------------------------------------------------------------------------
# Requirements for the image: torch first (CPU), then the project's dependencies with the extras at the tested pins.
reqs="$workdir/requirements.txt"
{
    echo "torch==$torch_version"
    "${host_pip[0]}" - "$src/pyproject.toml" "$extras" <<'PY'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
deps = list(project["dependencies"])
for extra in filter(None, sys.argv[2].split(",")):
    deps += project["optional-dependencies"][extra]
print("\n".join(deps))
PY
    printf '%s\n' "${extra_pins[@]}"
} > "$workdir/deps.txt"
{
    cat "$workdir/deps.txt"
    # Build backend of the project (pip builds /opt/valley in the image with build isolation, from the cache only).
    "${host_pip[0]}" - "$src/pyproject.toml" <<'PY'
import sys, tomllib
print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["build-system"]["requires"]))
PY
} > "$reqs"
# torch is pinned above and excluded from constraints.txt (the Dockerfile installs it on its own).
grep -v '^torch==' "$src/docker/trainer/constraints.txt" > "$workdir/constraints.txt"
key="$(cat "$reqs" "$workdir/constraints.txt" | sha256sum | cut -c1-16)"
mkdir -p "$cache"
if [[ -f "$cache/.complete-$key" ]]; then
    echo "build_offline: wheel cache $cache is complete for these pins ($key)"
else
    echo "build_offline: collecting wheels into $cache"
    # `pip wheel` downloads wheels as they are and builds any sdist once on the host (no compiler in the image).
    "${host_pip[@]}" wheel --quiet --wheel-dir "$cache" --find-links "$cache" \
        -r "$reqs" -c "$workdir/constraints.txt" 2> >(grep -v "^WARNING: Location .* is ignored" >&2)
    touch "$cache/.complete-$key"
fi

# --- stage 1, the base image: bookworm + a venv with every dependency (rebuilt only when the pins change) --------------
# python3-venv for the venv, ca-certificates for TLS to object stores and the hub, git as in the Dockerfile. In the
# chroot (with a clean environment: the host's PIP_* variables name folders that exist only on the host): a venv at
# /opt/venv, torch first, then the project's dependencies at the pins (pip keeps torch, which satisfies the
# project's range), wheels from the cache only. The wheels are copied in and removed in the same run, so they never
# reach the image.
cat > "$workdir/install.sh" <<SH
set -eu
export PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_CONFIG_FILE=/dev/null
python3 -m venv /opt/venv
/opt/venv/bin/pip install --quiet --no-index --find-links /tmp/wheels "torch==$torch_version"
/opt/venv/bin/pip install --quiet --no-index --find-links /tmp/wheels -c /tmp/constraints.txt -r /tmp/deps.txt
rm -rf /tmp/wheels /tmp/install.sh /tmp/deps.txt /tmp/constraints.txt
find /opt/venv -name __pycache__ -prune -exec rm -rf {} +
SH
base_key="$(cat "$workdir/deps.txt" "$workdir/constraints.txt" "$workdir/install.sh" <(echo "$suite") | sha256sum | cut -c1-16)"
base="${tag%%:*}-base:$base_key"
common_changes=(
    --change 'ENV VIRTUAL_ENV=/opt/venv'
    --change 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
    --change 'ENV PYTHONUNBUFFERED=1 HF_HOME=/cache/huggingface TOKENIZERS_PARALLELISM=false LANG=C.UTF-8'
)
if docker image inspect "$base" >/dev/null 2>&1; then
    echo "build_offline: base image $base is current"
else
    echo "build_offline: building the base image $base (mmdebstrap + dependencies)"
    mmdebstrap --quiet --variant=apt --include=python3,python3-venv,ca-certificates,git \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --customize-hook='mkdir -p "$1/tmp/wheels"' \
        --customize-hook="sync-in $cache /tmp/wheels" \
        --customize-hook="copy-in $workdir/install.sh $workdir/deps.txt $workdir/constraints.txt /tmp" \
        --customize-hook='chroot "$1" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 sh /tmp/install.sh' \
        "$suite" "$workdir/rootfs.tar"
    docker import "${common_changes[@]}" --change 'LABEL org.opencontainers.image.title=valley-trainer-base' \
        "$workdir/rootfs.tar" "$base" >/dev/null
    rm -f "$workdir/rootfs.tar"
    # Older bases (other pins) are no longer needed; one still used by an image stays (docker refuses).
    docker images "${tag%%:*}-base" --format '{{.Repository}}:{{.Tag}}' | grep -vx "$base" \
        | xargs -r docker rmi >/dev/null 2>&1 || true
fi

# --- stage 2, the project: /opt/valley from the working tree, installed non-editable (one small layer) -------------
# Idempotent: an image already built from these exact sources on this base (and revision) is kept as it is.
source_sha="$(cd "$src" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)"
current="$(docker image inspect --format '{{index .Config.Labels "valley.dev/source"}} {{index .Config.Labels "valley.dev/base"}} {{index .Config.Labels "org.opencontainers.image.revision"}}' "$tag" 2>/dev/null || true)"
if [[ "$current" == "$source_sha $base $revision" ]]; then
    echo "build_offline: $tag is up to date (sources $source_sha, $base, revision $revision) in $(( $(date +%s) - started )) s"
    exit 0
fi
# As the Dockerfile: the sources at /opt/valley (WORKDIR), `pip install "/opt/valley[extras]"` with the pins; the
# dependencies are already in the base, so --no-deps, and `pip check` proves the set is complete and consistent.
builder="valley-trainer-build-$$"
trap 'docker rm -f "$builder" >/dev/null 2>&1 || true; rm -rf "$workdir"' EXIT
docker create --name "$builder" --network none -w / -v "$src:/src:ro" -v "$cache:/wheels:ro" \
    -e PIP_NO_CACHE_DIR=1 -e PIP_DISABLE_PIP_VERSION_CHECK=1 -e PIP_CONFIG_FILE=/dev/null "$base" sh -ec "
        mkdir -p /opt/valley && cp -a /src/. /opt/valley/ && cd /opt/valley
        pip install --quiet --no-deps --no-index --find-links /wheels -c docker/trainer/constraints.txt '/opt/valley[$extras]'
        pip check
        rm -rf /opt/valley/build /opt/valley/*.egg-info
        find /opt/valley /opt/venv -name __pycache__ -prune -exec rm -rf {} +" >/dev/null
docker start -a "$builder"

# --- the image: the Dockerfile's ENV, WORKDIR and CMD ---------------------------------------------------------------
docker commit "${common_changes[@]}" \
    --change "ENV VALLEY_GIT_REVISION=$revision VALLEY_GIT_DIRTY=$dirty" \
    --change 'WORKDIR /opt/valley' \
    --change "LABEL org.opencontainers.image.title=valley-trainer org.opencontainers.image.revision=$revision \
valley.dev/git-dirty=$dirty valley.dev/torch=$torch_version+cpu valley.dev/base=$base valley.dev/source=$source_sha" \
    --change 'CMD ["python", "-m", "valley_assets.training.sft", "--help"]' \
    "$builder" "$tag" >/dev/null

docker run --rm --network none "$tag" python -c \
    "import torch, transformers, trl, accelerate, dagster_k8s, dagster_postgres, dagster_docker, s3fs, valley_assets.training.sft; \
assert not torch.version.cuda, torch.version.cuda; print('valley-trainer ok: torch', torch.__version__)"
size=$(docker image inspect --format '{{.Size}}' "$tag")
echo "built $tag (revision $revision, dirty=$dirty, $((size / 1024 / 1024)) MiB) in $(( $(date +%s) - started )) s"
