#!/usr/bin/env bash
# Build the trainer image without a registry, for the local cluster rehearsal (tests/rehearsal/): the same steps as
# docker/trainer/Dockerfile, but CPU torch and Debian bookworm's python3 (3.11, as on the host) in a root filesystem
# made by mmdebstrap and imported into Docker as one layer -- the way sandbox/build_image_offline.sh builds the
# grader's image. No Dockerfile FROM, so no base image is pulled.
#
# Usage: docker/trainer/build_offline.sh [TAG]      (default valley-trainer:rehearsal; VALLEY_TRAINER_IMAGE overrides)
#
# Wheels: every wheel the image needs is collected on the host by pip (the host's own indexes and find-links, so it
# works offline where pip does) into ${VALLEY_WHEEL_CACHE:-~/.cache/valley-wheels}, then copied into the root
# filesystem and installed there with `pip install --no-index --find-links`. The cache is keyed by the pins
# (constraints.txt, the project's dependency list, the torch version): a rebuild with unchanged pins skips pip's
# resolution on the host. The project itself is always built from the current working tree (tracked and untracked
# files under valley_assets/, pyproject.toml, README.md -- what docker/trainer/Dockerfile.dockerignore lets through).
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

# --- the root filesystem --------------------------------------------------------------------------------------------
# python3-venv for the venv, ca-certificates for TLS to object stores and the hub, git as in the Dockerfile. In the
# chroot (with a clean environment: the host's PIP_* variables name folders that exist only on the host): a venv at
# /opt/venv, torch first, then the project non-editable from /opt/valley with the pins (pip keeps
# torch, which satisfies the project's range), wheels from the cache only. The wheels are copied in and removed in
# the same run, so they never reach the image.
cat > "$workdir/install.sh" <<SH
set -eu
export PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_CONFIG_FILE=/dev/null
python3 -m venv /opt/venv
cd /opt/valley
/opt/venv/bin/pip install --quiet --no-index --find-links /tmp/wheels "torch==$torch_version"
/opt/venv/bin/pip install --quiet --no-index --find-links /tmp/wheels -c docker/trainer/constraints.txt \
    "/opt/valley[$extras]" ${extra_pins[*]}
rm -rf /tmp/wheels /tmp/install.sh /opt/valley/build /opt/valley/*.egg-info
find /opt/venv /opt/valley -name __pycache__ -prune -exec rm -rf {} +
SH
mmdebstrap --quiet --variant=apt --include=python3,python3-venv,ca-certificates,git \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook='mkdir -p "$1/opt/valley" "$1/tmp/wheels"' \
    --customize-hook="copy-in $src/pyproject.toml $src/README.md $src/valley_assets $src/docker /opt/valley" \
    --customize-hook="sync-in $cache /tmp/wheels" \
    --customize-hook="copy-in $workdir/install.sh /tmp" \
    --customize-hook='chroot "$1" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 sh /tmp/install.sh' \
    "$suite" "$workdir/rootfs.tar"

# --- the image: the Dockerfile's ENV, WORKDIR and CMD ---------------------------------------------------------------
docker import \
    --change 'ENV VIRTUAL_ENV=/opt/venv' \
    --change 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV PYTHONUNBUFFERED=1 HF_HOME=/cache/huggingface TOKENIZERS_PARALLELISM=false LANG=C.UTF-8' \
    --change "ENV VALLEY_GIT_REVISION=$revision VALLEY_GIT_DIRTY=$dirty" \
    --change 'WORKDIR /opt/valley' \
    --change "LABEL org.opencontainers.image.title=valley-trainer org.opencontainers.image.revision=$revision \
valley.dev/git-dirty=$dirty valley.dev/torch=$torch_version+cpu" \
    --change 'CMD ["python", "-m", "valley_assets.training.sft", "--help"]' \
    "$workdir/rootfs.tar" "$tag" >/dev/null

docker run --rm --network none "$tag" python -c \
    "import torch, transformers, trl, accelerate, dagster_k8s, dagster_postgres, dagster_docker, s3fs, valley_assets.training.sft; \
assert not torch.version.cuda, torch.version.cuda; print('valley-trainer ok: torch', torch.__version__)"
size=$(docker image inspect --format '{{.Size}}' "$tag")
echo "built $tag (revision $revision, dirty=$dirty, $((size / 1024 / 1024)) MiB) in $(( $(date +%s) - started )) s"
