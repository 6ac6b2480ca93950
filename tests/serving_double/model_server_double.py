#!/usr/bin/env python3
"""TEST DOUBLE of TensorFlow Serving's ``tensorflow_model_server``. Not TF Serving.

This program exists only so that the mlserve.tfserving collection can be
tested where the real TF Serving image cannot be fetched. It imitates, as
closely as the TF Serving sources allow, what an Ansible role or a gateway can
observe from outside the real server:

- the command line (``--name=value`` flags, last one wins, "unknown argument"
  plus usage and carry on, bad values print the usage and exit 255);
- models.config parsing with the real ``ModelServerConfig`` protobuf
  (``tensorflow_serving.config.model_server_config_pb2`` + text_format) and the
  ServerCore rules: model_platform required, absolute base paths, unique
  names, labels only on AVAILABLE versions (the whole config is rejected
  otherwise), polling with ``--model_config_file_poll_wait_seconds``;
- version discovery (FileSystemStoragePathSource): numeric child names only,
  latest/all/specific policies, polling with ``--file_system_poll_wait_seconds``;
- the AspiredVersionsManager with the AvailabilityPreservingPolicy (a new
  version loads before an old one unloads), states START, LOADING, AVAILABLE,
  UNLOADING, END, load retries, unloaded versions kept as END;
- start-up that blocks until every model has loaded, then starts gRPC on
  ``--port`` (SO_REUSEPORT unless ``--grpc_channel_arguments`` has
  ``grpc.so_reuseport=0``), then the REST port;
- the gRPC API (grpc_api.py): PredictionService and ModelService with the
  real status codes and messages;
- the REST API: paths, JSON shapes and formatting, error messages and HTTP
  codes of ``http_rest_api_handler.cc``/``json_tensor.cc``; predict, classify
  and regress EVALUATE the model (evaluation.py: TF1 graphs, TF2 functions,
  variables restored at load time, tf.Example parsing) so that an answer
  proves which version served it;
- Prometheus metrics at the configured path on the REST port.

It does NOT run TensorFlow: a model using an op evaluation.py does not know
loads and reports AVAILABLE, and its metadata is served, but inference
answers 501 ``{"error": ...}`` (gRPC UNIMPLEMENTED) saying the double cannot
evaluate it. See README.md beside this file for the full list of deviations.

Knobs that exist only in the double (environment variables, so that the
command line stays exactly the real one):

- ``SERVING_DOUBLE_LOAD_DELAY_SECONDS``: sleep this long while LOADING each
  version (makes START/LOADING observable, simulates big models).
- ``SERVING_DOUBLE_UNLOAD_DELAY_SECONDS``: the same while UNLOADING.
- ``SERVING_DOUBLE_FAIL_VERSIONS``: ``model:version,...`` whose every
  inference (REST and gRPC) fails with INTERNAL (HTTP 500), as a broken
  canary would; status and metadata still answer.
- ``SERVING_DOUBLE_SAVED_MODEL_PY``: path of the SavedModel reader
  (``plugins/module_utils/saved_model.py``) if it is not beside this file or
  at its place in the collection.
"""

import base64
import datetime
import json
import math
import os
import re
import signal
import socket
import socketserver
import sys
import threading
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))

# The double's other modules, and the wheels build.sh installs into the
# image, sit beside this file.
for _site in (HERE, os.path.join(HERE, "site-packages")):
    if os.path.isdir(_site) and _site not in sys.path:
        sys.path.insert(0, _site)

from google.protobuf import descriptor_pb2, descriptor_pool, text_format  # noqa: E402
from google.protobuf.message import DecodeError  # noqa: E402
from google.protobuf import wrappers_pb2  # noqa: E402,F401  (registers wrappers.proto)
from tensorflow_serving.config import model_server_config_pb2  # noqa: E402
from tf_status import Status  # noqa: E402
import grpc_api  # noqa: E402
import evaluation  # noqa: E402
from evaluation import Tensor, dtype_string, f32  # noqa: E402
from tensorflow.core.protobuf import saved_model_pb2  # noqa: E402
from tensorflow.core.example import feature_pb2  # noqa: E402
from tensorflow_serving.apis import input_pb2, prediction_log_pb2  # noqa: E402

from google.protobuf import message_factory  # noqa: E402


def _message_class(descriptor):
    return message_factory.GetMessageClass(descriptor)


saved_model = evaluation.saved_model

PROGRAM = "tensorflow_model_server"
DOUBLE_VERSION = "2.21.0-test-double"

# ---------------------------------------------------------------- logging (glog look-alike, stderr)

_log_lock = threading.Lock()
# TensorFlow's logging: VLOG(n) lines print when TF_CPP_MAX_VLOG_LEVEL >= n.
try:
    VLOG_LEVEL = int(os.environ.get("TF_CPP_MAX_VLOG_LEVEL", "0") or 0)
except ValueError:
    VLOG_LEVEL = 0


def log(level, where, message):
    now = datetime.datetime.now()
    line = "%s: %s %s] %s\n" % (now.strftime("%Y-%m-%d %H:%M:%S.%f"), level, where, message)
    with _log_lock:
        sys.stderr.write(line)
        sys.stderr.flush()


# ---------------------------------------------------------------- flags (tensorflow::Flags)

_CPUS = os.cpu_count() or 1

# name, type, default, help: the flags and defaults of tensorflow_model_server, in its order;
# the help texts are the double's own.
FLAGS = [
    ("port", "int32", 8500, "gRPC port (a plain TCP listener in the double); 0 disables it."),
    ("grpc_socket_path", "string", "", "Accepted as tensorflow_model_server accepts it."),
    ("rest_api_port", "int32", 0, "REST port; 0 disables REST. Must differ from --port."),
    ("rest_api_num_threads", "int32", 4 * _CPUS, "Accepted as tensorflow_model_server accepts it."),
    ("rest_api_timeout_in_ms", "int32", 30000, "REST call timeout in milliseconds."),
    ("rest_api_enable_cors_support", "bool", False, "Accepted as tensorflow_model_server accepts it."),
    ("enable_batching", "bool", False, "Enable request batching."),
    ("allow_version_labels_for_unavailable_models", "bool", False, "Let new labels name versions that are not AVAILABLE yet."),
    ("batching_parameters_file", "string", "", "BatchingParameters (text protobuf); needs --enable_batching."),
    ("enable_per_model_batching_parameters", "bool", False, "Accepted as tensorflow_model_server accepts it."),
    ("model_config_file", "string", "", "models.config (text ModelServerConfig); when set, --model_name and --model_base_path are ignored."),
    ("model_config_file_poll_wait_seconds", "int32", 0, "Seconds between re-reads of --model_config_file; 0 reads it once."),
    ("model_name", "string", "default", "Model name when no --model_config_file is given."),
    ("model_base_path", "string", "", "Model base path when no --model_config_file is given."),
    ("num_load_threads", "int32", 0, "Accepted as tensorflow_model_server accepts it."),
    ("num_unload_threads", "int32", 0, "Accepted as tensorflow_model_server accepts it."),
    ("max_num_load_retries", "int32", 5, "Accepted as tensorflow_model_server accepts it."),
    ("load_retry_interval_micros", "int64", 60000000, "Accepted as tensorflow_model_server accepts it."),
    ("file_system_poll_wait_seconds", "int32", 1, "Seconds between scans of the model base paths for new versions."),
    ("flush_filesystem_caches", "bool", True, "Accepted as tensorflow_model_server accepts it."),
    ("tensorflow_session_parallelism", "int64", 0, "Accepted as tensorflow_model_server accepts it."),
    ("tensorflow_session_config_file", "string", "", "Accepted as tensorflow_model_server accepts it."),
    ("tensorflow_intra_op_parallelism", "int64", 0, "Accepted as tensorflow_model_server accepts it."),
    ("tensorflow_inter_op_parallelism", "int64", 0, "Accepted as tensorflow_model_server accepts it."),
    ("use_alts_credentials", "bool", False, "Accepted as tensorflow_model_server accepts it."),
    ("ssl_config_file", "string", "", "Accepted as tensorflow_model_server accepts it."),
    ("platform_config_file", "string", "", "Accepted as tensorflow_model_server accepts it."),
    ("per_process_gpu_memory_fraction", "float", 0.0, "Accepted as tensorflow_model_server accepts it."),
    ("saved_model_tags", "string", "serve", "Comma-separated tags of the MetaGraph to load."),
    ("grpc_channel_arguments", "string", "", "Comma-separated gRPC channel arguments, e.g. grpc.so_reuseport=0."),
    ("grpc_max_threads", "int32", 8, "Accepted as tensorflow_model_server accepts it."),
    ("enable_model_warmup", "bool", True, "Accepted as tensorflow_model_server accepts it."),
    ("num_request_iterations_for_warmup", "int32", 0, "Accepted as tensorflow_model_server accepts it."),
    ("version", "bool", False, "Accepted as tensorflow_model_server accepts it."),
    ("monitoring_config_file", "string", "", "MonitoringConfig (text protobuf) enabling Prometheus metrics on the REST port."),
    ("remove_unused_fields_from_bundle_metagraph", "bool", True, "Accepted as tensorflow_model_server accepts it."),
    ("prefer_tflite_model", "bool", False, "Accepted as tensorflow_model_server accepts it."),
    ("num_tflite_pools", "int32", 2, "Accepted as tensorflow_model_server accepts it."),
    ("num_tflite_interpreters_per_pool", "int32", 1, "Accepted as tensorflow_model_server accepts it."),
    ("enable_signature_method_name_check", "bool", False, "Accepted as tensorflow_model_server accepts it."),
    ("xla_cpu_compilation_enabled", "bool", False, "Accepted as tensorflow_model_server accepts it."),
    ("xla_gpu_compilation_enabled", "bool", False, "Accepted as tensorflow_model_server accepts it."),
    ("enable_profiler", "bool", True, "Accepted as tensorflow_model_server accepts it."),
    ("thread_pool_factory_config_file", "string", "", "Accepted as tensorflow_model_server accepts it."),
    ("mixed_precision", "string", "", "Accepted as tensorflow_model_server accepts it."),
    ("skip_initialize_tpu", "bool", False, "Accepted as tensorflow_model_server accepts it."),
    ("enable_grpc_healthcheck_service", "bool", False, "Accepted as tensorflow_model_server accepts it."),
    ("enable_serialization_as_tensor_content", "bool", False, "Accepted as tensorflow_model_server accepts it."),
]

