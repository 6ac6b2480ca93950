#!/usr/bin/env python3
"""Bounded request traffic to loopback, for the verify steps.

tally: send COUNT requests to one URL and count the answers by status, by
  the version header and by the predictions (which prove the version).
load: send requests round-robin over several URLs from a few threads until
  a stop file appears or a time limit passes, and count failures, in all
  and per path; started in the background around a rolling upgrade. A URL
  grpc://HOST:PORT/MODEL[?version=N|?label=L] is a Predict of the stock
  gRPC client, counted under /MODEL[?...].

Both print one JSON object. Only 127.0.0.0/8 addresses are accepted.
"""

import argparse
import http.client
import ipaddress
import json
import os
import ssl
import threading
import time
import urllib.parse

BODY = json.dumps({"instances": [1.0]}).encode()


def loopback(url):
    parts = urllib.parse.urlsplit(url)
    if not ipaddress.ip_address(parts.hostname).is_loopback:
        raise SystemExit("refusing %s: traffic goes to loopback only" % url)
    return parts


class Client:
    """One keepalive connection, reopened after an error.

    A request on a reused connection that the server closed while it was
    idle (nginx does so on reload) is sent again on a new connection, as
    HTTP clients do; `reconnects` counts those. Any other error is a failure.
    """

    def __init__(self, host, port, timeout, context=None):
        self.host, self.port, self.timeout, self.context = host, port, timeout, context
        self.conn = None
        self.reused = False
        self.reconnects = 0

    def request(self, path, headers):
        while True:
            if self.conn is None:
                self.conn = (http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout,
                                                         context=self.context)
                             if self.context else http.client.HTTPConnection(self.host, self.port, timeout=self.timeout))
                self.reused = False
            try:
                self.conn.request("POST", path, BODY, dict(headers, **{"Content-Type": "application/json"}))
                response = self.conn.getresponse()
                body = response.read()
                self.reused = True
                return response.status, response.getheaders(), body
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = None
                if not self.reused:
                    raise
                self.reconnects += 1
            except OSError:
                self.conn.close()
                self.conn = None
                raise

    def send(self, path):
        """One POST of the load: None, or what went wrong."""
        try:
            status, _, body = self.request(path, {})
        except OSError as e:
            return "%s %s" % (path, type(e).__name__)
        return None if status == 200 else "%s %d %s" % (path, status, body[:120].decode("utf-8", "replace"))


class GrpcClient:
    """The stock client's Predict of [1.0] on one gRPC target, whose ModelSpec the URL's query names."""

    def __init__(self, parts, timeout):
        import grpc
        from tensorflow.core.framework import tensor_pb2, types_pb2
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

        self.error, self.timeout, self.reconnects = grpc.RpcError, timeout, 0
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(
            grpc.insecure_channel("%s:%d" % (parts.hostname, parts.port)))
        self.request = predict_pb2.PredictRequest()
        self.request.model_spec.name = parts.path.strip("/")
        query = dict(urllib.parse.parse_qsl(parts.query))
        if "version" in query:
            self.request.model_spec.version.value = int(query["version"])
        if "label" in query:
            self.request.model_spec.version_label = query["label"]
        x = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1.0])
        x.tensor_shape.dim.add(size=1)
        self.request.inputs["x"].CopyFrom(x)

    def send(self, key):
        try:
            self.stub.Predict(self.request, timeout=self.timeout)
        except self.error as e:
            return "%s %s %s" % (key, e.code().name, (e.details() or "")[:120])
        return None


def answer(status, headers, body, version_header):
    predictions = None
    if status == 200:
        try:
            predictions = json.loads(body).get("predictions")
        except ValueError:
            pass
    version = dict((k.lower(), v) for k, v in headers).get(version_header.lower(), "")
    return version, json.dumps(predictions)


def tally(args):
    parts = loopback(args.url)
    context = None
    if parts.scheme == "https":
        context = ssl.create_default_context(cafile=args.cacert)
        if args.cert:
            context.load_cert_chain(args.cert, args.key)
    client = Client(parts.hostname, parts.port, args.timeout, context)
    headers = dict(h.split(":", 1) for h in args.header)
    out = {"sent": 0, "failed": 0, "status": {}, "version": {}, "predictions": {}}
    for _ in range(args.count):
        out["sent"] += 1
        try:
            status, response_headers, body = client.request(parts.path, headers)
        except OSError as e:
            out["failed"] += 1
            out["status"][type(e).__name__] = out["status"].get(type(e).__name__, 0) + 1
            continue
        version, predictions = answer(status, response_headers, body, args.version_header)
        out["failed"] += status != 200
        for key, value in (("status", str(status)), ("version", version), ("predictions", predictions)):
            out[key][value] = out[key].get(value, 0) + 1
    print(json.dumps(out, sort_keys=True))


def load(args):
    targets = [loopback(url) for url in args.url]
    keys = [t.path + ("?" + t.query if t.query else "") for t in targets]
    stop_at = time.monotonic() + args.max_seconds
    lock = threading.Lock()
    totals = {"sent": 0, "failed": 0, "errors": {}, "paths": dict((k, {"sent": 0, "failed": 0}) for k in keys)}

    all_clients = []

    def worker(offset):
        clients = [GrpcClient(t, args.timeout) if t.scheme == "grpc" else Client(t.hostname, t.port, args.timeout)
                   for t in targets]
        with lock:
            all_clients.extend(clients)
        i = offset
        while time.monotonic() < stop_at and not os.path.exists(args.stop_file):
            if totals["sent"] >= args.max_requests:
                break
            n = i % len(targets)
            i += 1
            error = clients[n].send(keys[n])
            with lock:
                totals["sent"] += 1
                totals["paths"][keys[n]]["sent"] += 1
                if error:
                    totals["failed"] += 1
                    totals["paths"][keys[n]]["failed"] += 1
                    totals["errors"][error] = totals["errors"].get(error, 0) + 1
            time.sleep(args.pause)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(args.threads)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    totals["seconds"] = round(time.monotonic() - started, 1)
    totals["reconnects"] = sum(c.reconnects for c in all_clients)
    text = json.dumps(totals, sort_keys=True)
    if args.out:
        with open(args.out + ".tmp", "w") as f:
            f.write(text)
        os.rename(args.out + ".tmp", args.out)
    print(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("tally", help="COUNT requests to one URL, counted by answer")
    t.add_argument("url")
    t.add_argument("--count", type=int, default=100)
    t.add_argument("--header", action="append", default=[], help="Name:value, repeatable")
    t.add_argument("--version-header", default="X-Model-Version")
    t.add_argument("--timeout", type=float, default=10)
    t.add_argument("--cacert", help="https: the CA of the server's certificate (else the system's)")
    t.add_argument("--cert", help="https: a client certificate to present (PEM), with --key")
    t.add_argument("--key", help="https: the client certificate's key (PEM)")
    t.set_defaults(run=tally)
    ld = sub.add_parser("load", help="requests over URLs until a stop file or a time limit")
    ld.add_argument("url", nargs="+")
    ld.add_argument("--stop-file", required=True)
    ld.add_argument("--out", help="also write the result here (atomically)")
    ld.add_argument("--max-seconds", type=float, default=600)
    ld.add_argument("--max-requests", type=int, default=200000)
    ld.add_argument("--threads", type=int, default=2)
    ld.add_argument("--pause", type=float, default=0.01, help="seconds between two requests of a thread")
    ld.add_argument("--timeout", type=float, default=10)
    ld.set_defaults(run=load)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
