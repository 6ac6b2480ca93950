# -*- coding: utf-8 -*-
# Copyright: mlserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read TensorFlow SavedModels and model repositories without TensorFlow.

Standard library only: this file runs on managed hosts (no protobuf there)
and is also carried, as a plain file, into the serving test double's image.

A SavedModel is decoded through one schema table (below) from either of its
two on-disk forms, ``saved_model.pb`` (protobuf wire format) and
``saved_model.pbtxt`` (protobuf text format), into the same plain structure::

    {"schema_version": 1, "format": "pb",
     "meta_graphs": [{"tags": ["serve"], "tensorflow_version": "2.21.0",
                      "has_saver": False,
                      "signatures": {"serving_default": {
                          "method_name": "tensorflow/serving/predict",
                          "inputs": {"x": {"name": "x:0", "dtype": "DT_FLOAT", "shape": [-1]}},
                          "outputs": {...}}},
                      "nodes": [{"name": "x", "op": "Placeholder", "inputs": [],
                                 "attr": {"dtype": "DT_FLOAT"}}]}]}

Only the fields TF Serving and this collection rely on are decoded; all
others are skipped, as protobuf itself skips unknown fields.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import binascii
import hashlib
import json
import os
import re
import stat
import struct

DTYPES = {
    1: "DT_FLOAT", 2: "DT_DOUBLE", 3: "DT_INT32", 4: "DT_UINT8", 5: "DT_INT16",
    6: "DT_INT8", 7: "DT_STRING", 9: "DT_INT64", 10: "DT_BOOL", 14: "DT_BFLOAT16",
    19: "DT_HALF", 20: "DT_RESOURCE", 21: "DT_VARIANT",
}

# Ops whose presence means the graph reads its values from variables/.
VARIABLE_OPS = frozenset(["VarHandleOp", "VariableV2", "Variable", "RestoreV2", "Restore", "RestoreSlice"])

# message -> {field number: (field name, type)}; a type that is a key of this
# table is a nested message, "opaque" a message kept undecoded (only its
# presence matters), anything else a scalar kind.
SCHEMA = {
    "SavedModel": {1: ("saved_model_schema_version", "int"), 2: ("meta_graphs", "MetaGraphDef")},
    "MetaGraphDef": {1: ("meta_info_def", "MetaInfoDef"), 2: ("graph_def", "GraphDef"),
                     3: ("saver_def", "opaque"), 5: ("signature_def", "SignatureDefEntry")},
    "MetaInfoDef": {4: ("tags", "string"), 5: ("tensorflow_version", "string")},
    "SignatureDefEntry": {1: ("key", "string"), 2: ("value", "SignatureDef")},
    "SignatureDef": {1: ("inputs", "TensorInfoEntry"), 2: ("outputs", "TensorInfoEntry"),
                     3: ("method_name", "string")},
    "TensorInfoEntry": {1: ("key", "string"), 2: ("value", "TensorInfo")},
    "TensorInfo": {1: ("name", "string"), 2: ("dtype", "enum"), 3: ("tensor_shape", "TensorShapeProto")},
    "TensorShapeProto": {2: ("dim", "Dim"), 3: ("unknown_rank", "bool")},
    "Dim": {1: ("size", "int"), 2: ("name", "string")},
    "GraphDef": {1: ("node", "NodeDef")},
    "NodeDef": {1: ("name", "string"), 2: ("op", "string"), 3: ("input", "string"), 5: ("attr", "AttrEntry")},
    "AttrEntry": {1: ("key", "string"), 2: ("value", "AttrValue")},
    "AttrValue": {2: ("s", "bytes"), 3: ("i", "int"), 4: ("f", "float"), 5: ("b", "bool"),
                  6: ("type", "enum"), 7: ("shape", "TensorShapeProto"), 8: ("tensor", "TensorProto")},
    "TensorProto": {1: ("dtype", "enum"), 2: ("tensor_shape", "TensorShapeProto"), 4: ("tensor_content", "bytes"),
                    5: ("float_val", "float"), 6: ("double_val", "double"), 7: ("int_val", "int"),
                    10: ("int64_val", "int"), 11: ("bool_val", "bool")},
    # TF Serving's answer to GetModelMetadata, as far as grpc_model_metadata reads it.
    "GetModelMetadataResponse": {1: ("model_spec", "ModelSpec")},
    "ModelSpec": {1: ("name", "string"), 2: ("version", "Int64Value"), 3: ("signature_name", "string"),
                  4: ("version_label", "string")},
    "Int64Value": {1: ("value", "int")},
    # A warmup record (prediction_log.proto): which signature each logged request asks for.
    "PredictionLog": {1: ("log_metadata", "opaque"), 2: ("classify_log", "LoggedRequest"),
                      3: ("regress_log", "LoggedRequest"), 4: ("multi_inference_log", "MultiInferenceLog"),
                      5: ("session_run_log", "opaque"), 6: ("predict_log", "LoggedRequest"),
                      7: ("predict_streamed_log", "opaque")},
    "LoggedRequest": {1: ("request", "Request")},  # Classify/Regress/PredictLog; every request's field 1
    "Request": {1: ("model_spec", "ModelSpec")},
    "MultiInferenceLog": {1: ("request", "MultiInferenceRequest")},
    "MultiInferenceRequest": {1: ("tasks", "InferenceTask")},
    "InferenceTask": {1: ("model_spec", "ModelSpec"), 2: ("method_name", "string")},
}