_INT_RANGES = {"int32": (-(1 << 31), (1 << 31) - 1), "int64": (-(1 << 63), (1 << 63) - 1)}


def usage(argv0):
    lines = ["usage: %s" % argv0, "Flags:"]
    for name, kind, default, help_text in FLAGS:
        if kind in ("int32", "int64"):
            shown = "--%s=%d" % (name, default)
        elif kind == "bool":
            shown = "--%s=%s" % (name, "true" if default else "false")
        elif kind == "float":
            shown = "--%s=%f" % (name, default)
        else:
            shown = '--%s="%s"' % (name, default)
        lines.append("\t%-33s\t%s\t%s" % (shown, kind, help_text))
    return "\n".join(lines) + "\n"


def _parse_one(arg, name, kind, values):
    """tensorflow::Flag::Parse: (matched, value_ok)."""
    prefix = "--" + name
    if not arg.startswith(prefix):
        return False, True
    rest = arg[len(prefix):]
    if kind == "bool":
        if rest in ("", "=true"):
            values[name] = True
            return True, True
        if rest == "=false":
            values[name] = False
            return True, True
        log("E", "tensorflow/core/util/command_line_flags.cc:%d" % 157,
            "Couldn't interpret value %s for flag %s." % (rest, name))
        return True, False
    if not rest.startswith("="):
        return False, True
    text = rest[1:]
    if kind == "string":
        values[name] = text
        return True, True
    if kind in ("int32", "int64"):
        # sscanf("%d%c") == 1: optional leading space and sign, digits, nothing after.
        ok = re.fullmatch(r"[ \t\n\r\f\v]*[+-]?[0-9]+", text) is not None
        if ok:
            number = int(text)
            low, high = _INT_RANGES[kind]
            ok = low <= number <= high
        if not ok:
            log("E", "tensorflow/core/util/command_line_flags.cc:%d" % 76,
                "Couldn't interpret value %s for flag %s." % (text, name))
            return True, False
        values[name] = number
        return True, True
    # float: sscanf("%f%c")
    try:
        if re.search(r"\s$", text) or not text.strip():
            raise ValueError(text)
        values[name] = float(text)
        return True, True
    except ValueError:
        log("E", "tensorflow/core/util/command_line_flags.cc:%d" % 120,
            "Couldn't interpret value %s for flag %s." % (text, name))
        return True, False


def parse_flags(args):
    """tensorflow::Flags::Parse. Returns (values, ok, unknown arguments)."""
    values = dict((name, default) for name, _kind, default, _help in FLAGS)
    ok = True
    unknown = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            unknown.extend(args[i:])
            break
        found = False
        for name, kind, _default, _help in FLAGS:
            matched, value_ok = _parse_one(arg, name, kind, values)
            if not value_ok:
                ok = False
            if matched:
                found = True
                break
        if not found:
            unknown.append(arg)
        i += 1
    ok = ok and (not unknown or unknown[0] != "--help")
    return values, ok, unknown


# ---------------------------------------------------------------- protos

