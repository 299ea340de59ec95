#!/usr/bin/env bash
# Build the grader sandbox image without a registry: a minimal Debian bookworm root filesystem with python3
# (mmdebstrap, from the Debian mirror apt already uses), imported into Docker as a single-layer image.
# Usage: sandbox/build_image_offline.sh [TAG]   (default valley-sandbox:latest; VALLEY_SANDBOX_IMAGE overrides)
set -euo pipefail

tag="${1:-${VALLEY_SANDBOX_IMAGE:-valley-sandbox:latest}}"
suite="${VALLEY_SANDBOX_SUITE:-bookworm}"

for tool in mmdebstrap docker; do
    command -v "$tool" >/dev/null || { echo "build_image_offline: '$tool' is not installed" >&2; exit 1; }
done

workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT

# --variant=apt: essential packages + apt only; python3 (not -minimal: json/decimal are needed), plus numpy and
# sortedcontainers, which LeetCode-style solutions import and the LiveCodeBench evaluation environment provides.
# The docs/man/locale dpkg filters keep the image small; the grader needs none of them.
mmdebstrap --quiet --variant=apt --include=python3,python3-numpy,python3-sortedcontainers \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    "$suite" "$workdir/rootfs.tar"

# The runner is mounted read-only at run time, so the image carries only the interpreter and a scratch dir.
docker import \
    --change 'USER 65534:65534' \
    --change 'WORKDIR /scratch' \
    --change 'ENV PYTHONDONTWRITEBYTECODE=1 PYTHONHASHSEED=0 LANG=C.UTF-8' \
    --change 'LABEL org.opencontainers.image.title=valley-sandbox' \
    "$workdir/rootfs.tar" "$tag" >/dev/null

docker run --rm --network none "$tag" python3 -c 'import json, decimal, sys; print("valley-sandbox ok", sys.version.split()[0])'
echo "built $tag"
