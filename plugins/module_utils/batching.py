# -*- coding: utf-8 -*-
# Copyright: mlserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""TF Serving's request batching: the parameters a declaration gives, checked and written as the server reads them.

Standard library only (the plan runs it on the controller, serving_apply on
a host). The server reads ``--batching_parameters_file``, a text
``BatchingParameters`` (tensorflow_serving/servables/tensorflow/
session_bundle_config.proto), once at start. tensorflow-serving-api does not
ship that message, so FIELDS is its field list; the unit tests parse every
file this module writes with the message as protobuf declares it, and
tests/upstream/check_batching.py compares FIELDS with TF Serving's own
.proto.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# field -> (field number, kind): "int64" and "string" and "bool" are
# google.protobuf wrappers ({ value: ... }), "bool_plain" a plain bool,
# "int64_list" a repeated int64.
FIELDS = {
    "max_batch_size": (1, "int64"),
    "batch_timeout_micros": (2, "int64"),
    "max_enqueued_batches": (3, "int64"),
    "num_batch_threads": (4, "int64"),
    "thread_pool_name": (5, "string"),
    "allowed_batch_sizes": (6, "int64_list"),
    "pad_variable_length_inputs": (7, "bool_plain"),
    "enable_large_batch_splitting": (8, "bool"),
    "max_execution_batch_size": (9, "int64"),
}
# SharedBatchScheduler's QueueOptions.input_batch_size_limit, the batch size
# limit when max_batch_size is not given.
DEFAULT_MAX_BATCH_SIZE = 1000
# The least value the server accepts (0 or negative fails the start or the
# load, or wraps around to a huge queue).
_MINIMUM = {"batch_timeout_micros": 0}
_INT64_MAX = 2 ** 63 - 1
# Where the unit's config directory is mounted, beside models.config.
CONTAINER_FILE = "/etc/tfserving/batching.config"
FILE = "batching.config"


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def problems(params, where):
    """Why TF Serving would refuse these parameters (at start or at each version's load), each naming its path."""
    if not isinstance(params, dict):
        return ["%s: %r must map BatchingParameters fields to values ({} turns batching off)" % (where, params)]
    found = []
    for name in sorted(params, key=str):
        value = params[name]
        kind = FIELDS.get(name, (None, None))[1]
        path = "%s.%s" % (where, name)
        if kind is None:
            found.append("%s: not a field of TF Serving's BatchingParameters; valid: %s"
                         % (path, ", ".join(sorted(FIELDS))))
        elif kind == "int64" and not (_is_int(value) and _MINIMUM.get(name, 1) <= value <= _INT64_MAX):
            found.append("%s: %r is not valid; use an integer from %d" % (path, value, _MINIMUM.get(name, 1)))
        elif kind == "string" and not (isinstance(value, str) and value):
            found.append("%s: %r is not a name" % (path, value))
        elif kind in ("bool", "bool_plain") and not isinstance(value, bool):
            found.append("%s: %r is not true or false" % (path, value))
        elif kind == "int64_list" and not (isinstance(value, list) and value
                                           and all(_is_int(v) and 1 <= v <= _INT64_MAX for v in value)):
            found.append("%s: %r is not a list of batch sizes (integers from 1)" % (path, value))
    if found:
        return found
    return _server_problems(params, where)


def _server_problems(params, where):
    """What the server checks across fields, quoting its messages."""
    found = []
    limit = params.get("max_batch_size", DEFAULT_MAX_BATCH_SIZE)
    sizes = params.get("allowed_batch_sizes") or []
    if any(b <= a for a, b in zip(sizes, sizes[1:])):
        found.append("%s.allowed_batch_sizes: %r must be increasing (allowed_batch_sizes entries must be "
                     "monotonically increasing)" % (where, sizes))
    if sizes and sizes[-1] != limit:
        found.append("%s.allowed_batch_sizes: %r must end at max_batch_size %d, or every version fails to load "
                     "(Last entry in allowed_batch_sizes must match max_batch_size; last entry was %d; expected %d)"
                     % (where, sizes, limit, sizes[-1], limit))
    splitting = params.get("enable_large_batch_splitting", False)
    if splitting and "max_batch_size" not in params:
        found.append("%s.enable_large_batch_splitting: needs max_batch_size (without it the server splits into "
                     "batches of max_batch_size's empty value, 0)" % where)
    if "max_execution_batch_size" in params and not splitting:
        found.append("%s.max_execution_batch_size: only read with enable_large_batch_splitting: true" % where)
    elif splitting and params.get("max_execution_batch_size", limit) > limit:
        found.append("%s.max_execution_batch_size: %d is above max_batch_size %d, or every version fails to load "
                     "(When enable_large_batch_splitting is true, input_batch_size_limit must be greater than or "
                     "equal to max_execution_batch_size.)" % (where, params["max_execution_batch_size"], limit))
    return found


def _text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"%s"' % value.replace("\\", "\\\\").replace('"', '\\"')
    return str(value)


def render(params):
    """The text BatchingParameters the server reads, fields in their proto order; assumes they passed problems()."""
    lines = ["# Rendered by mlserve.tfserving; the server reads it at start: a change restarts the container."]
    for name in sorted(params, key=lambda n: FIELDS[n][0]):
        kind = FIELDS[name][1]
        if kind == "int64_list":
            lines += ["%s: %d" % (name, size) for size in params[name]]
        elif kind == "bool_plain":
            lines.append("%s: %s" % (name, _text(params[name])))
        else:
            lines.append("%s { value: %s }" % (name, _text(params[name])))
    return "\n".join(lines) + "\n"