def _build_extra_protos():
    """MonitoringConfig and BatchingParameters, as declared by TF Serving.

    tensorflow-serving-api does not ship these two (they live in
    tensorflow_serving/config/monitoring_config.proto and
    servables/tensorflow/session_bundle_config.proto); they are declared here
    field for field and parsed by the real protobuf text_format.
    """
    pool = descriptor_pool.Default()
    name = "serving_double/extra_configs.proto"
    try:
        pool.FindFileByName(name)
    except KeyError:
        f = descriptor_pb2.FileDescriptorProto(name=name, package="tensorflow.serving", syntax="proto3")
        f.dependency.append("google/protobuf/wrappers.proto")
        T = descriptor_pb2.FieldDescriptorProto
        prom = f.message_type.add(name="PrometheusConfig")
        prom.field.add(name="enable", number=1, type=T.TYPE_BOOL, label=T.LABEL_OPTIONAL)
        prom.field.add(name="path", number=2, type=T.TYPE_STRING, label=T.LABEL_OPTIONAL)
        mon = f.message_type.add(name="MonitoringConfig")
        mon.field.add(name="prometheus_config", number=1, type=T.TYPE_MESSAGE, label=T.LABEL_OPTIONAL,
                      type_name=".tensorflow.serving.PrometheusConfig")
        bat = f.message_type.add(name="BatchingParameters")
        for field_name, number, wrapper in (
                ("max_batch_size", 1, "Int64Value"), ("batch_timeout_micros", 2, "Int64Value"),
                ("max_enqueued_batches", 3, "Int64Value"), ("num_batch_threads", 4, "Int64Value"),
                ("thread_pool_name", 5, "StringValue"), ("enable_large_batch_splitting", 8, "BoolValue"),
                ("max_execution_batch_size", 9, "Int64Value")):
            bat.field.add(name=field_name, number=number, type=T.TYPE_MESSAGE, label=T.LABEL_OPTIONAL,
                          type_name=".google.protobuf." + wrapper)
        bat.field.add(name="allowed_batch_sizes", number=6, type=T.TYPE_INT64, label=T.LABEL_REPEATED)
        bat.field.add(name="pad_variable_length_inputs", number=7, type=T.TYPE_BOOL, label=T.LABEL_OPTIONAL)
        pool.Add(f)
    return (_message_class(pool.FindMessageTypeByName("tensorflow.serving.MonitoringConfig")),
            _message_class(pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters")))


MonitoringConfig, BatchingParameters = _build_extra_protos()


def parse_proto_text_file(path, message_class):
    """tensorflow::serving::ParseProtoTextFile."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise Status("NOT_FOUND", "%s; No such file or directory" % path)
    except IsADirectoryError:
        raise Status("FAILED_PRECONDITION", "%s; Is a directory" % path)
    except OSError as e:
        raise Status("PERMISSION_DENIED" if e.errno == 13 else "UNKNOWN", "%s; %s" % (path, e.strerror))
    message = message_class()
    try:
        text_format.Parse(data.decode("utf-8"), message)
    except (text_format.ParseError, UnicodeDecodeError) as e:
        log("E", "external/com_google_protobuf/src/google/protobuf/text_format.cc:335",
            "Error parsing text-format %s: %s" % (message.DESCRIPTOR.full_name, e))
        raise Status("INVALID_ARGUMENT", "Invalid protobuf file: '%s'" % path)
    return message


# ---------------------------------------------------------------- JSON writing (rapidjson PrettyWriter)

class PrettyWriter:
    """Reproduces rapidjson::PrettyWriter's layout (4-space indent, kFormatSingleLineArray)."""

    def __init__(self, max_bytes=None):
        self.out = []
        self.size = 0
        self.levels = []  # [in_array, value_count]
        self.single_line = False
        self.max_bytes = max_bytes

    def _put(self, text):
        self.out.append(text)
        self.size += len(text)

    def _in_limit(self):
        return self.max_bytes is None or self.size < self.max_bytes

    def _indent(self):
        self._put(" " * (4 * len(self.levels)))

    def _prefix(self):
        if not self.levels:
            return
        level = self.levels[-1]
        if level[0]:
            if level[1] > 0:
                self._put(",")
                if self.single_line:
                    self._put(" ")
            if not self.single_line:
                self._put("\n")
                self._indent()
        else:
            if level[1] > 0:
                self._put(",\n" if level[1] % 2 == 0 else ": ")
            else:
                self._put("\n")
            if level[1] % 2 == 0:
                self._indent()
        level[1] += 1

    def raw(self, token):
        if not self._in_limit():
            return
        self._prefix()
        self._put(token)

    def string(self, value):
        self.raw(json.dumps(value, ensure_ascii=False))

    key = string

    def _open(self, is_array, bracket):
        if not self._in_limit():
            return
        self._prefix()
        self.levels.append([is_array, 0])
        self._put(bracket)

    def _close(self, bracket, break_line):
        if not self._in_limit():
            return
        empty = self.levels.pop()[1] == 0
        if not empty and break_line:
            self._put("\n")
            self._indent()
        self._put(bracket)

    def start_object(self):
        self._open(False, "{")

    def end_object(self):
        self._close("}", True)

    def start_array(self):
        self._open(True, "[")

    def end_array(self):
        # Arrays of a single-line writer stay on one line; objects never do.
        self._close("]", not self.single_line)

    def value(self, v):
        """Write a plain Python JSON value."""
        if isinstance(v, dict):
            self.start_object()
            for k, item in v.items():
                self.key(k)
                self.value(item)
            self.end_object()
        elif isinstance(v, list):
            self.start_array()
            for item in v:
                self.value(item)
            self.end_array()
        elif isinstance(v, bool):
            self.raw("true" if v else "false")
        elif v is None:
            self.raw("null")
        elif isinstance(v, float):
            if math.isfinite(v):
                self.raw(repr(v))
            else:
                self.raw("NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity"))
        elif isinstance(v, int):
            self.raw(str(v))
        else:
            self.string(str(v))

    def text(self):
        return "".join(self.out)


def json_debug_string(value):
    """JsonValueToDebugString: pretty objects, single-line arrays, cut at 256 bytes."""
    w = PrettyWriter(max_bytes=256)
    w.single_line = True
    w.value(value)
    return w.text()


def json_type_string(value):
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def error_json(message):
    w = PrettyWriter()
    w.start_object()
    w.key("error")
    w.string(message)
    w.end_object()
    return w.text()


def proto_json(value):
    """protobuf JsonPrintOptions.add_whitespace output (1-space indent, trailing newline)."""
    return json.dumps(value, indent=1, ensure_ascii=False) + "\n"


_RAPIDJSON_ERRORS = [
    ("Expecting property name enclosed in double quotes", "Missing a name for object member."),
    ("Expecting ':' delimiter", "Missing a colon after a name of object member."),
    ("Unterminated string", "Missing a closing quotation mark in string."),
    ("Invalid control character", "Invalid encoding in string."),
    ("Invalid \\escape", "Invalid escape character in string."),
    ("Invalid \\uXXXX escape", "Incorrect hex digit after \\u escape in string."),
]


def parse_request_json(body):
    """ParseJson of json_tensor.cc (iterative, NaN/Inf allowed, stops when done)."""
    if not body:
        raise Status("INVALID_ARGUMENT", "JSON Parse error: The document is empty")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Status("INVALID_ARGUMENT", "JSON Parse error: Invalid encoding in string. at offset: %d" % e.start)
    stripped = text.lstrip(" \t\r\n")
    offset = len(text) - len(stripped)
    if not stripped:
        raise Status("INVALID_ARGUMENT", "JSON Parse error: The document is empty. at offset: %d" % len(text))
    try:
        doc, _end = json.JSONDecoder().raw_decode(stripped)
    except json.JSONDecodeError as e:
        message = "Invalid value."
        for python_text, rapid_text in _RAPIDJSON_ERRORS:
            if e.msg.startswith(python_text):
                message = rapid_text
                break
        else:
            if e.msg.startswith("Expecting ',' delimiter"):
                message = ("Missing a comma or ']' after an array element." if _inside_array(stripped, e.pos)
                           else "Missing a comma or '}' after an object member.")
        raise Status("INVALID_ARGUMENT", "JSON Parse error: %s at offset: %d" % (message, offset + e.pos))
    if not isinstance(doc, dict):
        raise Status("INVALID_ARGUMENT", "JSON Value: %s Is not object" % json_debug_string(doc))
    return doc


def _inside_array(text, pos):
    depth = []
    in_string = escaped = False
    for ch in text[:pos]:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth.append(ch)
        elif ch in "]}" and depth:
            depth.pop()
    return bool(depth) and depth[-1] == "["


# ---------------------------------------------------------------- loaded servables

def _servable_id(name, version):
    return "{name: %s version: %d}" % (name, version)


class LoadedModel:
    """A servable: the signatures for the REST metadata, the MetaGraphDef and its evaluation.Session."""

    def __init__(self, name, version, path, meta_graph, meta_graph_def):
        self.name = name
        self.version = version
        self.path = path
        self.signatures = meta_graph["signatures"]
        self.meta_graph_def = meta_graph_def
        self.session = evaluation.Session(meta_graph_def, path)
        # Variables are restored and the init op run once, as TF's SavedModel loader does.
        self.session.restore(lambda message: log("I", "external/org_tensorflow/tensorflow/cc/saved_model/"
                                                      "loader.cc:325", message))


def _saved_model_proto(path):
    """The real SavedModel proto (saved_model.py has read the same file)."""
    proto = saved_model_pb2.SavedModel()
    pb = os.path.join(path, "saved_model.pb")
    try:
        if os.path.isfile(pb):
            with open(pb, "rb") as f:
                proto.ParseFromString(f.read())
        else:
            pb = os.path.join(path, "saved_model.pbtxt")
            with open(pb, encoding="utf-8") as f:
                text_format.Parse(f.read(), proto)
    except (DecodeError, text_format.ParseError, UnicodeDecodeError):
        raise Status("DATA_LOSS", "Can't parse %s as %s proto" % (pb, "text" if pb.endswith("txt") else "binary"))
    return proto


def load_servable(name, version, path, tags):
    """SavedModelBundleFactory: LoadSessionBundleOrSavedModelBundle + tag matching."""
    if os.path.exists(os.path.join(path, "export.meta")):
        raise Status("UNIMPLEMENTED", "Session Bundle is deprecated and removed.")
    pb = os.path.join(path, "saved_model.pb")
    pbtxt = os.path.join(path, "saved_model.pbtxt")
    if not (os.path.isfile(pb) or os.path.isfile(pbtxt)):
        raise Status("NOT_FOUND", "Specified file path does not appear to contain a SavedModel bundle (should have "
                     "a file called `saved_model.pb`)\nSpecified file path: %s" % path)
    log("I", "external/org_tensorflow/tensorflow/cc/saved_model/reader.cc:83", "Reading SavedModel from: %s" % path)
    try:
        if os.path.isfile(pb) and os.path.getsize(pb) == 0:
            model = {"meta_graphs": []}  # an empty message parses as an empty SavedModel
        else:
            model = saved_model.load_saved_model(path)
    except saved_model.SavedModelError:
        source = pb if os.path.isfile(pb) else pbtxt
        kind = "binary" if source == pb else "text"
        raise Status("DATA_LOSS", "Can't parse %s as %s proto" % (source, kind))
    except OSError as e:
        raise Status("UNKNOWN", "%s; %s" % (path, e.strerror))
    wanted = set(t for t in tags.split(",") if t) if tags else set()
    for index, meta_graph in enumerate(model["meta_graphs"]):
        if set(meta_graph["tags"]) == wanted:
            log("I", "external/org_tensorflow/tensorflow/cc/saved_model/reader.cc:51",
                "Reading meta graph with tags { %s }" % " ".join(sorted(wanted)))
            return LoadedModel(name, version, path, meta_graph, _saved_model_proto(path).meta_graphs[index])
    raise Status("NOT_FOUND", "Could not find meta graph def matching supplied tags: { %s }. To inspect available "
                 "tag-sets in the SavedModel, please use the SavedModel CLI: `saved_model_cli`"
                 % " ".join(sorted(wanted)))


def wrap_for_batching(params):
    """bundle_factory_util.cc WrapSessionForBatching with SharedBatchScheduler::AddQueue's checks.

    Every version's load runs it when --enable_batching is on; a failure
    fails the load with its status.
    """
    if VLOG_LEVEL >= 1:
        # GetPerModelBatchingParams's VLOG(1): the parameters, as DebugString prints them.
        log("I", "tensorflow_serving/servables/tensorflow/bundle_factory_util.cc:80",
            "Wrapping session to perform batch processing using session config batching params: %s"
            % text_format.MessageToString(params))
    log("I", "tensorflow_serving/servables/tensorflow/bundle_factory_util.cc:104",
        "Wrapping session to perform batch processing")

    def value(field, default):
        return getattr(params, field).value if params.HasField(field) else default

    def size_t(number):
        return number % 2 ** 64
    limit = value("max_batch_size", 1000)
    sizes = list(params.allowed_batch_sizes)
    if sizes and sizes[-1] != limit:
        raise Status("INVALID_ARGUMENT", "Last entry in allowed_batch_sizes must match max_batch_size; last entry "
                     "was %d; expected %d" % (sizes[-1], limit))
    splitting = value("enable_large_batch_splitting", False)
    enqueued = size_t(value("max_enqueued_batches", 10))
    if not splitting and enqueued == 0:
        enqueued = 1  # AddQueue keeps models with very low QPS working
    execution = size_t(value("max_execution_batch_size", params.max_batch_size.value)) if splitting else 1000
    if size_t(limit) == 0:
        raise Status("INVALID_ARGUMENT", "input_batch_size_limit must be positive; was 0")
    if value("batch_timeout_micros", 0) < 0:
        raise Status("INVALID_ARGUMENT", "batch_timeout_micros must be non-negative; was %d"
                     % value("batch_timeout_micros", 0))
    if enqueued == 0:
        raise Status("INVALID_ARGUMENT", "max_enqueued_batches must be positive; was 0")
    if splitting and size_t(limit) < execution:
        # StrCat appends the three values to the sentence, without spaces.
        raise Status("INVALID_ARGUMENT", "When enable_large_batch_splitting is true, input_batch_size_limit must be "
                     "greater than or equal to max_execution_batch_size.1%d%d" % (size_t(limit), execution))


WARMUP_LOG = "tensorflow_serving/servables/tensorflow/saved_model_warmup_util.cc"


def run_warmup(model):
    """saved_model_warmup_util.cc RunSavedModelWarmup: the version's warmup records, replayed before it serves.

    A failing record fails the load with its status; a damaged file is DATA_LOSS.
    """
    path = os.path.join(model.path, *saved_model.WARMUP_FILE.split("/"))
    if not os.path.exists(path):
        log("I", WARMUP_LOG + ":84", "No warmup data file found at %s" % path)
        return
    log("I", WARMUP_LOG + ":98", "Starting to read warmup data for model at %s with model-warmup-options " % path)
    started = time.monotonic()
    with open(path, "rb") as f:
        data = f.read()
    count = 0
    try:
        for _, record in saved_model.tfrecords(data):
            prediction_log = prediction_log_pb2.PredictionLog()
            try:
                prediction_log.ParseFromString(record)
            except DecodeError:
                raise Status("INVALID_ARGUMENT", "Failed to parse warmup record: %s from %s"
                             % (record.decode("latin-1"), path))
            grpc_api.run_logged_request(model, prediction_log)
            count += 1
            if count > saved_model.WARMUP_MAX_RECORDS:
                raise Status("INVALID_ARGUMENT", "Number of warmup records exceeds the maximum (%d) at %s"
                             % (saved_model.WARMUP_MAX_RECORDS, path))
    except saved_model.SavedModelError as e:
        raise Status("DATA_LOSS", "%s. Please verify your warmup data is in TFRecord format." % e)
    log("I", WARMUP_LOG + ":239", "Finished reading warmup data for model at %s. Number of warmup records read: %d. "
        "Elapsed time (microseconds): %d." % (path, count, (time.monotonic() - started) * 1e6))


# ---------------------------------------------------------------- the server core

START, LOADING, AVAILABLE, UNLOADING, END = "START", "LOADING", "AVAILABLE", "UNLOADING", "END"


class Harness:
    """LoaderHarness + the manager's is_aspired flag."""

    def __init__(self, version, path):
        self.version = version
        self.path = path
        self.state = "new"  # new, loading, ready, unloading, disabled, error
        self.aspired = True
        self.retry = True
        self.model = None


def parse_version_number(text):
    """absl::SimpleAtoi for int64: optional ASCII space around, optional sign, decimal digits."""
    m = re.fullmatch(r"[ \t\n\v\f\r]*([+-]?[0-9]+)[ \t\n\v\f\r]*", text)
    if not m:
        return None
    value = int(m.group(1))
    if not -(1 << 63) <= value < (1 << 63):
        return None
    return value


def _base_path_is_relative(path):
    parsed = urllib.parse.urlsplit(path)
    if parsed.scheme and "://" in path:
        return False
    return not path.startswith("/")


def _get_platform(config):
    if config.model_type != 0:
        log("W", "tensorflow_serving/model_servers/server_core.cc:60",
            "Deprecated ModelServerConfig::model_type field used. Prefer ModelServerConfig::model_platform.")
        if config.model_platform:
            raise Status("INVALID_ARGUMENT", "Illegal setting both ModelServerConfig::model_type (deprecated) and "
                         "ModelServerConfig::model_platform, model name is %s" % config.name)
        if config.model_type == 1:
            return "tensorflow"
        raise Status("INVALID_ARGUMENT", "ModelServerConfig::model_type choice %d not supported." % config.model_type)
    if not config.model_platform:
        raise Status("INVALID_ARGUMENT", "Illegal setting neither ModelServerConfig::model_type (deprecated) nor "
                     "ModelServerConfig::model_platform, model name is %s" % config.name)
    return config.model_platform


class ServerCore:
    MANAGE_INTERVAL = 0.1  # AspiredVersionsManager manage_state_interval_micros = 100 ms

    def __init__(self, options):
        self.options = options
        self.mu = threading.RLock()
        self.changed = threading.Condition(self.mu)
        self.config = None            # config_ (the last config ReloadConfig went past validation with)
        self.config_mu = threading.Lock()
        self.label_map = None         # model -> {label: version}; None until first successful update
        self.states = {}              # ServableStateMonitor: model -> {version: (state, code, message)}
        self.harnesses = {}           # BasicManager: model -> {version: Harness}
        self.pending = {}             # pending aspired-versions requests: model -> [(version, path)]
        self.listeners = []           # fresh monitors: callables(name, version, state, code)
        self.source_servables = None  # FileSystemStoragePathSource config: [(name, base_path, policy)]
        self.source_mu = threading.Lock()
        self.request_counts = {}      # (model, status code) -> count
        self.load_attempts = {}       # (model path, success|fail) -> count
        self.load_delay = float(os.environ.get("SERVING_DOUBLE_LOAD_DELAY_SECONDS", "0") or 0)
        self.unload_delay = float(os.environ.get("SERVING_DOUBLE_UNLOAD_DELAY_SECONDS", "0") or 0)
        self._manager = threading.Thread(target=self._manage_loop, name="manager", daemon=True)
        self._manager.start()

    # ------------------------------------------------------------ event bus / monitor

    def _publish(self, name, version, state, code="OK", message=""):
        with self.mu:
            self.states.setdefault(name, {})[version] = (state, code, message)
            for listener in list(self.listeners):
                listener(name, version, state, code, message)
            self.changed.notify_all()

    def version_states(self, name):
        with self.mu:
            return dict(self.states.get(name, {}))

    def model_status(self, name, version):
        """GetModelStatusImpl: [(version, (state, code, message))], one version or all (highest first)."""
        states = self.version_states(name)
        if version is not None:
            if version not in states:
                raise Status("NOT_FOUND", "Could not find version %d of model %s" % (version, name))
            return [(version, states[version])]
        if not states:
            raise Status("NOT_FOUND", "Could not find any versions of model %s" % name)
        return sorted(states.items(), reverse=True)

    def _wait_until_available(self, models, fresh):
        """ServableStateMonitor::WaitUntilServablesReachState(Latest(m) for m in models, kAvailable)."""
        seen = {}

        def listener(name, version, state, code, message):
            seen.setdefault(name, {})[version] = (state, code, message)

        with self.mu:
            if fresh:
                self.listeners.append(listener)
            try:
                while True:
                    source = seen if fresh else self.states
                    reached = {}
                    for model in models:
                        for version in sorted(source.get(model, {}), reverse=True):
                            st = source[model][version]
                            if st[0] in (AVAILABLE, END):
                                reached[model] = (version, st)
                                break
                    if len(reached) == len(models):
                        break
                    self.changed.wait(0.5)
            finally:
                if fresh:
                    self.listeners.remove(listener)
        failed = [(m, v, st) for m, (v, st) in sorted(reached.items()) if st[0] != AVAILABLE]
        if failed:
            parts = []
            for m, v, st in sorted(failed, key=lambda x: (x[0], x[1])):
                error = " due to error: %s: %s" % (st[1], st[2]) if st[1] != "OK" else ""
                parts.append("{%s%s}, " % (_servable_id(m, v), error))
            noun = "servable(s)" if not fresh else "model(s)"
            raise Status("UNKNOWN", "%d %s did not become available: {%s}" % (len(failed), noun, "".join(parts)))

    # ------------------------------------------------------------ config (ServerCore::ReloadConfig)

    def reload_config(self, new_config):
        with self.config_mu:
            old = self.config
            is_first = old is None or old.WhichOneof("config") is None
            is_same = old is not None and old == new_config
            accept = is_first or is_same or (old.WhichOneof("config") == "model_config_list"
                                             and new_config.WhichOneof("config") == "model_config_list")
            if not accept:
                log("E", "tensorflow_serving/model_servers/server_core.cc:462", "Cannot transition to requested "
                    "config. It is only legal to transition from one ModelConfigList to another.")
                raise Status("FAILED_PRECONDITION", "Cannot transition to requested config. It is only legal to "
                             "transition from one ModelConfigList to another.")
            which = new_config.WhichOneof("config")
            if which is None:
                log("I", "tensorflow_serving/model_servers/server_core.cc:470", "Taking no action for empty config.")
                return
            if which == "custom_model_config":
                log("F", "tensorflow_serving/model_servers/server.cc:73",
                    "ModelServer does not yet support custom model config.")
                sys.stderr.flush()
                os.abort()
            self._validate_model_config_list(new_config.model_config_list)
            if old is not None and old.WhichOneof("config") == "model_config_list":
                self._validate_no_platform_change(old.model_config_list, new_config.model_config_list)
            self.config = model_server_config_pb2.ModelServerConfig()
            self.config.CopyFrom(new_config)
            self._update_label_map()
            log("I", "tensorflow_serving/model_servers/server_core.cc:494", "Adding/updating models.")
            self._add_models_via_config_list(is_first or self.source_servables is None)
            log("I", "tensorflow_serving/model_servers/server_core.cc:595", "Finished adding/updating models")
            log("I", "tensorflow_serving/model_servers/server_core.cc:604", "Finished reloading config")

    @staticmethod
    def _validate_model_config_list(config_list):
        names = set()
        for config in config_list.config:
            if config.name in names:
                raise Status("INVALID_ARGUMENT", "Illegal to list model %s multiple times in config list" % config.name)
            names.add(config.name)
        for config in config_list.config:
            if _base_path_is_relative(config.base_path):
                raise Status("INVALID_ARGUMENT", "Expected model %s to have an absolute path or URI; got "
                             "base_path()=%s" % (config.name, config.base_path))

    @staticmethod
    def _validate_no_platform_change(old_list, new_list):
        old_platforms = dict((c.name, _get_platform(c)) for c in old_list.config)
        for config in new_list.config:
            if config.name not in old_platforms:
                continue
            platform = _get_platform(config)
            if platform != old_platforms[config.name]:
                raise Status("INVALID_ARGUMENT", "Illegal to change a model's platform. For model %s platform was "
                             "%s and new platform requested is %s"
                             % (config.name, old_platforms[config.name], platform))

    def _update_label_map(self):
        new_map = {}
        for config in self.config.model_config_list.config:
            states = self.version_states(config.name)
            for label, version in config.version_labels.items():
                allow = False
                if self.options["allow_version_labels_for_unavailable_models"]:
                    existing = (self.label_map or {}).get(config.name, {}).get(label)
                    allow = not (existing is not None and existing != version)
                st = states.get(version)
                if not allow and (st is None or st[0] != AVAILABLE):
                    raise Status("FAILED_PRECONDITION", "Request to assign label to version %d of model %s, which is "
                                 "not currently available for inference" % (version, config.name))
                new_map.setdefault(config.name, {})[label] = version
        with self.mu:
            self.label_map = new_map

    def _add_models_via_config_list(self, is_first):
        servables = []
        for config in self.config.model_config_list.config:
            platform = _get_platform(config)
            if platform != "tensorflow":
                raise Status("INVALID_ARGUMENT", "Model %s requests unsupported platform %s" % (config.name, platform))
        for config in self.config.model_config_list.config:
            log("I", "tensorflow_serving/model_servers/server_core.cc:635", " (Re-)adding model: %s" % config.name)
            policy = type(config.model_version_policy)()
            policy.CopyFrom(config.model_version_policy)
            servables.append((config.name, config.base_path, policy))
        if is_first:
            with self.source_mu:
                self.source_servables = servables
            self._start_source()
            self._wait_until_available([c.name for c in self.config.model_config_list.config], fresh=False)
            return
        with self.source_mu:
            old_names = set(s[0] for s in self.source_servables)
            new_names = [s[0] for s in servables if s[0] not in old_names]
            deleted = old_names - set(s[0] for s in servables)
            self.source_servables = servables
        for name in sorted(deleted):
            self.aspired_versions(name, [])
        if new_names:
            self._wait_until_available(new_names, fresh=True)

    # ------------------------------------------------------------ source (FileSystemStoragePathSource)

    def _start_source(self):
        wait = self.options["file_system_poll_wait_seconds"]
        if wait < 0:
            return
        t = threading.Thread(target=self._poll_loop, args=(wait,), name="fs_poll", daemon=True)
        t.start()

    def _poll_loop(self, wait):
        while True:
            begin = time.monotonic()
            try:
                self.poll_file_system()
            except Exception:  # keep polling whatever happens
                log("E", "serving_double", "file system poll failed:\n" + traceback.format_exc())
            if wait == 0:
                return
            time.sleep(max(0.0, wait - (time.monotonic() - begin)))

    def poll_file_system(self):
        with self.source_mu:
            servables = list(self.source_servables or [])
            found = []
            try:
                for name, base_path, policy in servables:
                    found.append((name, self._poll_servable(name, base_path, policy)))
            except Status as e:
                log("E", "tensorflow_serving/sources/storage_path/file_system_storage_path_source.cc:390",
                    "FileSystemStoragePathSource encountered a filesystem access error: %s" % e.message)
                return
            for name, versions in found:
                self.aspired_versions(name, versions)

    @staticmethod
    def _poll_servable(name, base_path, policy):
        if not os.path.exists(base_path):
            raise Status("INVALID_ARGUMENT", "Could not find base path %s for servable %s with error NOT_FOUND: %s "
                         "not found" % (base_path, name, base_path))
        choice = policy.WhichOneof("policy_choice")
        if choice == "specific":
            requested = list(policy.specific.versions)
            if not requested:
                log("W", "tensorflow_serving/sources/storage_path/file_system_storage_path_source.cc:172",
                    "No specific versions requested for servable %s." % name)
                return []
            if all(os.path.exists(os.path.join(base_path, str(v))) for v in requested):
                return [(v, os.path.join(base_path, str(v))) for v in requested]
        try:
            children = sorted(os.listdir(base_path))
        except OSError as e:
            raise Status("UNKNOWN", "%s; %s" % (base_path, e.strerror))
        by_version = {}
        for child in children:
            number = parse_version_number(child)
            if number is None:
                continue
            if number in by_version:
                log("W", "tensorflow_serving/sources/storage_path/file_system_storage_path_source.cc:107",
                    "Duplicate version directories detected. Version %d will be loaded from %s, %s will be "
                    "ignored." % (number, child, by_version[number]))
            by_version[number] = child
        versions = []
        if choice in (None, "latest"):
            keep = max(policy.latest.num_versions, 1)
            for number in sorted(by_version, reverse=True)[:keep]:
                versions.append((number, os.path.join(base_path, by_version[number])))
        elif choice == "all":
            versions = [(n, os.path.join(base_path, c)) for n, c in sorted(by_version.items())]
        else:
            wanted = set(policy.specific.versions)
            versions = [(n, os.path.join(base_path, c)) for n, c in sorted(by_version.items()) if n in wanted]
            for number in policy.specific.versions:
                if number not in by_version:
                    log("W", "tensorflow_serving/sources/storage_path/file_system_storage_path_source.cc:226",
                        "Version %d of servable %s, which was requested to be served as a 'specific' version in "
                        "the servable's version policy, was not found in the file system" % (number, name))
        if not versions:
            log("W", "tensorflow_serving/sources/storage_path/file_system_storage_path_source.cc:290",
                "No versions of servable %s found under base path %s. Did you forget to name your leaf "
                "directory as a number (eg. '/1/')?" % (name, base_path))
        return versions

    # ------------------------------------------------------------ manager (AspiredVersionsManager)

    def aspired_versions(self, name, versions):
        with self.mu:
            self.pending[name] = list(versions)
            self.changed.notify_all()

    def _flush(self):
        for name, harnesses in self.harnesses.items():
            for version in list(harnesses):
                h = harnesses[version]
                if h.state in ("new", "disabled", "error") and not h.aspired:
                    del harnesses[version]

    def _handle_pending(self):
        for name in list(self.pending):
            versions = self.pending[name]
            harnesses = self.harnesses.setdefault(name, {})
            numbers = set(v for v, _ in versions)
            if any(not h.aspired and v in numbers for v, h in harnesses.items()):
                continue  # wait until re-aspired versions have been unloaded
            del self.pending[name]
            current = set(v for v, h in harnesses.items() if h.aspired)
            for v, h in harnesses.items():
                if v not in numbers:
                    h.aspired = False
                    h.retry = False
            for v, path in versions:
                if v not in current:
                    harnesses[v] = Harness(v, path)
                    self._publish(name, v, START)

    @staticmethod
    def _policy_action(harnesses):
        """AvailabilityPreservingPolicy::GetNextAction."""
        has_aspired = any(h.aspired for h in harnesses.values())
        has_aspired_serving = any(h.aspired and h.state == "ready" for h in harnesses.values())
        unaspired_serving = sorted(v for v, h in harnesses.items() if not h.aspired and h.state == "ready")
        if (not has_aspired or has_aspired_serving or len(unaspired_serving) > 1) and unaspired_serving:
            return ("unload", unaspired_serving[0])
        new = sorted((v for v, h in harnesses.items() if h.aspired and h.state == "new"), reverse=True)
        if new:
            return ("load", new[0])
        return None

    def _next_action(self):
        actions = []
        for name in sorted(self.harnesses):
            action = self._policy_action(self.harnesses[name])
            if action:
                actions.append((0 if action[0] == "unload" else 1, name, action))
        if not actions:
            return None
        actions.sort(key=lambda a: (a[0], a[1]))
        _, name, (kind, version) = actions[0]
        return kind, name, version

    def _manage_loop(self):
        while True:
            with self.mu:
                self._flush()
                self._handle_pending()
                action = self._next_action()
                if action is None:
                    self.changed.wait(self.MANAGE_INTERVAL)
                    continue
                kind, name, version = action
                harness = self.harnesses[name][version]
                if kind == "load":
                    harness.state = "loading"
                    log("I", "tensorflow_serving/core/basic_manager.cc:740",
                        "Successfully reserved resources to load servable %s" % _servable_id(name, version))
                    log("I", "tensorflow_serving/core/loader_harness.cc:68",
                        "Approving load for servable version %s" % _servable_id(name, version))
                    self._publish(name, version, LOADING)
                else:
                    harness.state = "unloading"
                    self._publish(name, version, UNLOADING)
            try:
                if kind == "load":
                    self._execute_load(name, harness)
                else:
                    self._execute_unload(name, harness)
            except Exception:
                log("E", "serving_double", "manager action failed:\n" + traceback.format_exc())

    def _execute_load(self, name, harness):
        version = harness.version
        log("I", "tensorflow_serving/core/loader_harness.cc:76",
            "Loading servable version %s" % _servable_id(name, version))
        attempts = self.options["max_num_load_retries"]
        interval = self.options["load_retry_interval_micros"] / 1e6
        attempt = 0
        while True:
            if self.load_delay > 0:
                time.sleep(self.load_delay)
            try:
                model = load_servable(name, version, harness.path, self.options["saved_model_tags"])
                if self.options["batching"] is not None:
                    wrap_for_batching(self.options["batching"])
                if self.options["enable_model_warmup"]:
                    run_warmup(model)
                status = None
            except Status as e:
                model, status = None, e
            except Exception as e:  # a bug of the double must end the version, not leave it LOADING for ever
                log("E", "serving_double", "loading %s failed:\n%s" % (_servable_id(name, version),
                                                                     traceback.format_exc()))
                model, status = None, Status("UNKNOWN", "The TF Serving test double failed to load this version: "
                                                        "%s: %s" % (type(e).__name__, e))
            with self.mu:
                key = (harness.path, "success" if status is None else "fail")
                self.load_attempts[key] = self.load_attempts.get(key, 0) + 1
            if status is not None:
                log("E", "tensorflow_serving/util/retrier.cc:37", "Loading servable: %s failed: %s"
                    % (_servable_id(name, version), status))
            if status is None or not harness.retry:
                break
            if attempt >= attempts:
                if attempts:
                    log("I", "tensorflow_serving/util/retrier.cc:58", "Retrying of Loading servable: %s exhausted "
                        "max_num_retries: %d" % (_servable_id(name, version), attempts))
                break
            attempt += 1
            log("I", "tensorflow_serving/util/retrier.cc:46", "Retrying of Loading servable: %s retry: %d"
                % (_servable_id(name, version), attempt))
            if interval > 0:
                time.sleep(interval)
        with self.mu:
            if status is None:
                harness.model = model
                harness.state = "ready"
                log("I", "tensorflow_serving/core/loader_harness.cc:95",
                    "Successfully loaded servable version %s" % _servable_id(name, version))
                self._publish(name, version, AVAILABLE)
            else:
                harness.state = "error"
                log("E", "tensorflow_serving/core/loader_harness.cc:84", "Encountered an error for servable "
                    "version %s: %s" % (_servable_id(name, version), status))
                self._publish(name, version, END, status.code, status.message)

    def _execute_unload(self, name, harness):
        log("I", "tensorflow_serving/core/loader_harness.cc:102",
            "Unloading servable version %s" % _servable_id(name, harness.version))
        if self.unload_delay > 0:
            time.sleep(self.unload_delay)
        with self.mu:
            harness.state = "disabled"
            harness.model = None
            log("I", "tensorflow_serving/core/loader_harness.cc:110",
                "Done unloading servable version %s" % _servable_id(name, harness.version))
            self._publish(name, harness.version, END)

    # ------------------------------------------------------------ request processing

    def servable_request(self, name, version, label):
        """ServableRequestFromModelSpec -> (version or None for Latest)."""
        if not name:
            raise Status("INVALID_ARGUMENT", "ModelSpec has no name specified.")
        if label is not None:
            with self.mu:
                if self.label_map is None:
                    raise Status("UNAVAILABLE", "Model labels does not init yet.%s" % label)
                found = self.label_map.get(name, {}).get(label)
            if found is None:
                raise Status("INVALID_ARGUMENT", "Unrecognized servable version label: %s" % label)
            return found
        return version

    def servable_handle(self, name, version, label):
        """GetServableHandle: the AVAILABLE LoadedModel for the request."""
        version = self.servable_request(name, version, label)
        with self.mu:
            ready = dict((v, h.model) for v, h in self.harnesses.get(name, {}).items() if h.state == "ready")
        if version is None:
            if ready:
                return ready[max(ready)]
            raise Status("NOT_FOUND", "Servable not found for request: Latest(%s)" % name)
        if version in ready:
            return ready[version]
        raise Status("NOT_FOUND", "Servable not found for request: Specific(%s, %d)" % (name, version))

    def count_request(self, model_name, code):
        if not model_name:
            return
        with self.mu:
            self.request_counts[(model_name, code)] = self.request_counts.get((model_name, code), 0) + 1


# ---------------------------------------------------------------- REST handler (http_rest_api_handler.cc)

PREDICTION_RE = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)", re.IGNORECASE)
STATUS_RE = re.compile(r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?",
                       re.IGNORECASE)
