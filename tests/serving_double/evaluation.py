"""What the TF Serving test double runs instead of TensorFlow (it is NOT TensorFlow).

A loaded servable gets a `Session`: the MetaGraphDef's graph and function
library, and a variable store restored once at load time the way TF's C++
SavedModel loader does it (run the SaverDef's restore op fed with the
variables prefix, which evaluates RestoreV2 over the TensorBundle in
variables/ and the Assign ops, then the init op). Ops are evaluated lazily in
pure Python, on flat row-major value lists; float32 results are rounded to
float32 after each op (sums are taken in double, so they may differ from
TensorFlow's in the last bit).

On top of it, TF Serving's request semantics, used by the REST and the gRPC
API alike: `predict` (predict_util.cc and saved_model/util.cc), `classify`
(classifier.cc), `regress` (regressor.cc), with InputToSerializedExampleTensor
of util.cc. Errors are `tf_status.Status` with TF Serving's codes and texts;
an op the double cannot evaluate is UNIMPLEMENTED (the REST API answers 501).
"""

import importlib.util
import math
import os
import struct

import cramjam
from google.protobuf import message, text_format
from tensorflow.core.example import example_pb2
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow.core.protobuf import meta_graph_pb2, tensor_bundle_pb2
from tensorflow_serving.apis import classification_pb2, regression_pb2

from tf_status import Status

HERE = os.path.dirname(os.path.abspath(__file__))