_FIXED = {"float": ("<f", 4), "double": ("<d", 8)}


class SavedModelError(Exception):
    """A SavedModel or model repository that TF Serving could not use."""


# ---------------------------------------------------------------- wire format

def _varint(data, pos):
    result = shift = 0
    while True:
        if pos >= len(data):
            raise SavedModelError("truncated varint at byte %d" % pos)
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise SavedModelError("varint longer than 10 bytes at byte %d" % pos)


def _signed(value):
    return value - (1 << 64) if value >= 1 << 63 else value


def _scalar(kind, wire, data, pos):
    """One scalar (or a packed run of them); returns (values, new position)."""
    if kind in _FIXED:
        fmt, size = _FIXED[kind]
        if wire == 2:
            length, pos = _varint(data, pos)
            end = _checked_end(data, pos, length)
            if length % size:
                _bad(pos)
            return [v[0] for v in struct.iter_unpack(fmt, data[pos:end])], end
        if wire != (5 if size == 4 else 1):
            raise SavedModelError("unexpected wire type %d for a %s at byte %d" % (wire, kind, pos))
        end = _checked_end(data, pos, size)
        return [struct.unpack(fmt, data[pos:end])[0]], end
    if kind in ("string", "bytes", "opaque"):
        if wire != 2:
            raise SavedModelError("unexpected wire type %d for a %s at byte %d" % (wire, kind, pos))
        length, pos = _varint(data, pos)
        end = _checked_end(data, pos, length)
        raw = data[pos:end]
        if kind != "string":
            return [bytes(raw)], end
        try:
            return [raw.decode("utf-8")], end
        except UnicodeDecodeError:
            raise SavedModelError("invalid UTF-8 string at byte %d" % pos)
    # int, enum, bool: varints, possibly packed
    if wire == 2:
        length, pos = _varint(data, pos)
        end = _checked_end(data, pos, length)
        values = []
        while pos < end:
            value, pos = _varint(data, pos)
            values.append(value)
        if pos != end:
            _bad(pos)
    elif wire == 0:
        value, end = _varint(data, pos)
        values = [value]
    else:
        raise SavedModelError("unexpected wire type %d for a %s at byte %d" % (wire, kind, pos))
    if kind == "int":
        values = [_signed(v) for v in values]
    elif kind == "bool":
        values = [bool(v) for v in values]
    return values, end


def _bad(pos):
    raise SavedModelError("malformed packed field at byte %d" % pos)


def _checked_end(data, pos, length):
    end = pos + length
    if end > len(data):
        raise SavedModelError("field of %d bytes at byte %d runs past the end (%d bytes)" % (length, pos, len(data)))
    return end


def _skip(wire, data, pos):
    if wire == 0:
        return _varint(data, pos)[1]
    if wire == 1:
        return _checked_end(data, pos, 8)
    if wire == 2:
        length, pos = _varint(data, pos)
        return _checked_end(data, pos, length)
    if wire == 5:
        return _checked_end(data, pos, 4)
    raise SavedModelError("unsupported wire type %d at byte %d" % (wire, pos))


def decode_message(data, message, start=0, end=None):
    """Decode bytes as `message` of SCHEMA into {field name: [values]}."""
    fields = SCHEMA[message]
    end = len(data) if end is None else end
    out = {}
    pos = start
    while pos < end:
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise SavedModelError("field number 0 at byte %d" % pos)
        if number not in fields:
            pos = _skip(wire, data, pos)
            continue
        name, kind = fields[number]
        if kind in SCHEMA:
            if wire != 2:
                raise SavedModelError("unexpected wire type %d for %s.%s at byte %d" % (wire, message, name, pos))
            length, pos = _varint(data, pos)
            sub_end = _checked_end(data, pos, length)
            out.setdefault(name, []).append(decode_message(data, kind, pos, sub_end))
            pos = sub_end
        else:
            values, pos = _scalar(kind, wire, data, pos)
            out.setdefault(name, []).extend(values)
        if pos > end:
            raise SavedModelError("field %s.%s runs past its message" % (message, name))
    return out