V1_RE = re.compile(r"/v1/.*", re.IGNORECASE | re.DOTALL)


def _tensor_info_json(info):
    shape = info.get("shape")
    if shape is None:
        tensor_shape = {"dim": [], "unknown_rank": True}
    else:
        tensor_shape = {"dim": [{"size": str(d), "name": ""} for d in shape], "unknown_rank": False}
    dtype = info.get("dtype", "DT_INVALID")
    if dtype == "DT_0":
        dtype = "DT_INVALID"
    return {"dtype": dtype, "tensor_shape": tensor_shape, "name": info.get("name", "")}


def format_float(value, double):
    """WriteDecimal of json_tensor.cc."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    text = "%.6g" % value
    back = float(text) if double else f32(float(text))
    if back != value:
        text = "%.17g" % value if double else "%.9g" % value
    if "." not in text and "e" not in text:
        text += ".0"
    return text


def _write_tensor_values(w, tensor, dim, offset):
    if dim > len(tensor.shape) - 1:
        v = tensor.values[offset[0]]
        offset[0] += 1
        if tensor.dtype in ("DT_FLOAT", "DT_HALF", "DT_BFLOAT16"):
            w.raw(format_float(v, False))
        elif tensor.dtype == "DT_DOUBLE":
            w.raw(format_float(v, True))
        elif tensor.dtype == "DT_BOOL":
            w.raw("true" if v else "false")
        elif tensor.dtype == "DT_STRING":
            w.string(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v))
        else:
            w.raw(str(int(v)))
        return
    w.start_array()
    for _ in range(tensor.shape[dim]):
        _write_tensor_values(w, tensor, dim + 1, offset)
    w.end_array()


def make_json_from_tensors(outputs, row_format):
    """MakeJsonFromTensors: outputs is {alias: Tensor} (sorted by alias like a protobuf map)."""
    if not outputs:
        raise Status("INVALID_ARGUMENT", "Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    w = PrettyWriter()
    if row_format:
        batch = -1
        for name in names:
            t = outputs[name]
            if not t.shape:
                raise Status("INVALID_ARGUMENT", "Tensor name: %s has no shape information " % name)
            if batch >= 0 and batch != t.shape[0]:
                raise Status("INVALID_ARGUMENT", "Tensor name: %s has inconsistent batch size: %d expecting: %d"
                             % (name, t.shape[0], batch))
            batch = t.shape[0]
        offsets = dict((name, [0]) for name in names)
        objects = len(names) > 1
        w.start_object()
        w.key("predictions")
        w.start_array()
        for _ in range(batch):
            if objects:
                w.start_object()
            w.single_line = True
            for name in names:
                if objects:
                    w.key(name)
                _write_tensor_values(w, outputs[name], 1, offsets[name])
            w.single_line = False
            if objects:
                w.end_object()
        w.end_array()
        w.end_object()
    else:
        objects = len(names) > 1
        w.start_object()
        w.key("outputs")
        if objects:
            w.start_object()
        for name in names:
            if objects:
                w.key(name)
            _write_tensor_values(w, outputs[name], 0, [0])
        if objects:
            w.end_object()
        w.end_object()
    return w.text()


def _dense_shape(value):
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _is_base64_object(value):
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _type_error(value, dtype):
    return Status("INVALID_ARGUMENT", "JSON Value: %s Type: %s is not of expected type: %s"
                  % (json_debug_string(value), json_type_string(value), dtype_string(dtype)))


def _add_value(value, dtype, values):
    """AddValueToTensor."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if dtype in ("DT_FLOAT", "DT_DOUBLE"):
        if not is_number:
            raise _type_error(value, dtype)
        values.append(f32(float(value)) if dtype == "DT_FLOAT" else float(value))
    elif dtype in ("DT_INT32", "DT_INT16", "DT_INT8", "DT_UINT8"):
        if not (is_number and isinstance(value, int) and -(1 << 31) <= value < (1 << 31)):
            raise _type_error(value, dtype)
        values.append(value)
    elif dtype == "DT_INT64":
        if not (is_number and isinstance(value, int) and -(1 << 63) <= value < (1 << 63)):
            raise _type_error(value, dtype)
        values.append(value)
    elif dtype == "DT_UINT32":
        if not (is_number and isinstance(value, int) and 0 <= value < (1 << 32)):
            raise _type_error(value, dtype)
        values.append(value)
    elif dtype == "DT_UINT64":
        if not (is_number and isinstance(value, int) and 0 <= value < (1 << 64)):
            raise _type_error(value, dtype)
        values.append(value)
    elif dtype == "DT_STRING":
        if not isinstance(value, str):
            raise _type_error(value, dtype)
        values.append(value.encode("utf-8"))
    elif dtype == "DT_BOOL":
        if not isinstance(value, bool):
            raise _type_error(value, dtype)
        values.append(value)
    else:
        raise Status("UNIMPLEMENTED", "Conversion of JSON Value: %s to type: %s"
                     % (json_debug_string(value), dtype_string(dtype)))


