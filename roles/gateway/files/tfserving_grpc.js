// mlserve.tfserving gateway (njs): which version answered a gRPC call to a
// shared model. The version is inside the response message (its ModelSpec's
// version, a google.protobuf.Int64Value), where nginx cannot see it. This
// body filter reads it from the first message as the bytes stream past,
// without holding any back, and sets $tfs_grpc_version for the access log.
// What it cannot read (a compressed message, an error without a message, a
// method whose response has no ModelSpec) stays unset: nginx.conf.j2 logs
// that as version "unknown".

// Where each method's response holds its ModelSpec, as protobuf field
// numbers from the response message (tensorflow_serving/apis/*.proto):
// MultiInference's is in its first result.
var SPEC = {Predict: [2], Classify: [2], Regress: [2], GetModelMetadata: [1], MultiInference: [1, 1]};
// In the ModelSpec: version (2), then the Int64Value's value (1).
var VERSION = [2, 1];
var VARINT = 0, LEN = 2;

// This request's parse (njs gives every request its own copy of this
// state; the request it belongs to is checked all the same).
var parse = null;

function begin(uri) {
    var path = SPEC[uri.split('/').pop()];
    if (!path) {
        return {done: true};
    }
    // The gRPC prefix (compressed flag, 4-byte length), then the message's fields.
    return {path: path.concat(VERSION), depth: 0, ends: [], pos: 0, prefix: [], done: false,
            need: 'tag', value: 0, scale: 1, skip: 0, field: 0, type: 0};
}

function fail(p) {
    p.done = true;
}

// One byte of a varint; true when the varint is complete (in p.value).
function varint(p, byte) {
    p.value += (byte & 0x7f) * p.scale;
    p.scale *= 128;
    return byte < 0x80;
}

function found(p, r, version) {
    r.variables.tfs_grpc_version = String(version);
    p.done = true;
}

// The field just read (p.field, p.type) at p.depth: descend, take, or skip it.
function field(p, r) {
    var last = p.depth == p.path.length - 1;
    if (p.field == p.path[p.depth] && p.type == (last ? VARINT : LEN)) {
        p.need = last ? 'version' : 'descend';
    } else if (p.type == VARINT) {
        p.need = 'skipvarint';
    } else if (p.type == LEN) {
        p.need = 'skiplen';
    } else if (p.type == 1 || p.type == 5) {
        p.skip = p.type == 1 ? 8 : 4;
        p.need = 'skip';
    } else {
        fail(p);
    }
    p.value = 0;
    p.scale = 1;
}

function feed(p, r, data) {
    var i = 0;
    while (i < data.length && !p.done) {
        if (p.prefix.length < 5) {
            p.prefix.push(data[i++]);
            if (p.prefix.length == 5) {
                if (p.prefix[0] != 0) {
                    return fail(p);
                }
                p.ends = [((p.prefix[1] << 24) >>> 0) + (p.prefix[2] << 16) + (p.prefix[3] << 8) + p.prefix[4]];
            }
            continue;
        }
        if (p.pos >= p.ends[p.ends.length - 1]) {
            // The end of the message, or of the field descended into: no ModelSpec version in it.
            return fail(p);
        }
        if (p.need == 'skip') {
            var n = Math.min(p.skip, data.length - i);
            i += n;
            p.pos += n;
            p.skip -= n;
            if (p.skip == 0) {
                p.need = 'tag';
            }
            continue;
        }
        var byte = data[i++];
        p.pos++;
        if (!varint(p, byte)) {
            continue;
        }
        var value = p.value;
        p.value = 0;
        p.scale = 1;
        if (p.need == 'tag') {
            p.field = Math.floor(value / 8);
            p.type = value & 7;
            field(p, r);
        } else if (p.need == 'descend') {
            p.ends.push(p.pos + value);
            p.depth++;
            p.need = 'tag';
        } else if (p.need == 'version') {
            found(p, r, value);
        } else if (p.need == 'skiplen') {
            p.skip = value;
            p.need = value ? 'skip' : 'tag';
        } else {
            p.need = 'tag';
        }
    }
}

function version(r, data, flags) {
    if (parse === null || parse.r !== r) {
        parse = begin(r.uri);
        parse.r = r;
    }
    if (!parse.done) {
        feed(parse, r, data);
    }
    r.sendBuffer(data, flags);
}

export default {version};
