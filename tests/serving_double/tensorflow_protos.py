#!/usr/bin/env python3
"""Installs TensorFlow's generated protobuf modules, without TensorFlow.

tensorflow-serving-api's messages (PredictRequest, ClassificationRequest, ...)
import TensorFlow's own ``tensorflow.core...._pb2`` modules (TensorProto,
Example, MetaGraphDef, error codes), which only the 2 GB TensorFlow package
ships. Those modules are plain generated code that needs nothing but
protobuf, so this script takes them, and the modules they import, out of
the pinned tensorflow-cpu wheel and writes them into a site-packages
directory. The stock TF Serving client (grpcio + tensorflow-serving-api) and
the serving double then import them as they would with TensorFlow installed.

Usage: tensorflow_protos.py SITE_PACKAGES
The wheel is downloaded once (pip download, no dependencies) into
${XDG_CACHE_HOME:-~/.cache}/mlserve/wheels. Nothing of it is committed.
"""

import os
import re
import subprocess
import sys
import zipfile

TENSORFLOW_VERSION = "2.21.0"
# What the serving APIs import, plus what the double reads SavedModels with.
ROOTS = (
    "tensorflow/core/example/example_pb2.py",
    "tensorflow/core/framework/tensor_pb2.py",
    "tensorflow/core/protobuf/config_pb2.py",
    "tensorflow/core/protobuf/error_codes_pb2.py",
    "tensorflow/core/protobuf/meta_graph_pb2.py",
    "tensorflow/core/protobuf/named_tensor_pb2.py",
    "tensorflow/core/protobuf/saved_model_pb2.py",
    "tensorflow/core/protobuf/tensor_bundle_pb2.py",
)
IMPORT = re.compile(r"^from (tensorflow[\w.]*) import (\w+_pb2)", re.M)
MARKER = "mlserve_tensorflow_protos-%s.txt" % TENSORFLOW_VERSION


def _cached(cache):
    for name in sorted(os.listdir(cache)):
        if name.startswith("tensorflow_cpu-%s-" % TENSORFLOW_VERSION) and name.endswith(".whl"):
            return os.path.join(cache, name)
    return None


def wheel_path(python):
    cache = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "mlserve", "wheels")
    os.makedirs(cache, exist_ok=True)
    if _cached(cache) is None:
        # Only its .py files are used: one fixed platform's wheel serves every machine.
        subprocess.run([python, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
                        "--only-binary=:all:", "--platform", "manylinux_2_27_x86_64", "--python-version", "3.11",
                        "--implementation", "cp", "--abi", "cp311", "--dest", cache,
                        "tensorflow-cpu==%s" % TENSORFLOW_VERSION], check=True)
    path = _cached(cache)
    if path is None:
        raise SystemExit("pip downloaded no tensorflow_cpu-%s wheel into %s" % (TENSORFLOW_VERSION, cache))
    return path


def closure(wheel):
    """The ROOTS and every tensorflow module they import, transitively."""
    found = {}
    todo = list(ROOTS)
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found[name] = wheel.read(name)
        for package, module in IMPORT.findall(found[name].decode("utf-8")):
            todo.append("%s/%s.py" % (package.replace(".", "/"), module))
    return found


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: %s SITE_PACKAGES\n" % argv[0])
        return 2
    target = argv[1]
    if os.path.isfile(os.path.join(target, MARKER)):
        return 0
    with zipfile.ZipFile(wheel_path(os.environ.get("PYTHON", sys.executable))) as wheel:
        modules = closure(wheel)
    # No __init__.py: `tensorflow` stays a namespace package holding protos
    # only, and `import tensorflow` finds no TensorFlow API in it.
    for name, data in sorted(modules.items()):
        path = os.path.join(target, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    with open(os.path.join(target, MARKER), "w") as f:
        f.write("\n".join(sorted(modules)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
