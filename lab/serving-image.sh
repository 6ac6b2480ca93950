#!/usr/bin/env bash
# The lab's serving image: the TF Serving TEST DOUBLE (tests/serving_double),
# since the real image cannot be fetched here. Builds it on the lab base
# image, tags it mlserve-test/tfserving-double:lab and writes the archive
# that the lab loads onto hosts the way an air-gapped user loads the real
# image (serving_image_archive). Rewrites the archive only when the image changed.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
archive="$repo/.cache/tfserving-double.tar"
tag=$("$repo/tests/serving_double/build.sh" mlserve-lab:debian12)
docker tag "$tag" mlserve-test/tfserving-double:lab
id=$(docker image inspect -f '{{.Id}}' "$tag")
mkdir -p "$repo/.cache"
if [ "$(cat "$archive.id" 2>/dev/null)" != "$id" ]; then
  docker save -o "$archive" mlserve-test/tfserving-double:lab
  echo "$id" > "$archive.id"
fi
echo "$archive"
