#!/usr/bin/env python3
"""A webhook receiver for Alertmanager's notifications, on loopback, for the verify steps.

Appends each notification it is sent (Alertmanager's webhook JSON) as one
line to OUT and answers 200. It listens on 127.0.0.1 only and stops by
itself after SECONDS, or after MAX notifications.

    webhook_receiver.py --port 20903 --out webhook.jsonl --seconds 900
"""

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seconds", type=float, default=900)
    parser.add_argument("--max", type=int, default=10000)
    args = parser.parse_args()
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            with open(args.out, "a") as out:
                out.write(json.dumps(body, sort_keys=True) + "\n")
            received.append(1)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            if len(received) >= args.max:
                threading.Thread(target=server.shutdown, daemon=True).start()

        def log_message(self, *_):
            pass

    server = HTTPServer(("127.0.0.1", args.port), Handler)
    open(args.out, "a").close()
    timer = threading.Timer(args.seconds, server.shutdown)
    timer.daemon = True
    timer.start()
    server.serve_forever(poll_interval=0.2)


if __name__ == "__main__":
    main()