def _fill_tensor(value, level, dtype, shape, values):
    """FillTensorProto: returns the number of values added."""
    rank = len(shape)
    if not isinstance(value, list):
        if level != rank:
            raise Status("INVALID_ARGUMENT", "JSON Value: %s found at incorrect level: %d in the JSON DOM. Expected "
                         "at level: %d" % (json_debug_string(value), level + 1, rank))
        if isinstance(value, dict):
            if dtype != "DT_STRING":
                raise _type_error(value, dtype)
            if not _is_base64_object(value):
                raise Status("INVALID_ARGUMENT", "JSON Value: %s not formatted correctly for base64 data"
                             % json_debug_string(value))
            try:
                values.append(base64.b64decode(value["b64"], validate=False))
            except ValueError:
                raise Status("INVALID_ARGUMENT", "Unable to base64 decode")
        else:
            _add_value(value, dtype, values)
        return 1
    if level >= rank:
        raise Status("INVALID_ARGUMENT", "Encountered list at unexpected level: %d expected < %d" % (level, rank))
    if len(value) != shape[level]:
        raise Status("INVALID_ARGUMENT", "Encountered list at unexpected size: %d at level: %d expected size: %d"
                     % (len(value), level, shape[level]))
    count = 0
    for item in value:
        count += _fill_tensor(item, level + 1, dtype, shape, values)
    return count


