#!/usr/bin/env bash
# Builds the TF Serving TEST DOUBLE image (not TF Serving; see README.md).
#
# Usage: tests/serving_double/build.sh BASE_IMAGE
#   BASE_IMAGE: a local Debian 12 image with python3 (e.g. mlserve-lab:debian12,
#   built by lab/build-image.sh debian12). Nothing is pulled from a registry.
# Prints the tag it built: mlserve-test/tfserving-double:<hash of the inputs>.
# When that tag exists already, nothing is rebuilt.
#
# The image looks like tensorflow/serving from outside: /usr/bin/tensorflow_model_server,
# ENTRYPOINT /usr/bin/tf_serving_entrypoint.sh (the official script, no exec),
# ENV MODEL_NAME=model MODEL_BASE_PATH=/models, EXPOSE 8500 8501, no curl/wget.
#
# Python dependencies (protobuf, tensorflow-serving-api, grpcio for the base
# image's Python 3.11, and TensorFlow's generated protos taken out of the
# tensorflow-cpu wheel by tensorflow_protos.py) are fetched on this machine with
# pip (cached under ${XDG_CACHE_HOME:-~/.cache}/mlserve) and copied into the
# image: the build itself uses no network and no image builder
# (docker create + docker cp + docker commit).
set -euo pipefail

base=${1:?usage: $0 BASE_IMAGE}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
python=${PYTHON:-python3}

PROTOBUF_VERSION=6.33.1
SERVING_API_VERSION=2.21.0
GRPCIO_VERSION=1.84.0
TYPING_EXTENSIONS_VERSION=4.16.0  # grpcio's one dependency
CRAMJAM_VERSION=2.12.1  # Snappy blocks in variables.index
arch=$(uname -m)
wheels=("protobuf-${PROTOBUF_VERSION}-py3-none-any.whl"
        "tensorflow_serving_api-${SERVING_API_VERSION}-py2.py3-none-any.whl"
        "typing_extensions-${TYPING_EXTENSIONS_VERSION}-py3-none-any.whl"
        "grpcio-${GRPCIO_VERSION}-cp311-cp311-manylinux2014_${arch}.manylinux_2_17_${arch}.whl"
        "cramjam-${CRAMJAM_VERSION}-cp311-cp311-manylinux_2_17_${arch}.manylinux2014_${arch}.whl")

if ! docker image inspect "$base" >/dev/null 2>&1; then
  echo "base image '$base' not found locally (build one, e.g. lab/build-image.sh debian12)" >&2
  exit 2
fi
base_id=$(docker image inspect -f '{{.Id}}' "$base")

inputs=("$0" "$here"/*.py "$here/tensorflow_model_server" "$here/tf_serving_entrypoint.sh"
        "$here/README.md" "$repo/plugins/module_utils/saved_model.py")
hash=$( { echo "$base_id"; printf '%s\n' "${wheels[@]}"; cat "${inputs[@]}"; } | sha256sum | cut -c1-12)
tag="mlserve-test/tfserving-double:${hash}"
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag"
  exit 0
fi

cache=${XDG_CACHE_HOME:-$HOME/.cache}/mlserve/serving-double-wheels
mkdir -p "$cache"
missing=()
for w in "${wheels[@]}"; do [ -s "$cache/$w" ] || missing+=("$w"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "downloading wheels into $cache" >&2
  "$python" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --platform any --python-version 3.11 --implementation py --dest "$cache" \
    "protobuf==${PROTOBUF_VERSION}" "tensorflow-serving-api==${SERVING_API_VERSION}" \
    "typing-extensions==${TYPING_EXTENSIONS_VERSION}" >&2
  "$python" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --platform "manylinux2014_${arch}" --python-version 3.11 --implementation cp --abi cp311 --dest "$cache" \
    "grpcio==${GRPCIO_VERSION}" "cramjam==${CRAMJAM_VERSION}" >&2
fi
for w in "${wheels[@]}"; do
  [ -s "$cache/$w" ] || { echo "wheel $w is missing from $cache" >&2; exit 1; }
done

ctx=$(mktemp -d /var/tmp/tfserving-double.XXXXXX)
cid=""
cleanup() {
  rm -rf "$ctx"
  if [ -n "$cid" ]; then docker rm -f "$cid" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

lib="$ctx/usr/lib/tfserving-double"
mkdir -p "$lib/site-packages" "$ctx/usr/bin" "$ctx/models"
# Wheels install by unpacking them (no pip inside the image).
for w in "${wheels[@]}"; do
  "$python" -m zipfile -e "$cache/$w" "$lib/site-packages"
done
PYTHON="$python" "$python" "$here/tensorflow_protos.py" "$lib/site-packages"
find "$lib/site-packages" -name '__pycache__' -prune -exec rm -rf {} +
cp "$here/README.md" "$repo/plugins/module_utils/saved_model.py" "$lib/"
for f in "$here"/*.py; do
  [ "$(basename "$f")" = tensorflow_protos.py ] || cp "$f" "$lib/"  # build tooling, not the server
done
cp "$here/tensorflow_model_server" "$here/tf_serving_entrypoint.sh" "$ctx/usr/bin/"
chmod -R u=rwX,go=rX "$ctx/usr" "$ctx/models"
chmod 755 "$ctx/usr/bin/tensorflow_model_server" "$ctx/usr/bin/tf_serving_entrypoint.sh"

echo "building $tag from $base" >&2
cid=$(docker create --network host "$base" /bin/true)
tar -C "$ctx" -c --owner=0 --group=0 usr models | docker cp - "$cid:/"
docker commit \
  --change 'ENV MODEL_NAME=model' \
  --change 'ENV MODEL_BASE_PATH=/models' \
  --change 'EXPOSE 8500' \
  --change 'EXPOSE 8501' \
  --change 'LABEL org.mlserve.test-double="tfserving: a TF Serving test double, not TF Serving"' \
  --change 'ENTRYPOINT ["/usr/bin/tf_serving_entrypoint.sh"]' \
  --change 'CMD []' \
  "$cid" "$tag" >/dev/null
# Earlier builds (hash tags) are dropped; other tags (e.g. :lab) are left alone.
docker image ls --format '{{.Repository}}:{{.Tag}}' mlserve-test/tfserving-double \
  | grep -E '^mlserve-test/tfserving-double:[0-9a-f]{12}$' | grep -vx "$tag" \
  | xargs -r docker rmi >/dev/null 2>&1 || true
echo "$tag"
