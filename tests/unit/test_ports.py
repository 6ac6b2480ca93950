"""The ports helper never hands out one port twice: a double given the same gRPC and REST port skips REST."""

from .ports import free_port


def test_ports_are_never_repeated_and_stay_out_of_the_ephemeral_range():
    ports = [free_port() for _ in range(500)]
    assert len(set(ports)) == len(ports)
    assert all(23000 <= p < 32000 for p in ports)