# ---------------------------------------------------------------- text format

_TOKEN = re.compile(r"""
    \s+|\#[^\n]*                                   # space and comments
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<number>[-+]?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?[fF]?|inf(?:inity)?|nan)(?![\w.]))
  | (?P<ident>[-]?[A-Za-z_][\w.]*)
  | (?P<punct>[{}<>:\[\],;/])
""", re.VERBOSE)

_ESCAPES = {"n": 10, "t": 9, "r": 13, "a": 7, "b": 8, "f": 12, "v": 11, "\\": 92, "'": 39, '"': 34, "?": 63}


def _unescape(body):
    out = bytearray()
    raw = body.encode("utf-8")
    i = 0
    while i < len(raw):
        c = raw[i]
        if c != 92:
            out.append(c)
            i += 1
            continue
        i += 1
        if i >= len(raw):
            raise SavedModelError("string ends in a backslash")
        e = chr(raw[i])
        if e in _ESCAPES:
            out.append(_ESCAPES[e])
            i += 1
        elif e in "01234567":
            j = i
            while j < len(raw) and j - i < 3 and chr(raw[j]) in "01234567":
                j += 1
            out.append(int(raw[i:j], 8) & 0xFF)
            i = j
        elif e in "xX":
            j = i + 1
            while j < len(raw) and j - i <= 2 and chr(raw[j]) in "0123456789abcdefABCDEF":
                j += 1
            out.append(int(raw[i + 1:j], 16))
            i = j
        else:
            raise SavedModelError("unknown escape \\%s in a string" % e)
    return bytes(out)


def _tokens(text):
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise SavedModelError("unexpected text at offset %d: %r" % (pos, text[pos:pos + 20]))
        pos = m.end()
        kind = m.lastgroup
        if kind:
            yield kind, m.group(kind), m.start()
    yield "end", None, pos


class _TextParser:
    """Parses protobuf text format into {field name: [value]}.

    Values are strings (bytes for quoted strings), numbers, identifiers (for
    enums), or nested dicts; the schema converts them afterwards.
    """

    def __init__(self, text):
        self._tokens = _tokens(text)
        self._advance()

    def _advance(self):
        self.kind, self.value, self.pos = next(self._tokens)

    def _expect(self, value):
        if self.value != value:
            raise SavedModelError("expected %r at offset %d, found %r" % (value, self.pos, self.value))
        self._advance()

    def message(self, closing=None):
        out = {}
        while not (self.kind == "end" or (self.kind == "punct" and self.value == closing)):
            name = self._field_name()
            if self.kind == "punct" and self.value == ":":
                self._advance()
                values = self._values()
            elif self.kind == "punct" and self.value in "{<":
                values = [self._submessage()]
            else:
                raise SavedModelError("expected ':' or '{' after %s at offset %d" % (name, self.pos))
            out.setdefault(name, []).extend(values)
            if self.kind == "punct" and self.value in ",;":
                self._advance()
        if closing is None and self.kind != "end":
            raise SavedModelError("unexpected %r at offset %d" % (self.value, self.pos))
        return out

    def _field_name(self):
        if self.kind == "ident":
            name = self.value
            self._advance()
            return name
        if self.kind == "punct" and self.value == "[":
            # An extension or Any type URL: kept under its bracketed name.
            parts = []
            self._advance()
            while not (self.kind == "punct" and self.value == "]"):
                if self.kind == "end":
                    raise SavedModelError("unterminated '[' in a field name")
                parts.append(self.value)
                self._advance()
            self._advance()
            return "[%s]" % "".join(parts)
        raise SavedModelError("expected a field name at offset %d, found %r" % (self.pos, self.value))

    def _submessage(self):
        closing = "}" if self.value == "{" else ">"
        self._advance()
        result = self.message(closing)
        self._expect(closing)
        return result

    def _values(self):
        if self.kind == "punct" and self.value == "[":
            self._advance()
            values = []
            while not (self.kind == "punct" and self.value == "]"):
                values.extend(self._values())
                if self.kind == "punct" and self.value == ",":
                    self._advance()
            self._advance()
            return values
        if self.kind == "punct" and self.value in "{<":
            return [self._submessage()]
        if self.kind == "string":
            data = b""
            while self.kind == "string":  # adjacent strings concatenate
                data += _unescape(self.value[1:-1])
                self._advance()
            return [data]
        if self.kind in ("number", "ident"):
            value = self.value
            self._advance()
            return [value]
        raise SavedModelError("expected a value at offset %d, found %r" % (self.pos, self.value))