def _tensor_from_json(value, dtype):
    shape = _dense_shape(value)
    values = []
    _fill_tensor(value, 0, dtype, shape, values)
    return Tensor(dtype, shape, values)


def fill_inputs_from_instances(instances, info_map):
    """FillTensorMapFromInstancesList."""
    def is_object(v):
        return isinstance(v, dict) and not _is_base64_object(v)

    if not isinstance(instances[0], dict) and len(info_map) > 1:
        raise Status("INVALID_ARGUMENT", "instances is a plain list, but expecting list of objects as multiple input "
                     "tensors required as per tensorinfo_map")
    objects = is_object(instances[0])
    names = sorted(info_map)
    rows = dict((n, []) for n in names)
    sizes = {}
    shapes = {}

    def add(item, name):
        if name not in info_map:
            raise Status("INVALID_ARGUMENT", "JSON object: does not have named input: %s" % name)
        t = _tensor_from_json(item, info_map[name]["dtype"])
        if name not in sizes:
            sizes[name] = len(t.values)
            shapes[name] = t.shape
        elif sizes[name] != len(t.values):
            raise Status("INVALID_ARGUMENT", "Expecting tensor size: %d but got: %d" % (sizes[name], len(t.values)))
        elif shapes[name] != t.shape:
            raise Status("INVALID_ARGUMENT", "Expecting shape [%s] but got: [%s]"
                         % (",".join(map(str, shapes[name])), ",".join(map(str, t.shape))))
        rows[name].append(t)

    for count, element in enumerate(instances):
        if objects:
            if not is_object(element):
                raise Status("INVALID_ARGUMENT", "Expecting object but got list at item %d of input list" % count)
            for key, item in element.items():
                try:
                    add(item, key)
                except Status as e:
                    raise Status("INVALID_ARGUMENT", "Failed to process element: %d key: %s of 'instances' list. "
                                 "Error: %s" % (count, key, e))
            if set(element) != set(names):
                raise Status("INVALID_ARGUMENT", "Failed to process element: %d of 'instances' list. JSON object: %s "
                             "keys must be equal to: %s" % (count, json_debug_string(element), ",".join(names)))
        else:
            if is_object(element):
                raise Status("INVALID_ARGUMENT", "Expecting value/list but got object at item %d of input list" % count)
            try:
                add(element, names[0])
            except Status as e:
                raise Status("INVALID_ARGUMENT", "Failed to process element: %d of 'instances' list. Error: %s"
                             % (count, e))
    inputs = {}
    for name in names:
        if not rows[name]:
            continue
        values = []
        for t in rows[name]:
            values.extend(t.values)
        inputs[name] = Tensor(info_map[name]["dtype"], [len(rows[name])] + shapes[name], values)
    return inputs


def fill_inputs_from_columns(value, info_map):
    """FillTensorMapFromInputsMap."""
    names = sorted(info_map)
    if not isinstance(value, dict) or _is_base64_object(value):
        if len(info_map) > 1:
            raise Status("INVALID_ARGUMENT", "inputs is a plain value/list, but expecting an object as multiple input "
                         "tensors required as per tensorinfo_map")
        return {names[0]: _tensor_from_json(value, info_map[names[0]]["dtype"])}
    inputs = {}
    for name in names:
        if name not in value:
            raise Status("INVALID_ARGUMENT", "Missing named input: %s in 'inputs' object." % name)
        inputs[name] = _tensor_from_json(value[name], info_map[name]["dtype"])
    return inputs


def _feature_kind_error(name, feature):
    kind = {"bytes_list": "bytes", "float_list": "float", "int64_list": "int64"}.get(feature.WhichOneof("kind"),
                                                                                     "UNKNOWN")
    return Status("INVALID_ARGUMENT", "Unexpected element type in feature: %s expecting type: %s" % (name, kind))


