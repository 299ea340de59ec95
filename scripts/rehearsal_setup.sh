#!/usr/bin/env bash
# Make this machine able to run the cluster rehearsal (tests/rehearsal, marker `rehearsal`): Debian's PostgreSQL
# (the Dagster instance's storage), a Docker engine and the grader's sandbox image (sandbox/ci_setup.sh), and the
# trainer image built offline from this working tree (docker/trainer/build_offline.sh). Idempotent; needs root.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
if [[ ! -x /usr/lib/postgresql/15/bin/initdb ]]; then
    echo "rehearsal_setup: installing postgresql"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
bash "$here/sandbox/ci_setup.sh"
bash "$here/docker/trainer/build_offline.sh" "${VALLEY_TRAINER_IMAGE:-valley-trainer:rehearsal}"