def _text_number(value, kind):
    text = value.lower().rstrip("f") if not value.lower().startswith(("0x", "-0x")) else value.lower()
    if kind in ("float", "double"):
        if text.lstrip("+-") in ("inf", "infinity", "nan"):
            return float(text.replace("infinity", "inf"))
        return float(text)
    return int(text, 0) if not re.match(r"^[-+]?0\d", text) else int(text, 8)


def _from_text(tree, message):
    """Map a parsed text tree onto SCHEMA, like decode_message does for bytes."""
    by_name = dict((name, kind) for name, kind in SCHEMA[message].values())
    out = {}
    for name, values in tree.items():
        if name not in by_name:
            continue
        kind = by_name[name]
        converted = []
        for value in values:
            if kind in SCHEMA or kind == "opaque":
                if not isinstance(value, dict):
                    raise SavedModelError("%s.%s must be a message" % (message, name))
                converted.append(_from_text(value, kind) if kind in SCHEMA else b"")
            elif isinstance(value, dict):
                raise SavedModelError("%s.%s must be a scalar" % (message, name))
            elif kind == "string":
                converted.append(value.decode("utf-8") if isinstance(value, bytes) else value)
            elif kind == "bytes":
                converted.append(value if isinstance(value, bytes) else value.encode("utf-8"))
            elif kind == "bool":
                converted.append(value in ("true", "True", "t", "1"))
            elif kind == "enum" and not re.match(r"^-?\d+$", value):
                names = dict((v, k) for k, v in DTYPES.items())
                if value not in names:
                    raise SavedModelError("unknown enum value %s for %s.%s" % (value, message, name))
                converted.append(names[value])
            else:
                try:
                    converted.append(_text_number(value, kind))
                except ValueError:
                    raise SavedModelError("%r is not a number for %s.%s" % (value, message, name))
        out[name] = converted
    return out


# ---------------------------------------------------------------- plain structure

def _first(tree, name, default=None):
    values = tree.get(name)
    return values[-1] if values else default  # protobuf: the last one wins


def _shape(tree):
    if tree is None:
        return None
    if _first(tree, "unknown_rank", False):
        return None
    return [_first(dim, "size", 0) for dim in tree.get("dim", [])]


def dtype_name(number):
    return DTYPES.get(number, "DT_%d" % number)