def _load_saved_model_module():
    """The collection's SavedModel reader (plugins/module_utils/saved_model.py): beside this file in the image."""
    candidates = [
        os.environ.get("SERVING_DOUBLE_SAVED_MODEL_PY", ""),
        os.path.join(HERE, "saved_model.py"),
        os.path.join(HERE, "..", "..", "plugins", "module_utils", "saved_model.py"),
    ]
    for path in candidates:
        if path and os.path.isfile(path):
            spec = importlib.util.spec_from_file_location("serving_double_saved_model", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    raise SystemExit("serving double: cannot find saved_model.py (tried %s)" % ", ".join(c for c in candidates if c))


saved_model = _load_saved_model_module()
masked_crc32c = saved_model.masked_crc32c

DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
INIT_OP_SIGNATURE = "__saved_model_init_op"

# ---------------------------------------------------------------- dtypes and tensors

DTYPE_NAMES = {"DT_FLOAT": "float", "DT_DOUBLE": "double", "DT_INT32": "int32", "DT_UINT8": "uint8",
               "DT_INT16": "int16", "DT_INT8": "int8", "DT_STRING": "string", "DT_INT64": "int64",
               "DT_BOOL": "bool", "DT_BFLOAT16": "bfloat16", "DT_HALF": "half", "DT_UINT32": "uint32",
               "DT_UINT64": "uint64", "DT_UINT16": "uint16", "DT_RESOURCE": "resource"}
FLOAT_TYPES = ("DT_FLOAT", "DT_DOUBLE", "DT_HALF", "DT_BFLOAT16")
INT_TYPES = ("DT_INT32", "DT_INT64", "DT_INT16", "DT_INT8", "DT_UINT8", "DT_UINT16", "DT_UINT32", "DT_UINT64")
# struct formats of tensor_content / bundle bytes (little-endian, as TF writes them on x86)
_PACK = {"DT_FLOAT": "f", "DT_DOUBLE": "d", "DT_INT32": "i", "DT_UINT8": "B", "DT_INT16": "h", "DT_INT8": "b",
         "DT_INT64": "q", "DT_BOOL": "?", "DT_UINT16": "H", "DT_UINT32": "I", "DT_UINT64": "Q", "DT_HALF": "e"}
# TensorProto's typed value fields (what Tensor::AsProtoField writes)
_PROTO_FIELD = {"DT_FLOAT": "float_val", "DT_DOUBLE": "double_val", "DT_INT32": "int_val", "DT_UINT8": "int_val",
                "DT_INT16": "int_val", "DT_INT8": "int_val", "DT_UINT16": "int_val", "DT_INT64": "int64_val",
                "DT_BOOL": "bool_val", "DT_STRING": "string_val", "DT_UINT32": "uint32_val",
                "DT_UINT64": "uint64_val", "DT_HALF": "half_val", "DT_BFLOAT16": "half_val"}


def dtype_name(enum_value):
    """DataType_Name, "DT_INVALID" for numbers the enum does not know."""
    try:
        return types_pb2.DataType.Name(enum_value)
    except ValueError:
        return "DT_INVALID"


def dtype_string(dtype):
    """DataTypeString: "float" for DT_FLOAT."""
    return DTYPE_NAMES.get(dtype, dtype.replace("DT_", "").lower())


def f32(x):
    try:
        return struct.unpack("<f", struct.pack("<f", x))[0]
    except OverflowError:
        return math.copysign(math.inf, x)


def _bf16(x):
    bits = struct.unpack("<I", struct.pack("<f", f32(x)))[0]
    return struct.unpack("<f", struct.pack("<I", bits & 0xFFFF0000))[0]


def normalize(dtype, value):
    """A Python value as the dtype holds it (float32 rounding, integer wrap-around)."""
    if dtype == "DT_FLOAT":
        return f32(float(value))
    if dtype == "DT_HALF":
        try:
            return struct.unpack("<e", struct.pack("<e", float(value)))[0]
        except OverflowError:
            return math.copysign(math.inf, value)
    if dtype == "DT_BFLOAT16":
        return _bf16(float(value))
    if dtype == "DT_DOUBLE":
        return float(value)
    if dtype in INT_TYPES:
        bits = struct.calcsize(_PACK[dtype]) * 8
        v = int(value) & ((1 << bits) - 1)
        if not _PACK[dtype].isupper() and v >= 1 << (bits - 1):
            v -= 1 << bits
        return v
    if dtype == "DT_BOOL":
        return bool(value)
    return value


def _product(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def shape_string(shape):
    """TensorShape::DebugString."""
    return "[%s]" % ",".join(str(d) for d in shape)


class Tensor:
    """dtype "DT_FLOAT"-style, shape list of ints, values flat row-major (DT_STRING values are bytes)."""

    def __init__(self, dtype, shape, values):
        self.dtype = dtype
        self.shape = list(shape)
        self.values = list(values)

    @property
    def size(self):
        return _product(self.shape)

    def __repr__(self):
        return "Tensor(%s, %s, %r)" % (self.dtype, self.shape, self.values[:10])


def _zero(dtype):
    if dtype == "DT_STRING":
        return b""
    return normalize(dtype, 0) if dtype in _PACK or dtype == "DT_BFLOAT16" else None


def tensor_from_proto(proto):
    """Tensor::FromProto; Status INVALID_ARGUMENT when the proto is malformed."""
    dtype = dtype_name(proto.dtype)
    if dtype not in _PROTO_FIELD:
        raise Status("INVALID_ARGUMENT", "Cannot parse tensor from proto: unsupported dtype %s" % dtype)
    if proto.tensor_shape.unknown_rank:
        raise Status("INVALID_ARGUMENT", "Cannot parse tensor from proto: the shape has an unknown rank")
    shape = [d.size for d in proto.tensor_shape.dim]
    if any(d < 0 for d in shape):
        raise Status("INVALID_ARGUMENT", "Cannot parse tensor from proto: negative dimension in %s"
                     % shape_string(shape))
    n = _product(shape)
    if proto.tensor_content and dtype != "DT_STRING":
        width = 2 if dtype == "DT_BFLOAT16" else struct.calcsize(_PACK[dtype])
        if len(proto.tensor_content) != n * width:
            raise Status("INVALID_ARGUMENT", "Cannot parse tensor from proto: tensor_content has %d bytes, "
                         "shape %s needs %d" % (len(proto.tensor_content), shape_string(shape), n * width))
        if dtype == "DT_BFLOAT16":
            raw = [struct.unpack("<f", b"\0\0" + proto.tensor_content[i:i + 2])[0]
                   for i in range(0, len(proto.tensor_content), 2)]
        else:
            raw = list(struct.unpack("<%d%s" % (n, _PACK[dtype]), proto.tensor_content))
        return Tensor(dtype, shape, raw)
    values = list(getattr(proto, _PROTO_FIELD[dtype]))
    if dtype in ("DT_HALF", "DT_BFLOAT16"):
        fmt = "<e" if dtype == "DT_HALF" else None
        values = [struct.unpack(fmt, struct.pack("<H", v & 0xFFFF))[0] if fmt
                  else struct.unpack("<f", struct.pack("<I", (v & 0xFFFF) << 16))[0] for v in values]
    if len(values) > n:
        raise Status("INVALID_ARGUMENT", "Cannot parse tensor from proto: %d values for shape %s"
                     % (len(values), shape_string(shape)))
    values = [normalize(dtype, v) if dtype != "DT_STRING" else v for v in values]
    # Like Tensor::FromProto, a short value list is padded with its last value (zeros when empty).
    fill = values[-1] if values else _zero(dtype)
    return Tensor(dtype, shape, values + [fill] * (n - len(values)))


def tensor_to_proto(tensor):
    """Tensor::AsProtoField."""
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DataType.Value(tensor.dtype))
    for d in tensor.shape:
        proto.tensor_shape.dim.add().size = d
    field = _PROTO_FIELD.get(tensor.dtype)
    if field is None:
        raise Status("INVALID_ARGUMENT", "Cannot convert a %s tensor to a proto" % tensor.dtype)
    values = tensor.values
    if tensor.dtype == "DT_HALF":
        values = [struct.unpack("<H", struct.pack("<e", v))[0] for v in values]
    elif tensor.dtype == "DT_BFLOAT16":
        values = [struct.unpack("<I", struct.pack("<f", v))[0] >> 16 for v in values]
    getattr(proto, field).extend(values)
    return proto


# ---------------------------------------------------------------- TensorBundle (variables/variables.index + data)

_TABLE_MAGIC = 0xdb4775248b80fb57
_FOOTER_LENGTH = 48


def _varint(data, pos):
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("bad varint")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return result, pos


_NO_COMPRESSION, _SNAPPY_COMPRESSION = 0, 1


def _block_contents(data, handle, path):
    """A block's contents, as table/format.cc ReadBlock gives them: its trailer's type byte says whether
    they are stored as they are or Snappy-compressed (older TensorFlow releases, TF Serving's testdata)."""
    offset, size = handle
    if offset + size + 5 > len(data):
        raise Status("DATA_LOSS", "truncated block read from %s" % path)
    kind, block = data[offset + size], data[offset:offset + size]
    if masked_crc32c(data[offset:offset + size + 1]) != struct.unpack("<I", data[offset + size + 1:offset + size + 5])[0]:
        raise Status("DATA_LOSS", "block checksum mismatch in %s" % path)
    if kind == _NO_COMPRESSION:
        return block
    if kind == _SNAPPY_COMPRESSION:
        try:
            return bytes(cramjam.snappy.decompress_raw(block))
        except cramjam.DecompressionError:
            raise Status("DATA_LOSS", "corrupted compressed block contents in %s" % path)
    raise Status("DATA_LOSS", "bad block type in %s" % path)


def _block_entries(data, handle, path):
    """The (key, value) pairs of one SSTable block (prefix-compressed keys, restart array)."""
    block = _block_contents(data, handle, path)
    if len(block) < 4:
        raise Status("DATA_LOSS", "bad block contents in %s" % path)
    restarts = struct.unpack("<I", block[-4:])[0]
    limit = len(block) - 4 * (restarts + 1)
    if limit < 0:
        raise Status("DATA_LOSS", "bad block contents in %s" % path)
    pos, key, entries = 0, b"", []
    try:
        while pos < limit:
            shared, pos = _varint(block, pos)
            unshared, pos = _varint(block, pos)
            value_length, pos = _varint(block, pos)
            key = key[:shared] + block[pos:pos + unshared]
            pos += unshared
            entries.append((key, block[pos:pos + value_length]))
            pos += value_length
    except ValueError:
        raise Status("DATA_LOSS", "bad entry in block of %s" % path)
    return entries


def _block_handle(value):
    offset, pos = _varint(value, 0)
    size, _ = _varint(value, pos)
    return offset, size


class Bundle:
    """BundleReader: the TensorBundle at `prefix` (prefix.index + prefix.data-SSSSS-of-NNNNN)."""

    def __init__(self, prefix):
        self.prefix = prefix
        path = prefix + ".index"
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            raise Status("NOT_FOUND", "Unsuccessful TensorSliceReader constructor: Failed to find any matching "
                         "files for %s" % prefix)
        if len(data) < _FOOTER_LENGTH:
            raise Status("DATA_LOSS", "Unable to open table file %s: DATA_LOSS: file is too short to be an sstable"
                         % path)
        if struct.unpack("<Q", data[-8:])[0] != _TABLE_MAGIC:
            raise Status("DATA_LOSS", "Unable to open table file %s: DATA_LOSS: not an sstable (bad magic number)"
                         % path)
        footer = data[-_FOOTER_LENGTH:]
        try:
            _, pos = _varint(footer, _varint(footer, 0)[1])  # the metaindex handle (unused)
            index_offset, pos = _varint(footer, pos)
            index_size, _ = _varint(footer, pos)
            self.entries = {}
            for _, handle in _block_entries(data, (index_offset, index_size), path):
                for key, value in _block_entries(data, _block_handle(handle), path):
                    self.entries[key.decode("utf-8", "replace")] = value
        except ValueError:
            raise Status("DATA_LOSS", "corrupted block handle in %s" % path)
        header = tensor_bundle_pb2.BundleHeaderProto()
        try:
            header.ParseFromString(self.entries.pop("", b""))
        except message.DecodeError:
            raise Status("DATA_LOSS", "Unable to parse the header of %s" % path)
        if header.endianness != tensor_bundle_pb2.BundleHeaderProto.LITTLE:
            raise Status("UNIMPLEMENTED", "The TF Serving test double reads little-endian bundles only: %s" % path)
        self.num_shards = header.num_shards

    def entry(self, key):
        value = self.entries.get(key)
        if value is None:
            raise Status("NOT_FOUND", "Key %s not found in checkpoint" % key)
        entry = tensor_bundle_pb2.BundleEntryProto()
        try:
            entry.ParseFromString(value)
        except message.DecodeError:
            raise Status("DATA_LOSS", "Entry for key %s not parseable." % key)
        return entry

    def read(self, key):
        entry = self.entry(key)
        dtype = dtype_name(entry.dtype)
        if entry.slices:
            raise Status("UNIMPLEMENTED", "The TF Serving test double cannot read partitioned variable %s" % key)
        shape = [d.size for d in entry.shape.dim]
        path = "%s.data-%05d-of-%05d" % (self.prefix, entry.shard_id, self.num_shards)
        try:
            with open(path, "rb") as f:
                f.seek(entry.offset)
                raw = f.read(entry.size)
        except OSError:
            raise Status("NOT_FOUND", "%s; No such file or directory" % path)
        if len(raw) != entry.size:
            raise Status("DATA_LOSS", "Requested %d bytes but read %d bytes." % (entry.size, len(raw)))
        n = _product(shape)
        if dtype == "DT_STRING":
            return Tensor(dtype, shape, self._strings(raw, n, key))
        if dtype not in _PACK:
            raise Status("UNIMPLEMENTED", "The TF Serving test double cannot read %s variable %s" % (dtype, key))
        actual = masked_crc32c(raw)
        if actual != entry.crc32c:
            raise Status("DATA_LOSS", "TensorBundle at %s shard %d (%d bytes): Checksum does not match: stored %d vs. "
                         "calculated on the restored bytes %d"
                         % (self.prefix, entry.shard_id, entry.size, entry.crc32c, actual))
        if len(raw) != n * struct.calcsize(_PACK[dtype]):
            raise Status("DATA_LOSS", "Invalid size in bundle entry: key %s; stored size %d" % (key, len(raw)))
        return Tensor(dtype, shape, struct.unpack("<%d%s" % (n, _PACK[dtype]), raw))

    @staticmethod
    def _strings(raw, n, key):
        """A string tensor: n varint64 lengths, a 4-byte checksum of them, then the bytes."""
        try:
            pos, lengths = 0, []
            for _ in range(n):
                length, pos = _varint(raw, pos)
                lengths.append(length)
        except ValueError:
            raise Status("DATA_LOSS", "Corrupted string lengths for key %s" % key)
        pos += 4
        values = []
        for length in lengths:
            values.append(raw[pos:pos + length])
            pos += length
        if pos != len(raw):
            raise Status("DATA_LOSS", "Invalid size in bundle entry: key %s; stored size %d" % (key, len(raw)))
        return values


# ---------------------------------------------------------------- op kernels

class Unevaluable(Status):
    def __init__(self, op, node_name, why=""):
        Status.__init__(self, "UNIMPLEMENTED", "The TF Serving test double cannot evaluate op %s (node '%s')%s; see "
                        "tests/serving_double/README.md for what it evaluates." % (op, node_name, why))


def _attr(node, name, default=None):
    if name not in node.attr:
        return default
    value = node.attr[name]
    kind = value.WhichOneof("value")
    if kind == "type":
        return dtype_name(value.type)
    if kind == "list":
        lst = value.list
        if lst.type:
            return [dtype_name(t) for t in lst.type]
        if lst.shape:
            return [None if s.unknown_rank else [d.size for d in s.dim] for s in lst.shape]
        for field in ("i", "f", "s", "b"):
            if getattr(lst, field):
                return list(getattr(lst, field))
        return []
    if kind == "shape":
        return None if value.shape.unknown_rank else [d.size for d in value.shape.dim]
    if kind == "s":
        return value.s.decode("utf-8", "replace")
    if kind == "tensor":
        return value.tensor
    if kind == "func":
        return value.func.name
    if kind is None:
        return default
    return getattr(value, kind)


def _invalid(node, text):
    return Status("INVALID_ARGUMENT", "%s\n\t [[{{node %s}}]]" % (text, node.name))


def _broadcast_shape(node, a, b):
    out = []
    for i in range(max(len(a), len(b))):
        da = a[len(a) - 1 - i] if i < len(a) else 1
        db = b[len(b) - 1 - i] if i < len(b) else 1
        if da != db and da != 1 and db != 1:
            raise _invalid(node, "Incompatible shapes: %s vs. %s" % (shape_string(a), shape_string(b)))
        out.append(max(da, db) if da != 0 and db != 0 else 0)
    return list(reversed(out))


def _strides(shape):
    strides = [1] * len(shape)
    for i in range(len(shape) - 2, -1, -1):
        strides[i] = strides[i + 1] * shape[i + 1]
    return strides


def _broadcast_values(t, shape):
    """The values of t broadcast to shape, flat."""
    if t.shape == shape:
        return t.values
    n = _product(shape)
    if t.size == 1:
        return t.values * n
    out_strides = _strides(shape)
    strides = _strides(t.shape)
    offset = len(shape) - len(t.shape)
    result = []
    for flat in range(n):
        idx = 0
        for i, d in enumerate(t.shape):
            if d != 1:
                idx += (flat // out_strides[i + offset]) % shape[i + offset] * strides[i]
        result.append(t.values[idx])
    return result


def _pow(a, b, integer):
    """TF's Pow: IEEE results (nan, inf) where Python raises or goes complex."""
    if integer:
        if b < 0:
            raise Status("INVALID_ARGUMENT", "Integers to negative integer powers are not allowed")
        return a ** b
    odd = float(b).is_integer() and int(b) % 2 == 1
    if a == 0 and b < 0:
        return math.copysign(math.inf, a) if odd else math.inf
    try:
        return math.pow(a, b)
    except ValueError:  # a negative base to a fractional power
        return math.nan
    except OverflowError:
        return -math.inf if a < 0 and odd else math.inf


def _fsum(values):
    """An exactly rounded sum, with TF's answers where math.fsum raises (inf - inf is nan, overflow is inf)."""
    values = list(values)
    try:
        return math.fsum(values)
    except (ValueError, OverflowError):
        return sum(values)


def _div(a, b, integer):
    if integer:
        if b == 0:
            raise Status("INVALID_ARGUMENT", "Integer division by zero")
        q = abs(a) // abs(b)
        return q if (a >= 0) == (b >= 0) else -q
    if b == 0:
        if a == 0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b


def _sigmoid(x):
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _exp(x):
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


BINARY_OPS = {
    "Mul": lambda a, b, i: a * b,
    "Add": lambda a, b, i: a + b,
    "AddV2": lambda a, b, i: a + b,
    "Sub": lambda a, b, i: a - b,
    "RealDiv": lambda a, b, i: _div(a, b, i),
    "Div": lambda a, b, i: _div(a, b, i),
    "Maximum": lambda a, b, i: max(a, b),
    "Minimum": lambda a, b, i: min(a, b),
    "SquaredDifference": lambda a, b, i: (a - b) * (a - b),
    "Pow": lambda a, b, i: _pow(a, b, i),
    "Greater": lambda a, b, i: a > b,
    "GreaterEqual": lambda a, b, i: a >= b,
    "Less": lambda a, b, i: a < b,
    "LessEqual": lambda a, b, i: a <= b,
    "Equal": lambda a, b, i: a == b,
    "NotEqual": lambda a, b, i: a != b,
}
_COMPARISONS = ("Greater", "GreaterEqual", "Less", "LessEqual", "Equal", "NotEqual")
UNARY_OPS = {
    "Neg": lambda a: -a,
    "Square": lambda a: a * a,
    "Abs": abs,
    "Relu": lambda a: a if a > 0 else 0 * abs(a),
    "Relu6": lambda a: min(a, 6) if a > 0 else 0 * abs(a),
    "Sigmoid": _sigmoid,
    "Tanh": math.tanh,
    "Exp": _exp,
    "Log": lambda a: math.log(a) if a > 0 else (-math.inf if a == 0 else math.nan),
    "Sqrt": lambda a: math.sqrt(a) if a >= 0 else math.nan,
    "Rsqrt": lambda a: 1.0 / math.sqrt(a) if a > 0 else (math.inf if a == 0 else math.nan),
    "Softplus": lambda a: a + math.log1p(math.exp(-a)) if a > 0 else math.log1p(math.exp(a)),
    "Elu": lambda a: a if a > 0 else math.expm1(a),
    "Selu": lambda a: 1.0507009873554805 * (a if a > 0 else 1.6732632423543772 * math.expm1(a)),
}
PASS_OPS = ("Identity", "StopGradient", "Snapshot", "PreventGradient", "EnsureShape")


def _binary(ev, node, inputs):
    a, b = inputs[0], inputs[1]
    shape = _broadcast_shape(node, a.shape, b.shape)
    fn = BINARY_OPS[node.op]
    integer = a.dtype in INT_TYPES
    out_dtype = "DT_BOOL" if node.op in _COMPARISONS else a.dtype
    vals = [normalize(out_dtype, fn(x, y, integer))
            for x, y in zip(_broadcast_values(a, shape), _broadcast_values(b, shape))]
    return [Tensor(out_dtype, shape, vals)]


def _unary(ev, node, inputs):
    src = inputs[0]
    fn = UNARY_OPS[node.op]
    return [Tensor(src.dtype, src.shape, [normalize(src.dtype, fn(v)) for v in src.values])]


def _bias_add(ev, node, inputs):
    a, b = inputs
    if _attr(node, "data_format", "NHWC") != "NHWC":
        raise Unevaluable(node.op, node.name, " with data_format NCHW")
    if len(b.shape) != 1 or not a.shape or a.shape[-1] != b.shape[0]:
        raise _invalid(node, "Must provide as many biases as the last dimension of the input tensor: %s vs. %s"
                       % (shape_string(b.shape), shape_string(a.shape)))
    width = b.shape[0]
    return [Tensor(a.dtype, a.shape, [normalize(a.dtype, v + b.values[k % width]) for k, v in enumerate(a.values)])]


def _matmul(ev, node, inputs):
    a, b = inputs
    for i, t in enumerate((a, b)):
        if len(t.shape) != 2:
            raise _invalid(node, "In[%d] is not a matrix. Instead it has shape %s" % (i, shape_string(t.shape)))

    def rows(t, transpose):
        r, c = t.shape
        m = [t.values[i * c:(i + 1) * c] for i in range(r)]
        return [list(x) for x in zip(*m)] if transpose else m
    ma = rows(a, _attr(node, "transpose_a", False))
    mb = rows(b, _attr(node, "transpose_b", False))
    inner = len(ma[0]) if ma else (a.shape[0] if _attr(node, "transpose_a", False) else a.shape[1])
    b_rows = len(mb)
    if inner != b_rows:
        raise _invalid(node, "Matrix size-incompatible: In[0]: %s, In[1]: %s"
                       % (shape_string(a.shape), shape_string(b.shape)))
    cols = b.shape[0] if _attr(node, "transpose_b", False) else b.shape[1]
    columns = [list(col) for col in zip(*mb)] if mb else [[] for _ in range(cols)]
    vals = [normalize(a.dtype, _fsum(x * y for x, y in zip(row, col))) for row in ma for col in columns]
    return [Tensor(a.dtype, [len(ma), cols], vals)]


def _softmax(ev, node, inputs):
    t = inputs[0]
    if not t.shape:
        raise _invalid(node, "logits must have >= 1 dimension, got %s" % shape_string(t.shape))
    width = t.shape[-1]
    out = []
    for start in range(0, t.size, width or 1):
        row = t.values[start:start + width]
        top = max(row) if row else 0.0
        exps = [_exp(v - top) for v in row]
        total = _fsum(exps)
        if node.op == "LogSoftmax":
            out.extend(normalize(t.dtype, v - top - math.log(total)) for v in row)
        else:
            out.extend(normalize(t.dtype, e / total) for e in exps)
    return [Tensor(t.dtype, t.shape, out)]


def _const(ev, node, inputs):
    return [ev.session.constant(node)]


def _cast(ev, node, inputs):
    dst = _attr(node, "DstT", "DT_FLOAT")
    src = inputs[0]
    if dst == "DT_STRING" or src.dtype == "DT_STRING":
        raise Unevaluable(node.op, node.name, " from %s to %s" % (src.dtype, dst))
    values = src.values
    if dst in INT_TYPES and src.dtype in FLOAT_TYPES:
        values = [int(v) if math.isfinite(v) else 0 for v in values]  # truncation toward zero, like static_cast
    return [Tensor(dst, src.shape, [normalize(dst, v) for v in values])]


def _ints(t):
    return [int(v) for v in t.values]


def _reshape(ev, node, inputs):
    t, shape_t = inputs
    shape = _ints(shape_t)
    if shape.count(-1) > 1:
        raise _invalid(node, "Only one input size may be -1, not both %d and %d"
                       % tuple(i for i, d in enumerate(shape) if d == -1)[:2])
    if -1 in shape:
        known = _product(d for d in shape if d != -1)
        if known == 0 or t.size % known:
            raise _invalid(node, "Input to reshape is a tensor with %d values, but the requested shape requires a "
                           "multiple of %d" % (t.size, known))
        shape[shape.index(-1)] = t.size // known
    if _product(shape) != t.size:
        raise _invalid(node, "Input to reshape is a tensor with %d values, but the requested shape has %d"
                       % (t.size, _product(shape)))
    return [Tensor(t.dtype, shape, t.values)]


def _axis(node, axis, rank):
    if not -rank <= axis < rank:
        raise _invalid(node, "Expected axis in the range [%d, %d), but got %d" % (-rank, rank, axis))
    return axis + rank if axis < 0 else axis


def _concat(ev, node, inputs):
    values, axis_t = inputs[:-1], inputs[-1]
    if node.op == "Concat":
        axis_t, values = inputs[0], inputs[1:]
    first = values[0]
    axis = _axis(node, int(axis_t.values[0]), len(first.shape))
    for t in values[1:]:
        if len(t.shape) != len(first.shape) or any(
                d != e for i, (d, e) in enumerate(zip(t.shape, first.shape)) if i != axis):
            raise _invalid(node, "ConcatOp : Dimension mismatch in shapes %s and %s"
                           % (shape_string(first.shape), shape_string(t.shape)))
    outer = _product(first.shape[:axis])
    out = []
    for o in range(outer):
        for t in values:
            chunk = _product(t.shape[axis:])
            out.extend(t.values[o * chunk:(o + 1) * chunk])
    shape = list(first.shape)
    shape[axis] = sum(t.shape[axis] for t in values)
    return [Tensor(first.dtype, shape, out)]


def _shape(ev, node, inputs):
    dtype = _attr(node, "out_type", "DT_INT32")
    if node.op == "Size":
        return [Tensor(dtype, [], [inputs[0].size])]
    if node.op == "Rank":
        return [Tensor("DT_INT32", [], [len(inputs[0].shape)])]
    return [Tensor(dtype, [len(inputs[0].shape)], inputs[0].shape)]


def _pack(ev, node, inputs):
    first = inputs[0]
    for t in inputs[1:]:
        if t.shape != first.shape:
            raise _invalid(node, "Shapes of all inputs must match: values[0].shape = %s != values[%d].shape = %s"
                           % (shape_string(first.shape), inputs.index(t), shape_string(t.shape)))
    axis = _axis(node, _attr(node, "axis", 0), len(first.shape) + 1)
    outer = _product(first.shape[:axis])
    chunk = _product(first.shape[axis:])
    out = []
    for o in range(outer):
        for t in inputs:
            out.extend(t.values[o * chunk:(o + 1) * chunk])
    shape = first.shape[:axis] + [len(inputs)] + first.shape[axis:]
    return [Tensor(first.dtype, shape, out)]


def _squeeze(ev, node, inputs):
    t = inputs[0]
    dims = [_axis(node, d, len(t.shape)) for d in _attr(node, "squeeze_dims", [])]
    for d in dims:
        if t.shape[d] != 1:
            raise _invalid(node, "Can not squeeze dim[%d], expected a dimension of 1, got %d" % (d, t.shape[d]))
    shape = [d for i, d in enumerate(t.shape) if (i not in dims if dims else d != 1)]
    return [Tensor(t.dtype, shape, t.values)]


def _expand_dims(ev, node, inputs):
    t, axis_t = inputs
    axis = _axis(node, int(axis_t.values[0]), len(t.shape) + 1)
    return [Tensor(t.dtype, t.shape[:axis] + [1] + t.shape[axis:], t.values)]


def _tile(ev, node, inputs):
    t, multiples_t = inputs
    multiples = _ints(multiples_t)
    if len(multiples) != len(t.shape):
        raise _invalid(node, "Expected multiples argument to be a vector of length %d but got length %d"
                       % (len(t.shape), len(multiples)))
    shape = [d * m for d, m in zip(t.shape, multiples)]
    strides = _strides(t.shape)
    out_strides = _strides(shape)
    out = []
    for flat in range(_product(shape)):
        idx = 0
        for i, d in enumerate(t.shape):
            idx += ((flat // out_strides[i]) % shape[i]) % d * strides[i]
        out.append(t.values[idx])
    return [Tensor(t.dtype, shape, out)]


def _fill(ev, node, inputs):
    dims, value = inputs
    shape = _ints(dims)
    return [Tensor(value.dtype, shape, value.values[:1] * _product(shape))]


def _strided_slice(ev, node, inputs):
    t, begin_t, end_t, strides_t = inputs
    begin, end, strides = _ints(begin_t), _ints(end_t), _ints(strides_t)
    if _attr(node, "ellipsis_mask", 0) or _attr(node, "new_axis_mask", 0):
        raise Unevaluable(node.op, node.name, " with an ellipsis or new axis mask")
    begin_mask, end_mask = _attr(node, "begin_mask", 0), _attr(node, "end_mask", 0)
    shrink = _attr(node, "shrink_axis_mask", 0)
    ranges, shape = [], []
    for i, dim in enumerate(t.shape):
        if i >= len(begin):
            ranges.append(range(dim))
            shape.append(dim)
            continue
        stride = strides[i]
        if stride == 0:
            raise _invalid(node, "strides[%d] must be non-zero" % i)
        if shrink & (1 << i):
            index = begin[i] + dim if begin[i] < 0 else begin[i]
            if not 0 <= index < dim:
                raise _invalid(node, "slice index %d of dimension %d out of bounds." % (begin[i], i))
            ranges.append(range(index, index + 1))
            continue
        lo = None if begin_mask & (1 << i) else begin[i]
        hi = None if end_mask & (1 << i) else end[i]
        r = range(dim)[slice(lo, hi, stride)]
        ranges.append(r)
        shape.append(len(r))
    strides_in = _strides(t.shape)
    out = [0]
    for i, r in enumerate(ranges):
        out = [base + k * strides_in[i] for base in out for k in r]
    return [Tensor(t.dtype, shape, [t.values[k] for k in out])]


def _reduce(ev, node, inputs):
    t, axes_t = inputs
    axes = sorted(set(_axis(node, a, len(t.shape)) for a in _ints(axes_t)))
    keep = _attr(node, "keep_dims", False)
    shape = [1 if i in axes else d for i, d in enumerate(t.shape)]
    groups = {}
    strides = _strides(t.shape)
    for flat, v in enumerate(t.values):
        key = tuple(0 if i in axes else (flat // strides[i]) % d for i, d in enumerate(t.shape))
        groups.setdefault(key, []).append(v)
    op = node.op
    out = []
    for key in sorted(groups):
        vals = groups[key]
        if op == "Sum":
            v = _fsum(vals) if t.dtype in FLOAT_TYPES else sum(vals)
        elif op == "Mean":
            v = _fsum(vals) / len(vals) if t.dtype in FLOAT_TYPES else _div(sum(vals), len(vals), True)
        elif op == "Max":
            v = max(vals)
        elif op == "Min":
            v = min(vals)
        else:
            v = math.prod(vals)
        out.append(normalize(t.dtype, v))
    if not keep:
        shape = [d for i, d in enumerate(t.shape) if i not in axes]
    return [Tensor(t.dtype, shape, out)]


def _arg_max(ev, node, inputs):
    t, axis_t = inputs
    axis = _axis(node, int(axis_t.values[0]), len(t.shape))
    outer, width, inner = _product(t.shape[:axis]), t.shape[axis], _product(t.shape[axis + 1:])
    pick = max if node.op == "ArgMax" else min
    out = []
    for o in range(outer):
        for i in range(inner):
            column = [t.values[(o * width + k) * inner + i] for k in range(width)]
            out.append(column.index(pick(column)))
    return [Tensor(_attr(node, "output_type", "DT_INT64"), t.shape[:axis] + t.shape[axis + 1:], out)]


def _select(ev, node, inputs):
    cond, a, b = inputs
    if node.op == "Select" and cond.shape != a.shape:
        if len(cond.shape) != 1 or not a.shape or cond.shape[0] != a.shape[0]:
            raise Unevaluable(node.op, node.name, " with these shapes")
        chunk = _product(a.shape[1:])
        return [Tensor(a.dtype, a.shape, [a.values[k] if cond.values[k // chunk] else b.values[k]
                                          for k in range(a.size)])]
    shape = _broadcast_shape(node, _broadcast_shape(node, cond.shape, a.shape), b.shape)
    return [Tensor(a.dtype, shape, [x if c else y for c, x, y in zip(
        _broadcast_values(cond, shape), _broadcast_values(a, shape), _broadcast_values(b, shape))])]


def _identity_n(ev, node, inputs):
    return list(inputs)


def _no_outputs(ev, node, inputs):
    return []


def _placeholder(ev, node, inputs):
    if node.op == "PlaceholderWithDefault":
        return [inputs[0]]
    raise Status("INVALID_ARGUMENT", "You must feed a value for placeholder tensor '%s' with dtype %s\n"
                 "\t [[{{node %s}}]]" % (node.name, dtype_string(_attr(node, "dtype", "DT_FLOAT")), node.name))


# -- variables: TF1 reference variables (VariableV2 + Assign) and resource variables (VarHandleOp)

def _variable_key(node):
    return (_attr(node, "container", ""), _attr(node, "shared_name", "") or node.name)


def _var_handle(ev, node, inputs):
    return [Tensor("DT_RESOURCE", [], [_variable_key(node)])]


def _read_store(ev, node, key, what):
    value = ev.session.variables.get(key)
    if value is None:
        if what == "ref":
            raise Status("FAILED_PRECONDITION", "Attempting to use uninitialized value %s\n\t [[{{node %s}}]]"
                         % (key[1], node.name))
        raise Status("FAILED_PRECONDITION", "Could not find variable %s. This could mean that the variable has "
                     "been deleted. In TF1, it can also mean the variable is uninitialized.\n\t [[{{node %s}}]]"
                     % (key[1], node.name))
    return value


def _read_variable(ev, node, inputs):
    return [_read_store(ev, node, inputs[0].values[0], "resource")]


def _assign_variable(ev, node, inputs):
    ev.session.variables[inputs[0].values[0]] = inputs[1]
    return []


def _var_is_initialized(ev, node, inputs):
    return [Tensor("DT_BOOL", [], [inputs[0].values[0] in ev.session.variables])]


def _ref_variable(ev, node, inputs):
    return [_read_store(ev, node, _variable_key(node), "ref")]


_UPDATES = {"AssignAdd": "AddV2", "AssignSub": "Sub"}


def _assign(ev, node, inputs):
    """Assign, AssignAdd, AssignSub(ref, value) (dense_update_ops.cc): the ref input names a VariableV2 node of
    the same scope; the variable keeps its new value for the servable's later requests, and it is the output."""
    target = ev.node_of(node.input[0])
    if target is None or target.op not in ("VariableV2", "Variable"):
        raise Unevaluable(node.op, node.name, " on anything but a VariableV2")
    key, value = _variable_key(target), inputs[1]
    if node.op in _UPDATES:
        current = _read_store(ev, node, key, "ref")
        if current.shape != value.shape:
            raise _invalid(node, "Parameters and update must be the same size")
        fn, integer = BINARY_OPS[_UPDATES[node.op]], current.dtype in INT_TYPES
        value = Tensor(current.dtype, current.shape, [normalize(current.dtype, fn(a, b, integer))
                                                      for a, b in zip(current.values, value.values)])
    ev.session.variables[key] = value
    return [value]


def _restore(ev, node, inputs):
    """RestoreV2(prefix, tensor_names, shape_and_slices) from the TensorBundle."""
    prefix, names, slices = inputs
    dtypes = _attr(node, "dtypes", [])
    if any(slices.values):
        raise Unevaluable(node.op, node.name, " with slice specs")
    bundle = ev.session.bundle(prefix.values[0].decode("utf-8"))
    out = []
    for name, dtype in zip(names.values, dtypes):
        key = name.decode("utf-8")
        t = bundle.read(key)
        if t.dtype != dtype:
            raise _invalid(node, "tensor_name = %s; expected dtype %s does not equal restored dtype %s"
                           % (key, dtype_string(dtype), dtype_string(t.dtype)))
        out.append(t)
    return out


# -- tf.Example parsing (ParseExample / ParseExampleV2), dense features only

_FEATURE_DTYPES = {"float_list": "DT_FLOAT", "int64_list": "DT_INT64", "bytes_list": "DT_STRING"}


def _parse_examples(node, serialized, dense_keys, dense_types, dense_shapes, defaults, names):
    if serialized.dtype != "DT_STRING" or len(serialized.shape) > 1:
        raise _invalid(node, "Expected serialized to be a scalar or vector, got shape: %s"
                       % shape_string(serialized.shape))
    examples = []
    for index, data in enumerate(serialized.values):
        example = example_pb2.Example()
        try:
            example.ParseFromString(data)
        except message.DecodeError:
            raise _invalid(node, "Could not parse example input, value: '%s'" % data.decode("latin-1")[:100])
        examples.append(example)
    batch = len(examples)
    outputs = []
    for k, key in enumerate(dense_keys):
        dtype, shape, default = dense_types[k], dense_shapes[k], defaults[k]
        if shape is None or any(d < 0 for d in shape):
            raise Unevaluable(node.op, node.name, " with the variable-length dense feature %s" % key)
        width = _product(shape)
        values = []
        for index, example in enumerate(examples):
            name = names[index].decode("utf-8", "replace") if index < len(names) and names[index] else "<unknown>"
            feature = example.features.feature.get(key)
            kind = feature.WhichOneof("kind") if feature is not None else None
            if kind is None:
                if default.size == 0:
                    raise _invalid(node, "Name: %s, Feature: %s (data type: %s) is required but could not be found."
                                   % (name, key, dtype_string(dtype)))
                values.extend(default.values if default.size == width else default.values[:1] * width)
                continue
            found = _FEATURE_DTYPES[kind]
            if found != dtype:
                raise _invalid(node, "Name: %s, Key: %s, Index: %d.  Data types don't match. Data type: %s but "
                               "expected type: %s" % (name, key, index, dtype_string(found), dtype_string(dtype)))
            got = list(getattr(feature, kind).value)
            if len(got) != width:
                where = "Name: %s, Key: %s, Index: %d.  " % (name, key, index)
                if dtype == "DT_STRING":  # TensorFlow's wording for bytes features
                    raise _invalid(node, where + "Can't parse serialized Example.")
                raise _invalid(node, where + "Number of %s values != expected.  Values size: %d but output shape: %s"
                               % (dtype_string(dtype), len(got), shape_string(shape)))
            values.extend(normalize(dtype, v) if dtype != "DT_STRING" else v for v in got)
        out_shape = ([batch] if serialized.shape else []) + list(shape)
        outputs.append(Tensor(dtype, out_shape, values))
    return outputs


def _parse_example(ev, node, inputs):
    dense_types = _attr(node, "Tdense", [])
    dense_shapes = _attr(node, "dense_shapes", [])
    if node.op == "ParseExampleV2":
        serialized, names, sparse_keys, dense_keys_t, ragged_keys = inputs[:5]
        defaults = inputs[5:]
        dense_keys = [k.decode("utf-8") for k in dense_keys_t.values]
        sparse = sparse_keys.size + ragged_keys.size
    else:
        num_sparse = _attr(node, "Nsparse", 0)
        serialized, names = inputs[:2]
        dense_keys = [t.values[0].decode("utf-8") for t in inputs[2 + num_sparse:2 + num_sparse + len(dense_types)]]
        defaults = inputs[2 + num_sparse + len(dense_types):]
        sparse = num_sparse
    if sparse:
        raise Unevaluable(node.op, node.name, " with sparse or ragged features")
    return _parse_examples(node, serialized, dense_keys, dense_types, dense_shapes, defaults, names.values)


KERNELS = {
    "Const": _const, "Placeholder": _placeholder, "PlaceholderWithDefault": _placeholder,
    "Cast": _cast, "BiasAdd": _bias_add, "MatMul": _matmul, "Softmax": _softmax, "LogSoftmax": _softmax,
    "Reshape": _reshape, "ConcatV2": _concat, "Concat": _concat, "Shape": _shape, "Size": _shape, "Rank": _shape,
    "Pack": _pack, "Squeeze": _squeeze, "ExpandDims": _expand_dims, "Tile": _tile, "Fill": _fill,
    "StridedSlice": _strided_slice, "Sum": _reduce, "Mean": _reduce, "Max": _reduce, "Min": _reduce, "Prod": _reduce,
    "ArgMax": _arg_max, "ArgMin": _arg_max, "Select": _select, "SelectV2": _select, "IdentityN": _identity_n,
    "NoOp": _no_outputs, "DisableCopyOnRead": _no_outputs,
    "VarHandleOp": _var_handle, "ReadVariableOp": _read_variable, "AssignVariableOp": _assign_variable,
    "VarIsInitializedOp": _var_is_initialized, "VariableV2": _ref_variable, "Variable": _ref_variable,
    "Assign": _assign, "AssignAdd": _assign, "AssignSub": _assign, "RestoreV2": _restore, "ParseExample": _parse_example, "ParseExampleV2": _parse_example,
}
KERNELS.update(dict((op, _binary) for op in BINARY_OPS))
KERNELS.update(dict((op, _unary) for op in UNARY_OPS))
KERNELS.update(dict((op, lambda ev, node, inputs: [inputs[0]]) for op in PASS_OPS))
CALL_OPS = ("StatefulPartitionedCall", "PartitionedCall")
# Reference variables are read from the store at each use: an Assign may change them within a run.
_UNCACHED = ("VariableV2", "Variable")
_ASSIGNMENTS = ("Assign", "AssignAdd", "AssignSub")


def evaluated_ops():
    return sorted(set(KERNELS) | set(CALL_OPS))


def _output_arg_index(node, out_arg, index):
    """The flat output index of "node:out_arg:index" (FunctionDef naming)."""
    if node.op in ("ParseExample", "ParseExampleV2"):
        sparse = _attr(node, "Nsparse", _attr(node, "num_sparse", 0))
        counts = [("sparse_indices", sparse), ("sparse_values", sparse), ("sparse_shapes", sparse),
                  ("dense_values", len(_attr(node, "Tdense", [])))]
        flat = 0
        for name, count in counts:
            if name == out_arg:
                return flat + index
            flat += count
    return index


def _output_dtype(node, index):
    """The dtype of a node's output when its attributes say it plainly (None otherwise)."""
    if node.op in _COMPARISONS:
        return "DT_BOOL"
    for name in ("dtype", "DstT", "out_type", "output_type", "T"):
        dtype = _attr(node, name)
        if isinstance(dtype, str):
            return dtype
    types = _attr(node, "Tout")
    return types[index] if isinstance(types, list) and index < len(types) else None


class _Frame:
    """One evaluation of a graph (feeds by "node:index") or of a function body (args by name)."""

    def __init__(self, session, nodes, feeds=None, args=None):
        self.session = session
        self.nodes = nodes
        self.feeds = feeds or {}
        self.args = args
        self.cache = {}
        self.running = set()

    def node_of(self, ref):
        name = ref.lstrip("^").split(":")[0]
        return self.nodes.get(name)

    def _ref(self, ref):
        """(node name, flat output index) of an input reference."""
        parts = ref.split(":")
        if self.args is not None:
            if len(parts) == 3:
                node = self.nodes.get(parts[0])
                return parts[0], _output_arg_index(node, parts[1], int(parts[2])) if node is not None else 0
            return parts[0], int(parts[1]) if len(parts) == 2 else 0
        if len(parts) == 2 and parts[1].isdigit():
            return parts[0], int(parts[1])
        return ref, 0

    def tensor(self, ref):
        if self.args is not None and ref in self.args:
            return self.args[ref]
        name, index = self._ref(ref)
        key = "%s:%d" % (name, index)
        if key in self.feeds:
            return self.feeds[key]
        outputs = self.run_node(name)
        if index >= len(outputs):
            raise Status("INVALID_ARGUMENT", "Node '%s' has no output %d" % (name, index))
        return outputs[index]

    def run_node(self, name):
        if name in self.cache:
            return self.cache[name]
        node = self.nodes.get(name)
        if node is None:
            raise Status("NOT_FOUND", "FetchOutputs node %s: not found" % name if self.args is None
                         else "Function node %s: not found" % name)
        if name in self.running:
            raise Status("INVALID_ARGUMENT", "Graph has a cycle through node %s" % name)
        self.running.add(name)
        try:
            outputs = self._evaluate(node)
        finally:
            self.running.discard(name)
        if node.op not in _UNCACHED:
            self.cache[name] = outputs
        return outputs

    def _evaluate(self, node):
        for ref in node.input:
            if ref.startswith("^") and not (self.args is not None and ref[1:] in self.args):
                self.run_node(ref[1:])
        op = node.op
        kernel = KERNELS.get(op)
        function = _attr(node, "f") if op in CALL_OPS else (op if op in self.session.functions else None)
        if kernel is None and function is None:
            raise Unevaluable(op, node.name)
        data = [ref for ref in node.input if not ref.startswith("^")]
        # An assignment's first input is the variable itself (a reference), not its value.
        inputs = [None if op in _ASSIGNMENTS and i == 0 else self.tensor(ref) for i, ref in enumerate(data)]
        if function is not None:
            return self.session.call(function, inputs)
        return kernel(self, node, inputs)


class Session:
    """The loaded graph of one servable version, its functions and variables (a stand-in for a TF Session)."""

    def __init__(self, meta_graph_def, export_dir):
        self.meta_graph_def = meta_graph_def
        self.export_dir = export_dir
        self.graph = dict((n.name, n) for n in meta_graph_def.graph_def.node)
        self.functions = dict((f.signature.name, (f, dict((n.name, n) for n in f.node_def)))
                              for f in meta_graph_def.graph_def.library.function)
        self.variables = {}
        self._constants = {}
        self._bundles = {}

    def constant(self, node):
        value = self._constants.get(id(node))
        if value is None:
            proto = node.attr["value"].tensor
            try:
                value = tensor_from_proto(proto)
            except Status as e:
                raise Status("INVALID_ARGUMENT", "%s\n\t [[{{node %s}}]]" % (e.message, node.name))
            self._constants[id(node)] = value
        return value

    def bundle(self, prefix):
        if prefix not in self._bundles:
            self._bundles[prefix] = Bundle(prefix)
        return self._bundles[prefix]

    def call(self, name, inputs):
        if name not in self.functions:
            raise Status("NOT_FOUND", "Function %s is not defined." % name)
        fdef, nodes = self.functions[name]
        args = fdef.signature.input_arg
        if any(a.number_attr or a.type_list_attr for a in args) or any(
                a.number_attr or a.type_list_attr for a in fdef.signature.output_arg):
            raise Unevaluable(name, name, " (a function with list arguments)")
        if len(inputs) != len(args):
            raise Status("INVALID_ARGUMENT", "Function %s expects %d arguments, got %d"
                         % (name, len(args), len(inputs)))
        frame = _Frame(self, nodes, args=dict((a.name, t) for a, t in zip(args, inputs)))
        for node_name in sorted(fdef.control_ret.values()):
            frame.run_node(node_name)
        return [frame.tensor(fdef.ret[a.name]) for a in fdef.signature.output_arg]

    def run(self, feeds, fetches, targets=()):
        """Session::Run: feeds {"x:0": Tensor}, fetches ["y:0"], targets ["init"] -> [Tensor]."""
        try:
            fed = {}
            for position, (name, tensor) in enumerate(sorted(feeds.items())):
                key = _feed_name(name)
                node = self.graph.get(key.split(":")[0])
                if node is None:
                    raise Status("INVALID_ARGUMENT", "Tensor %s, specified in either feed_devices or fetch_devices "
                                 "was not in the Graph" % key)
                expected = _output_dtype(node, int(key.split(":")[1]))
                if expected and expected != tensor.dtype:
                    raise Status("INVALID_ARGUMENT", "Expects arg[%d] to be %s but %s is provided"
                                 % (position, dtype_string(expected), dtype_string(tensor.dtype)))
                fed[key] = tensor
            frame = _Frame(self, self.graph, feeds=fed)
            for target in targets:
                frame.run_node(target)
            return [frame.tensor(name) for name in fetches]
        except RecursionError:
            raise Status("UNIMPLEMENTED", "The TF Serving test double cannot evaluate graphs this deep")
        except (ArithmeticError, AttributeError, IndexError, KeyError, TypeError, ValueError, struct.error) as e:
            # A graph the kernels did not expect: an error answer, not a dead server thread.
            raise Status("INTERNAL", "The TF Serving test double failed to evaluate the graph: %s: %s"
                         % (type(e).__name__, e))

    def restore(self, log):
        """RunRestore + RunInitOp of TF's loader.cc, once, at load time."""
        saver = self.meta_graph_def.saver_def
        variables_dir = os.path.join(self.export_dir, "variables")
        prefix = os.path.join(variables_dir, "variables")
        feeds = self._asset_feeds()
        if not os.path.exists(prefix + ".index"):
            log("The specified SavedModel has no variables; no checkpoints were restored. File does not exist: %s"
                % (prefix + ".index"))
        elif saver.restore_op_name:
            log("Restoring SavedModel bundle.")
            feeds[saver.filename_tensor_name] = Tensor("DT_STRING", [], [prefix.encode("utf-8")])
            self.run(feeds, [], [saver.restore_op_name.split(":")[0]])
            del feeds[saver.filename_tensor_name]
        init_op = self._init_op_name()
        if init_op:
            log("Running initialization op on SavedModel bundle at path: %s" % self.export_dir)
            try:
                self.run(feeds, [], [init_op.split(":")[0]])
            except Unevaluable as e:
                log("Init op %s not run: %s" % (init_op, e.message))

    def _init_op_name(self):
        signatures = self.meta_graph_def.signature_def
        if INIT_OP_SIGNATURE in signatures and INIT_OP_SIGNATURE in signatures[INIT_OP_SIGNATURE].outputs:
            return signatures[INIT_OP_SIGNATURE].outputs[INIT_OP_SIGNATURE].name
        for collection in ("saved_model_main_op", "legacy_init_op"):
            if collection in self.meta_graph_def.collection_def:
                values = self.meta_graph_def.collection_def[collection].node_list.value
                if values:
                    return values[0]
        return ""

    def _asset_feeds(self):
        """The asset tensors fed with their paths (AssetFileDefs of the field, else of the TF1 collection)."""
        assets = list(self.meta_graph_def.asset_file_def)
        if not assets and "saved_model_assets" in self.meta_graph_def.collection_def:
            for packed in self.meta_graph_def.collection_def["saved_model_assets"].any_list.value:
                asset = meta_graph_pb2.AssetFileDef()
                packed.Unpack(asset)
                assets.append(asset)
        feeds = {}
        for asset in assets:
            path = os.path.join(self.export_dir, "assets", asset.filename)
            feeds[asset.tensor_info.name] = Tensor("DT_STRING", [], [path.encode("utf-8")])
        return feeds


# ---------------------------------------------------------------- TF Serving's request semantics

_method_name_check = [False]


def set_signature_method_name_check(enabled):
    """SetSignatureMethodNameCheckFeature (--enable_signature_method_name_check)."""
    _method_name_check[0] = bool(enabled)


def signature_debug_string(signature):
    """SignatureDef::DebugString()."""
    return text_format.MessageToString(signature)


def _feed_name(name):
    return name if ":" in name else name + ":0"


def _failure_knob():
    """SERVING_DOUBLE_FAIL_VERSIONS ("model:version,..."): the double's knob for a broken canary."""
    entries = [e.strip().rsplit(":", 1) for e in os.environ.get("SERVING_DOUBLE_FAIL_VERSIONS", "").split(",")]
    return frozenset((name, int(version)) for name, version in (e for e in entries if len(e) == 2))


FAILING_VERSIONS = _failure_knob()


def _fail_if_knob(servable):
    """Every inference of a knob's version fails as a runtime error of the model would (INTERNAL, HTTP 500)."""
    if (getattr(servable, "name", None), getattr(servable, "version", None)) in FAILING_VERSIONS:
        raise Status("INTERNAL", "SERVING_DOUBLE_FAIL_VERSIONS: version %d of %s fails every inference (a knob "
                                 "of the test double)" % (servable.version, servable.name))


def predict(servable, signature_name, inputs, output_filter=()):
    """RunPredict of predict_util.cc: inputs {alias: Tensor} -> {alias: Tensor}."""
    _fail_if_knob(servable)
    key = signature_name or DEFAULT_SIGNATURE
    signatures = servable.meta_graph_def.signature_def
    if key not in signatures:
        raise Status("FAILED_PRECONDITION", 'Serving signature key "%s" not found.' % key)
    signature = signatures[key]
    if _method_name_check[0] and signature.method_name not in (PREDICT_METHOD, CLASSIFY_METHOD, REGRESS_METHOD):
        raise Status("INTERNAL", "Expected prediction signature method_name to be one of {%s, %s, %s}. Was: %s"
                     % (PREDICT_METHOD, CLASSIFY_METHOD, REGRESS_METHOD, signature.method_name))
    wanted, sent = sorted(signature.inputs), sorted(inputs)
    if len(sent) > len(wanted) or (len(sent) < len(wanted) and not signature.defaults):
        raise Status("INVALID_ARGUMENT", "input size does not match signature: %d!=%d len({%s}) != len({%s}). Sent "
                     "extra: {%s}. Missing but required: {%s}."
                     % (len(sent), len(wanted), ",".join(sent), ",".join(wanted),
                        ",".join(a for a in sent if a not in signature.inputs),
                        ",".join(a for a in wanted if a not in inputs)))
    feeds = {}
    for alias in wanted:
        if alias in inputs:
            tensor = inputs[alias]
        elif alias in signature.defaults:
            try:
                tensor = tensor_from_proto(signature.defaults[alias])
            except Status:
                raise Status("INVALID_ARGUMENT", "tensor parsing error: %s" % alias)
        else:
            raise Status("INVALID_ARGUMENT", "Signature input alias: %s(feed name: %s) not found in request and no "
                         "default value provided. Inputs expected to be in the request {%s}, or default input alias "
                         "set: %s" % (alias, signature.inputs[alias].name, ",".join(sent),
                                      ",".join(sorted(signature.defaults))))
        feeds[_feed_name(signature.inputs[alias].name)] = tensor
    used = [a for a in sent if a in signature.inputs]
    if sent and len(used) != len(sent):
        raise Status("INVALID_ARGUMENT", "Inputs contains invalid name. Used request inputs: %s, request input: %s"
                     % (",".join(used), ",".join(sent)))
    aliases = []
    for alias in output_filter:
        if alias not in signature.outputs:
            raise Status("INVALID_ARGUMENT", "output tensor alias not found in signature: %s Outputs expected to be "
                         "in the set {%s}." % (alias, ",".join(sorted(signature.outputs))))
        if alias in aliases:
            raise Status("INVALID_ARGUMENT", "duplicate output tensor alias: %s" % alias)
        aliases.append(alias)
    if not aliases:
        aliases = sorted(signature.outputs)
    results = servable.session.run(feeds, [_feed_name(signature.outputs[a].name) for a in aliases])
    return dict(zip(aliases, results))


def input_to_serialized_example_tensor(input_proto):
    """InputToSerializedExampleTensor of util.cc: a DT_STRING vector of serialized tf.Examples."""
    kind = input_proto.WhichOneof("kind")
    if kind == "example_list":
        serialized = [e.SerializeToString() for e in input_proto.example_list.examples]
    elif kind == "example_list_with_context":
        # The context's bytes come first: parsing the concatenation merges it into each example.
        context = input_proto.example_list_with_context.context.SerializeToString()
        serialized = [context + e.SerializeToString() for e in input_proto.example_list_with_context.examples]
    else:
        serialized = []
    if not serialized:
        raise Status("INVALID_ARGUMENT", "Input is empty.")
    return Tensor("DT_STRING", [len(serialized)], serialized)


def _signature_for(servable, signature_name, kind, method, preprocess):
    """GetClassificationSignatureDef / GetRegressionSignatureDef."""
    key = signature_name or DEFAULT_SIGNATURE
    signatures = servable.meta_graph_def.signature_def
    if key not in signatures:
        raise Status("INVALID_ARGUMENT", "No signature was found with the name: %s" % key)
    signature = signatures[key]
    if _method_name_check[0]:
        if signature.method_name != method:
            raise Status("INVALID_ARGUMENT", "Expected %s signature method_name to be %s. Was: %s"
                         % (kind, method, signature.method_name))
    else:
        preprocess(signature)
    return signature


def _preprocess_classification(signature):
    """PreProcessClassification: (input tensor name, [output tensor names])."""
    if _method_name_check[0] and signature.method_name != CLASSIFY_METHOD:
        raise Status("INVALID_ARGUMENT", "Expected classification signature method_name to be %s. Was: %s"
                     % (CLASSIFY_METHOD, signature.method_name))
    if len(signature.inputs) != 1:
        raise Status("INVALID_ARGUMENT", "Expected one input Tensor.")
    if len(signature.outputs) not in (1, 2):
        raise Status("INVALID_ARGUMENT", "Expected one or two output Tensors, found %d" % len(signature.outputs))
    if "inputs" not in signature.inputs:
        raise Status("INVALID_ARGUMENT", "No classification inputs found in SignatureDef: %s"
                     % signature_debug_string(signature))
    outputs = [signature.outputs[k].name for k in ("classes", "scores") if k in signature.outputs]
    if not outputs:
        raise Status("INVALID_ARGUMENT", 'Expected classification signature outputs to contain at least one of '
                     '"classes" or "scores". Signature was: %s' % signature_debug_string(signature))
    return signature.inputs["inputs"].name, outputs


def _preprocess_regression(signature):
    """PreProcessRegression: (input tensor name, [output tensor name])."""
    if _method_name_check[0] and signature.method_name != REGRESS_METHOD:
        raise Status("INVALID_ARGUMENT", "Expected regression signature method_name to be %s. Was: %s"
                     % (REGRESS_METHOD, signature.method_name))
    if len(signature.inputs) != 1:
        raise Status("INVALID_ARGUMENT", "Expected one input Tensor.")
    if len(signature.outputs) != 1:
        raise Status("INVALID_ARGUMENT", "Expected one output Tensor.")
    if "inputs" not in signature.inputs:
        raise Status("INVALID_ARGUMENT", "No regression inputs found in SignatureDef: %s"
                     % signature_debug_string(signature))
    if "outputs" not in signature.outputs:
        raise Status("INVALID_ARGUMENT", "No regression outputs found in SignatureDef: %s"
                     % signature_debug_string(signature))
    return signature.inputs["inputs"].name, [signature.outputs["outputs"].name]


def _run_examples(servable, input_name, output_names, input_proto):
    """PerformOneShotTensorComputation: (number of examples, output tensors)."""
    _fail_if_knob(servable)
    examples = input_to_serialized_example_tensor(input_proto)
    return examples.shape[0], servable.session.run({_feed_name(input_name): examples},
                                                   [_feed_name(n) for n in output_names])


def _check_class_output(what, tensor, dtype, num_examples):
    if len(tensor.shape) != 2:
        raise Status("INVALID_ARGUMENT", "Expected Tensor shape: [batch_size num_classes] but got %s"
                     % shape_string(tensor.shape))
    if tensor.dtype != dtype:
        raise Status("INVALID_ARGUMENT", "Expected %s Tensor of %s. Got: %s" % (what, dtype, tensor.dtype))
    if tensor.shape[0] != num_examples:
        raise Status("INVALID_ARGUMENT", "Expected %s output batch size of %d. Got: %d"
                     % (what, num_examples, tensor.shape[0]))


def classify(servable, signature_name, input_proto):
    """RunClassify of classifier.cc -> ClassificationResult."""
    signature = _signature_for(servable, signature_name, "classification", CLASSIFY_METHOD,
                               _preprocess_classification)
    input_name, output_names = _preprocess_classification(signature)
    num_examples, outputs = _run_examples(servable, input_name, output_names, input_proto)
    by_name = dict(zip(output_names, outputs))
    classes = by_name.get(signature.outputs["classes"].name) if "classes" in signature.outputs else None
    scores = by_name.get(signature.outputs["scores"].name) if "scores" in signature.outputs else None
    if classes is not None:
        _check_class_output("classes", classes, "DT_STRING", num_examples)
    if scores is not None:
        _check_class_output("scores", scores, "DT_FLOAT", num_examples)
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise Status("INVALID_ARGUMENT", "Tensors class and score should match in dim_size(1). Got %d vs. %d"
                     % (classes.shape[1], scores.shape[1]))
    num_classes = (classes if classes is not None else scores).shape[1]
    result = classification_pb2.ClassificationResult()
    for i in range(num_examples):
        classifications = result.classifications.add()
        for c in range(num_classes):
            cl = classifications.classes.add()
            if classes is not None:
                cl.label = classes.values[i * num_classes + c].decode("utf-8", "replace")
            if scores is not None:
                cl.score = scores.values[i * num_classes + c]
    return result


def regress(servable, signature_name, input_proto):
    """RunRegress of regressor.cc -> RegressionResult."""
    signature = _signature_for(servable, signature_name, "regression", REGRESS_METHOD, _preprocess_regression)
    input_name, output_names = _preprocess_regression(signature)
    num_examples, outputs = _run_examples(servable, input_name, output_names, input_proto)
    output = outputs[0]
    if not (len(output.shape) == 1 or (len(output.shape) == 2 and output.shape[1] == 1)):
        raise Status("INVALID_ARGUMENT", "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] "
                     "but got %s" % shape_string(output.shape))
    if num_examples != output.shape[0]:
        raise Status("INVALID_ARGUMENT", "Input batch size did not match output batch size: %d vs. %d"
                     % (num_examples, output.shape[0]))
    if output.dtype != "DT_FLOAT":
        raise Status("INVALID_ARGUMENT", "Expected output Tensor of DT_FLOAT.  Got: %s" % output.dtype)
    result = regression_pb2.RegressionResult()
    for value in output.values:
        result.regressions.add().value = value
    return result
