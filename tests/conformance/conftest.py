"""The lab gateway's conformance tests: what they are pointed at.

They run against a converged lab (molecule's default scenario runs them in
its verify step) and need both files; a run without them fails, it does not
skip:
- MLSERVE_ROUTES_JSON: `playbooks/routes.yml -e routes_json=FILE`'s output;
- MLSERVE_MODEL_FIXTURES: JSON {served model name: fixture model name under
  tests/fixtures/models}, i.e. what each declared model's source is.
The per-version counting test also needs MLSERVE_GATEWAY_METRICS, the URL
of the gateway's mtail metrics (its requests counted from the access log).
"""

import json
import os
import urllib.request

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
EXPECTED = os.path.join(REPO, "tests", "fixtures", "expected")


def _load(variable):
    path = os.environ.get(variable)
    if not path:
        raise pytest.UsageError("%s is not set: see tests/conformance/conftest.py" % variable)
    with open(path) as f:
        return json.load(f)


@pytest.fixture(scope="session")
def routes():
    return _load("MLSERVE_ROUTES_JSON")


@pytest.fixture(scope="session")
def fixture_of():
    return _load("MLSERVE_MODEL_FIXTURES")


@pytest.fixture(scope="session")
def expected():
    """Fixture model name -> its TensorFlow-computed answers (tests/fixtures/expected)."""
    answers = {}
    for name in os.listdir(EXPECTED):
        if name.endswith(".json"):
            with open(os.path.join(EXPECTED, name)) as f:
                answers[name[:-len(".json")]] = json.load(f)
    return answers


@pytest.fixture(scope="session")
def gateway_metrics():
    """A function that reads the gateway's mtail metrics (Prometheus text)."""
    url = os.environ.get("MLSERVE_GATEWAY_METRICS")
    if not url:
        raise pytest.UsageError("MLSERVE_GATEWAY_METRICS is not set: see tests/conformance/conftest.py")

    def read():
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.read().decode()
    return read
