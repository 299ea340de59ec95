#!/usr/bin/env bash
# Make this machine able to run the Docker-backed grader tests. Idempotent: installs docker.io, mmdebstrap and
# bubblewrap if missing, starts dockerd if no engine answers and waits for it, builds the sandbox image offline if
# it is absent. Needs root (apt, dockerd). Env: VALLEY_SANDBOX_IMAGE (default valley-sandbox:latest).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
image="${VALLEY_SANDBOX_IMAGE:-valley-sandbox:latest}"

missing=()
command -v docker >/dev/null || missing+=(docker.io)
command -v dockerd >/dev/null || missing+=(docker.io)
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
command -v bwrap >/dev/null || missing+=(bubblewrap)
if ((${#missing[@]})); then
    echo "ci_setup: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
    echo "ci_setup: starting dockerd"
    nohup dockerd >/tmp/valley-dockerd.log 2>&1 &
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    docker info >/dev/null 2>&1 || { echo "ci_setup: dockerd did not come up; see /tmp/valley-dockerd.log" >&2; exit 1; }
fi

if ! docker image inspect "$image" >/dev/null 2>&1; then
    echo "ci_setup: building $image offline"
    "$here/build_image_offline.sh" "$image"
fi
echo "ci_setup: docker engine up, image $image present, bwrap $(command -v bwrap)"