def _add_feature_value(value, name, feature):
    """AddValueToFeature: the first value fixes the feature's kind."""
    kind = feature.WhichOneof("kind")

    def check(wanted):
        if kind not in (None, wanted):
            raise _feature_kind_error(name, feature)
        return getattr(feature, wanted).value

    if isinstance(value, bool):
        check("int64_list").append(1 if value else 0)
    elif isinstance(value, str):
        check("bytes_list").append(value.encode("utf-8"))
    elif _is_base64_object(value):
        values = check("bytes_list")
        try:
            values.append(base64.b64decode(value["b64"], validate=False))
        except ValueError:
            raise Status("INVALID_ARGUMENT", "Unable to base64 decode")
    elif isinstance(value, float):
        values = check("float_list")
        if math.isfinite(value) and abs(value) > 3.4028234663852886e38:
            raise Status("INVALID_ARGUMENT", "Cannot convert JSON value: %s to float without loss of precision."
                         % json_debug_string(value))
        values.append(value)
    elif isinstance(value, int):
        values = check("int64_list")
        if value >= 1 << 63:
            raise Status("INVALID_ARGUMENT", "Feature: %s has uint64 element. Only int64 is supported." % name)
        values.append(value)
    else:
        raise Status("INVALID_ARGUMENT", "Feature: %s has element with unexpected JSON type: %s"
                     % (name, json_type_string(value)))


def _example_from_json(value, example):
    """MakeExampleFromJsonObject."""
    if not isinstance(value, dict):
        raise Status("INVALID_ARGUMENT", "Example must be JSON object but got JSON %s" % json_type_string(value))
    for name, content in value.items():
        feature = feature_pb2.Feature()
        for item in (content if isinstance(content, list) else [content]):
            _add_feature_value(item, name, feature)
        example.features.feature[name].CopyFrom(feature)


def input_from_json(doc):
    """FillClassifyRegressRequestFromJson: the request's Input proto (context first, then examples)."""
    input_proto = input_pb2.Input()
    has_context = "context" in doc
    if has_context:
        _example_from_json(doc["context"], input_proto.example_list_with_context.context)
    # json_tensor.cc says "classify" here for regress requests too.
    if "examples" not in doc:
        raise Status("INVALID_ARGUMENT", "JSON Value: %s When method is classify, key 'examples' is expected and "
                     "was not found" % json_debug_string(doc))
    if not isinstance(doc["examples"], list):
        raise Status("INVALID_ARGUMENT", "JSON Value: %s Expecting 'examples' value to be an list/array"
                     % json_debug_string(doc))
    if not doc["examples"]:
        raise Status("INVALID_ARGUMENT", "JSON Value: %s 'examples' value is an empty array"
                     % json_debug_string(doc))
    examples = (input_proto.example_list_with_context.examples if has_context
                else input_proto.example_list.examples)
    for value in doc["examples"]:
        _example_from_json(value, examples.add())
    return input_proto


def make_json_from_classification_result(result):
    """MakeJsonFromClassificationResult: {"results": [[[label, score], ...], ...]}."""
    if not result.classifications:
        raise Status("INVALID_ARGUMENT", "Cannot convert empty ClassificationResults to JSON")
    w = PrettyWriter()
    w.start_object()
    w.key("results")
    w.start_array()
    for classifications in result.classifications:
        w.single_line = True
        w.start_array()
        for cl in classifications.classes:
            w.start_array()
            w.string(cl.label)
            w.raw(format_float(cl.score, False))
            w.end_array()
        w.end_array()
        w.single_line = False
    w.end_array()
    w.end_object()
    return w.text()


def make_json_from_regression_result(result):
    """MakeJsonFromRegressionResult: {"results": [value, ...]}."""
    if not result.regressions:
        raise Status("INVALID_ARGUMENT", "Cannot convert empty RegressionResults to JSON")
    w = PrettyWriter()
    w.start_object()
    w.key("results")
    w.single_line = True
    w.start_array()
    for regression in result.regressions:
        w.raw(format_float(regression.value, False))
    w.end_array()
    w.end_object()
    return w.text()


class RestApi:
    def __init__(self, core, options):
        self.core = core
        self.options = options

    def process(self, method, path, body):
        """HttpRestApiHandler::ProcessRequest -> (http code, body, model name)."""
        model_name = ""
        try:
            model_name, output = self._process(method, path, body)
            return 200, output, model_name, "OK"
        except Status as e:
            return e.http_code, error_json(e.message), getattr(e, "model_name", model_name), e.code

    def _process(self, method, path, body):
        malformed = Status("INVALID_ARGUMENT", "Malformed request: %s %s" % (method, path))
        match = None
        if method == "POST":
            match = PREDICTION_RE.fullmatch(path)
        elif method == "GET":
            match = STATUS_RE.fullmatch(path)
        if match is None:
            raise malformed
        name_raw, version_str, label_raw, verb = match.groups()
        model_name = urllib.parse.unquote(name_raw or "")
        version = None
        if version_str:
            version = int(version_str)
            if version >= (1 << 63):
                raise Status("INVALID_ARGUMENT", "Failed to convert version: %s to numeric." % version_str)
        label = urllib.parse.unquote(label_raw) if label_raw else None
        try:
            if method == "POST":
                if verb == "predict":
                    return model_name, self.predict(model_name, version, label, body)
                if verb in ("classify", "regress"):
                    return model_name, self.classify_regress(verb, model_name, version, label, body)
                raise malformed
            if verb == "metadata":
                return model_name, self.metadata(model_name, version, label)
            return model_name, self.status(model_name, version, label)
        except Status as e:
            e.model_name = model_name
            raise

    # GET /v1/models/m[/versions/n|/labels/l]
    def status(self, name, version, label):
        if not name:
            raise Status("INVALID_ARGUMENT", "Missing model name in request.")
        # A label is not resolved for status: like GetModelStatusImpl, all versions are listed.
        return proto_json({"model_version_status": [
            {"version": str(v), "state": st[0], "status": {"error_code": st[1], "error_message": st[2]}}
            for v, st in self.core.model_status(name, version)]})

    # GET .../metadata
    def metadata(self, name, version, label):
        if not name:
            raise Status("INVALID_ARGUMENT", "Missing model name in request.")
        model = self.core.servable_handle(name, version, label)
        spec = {"name": model.name, "signature_name": "", "version": str(model.version)}
        signatures = {}
        for key in sorted(model.signatures):
            sig = model.signatures[key]
            signatures[key] = {
                "inputs": dict((k, _tensor_info_json(v)) for k, v in sorted(sig["inputs"].items())),
                "outputs": dict((k, _tensor_info_json(v)) for k, v in sorted(sig["outputs"].items())),
                "method_name": sig.get("method_name", ""),
                "defaults": {},
            }
        out = "{\n"
        out += '"model_spec":' + proto_json(spec) + ",\n"
        out += '"metadata": {'
        out += '"signature_def": ' + proto_json({"signature_def": signatures}) + "}\n"
        out += "}\n"
        return out

    # POST ...:predict
    def predict(self, name, version, label, body):
        doc = parse_request_json(body)
        signature_name = ""
        if "signature_name" in doc:
            if not isinstance(doc["signature_name"], str):
                raise Status("INVALID_ARGUMENT", "JSON Value: %s not formatted correctly. 'signature_name' key must be "
                             "a string value." % json_debug_string(doc))
            signature_name = doc["signature_name"]
        model = self.core.servable_handle(name, version, label)
        key = signature_name or evaluation.DEFAULT_SIGNATURE
        signature = model.signatures.get(key)
        if signature is None:
            raise Status("INVALID_ARGUMENT", 'Serving signature name: "%s" not found in signature def' % key)
        info_map = signature["inputs"]
        if not info_map:
            raise Status("INVALID_ARGUMENT", "Failed to get input map for signature: %s"
                         % (signature_name or "DEFAULT"))
        has_instances = "instances" in doc
        has_inputs = "inputs" in doc
        if has_instances and has_inputs:
            raise Status("INVALID_ARGUMENT", "JSON Value: %s Not formatted correctly expecting only one of 'inputs' or "
                         "'instances' keys to exist " % json_debug_string(doc))
        if has_instances:
            if not isinstance(doc["instances"], list):
                raise Status("INVALID_ARGUMENT", "JSON Value: %s Expecting 'instances' to be an list/array"
                             % json_debug_string(doc))
            if not doc["instances"]:
                raise Status("INVALID_ARGUMENT", "JSON Value: %s No values in 'instances' array"
                             % json_debug_string(doc))
            inputs = fill_inputs_from_instances(doc["instances"], info_map)
            row_format = True
        elif has_inputs:
            inputs = fill_inputs_from_columns(doc["inputs"], info_map)
            row_format = False
        else:
            raise Status("INVALID_ARGUMENT", "Missing 'inputs' or 'instances' key")
        return make_json_from_tensors(evaluation.predict(model, signature_name, inputs), row_format)

    # POST ...:classify / ...:regress
    def classify_regress(self, verb, name, version, label, body):
        doc = parse_request_json(body)
        if "signature_name" in doc and not isinstance(doc["signature_name"], str):
            raise Status("INVALID_ARGUMENT", "JSON Value: %s not formatted correctly. 'signature_name' key must be a "
                         "string value." % json_debug_string(doc))
        signature_name = doc.get("signature_name", "")
        input_proto = input_from_json(doc)
        model = self.core.servable_handle(name, version, label)
        if verb == "classify":
            return make_json_from_classification_result(evaluation.classify(model, signature_name, input_proto))
        return make_json_from_regression_result(evaluation.regress(model, signature_name, input_proto))

    def metrics_page(self):
        lines = []
        with self.core.mu:
            counts = sorted(self.core.request_counts.items())
            loads = sorted(self.core.load_attempts.items())
        if loads:
            lines.append("# TYPE :tensorflow:cc:saved_model:load_attempt_count counter")
            for (path, status), n in loads:
                lines.append(':tensorflow:cc:saved_model:load_attempt_count{model_path="%s",status="%s"} %d'
                             % (_prom_escape(path), status, n))
        if counts:
            lines.append("# TYPE :tensorflow:serving:request_count counter")
            for (model, code), n in counts:
                lines.append(':tensorflow:serving:request_count{model_name="%s",status="%s"} %d'
                             % (_prom_escape(model), code, n))
        return "\n".join(lines) + ("\n" if lines else "")


