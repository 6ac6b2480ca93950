"""Loopback ports for the servers that unit tests and checks start.

One helper for every test: a pair of ports drawn separately can be the same
port, and a double given the same gRPC and REST port serves gRPC on both, as
TF Serving does (it skips REST with an error), so the REST client reads HTTP/2
frames. This happened once in CI.
"""

import random
import socket

_GIVEN = set()


def free_port():
    """A loopback port that is free now and that no caller in this process was given before.

    It lies below Linux's ephemeral range (32768-60999) and above the lab's
    ports: a port the kernel hands out for binding to 0 comes from that range,
    where a client's outgoing connection can take it again before the server
    binds it.
    """
    for _ in range(1000):
        port = random.randrange(23000, 32000)
        if port in _GIVEN:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _GIVEN.add(port)
        return port
    raise AssertionError("no free loopback port in 23000-32000")
