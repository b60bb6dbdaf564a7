#!/usr/bin/env bash
# Build the good and bad images of the compose stand-in app (base image: sre-target-base or the lab's).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# The stand-in images build on the lab's base image (made by lab/build.sh from debootstrap).
if [ -z "${SRE_LAB_BASE_IMAGE:-}" ]; then
  eval "$("$here/../../../../lab/build.sh" --print-env)"
fi
docker tag "$SRE_LAB_BASE_IMAGE" sre-target-base:latest
ctx=$(mktemp -d); trap 'rm -rf "$ctx"' EXIT
cp "$here/Dockerfile" "$here/../app/server.js" "$ctx/"
docker build -q -t sre-target-web:good --build-arg RELEASE=good "$ctx" >/dev/null
docker build -q -t sre-target-web:bad --build-arg RELEASE=bad --build-arg APP_BAD=1 "$ctx" >/dev/null
docker tag sre-target-web:good sre-target-web:current