def _prom_escape(value):
    return value.replace("\\", "\\\\").replace('"', '\\"')


LIBEVENT_ERROR = "<HTML><HEAD>\n<TITLE>%d %s</TITLE>\n</HEAD><BODY>\n<H1>%s</H1>\n</BODY></HTML>\n"


class RestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes; without TCP_NODELAY the second
    # waits for the client's delayed ACK (40 ms), which libevent's single
    # buffered write never does.
    disable_nagle_algorithm = True
    api = None          # RestApi
    metrics_path = None
    cors = False

    def log_message(self, fmt, *args):  # the real server logs requests only at VLOG(1)
        pass

    def send_response(self, code, message=None):
        # libevent answers in the request's HTTP version and sends no Server header.
        if self.request_version in ("HTTP/1.0", "HTTP/1.1"):
            if message is None:
                message = self.responses.get(code, ("",))[0]
            self._headers_buffer = getattr(self, "_headers_buffer", [])
            self._headers_buffer.append(("%s %d %s\r\n" % (self.request_version, code, message)).encode("latin-1"))
        else:
            self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def _body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size_line = self.rfile.readline()
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _reply(self, code, body, content_type, extra=()):
        data = body.encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _dispatch(self):
        try:
            body = self._body()
        except (ValueError, OSError):
            self._reply(400, LIBEVENT_ERROR % (400, "Bad Request", "Bad Request"), "text/html; charset=ISO-8859-1")
            return
        raw = self.path
        if "://" in raw.split("?", 1)[0]:
            raw = urllib.parse.urlsplit(raw).path or "/"
        path = raw.split("?", 1)[0].split("#", 1)[0]
        if self.metrics_path is not None and path == self.metrics_path:
            self._reply(200, self.api.metrics_page(), "text/plain")
            return
        if not V1_RE.fullmatch(path):
            self._reply(404, LIBEVENT_ERROR % (404, "Not Found", "Not Found"), "text/html; charset=ISO-8859-1",
                        (("Connection", "close"),))
            self.close_connection = True
            return
        extra = []
        if self.cors:
            extra = [("Access-Control-Allow-Origin", "*"), ("Access-Control-Allow-Methods", "POST, GET"),
                     ("Access-Control-Allow-Headers", "Content-Type")]
        if self.command == "OPTIONS":
            if re.search(r"https?://", self.headers.get("Origin", "")):
                self._reply(200, "", "application/json", extra)
            else:
                self._reply(400, "", "application/json", extra)
            return
        code, output, model_name, status_code = self.api.process(self.command, path, body)
        self.api.core.count_request(model_name, status_code)
        self._reply(code, output, "application/json", extra)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _dispatch


class RestHTTPServer(socketserver.ThreadingMixIn, HTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # libevent's LEV_OPT_REUSEABLE (SO_REUSEADDR)
    request_queue_size = 128


class RestHTTPServer6(RestHTTPServer):
    address_family = socket.AF_INET6

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        HTTPServer.server_bind(self)


def start_http_server(port, handler):
    """EvHTTPServer::StartAcceptingRequests: "::" first, then INADDR_ANY."""
    for cls, address in ((RestHTTPServer6, "::"), (RestHTTPServer, "0.0.0.0")):
        try:
            server = cls((address, port), handler, bind_and_activate=False)
        except OSError:
            continue
        try:
            server.server_bind()
            server.server_activate()
        except OSError:
            server.server_close()
            continue
        return server
    log("E", "evhttp_server.cc : 234", "NET_LOG: Couldn't bind to port %d" % port)
    return None


# ---------------------------------------------------------------- main (main.cc + Server::BuildAndStart)

def fail(status):
    sys.stdout.write("Failed to start server. Error: %s\n" % status)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(255)


def single_model_config(name, base_path):
    log("I", "tensorflow_serving/model_servers/server.cc:82", "Building single TensorFlow model file config:  "
        "model_name: %s model_base_path: %s" % (name, base_path))
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = name
    model.base_path = base_path
    model.model_platform = "tensorflow"
    return config


def poll_config_file(core, path, wait):
    while True:
        begin = time.monotonic()
        try:
            config = parse_proto_text_file(path, model_server_config_pb2.ModelServerConfig)
        except Status as e:
            log("E", "tensorflow_serving/model_servers/server.cc:170",
                "Failed to read ModelServerConfig file: %s" % e.message)
        else:
            try:
                core.reload_config(config)
            except Status as e:
                log("E", "tensorflow_serving/model_servers/server.cc:177",
                    "PollFilesystemAndReloadConfig failed to ReloadConfig: %s" % e.message)
        time.sleep(max(0.0, wait - (time.monotonic() - begin)))


def main(argv):
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    argv0 = argv[0] if argv else PROGRAM
    options, ok, unknown = parse_flags(argv[1:])
    evaluation.set_signature_method_name_check(options["enable_signature_method_name_check"])
    text = usage(argv0)
    if not ok:
        sys.stdout.write(text)
        sys.stdout.flush()
        return 255
    if options["version"]:
        sys.stdout.write("TensorFlow ModelServer: %s\nTensorFlow Library: none (TF Serving test double)\n"
                         % DOUBLE_VERSION)
        return 0
    if unknown:
        sys.stdout.write("unknown argument: %s\n%s" % (unknown[0], text))
        sys.stdout.flush()

    if options["port"] == 0 and not options["grpc_socket_path"]:
        fail(Status("INVALID_ARGUMENT", "At least one of server_options.grpc_port or server_options.grpc_socket_path "
                    "must be set."))
    if options["use_alts_credentials"] and options["ssl_config_file"]:
        fail(Status("INVALID_ARGUMENT", "Either use_alts_credentials must be false or ssl_config_file must be empty."))
    if not options["model_base_path"] and not options["model_config_file"]:
        fail(Status("INVALID_ARGUMENT", "Both server_options.model_base_path and server_options.model_config_file "
                    "are empty!"))
    try:
        if not options["model_config_file"]:
            config = single_model_config(options["model_name"], options["model_base_path"])
        else:
            config = parse_proto_text_file(options["model_config_file"], model_server_config_pb2.ModelServerConfig)
        options["batching"] = None  # BatchingParameters when --enable_batching is on
        if not options["platform_config_file"]:
            if options["enable_batching"]:
                options["batching"] = BatchingParameters()
                if options["batching_parameters_file"]:
                    options["batching"] = parse_proto_text_file(options["batching_parameters_file"],
                                                                BatchingParameters)
                else:
                    options["batching"].thread_pool_name.value = "model_server_batch_threads"
                # SavedModelBundleFactory::Create -> CreateBatchScheduler (SharedBatchScheduler::Create).
                threads = options["batching"].num_batch_threads
                if options["batching"].HasField("num_batch_threads") and threads.value < 1:
                    raise Status("INVALID_ARGUMENT", "num_batch_threads must be positive; was %d" % threads.value)
            elif options["batching_parameters_file"]:
                raise Status("INVALID_ARGUMENT", "server_options.batching_parameters_file is set without setting "
                             "server_options.enable_batching to true.")
            if (options["tensorflow_intra_op_parallelism"] > 0 and options["tensorflow_inter_op_parallelism"] > 0
                    and options["tensorflow_session_parallelism"] > 0):
                raise Status("INVALID_ARGUMENT", "Either configure server_options.tensorflow_session_parallelism or "
                             "(server_options.tensorflow_intra_op_parallelism, "
                             "server_options.tensorflow_inter_op_parallelism) separately. You cannot configure all.")
        core = ServerCore(options)
        core.reload_config(config)
    except Status as e:
        fail(e)

    if options["model_config_file_poll_wait_seconds"] > 0 and options["model_config_file"]:
        threading.Thread(target=poll_config_file, name="config_poll", daemon=True,
                         args=(core, options["model_config_file"],
                               options["model_config_file_poll_wait_seconds"])).start()

    grpc_server = grpc_api.start_grpc_server(core, options, log)  # kept referenced: gRPC stops a collected server
    if grpc_server is None:
        fail(Status("INVALID_ARGUMENT", "Failed to BuildAndStart gRPC server"))
    if options["port"] != 0:
        log("I", "tensorflow_serving/model_servers/server.cc:430",
            "Running gRPC ModelServer at 0.0.0.0:%d ..." % options["port"])
    if options["grpc_socket_path"]:
        log("I", "tensorflow_serving/model_servers/server.cc:433",
            "Running gRPC ModelServer at UNIX socket %s ..." % options["grpc_socket_path"])

    http = None
    if options["rest_api_port"] != 0:
        if options["rest_api_port"] != options["port"]:
            monitoring = MonitoringConfig()
            if options["monitoring_config_file"]:
                try:
                    monitoring = parse_proto_text_file(options["monitoring_config_file"], MonitoringConfig)
                except Status as e:
                    fail(e)
            handler = type("Handler", (RestHandler,), {
                "api": RestApi(core, options),
                "metrics_path": ((monitoring.prometheus_config.path or "/monitoring/prometheus/metrics")
                                 if monitoring.prometheus_config.enable else None),
                "cors": options["rest_api_enable_cors_support"],
            })
            http = start_http_server(options["rest_api_port"], handler)
            address = "localhost:%d" % options["rest_api_port"]
            if http is not None:
                log("I", "tensorflow_serving/model_servers/server.cc:451",
                    "Exporting HTTP/REST API at:%s ..." % address)
                threading.Thread(target=http.serve_forever, kwargs={"poll_interval": 0.2}, name="http",
                                 daemon=True).start()
                log("I", "evhttp_server.cc : 245", "NET_LOG: Entering the event loop ...")
            else:
                log("E", "tensorflow_serving/model_servers/server.cc:454",
                    "Failed to start HTTP Server at %s" % address)
        else:
            log("E", "tensorflow_serving/model_servers/server.cc:457", "server_options.http_port cannot be same as "
                "grpc_port. Please use a different port for HTTP/REST API. Skipped exporting HTTP/REST API.")

    forever = threading.Event()
    while not forever.wait(3600):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
