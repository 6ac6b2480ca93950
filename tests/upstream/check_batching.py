#!/usr/bin/env python3
"""Compare the collection's BatchingParameters fields with TF Serving's own .proto.

    .venv/bin/python tests/upstream/check_batching.py SESSION_BUNDLE_CONFIG_PROTO

SESSION_BUNDLE_CONFIG_PROTO is
tensorflow_serving/servables/tensorflow/session_bundle_config.proto from a
checkout of tensorflow/serving, fetched for the check and never committed.
tensorflow-serving-api does not ship that message, so
plugins/module_utils/batching.py lists its fields; this reads the message
from the .proto and prints each field and whether the list has it with the
same number and type. Exits 1 if any differs.
"""

import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "collections"))
from ansible_collections.mlserve.tfserving.plugins.module_utils import batching  # noqa: E402

# A field line of a proto3 message: [repeated] type name = number;
FIELD = re.compile(r"^\s*(repeated\s+)?([\w.]+)\s+(\w+)\s*=\s*(\d+)\s*;", re.M)
KINDS = {"google.protobuf.Int64Value": "int64", "google.protobuf.StringValue": "string",
         "google.protobuf.BoolValue": "bool", "bool": "bool_plain"}


def upstream_fields(text):
    body = re.search(r"message BatchingParameters \{(.*?)\n\}", text, re.S).group(1)
    body = re.sub(r"//[^\n]*", "", body)
    return dict((name, (int(number), "int64_list" if repeated and kind == "int64" else KINDS.get(kind, kind)))
                for repeated, kind, name, number in FIELD.findall(body))


def main():
    with open(sys.argv[1]) as f:
        upstream = upstream_fields(f.read())
    failed = False
    for name in sorted(set(upstream) | set(batching.FIELDS)):
        ok = upstream.get(name) == batching.FIELDS.get(name)
        failed = failed or not ok
        print("%s %s: TF Serving %s, collection %s" % ("ok  " if ok else "FAIL", name, upstream.get(name),
                                                      batching.FIELDS.get(name)))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