def _tensor(tree):
    dtype = _first(tree, "dtype", 0)
    shape = _shape(_first(tree, "tensor_shape")) or []
    content = _first(tree, "tensor_content")
    if content is not None:
        fmt = {1: "f", 2: "d", 3: "i", 9: "q", 4: "B", 5: "h", 6: "b", 10: "?"}.get(dtype)
        if fmt is None:
            values = []
        else:
            size = struct.calcsize(fmt)
            if len(content) % size:
                raise SavedModelError("tensor_content of %d bytes is not a whole number of %s"
                                      % (len(content), dtype_name(dtype)))
            values = list(struct.unpack("<%d%s" % (len(content) // size, fmt), content))
    else:
        values = (tree.get("float_val") or tree.get("double_val") or tree.get("int_val")
                  or tree.get("int64_val") or tree.get("bool_val") or [])
    return {"dtype": dtype_name(dtype), "shape": shape, "values": list(values)}


def _attr(tree):
    if "tensor" in tree:
        return _tensor(_first(tree, "tensor"))
    if "type" in tree:
        return dtype_name(_first(tree, "type"))
    if "shape" in tree:
        return _shape(_first(tree, "shape"))
    for key in ("f", "i", "b"):
        if key in tree:
            return _first(tree, key)
    if "s" in tree:
        return _first(tree, "s").decode("utf-8", "replace")
    return None


def _tensor_info(tree):
    return {"name": _first(tree, "name", ""), "dtype": dtype_name(_first(tree, "dtype", 0)),
            "shape": _shape(_first(tree, "tensor_shape"))}


def _meta_graph(tree):
    info = _first(tree, "meta_info_def", {})
    signatures = {}
    for entry in tree.get("signature_def", []):
        value = _first(entry, "value", {})
        signatures[_first(entry, "key", "")] = {
            "method_name": _first(value, "method_name", ""),
            "inputs": dict((_first(e, "key", ""), _tensor_info(_first(e, "value", {}))) for e in value.get("inputs", [])),
            "outputs": dict((_first(e, "key", ""), _tensor_info(_first(e, "value", {}))) for e in value.get("outputs", [])),
        }
    nodes = []
    for node in _first(tree, "graph_def", {}).get("node", []):
        nodes.append({
            "name": _first(node, "name", ""),
            "op": _first(node, "op", ""),
            "inputs": list(node.get("input", [])),
            "attr": dict((_first(e, "key", ""), _attr(_first(e, "value", {}))) for e in node.get("attr", [])),
        })
    return {"tags": list(info.get("tags", [])), "tensorflow_version": _first(info, "tensorflow_version", ""),
            "has_saver": "saver_def" in tree, "signatures": signatures, "nodes": nodes}


def _saved_model(tree, fmt):
    return {"schema_version": _first(tree, "saved_model_schema_version", 0), "format": fmt,
            "meta_graphs": [_meta_graph(m) for m in tree.get("meta_graphs", [])]}


def parse_saved_model(data):
    """Decode the bytes of a saved_model.pb."""
    if not data:
        raise SavedModelError("saved_model.pb is empty")
    return _saved_model(decode_message(memoryview(data).tobytes(), "SavedModel"), "pb")


def parse_saved_model_text(text):
    """Decode the text of a saved_model.pbtxt."""
    return _saved_model(_from_text(_TextParser(text).message(), "SavedModel"), "pbtxt")


def load_saved_model(version_dir):
    """Read a version directory's saved_model.pb, or else saved_model.pbtxt.

    TF Serving prefers the binary form when both exist; so does this.
    """
    for name, parse in (("saved_model.pb", parse_saved_model), ("saved_model.pbtxt", _parse_text_bytes)):
        path = os.path.join(version_dir, name)
        if not os.path.lexists(path):
            continue
        if not os.path.isfile(path) or os.path.islink(path):
            raise SavedModelError("%s is not a regular file" % name)
        if os.path.getsize(path) > MAX_SAVED_MODEL_BYTES:
            raise SavedModelError("%s is larger than %d bytes, more than protobuf reads" % (name, MAX_SAVED_MODEL_BYTES))
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise SavedModelError("%s cannot be read: %s" % (name, e.strerror))
        return parse(data)
    raise SavedModelError("no saved_model.pb or saved_model.pbtxt")


def _parse_text_bytes(data):
    try:
        return parse_saved_model_text(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise SavedModelError("saved_model.pbtxt is not UTF-8 text")


def needs_variables(meta_graph):
    """True when the graph restores values from the variables/ directory."""
    return meta_graph["has_saver"] or any(n["op"] in VARIABLE_OPS for n in meta_graph["nodes"])


def signature_compatible(old, new):
    """Whether a client of `old` can call `new` unchanged: (bool, reason).

    Every input must keep its key, dtype and rank, and a dimension fixed in
    both must keep its size (-1 on either side accepts any); no input may be
    added (a client would not send it). Every output the old signature had
    must still exist with the same dtype. New outputs are fine.
    """
    for side in ("inputs", "outputs"):
        for key, before in sorted(old[side].items()):
            after = new[side].get(key)
            if after is None:
                return False, "%s %r was removed" % (side[:-1], key)
            if after["dtype"] != before["dtype"]:
                return False, "%s %r changed dtype from %s to %s" % (side[:-1], key, before["dtype"], after["dtype"])
            if side == "outputs" or before["shape"] is None or after["shape"] is None:
                continue
            if len(before["shape"]) != len(after["shape"]):
                return False, "input %r changed rank from %d to %d" % (key, len(before["shape"]), len(after["shape"]))
            for axis, (a, b) in enumerate(zip(before["shape"], after["shape"])):
                if a != -1 and b != -1 and a != b:
                    return False, "input %r changed dimension %d from %d to %d" % (key, axis, a, b)
    added = sorted(set(new["inputs"]) - set(old["inputs"]))
    if added:
        return False, "input %r was added" % added[0]
    return True, ""


# ---------------------------------------------------------------- repository

# Bounds of what one version may hold; past them the reader stops and says so.
MAX_FILES = 100000
MAX_SAVED_MODEL_BYTES = 2 ** 31  # protobuf's own limit on one message


def _regular_files(path):
    """(relative path, full path) of every file under a version directory.

    Only regular files and directories: a symbolic link would be copied as
    a link (dangling on the host, or looping), and reading a FIFO or a
    device never ends, so each is a SavedModelError naming its path.
    """
    files = []

    def walk_error(error):
        raise SavedModelError("%s cannot be read: %s" % (error.filename, error.strerror))

    for root, dirs, names in os.walk(path, onerror=walk_error):
        dirs.sort()
        for name in sorted(dirs) + sorted(names):
            full = os.path.join(root, name)
            mode = os.lstat(full).st_mode
            rel = os.path.relpath(full, path).replace(os.sep, "/")
            if stat.S_ISLNK(mode):
                raise SavedModelError("%s is a symbolic link; a version holds regular files and directories only "
                                      "(the copy would hold the link, not what it points to)" % rel)
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise SavedModelError("%s is not a regular file or directory" % rel)
            if stat.S_ISREG(mode):
                files.append((rel, full))
        if len(files) > MAX_FILES:
            raise SavedModelError("holds more than %d files" % MAX_FILES)
    return sorted(files)


def _file_sha256(full):
    digest = hashlib.sha256()
    with open(full, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def directory_checksum(path, known=None):
    """(sha256 hex, file count, total bytes, files) of a directory's content.

    Independent of file order, timestamps and permissions: the digest covers
    the sorted relative paths and each file's bytes, nothing else.

    `known`: relative path -> [size, mtime_ns, inode, ctime_ns, sha256 hex]
    of an earlier read (a manifest, the controller's cache). A file whose
    size, mtime, inode and ctime are all unchanged takes its sha256 from
    there unread: every write moves the ctime, which no tool can set back
    (an extracted archive with its mtimes kept, into a reused inode, has
    the stat it had before). An entry of another shape is read again.
    `files` maps each relative path to the same figures, as read now.
    """
    known = known or {}
    digest = hashlib.sha256()
    total = 0
    files = {}
    for rel, full in _regular_files(path):
        digest.update(rel.encode("utf-8") + b"\0")
        try:
            st = os.stat(full)
            stamp = [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]
            earlier = known.get(rel)
            sha = earlier[4] if earlier and list(earlier[:4]) == stamp else _file_sha256(full)
        except OSError as e:
            raise SavedModelError("%s cannot be read: %s" % (rel, e.strerror))
        digest.update(binascii.unhexlify(sha))
        total += st.st_size
        files[rel] = stamp + [sha]
    return digest.hexdigest(), len(files), total, files


MANIFEST = ".manifest-%s.json"


class Manifests(object):
    """The manifest beside each version on a host: ``<base>/.manifest-<dir>.json``.

    It lists each file of the version (relative path, size, mtime, inode,
    ctime, sha256) as last read, so that the next read of an unchanged version only
    stats its files. TF Serving ignores it (not a directory, and its name
    starts with a dot). `mode`: "use" reads manifests and writes new or
    stale ones; "rewrite" reads every file and writes them all; "off"
    neither reads nor writes them. Nothing is written in check mode.
    """

    def __init__(self, mode, check_mode=False):
        self.mode = mode
        self.check_mode = check_mode
        self.written = []

    @staticmethod
    def path(version_dir):
        base, name = os.path.split(os.path.normpath(version_dir))
        return os.path.join(base, MANIFEST % name)

    def get(self, version_dir):
        if self.mode != "use":
            return None
        try:
            with open(self.path(version_dir)) as f:
                return json.load(f)["files"]
        except (OSError, IOError, ValueError, KeyError, TypeError):
            return None  # none yet, or unreadable: the files are read

    def put(self, version_dir, files, earlier):
        if self.mode == "off" or self.check_mode or files == earlier:
            return
        target = self.path(version_dir)
        staging = target + ".tmp"
        try:
            with open(staging, "w") as f:
                json.dump({"files": files}, f, sort_keys=True)
            # Like the versions' files: readable by all, whatever the umask.
            os.chmod(staging, 0o644)
            os.rename(staging, target)
        except (OSError, IOError) as e:
            raise SavedModelError("%s cannot be written: %s" % (target, e.strerror))
        self.written.append(target)


_LOOKS_LIKE_VERSION = re.compile(r"\A(v|ver|version)?[-_]?\d+([._-]\d+)*\Z", re.IGNORECASE)
# TF Serving parses a version directory's name with absl::SimpleAtoi: ASCII digits.
ASCII_NUMBER = re.compile(r"\A[0-9]+\Z")


def scan_model_base(path):
    """Find version directories the way TF Serving does.

    Returns (versions, problems): versions maps each number to its directory
    name; problems lists directories TF Serving would silently skip although
    they look like versions (``v2``, ``2.0``) and numbers that two directories
    share (``1`` and ``001``: TF Serving serves only one of them). Names that
    start with a dot (staging copies such as ``.incoming-3``) are ignored.
    """
    if not os.path.isdir(path):
        raise SavedModelError("model base path %s is not a directory" % path)
    versions = {}
    problems = []
    real = {}
    try:
        names = sorted(os.listdir(path))
    except OSError as e:
        raise SavedModelError("model base path %s cannot be read: %s" % (path, e.strerror))
    for name in names:
        if name.startswith(".") or not os.path.isdir(os.path.join(path, name)):
            continue
        if ASCII_NUMBER.match(name):
            number = int(name)
            if number in versions:
                problems.append("directories %r and %r are both version %d; TF Serving serves only one of them"
                                % (versions[number], name, number))
                continue
            versions[number] = name
            target = os.path.realpath(os.path.join(path, name))
            if target in real:
                problems.append("directory %r is the same directory as %r (a symbolic link); each version needs a "
                                "directory of its own" % (name, real[target]))
            real.setdefault(target, name)
        elif name.isdigit():
            problems.append("directory %r looks like a version but is not a number TF Serving reads (ASCII digits "
                            "only); TF Serving ignores it" % name)
        elif _LOOKS_LIKE_VERSION.match(name):
            problems.append("directory %r looks like a version but is not a number; TF Serving ignores it "
                            "(name version directories 1, 2, 3...)" % name)
    return versions, problems


# ---------------------------------------------------------------- warmup records

WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"
WARMUP_MAX_RECORDS = 1000  # saved_model_warmup_util.h: WarmupConsts::kMaxNumRecords
# Log types TF Serving replays; session_run_log and predict_streamed_log fail the load (UNIMPLEMENTED).
WARMUP_LOG_TYPES = ("classify_log", "regress_log", "predict_log", "multi_inference_log")


def _crc32c_table():
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C = _crc32c_table()


def masked_crc32c(data):
    """crc32c::Mask(crc32c::Value(data)): how TFRecords, table blocks and TensorBundles store checksums."""
    crc = 0xFFFFFFFF
    table = _CRC32C
    for b in bytearray(data):
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xa282ead8) & 0xFFFFFFFF


def _checksummed(data, offset, size):
    """record_reader.cc ReadChecksummed: `size` bytes at `offset` and the masked CRC after them."""
    chunk = data[offset:offset + size + 4]
    if len(chunk) != size + 4:
        raise SavedModelError("truncated record at %d" % offset)
    if masked_crc32c(chunk[:size]) != struct.unpack("<I", chunk[size:])[0]:
        raise SavedModelError("corrupted record at %d" % offset)
    return chunk[:size]


def tfrecords(data):
    """The records of a TFRecord file's bytes, in order, as (offset, record).

    Raises SavedModelError in TensorFlow's words (record_reader.cc) at the
    first damaged record: "corrupted record at N", "truncated record at N".
    """
    offset = 0
    while offset < len(data):
        length = struct.unpack("<Q", _checksummed(data, offset, 8))[0]
        yield offset, _checksummed(data, offset + 12, length)
        offset += 12 + length + 4


def check_warmup(version_dir, signatures):
    """The number of warmup records of a version (0 without the file), checked as TF Serving replays them.

    Raises SavedModelError naming the file and the record: a damaged
    TFRecord, a record that is not a PredictionLog, a log type TF Serving
    does not replay, a request for a signature the version lacks, or more
    records than TF Serving reads. TF Serving fails the version's load on
    each of these (--enable_model_warmup is on by default).
    """
    path = os.path.join(version_dir, *WARMUP_FILE.split("/"))
    if not os.path.exists(path):
        return 0
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise SavedModelError("%s cannot be read: %s" % (WARMUP_FILE, e.strerror))
    count = 0
    records = tfrecords(data)
    while True:
        where = "%s, record %d" % (WARMUP_FILE, count + 1)
        try:
            offset, record = next(records)
        except StopIteration:
            return count
        except SavedModelError as e:
            raise SavedModelError("%s: %s; TF Serving fails the load on it (DATA_LOSS: it is not a valid TFRecord "
                                  "file)" % (where, e))
        count += 1
        if count > WARMUP_MAX_RECORDS:
            raise SavedModelError("%s holds more than %d records, the most TF Serving replays; it fails the load"
                                  % (WARMUP_FILE, WARMUP_MAX_RECORDS))
        try:
            log = decode_message(record, "PredictionLog")
        except SavedModelError as e:
            raise SavedModelError("%s (at byte %d): not a PredictionLog (%s)" % (where, offset, e))
        # log_type is a oneof: the last one on the wire wins; a record without one is skipped, as TF Serving does.
        kinds = [k for k in log if k not in ("log_metadata",)]
        kind = kinds[-1] if kinds else None
        if kind is not None and kind not in WARMUP_LOG_TYPES:
            raise SavedModelError("%s: a %s, which TF Serving does not replay (it fails the load: UNIMPLEMENTED); "
                                  "use predict, classify, regress or multi_inference logs" % (where, kind))
        for name in _warmup_signatures(log, kind):
            if name not in signatures:
                raise SavedModelError("%s asks for signature %r, which this version does not have (found: %s)"
                                      % (where, name, ", ".join(sorted(signatures)) or "none"))


def _warmup_signatures(log, kind):
    """The signatures a warmup record's request asks for ('' is serving_default)."""
    if kind is None:
        return []
    entry = log[kind][-1]
    if kind == "multi_inference_log":
        tasks = _first(entry, "request", {}).get("tasks", [])
        specs = [_first(task, "model_spec", {}) for task in tasks]
    else:
        specs = [_first(_first(entry, "request", {}), "model_spec", {})]
    return [_first(spec, "signature_name", "") or "serving_default" for spec in specs]


# ---------------------------------------------------------------- model repository

INIT_OP_SIGNATURE = "__saved_model_init_op"


def check_version(version_dir, tags, signature_name):
    """The reported facts of one version; raises SavedModelError on a problem."""
    model = load_saved_model(version_dir)
    wanted = set(tags)
    graphs = [g for g in model["meta_graphs"] if set(g["tags"]) == wanted]
    if not graphs:
        found = ", ".join("[%s]" % ", ".join(g["tags"]) for g in model["meta_graphs"]) or "none"
        raise SavedModelError("no MetaGraph has the tags [%s] (found: %s)" % (", ".join(tags), found))
    graph = graphs[0]
    signatures = dict((k, v) for k, v in graph["signatures"].items() if k != INIT_OP_SIGNATURE)
    if signature_name not in signatures:
        raise SavedModelError("signature %r is missing (found: %s)"
                              % (signature_name, ", ".join(sorted(signatures)) or "none"))
    if needs_variables(graph) and not os.path.isfile(os.path.join(version_dir, "variables", "variables.index")):
        raise SavedModelError("variables/variables.index is missing, and the graph reads its values from it")
    return {"format": model["format"], "tags": graph["tags"], "tensorflow_version": graph["tensorflow_version"],
            "signatures": signatures, "warmup_records": check_warmup(version_dir, signatures)}


def read_repository(params, warn, store=None):
    """model_version_info's work (see its options): returns the result or raises SavedModelError.

    Also used on the controller by the fleet plan to read every model source once.
    `store`: where earlier reads of each version's files are kept (get and
    put by version directory: Manifests on a host, the controller's cache).
    """
    path = params["path"]
    if params["checksums_only"] and not os.path.isdir(path):
        return {"path": path, "versions": []}
    found, problems = scan_model_base(path)
    for problem in problems:
        if params["strict"]:
            raise SavedModelError("%s: %s" % (path, problem))
        warn("%s: %s" % (path, problem))
    declared = params["versions"]
    if declared is None:
        declared = sorted(found)
    for number in declared:
        if number < 0:
            raise SavedModelError("%s: version %d is not valid: versions are non-negative integers" % (path, number))
        if number not in found:
            raise SavedModelError("%s: version %d is missing (found: %s)"
                                  % (path, number, ", ".join(str(v) for v in sorted(found)) or "no versions"))
    results = []
    previous = None
    for number in sorted(set(declared)):
        version_dir = os.path.join(path, found[number])
        try:
            earlier = store.get(version_dir) if store else None
            checksum, file_count, total_bytes, files = directory_checksum(version_dir, earlier)
            if store:
                store.put(version_dir, files, earlier)
        except SavedModelError as e:
            raise SavedModelError("%s: version %d (%s): %s" % (path, number, found[number], e))
        entry = {"version": number, "directory": found[number], "checksum": checksum,
                 "file_count": file_count, "total_bytes": total_bytes}
        if not params["checksums_only"]:
            try:
                entry.update(check_version(version_dir, params["tags"], params["signature_name"]))
            except SavedModelError as e:
                raise SavedModelError("%s: version %d (%s): %s" % (path, number, found[number], e))
            if params["compatible"] and previous is not None:
                ok, reason = signature_compatible(previous["signatures"][params["signature_name"]],
                                                  entry["signatures"][params["signature_name"]])
                if not ok:
                    raise SavedModelError("%s: version %d (%s): signature %r is incompatible with version %d: %s"
                                          % (path, number, found[number], params["signature_name"],
                                             previous["version"], reason))
            previous = entry
        results.append(entry)
    return {"path": path, "versions": results}
