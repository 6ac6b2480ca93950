"""The fleet status report: declared against reported, and the drift in it."""

from ansible_collections.mlserve.tfserving.plugins.filter.status import FilterModule
from ansible_collections.mlserve.tfserving.plugins.module_utils import fleet, status

MODELS = fleet.normalize_models([
    {"name": "half_plus", "source": "/s", "versions": [1, 2], "labels": {"stable": 1, "canary": 2}},
    {"name": "iso", "source": "/s", "versions": [1], "topology": "isolated", "labels": {"stable": 1}},
])
UNITS = fleet.serving_units(MODELS, ["tfserving"], 18500)


def answer(*states):
    """A uri result of GET /v1/models/M."""
    return {"status": 200, "json": {"model_version_status": [{"version": str(v), "state": s,
                                                              "status": {"error_code": "OK"}} for v, s in states]}}


NO_ANSWER = {"status": -1, "msg": "Connection refused"}


def test_every_declared_version_available_is_no_drift():
    rows = status.status_rows(UNITS, [answer((2, "AVAILABLE"), (1, "AVAILABLE")), answer((1, "AVAILABLE"))], "s1",
                              MODELS)
    assert [(r["model"], r["version"], r["labels"], r["port"], r["state"], r["ok"]) for r in rows] == [
        ("half_plus", 1, ["stable"], 18501, "AVAILABLE", True),
        ("half_plus", 2, ["canary"], 18501, "AVAILABLE", True),
        ("iso", 1, ["stable"], 18503, "AVAILABLE", True),
    ]


def test_missing_unloaded_unreachable_and_extra_versions_are_drift():
    rows = status.status_rows(UNITS, [answer((3, "AVAILABLE"), (2, "LOADING"), (0, "END")),
                                      NO_ANSWER], "s1")
    assert [(r["model"], r["version"], r["declared"], r["state"], r["ok"]) for r in rows] == [
        ("half_plus", 1, True, "NOT LOADED", False),
        ("half_plus", 2, True, "LOADING", False),
        ("half_plus", 3, False, "AVAILABLE", False),
        ("iso", 1, True, "UNREACHABLE", False),
    ]


def test_an_unloaded_undeclared_version_is_history_not_drift():
    rows = status.status_rows(UNITS[:1], [answer((2, "AVAILABLE"), (1, "AVAILABLE"), (0, "END"))], "s1")
    assert [r["version"] for r in rows] == [1, 2]


def test_a_server_error_is_kept_with_the_row():
    rows = status.status_rows(UNITS[1:], [{"status": 404, "json": {"error": "Could not find any versions of model iso"}}], "s2")
    assert rows[0]["state"] == "UNREACHABLE"
    assert rows[0]["error"] == "Could not find any versions of model iso"


def test_table_aligns_columns_and_marks_drift_with_a_bang():
    rows = status.status_rows(UNITS, [answer((2, "AVAILABLE"), (1, "AVAILABLE")), NO_ANSWER], "serving1")
    assert status.status_table(rows) == [
        "  MODEL      VERSION  LABELS  HOST      PORT   DECLARED  STATE",
        "  half_plus  1        stable  serving1  18501  yes       AVAILABLE",
        "  half_plus  2        canary  serving1  18501  yes       AVAILABLE",
        "! iso        1        -       serving1  18503  yes       UNREACHABLE",
    ]


def test_the_versions_of_the_rows_once_each_for_version_metrics():
    rows = status.status_rows(UNITS, [answer((2, "AVAILABLE"), (1, "AVAILABLE")), NO_ANSWER], "serving1")
    rows += status.status_rows(UNITS, [answer((1, "AVAILABLE"), (2, "AVAILABLE")), answer((1, "AVAILABLE"))],
                               "serving2")
    assert status.status_versions(rows) == [{"model": "half_plus", "version": 1}, {"model": "half_plus", "version": 2},
                                            {"model": "iso", "version": 1}]
    assert status.status_versions([]) == []


def test_with_metrics_each_row_shows_its_versions_traffic():
    rows = status.status_rows(UNITS, [answer((2, "AVAILABLE"), (1, "AVAILABLE")), NO_ANSWER], "serving1")
    rows += status.status_rows(UNITS[:1], [answer((1, "AVAILABLE"), (2, "AVAILABLE"))], "serving2")
    figures = [{"model": "half_plus", "version": 1, "requests": 741.0, "rate": 12.345, "error_ratio": 0.0123,
                "p99_ms": 9.94},
               # Counted, but no request in the window: no ratio and no latency.
               {"model": "half_plus", "version": 2, "requests": 0.0, "rate": 0.0, "error_ratio": None,
                "p99_ms": None}]
    assert status.status_table(rows, figures) == [
        "  MODEL      VERSION  LABELS  HOST      PORT   DECLARED  STATE        REQ/S  ERRORS  P99 MS",
        # Both hosts' rows of a version show the version's figures at the gateway.
        "  half_plus  1        stable  serving1  18501  yes       AVAILABLE    12.35  1.23%   9.9",
        "  half_plus  1        stable  serving2  18501  yes       AVAILABLE    12.35  1.23%   9.9",
        "  half_plus  2        canary  serving1  18501  yes       AVAILABLE    0.00   -       -",
        "  half_plus  2        canary  serving2  18501  yes       AVAILABLE    0.00   -       -",
        # Not asked at all (or Prometheus knew nothing of it).
        "! iso        1        -       serving1  18503  yes       UNREACHABLE  -      -       -",
    ]


def test_without_metrics_the_table_has_no_traffic_columns():
    rows = status.status_rows(UNITS, [answer((2, "AVAILABLE"), (1, "AVAILABLE")), NO_ANSWER], "serving1")
    assert status.status_table(rows, None) == status.status_table(rows)
    assert "REQ/S" not in status.status_table(rows)[0]
    # Asked, and no version had figures: the columns show that.
    assert status.status_table(rows, [])[1].endswith("AVAILABLE    -      -       -")


def test_filters_are_the_module_utils_functions():
    assert FilterModule().filters() == {"status_rows": status.status_rows, "status_table": status.status_table,
                                        "status_versions": status.status_versions}
