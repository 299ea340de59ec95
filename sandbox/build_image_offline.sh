#!/usr/bin/env bash
# Build the grader sandbox image without a registry: a minimal Debian bookworm root filesystem with python3 and the
# third-party packages of sandbox/packages-lcb.txt (LiveCodeBench's evaluation environment, as Debian packages), from
# the Debian mirror apt already uses (mmdebstrap), imported into Docker as a single-layer image.
# Usage: sandbox/build_image_offline.sh [--packages FILE] [TAG]
#   TAG default: valley-sandbox:latest (VALLEY_SANDBOX_IMAGE overrides); FILE default: sandbox/packages-lcb.txt
#   (VALLEY_SANDBOX_PACKAGES overrides), lines "<debian package> <import name> <version>", # comments.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
packages_file="${VALLEY_SANDBOX_PACKAGES:-$here/packages-lcb.txt}"
if [[ "${1:-}" == "--packages" ]]; then
    packages_file="$2"
    shift 2
fi
tag="${1:-${VALLEY_SANDBOX_IMAGE:-valley-sandbox:latest}}"
suite="${VALLEY_SANDBOX_SUITE:-bookworm}"

for tool in mmdebstrap docker; do
    command -v "$tool" >/dev/null || { echo "build_image_offline: '$tool' is not installed" >&2; exit 1; }
done
[[ -r "$packages_file" ]] || { echo "build_image_offline: cannot read the package list $packages_file" >&2; exit 1; }
debs="$(awk '!/^[[:space:]]*#/ && NF >= 2 {print $1}' "$packages_file" | paste -sd, -)"
modules="$(awk '!/^[[:space:]]*#/ && NF >= 2 {print $2}' "$packages_file" | paste -sd, -)"

workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT

# --variant=apt: essential packages + apt only; python3 (not -minimal: json/decimal are needed). The
# docs/man/locale dpkg filters keep the image small; the grader needs none of them.
mmdebstrap --quiet --variant=apt --include="python3${debs:+,$debs}" \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    "$suite" "$workdir/rootfs.tar"

# The runner travels in the container's command, so the image carries only the interpreter, the packages and a
# scratch dir. The label lists the import names, so a test can tell an image built from another list.
docker import \
    --change 'USER 65534:65534' \
    --change 'WORKDIR /scratch' \
    --change 'ENV PYTHONDONTWRITEBYTECODE=1 PYTHONHASHSEED=0 LANG=C.UTF-8' \
    --change 'LABEL org.opencontainers.image.title=valley-sandbox' \
    --change "LABEL valley.sandbox.modules=$modules" \
    "$workdir/rootfs.tar" "$tag" >/dev/null

docker run --rm --network none "$tag" python3 -c "
import importlib, json, decimal, sys
for name in '$modules'.split(','):
    if name:
        importlib.import_module(name)
print('valley-sandbox ok', sys.version.split()[0], '$modules')"
echo "built $tag"
