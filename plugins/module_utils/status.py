# -*- coding: utf-8 -*-
# Copyright: mlserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet status report: what is declared against what the servers answer.

Standard library only; plugins/filter/status.py wraps these functions.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

COLUMNS = (("model", "MODEL"), ("version", "VERSION"), ("labels", "LABELS"), ("host", "HOST"), ("port", "PORT"),
           ("declared", "DECLARED"), ("state", "STATE"))


def status_rows(units, answers, host, models=None):
    """One row per (unit, version) on a host, declared or reported.

    `units`: the host's serving_units; `answers`: for each unit in the same
    order, the uri result of `GET /v1/models/M` (its `json` is missing when
    the server did not answer); `models`: the normalized declaration, whose
    labels are shown (an isolated unit has none of its own). A row is `ok` when a
    declared version is AVAILABLE; a version the server reports but the
    declaration does not list is drift unless it is already unloaded (END).
    """
    labels = dict((m["name"], m["labels"]) for m in models or [])
    rows = []
    for unit, result in zip(units, answers):
        answer = result.get("json") if isinstance(result, dict) else None
        declared_labels = labels.get(unit["model"], unit["labels"])
        reported = {}
        error = None
        if isinstance(answer, dict) and "model_version_status" in answer:
            reported = dict((int(v["version"]), v.get("state", "")) for v in answer["model_version_status"])
        elif isinstance(answer, dict) and answer.get("error"):
            error = answer["error"]
        else:
            error = "no answer"
        for version in sorted(set(unit["versions"]) | set(reported)):
            declared = version in unit["versions"]
            state = reported.get(version) or ("NOT LOADED" if error is None else "UNREACHABLE")
            ok = (state == "AVAILABLE") if declared else state == "END"
            if not declared and state == "END":
                continue
            rows.append({
                "model": unit["model"],
                "version": version,
                "labels": sorted(k for k, v in declared_labels.items() if v == version),
                "host": host,
                "container": unit["name"],
                "port": unit["rest_port"],
                "declared": declared,
                "state": state,
                "ok": ok,
                "error": error,
            })
    return rows


# Each version's traffic at the gateway, from Prometheus (version_metrics).
METRIC_COLUMNS = (("rate", "REQ/S", "%.2f"), ("error_ratio", "ERRORS", "%.2f%%"), ("p99_ms", "P99 MS", "%.1f"))


def status_versions(rows):
    """The (model, version) pairs of the rows, once each, for version_metrics."""
    pairs = sorted(set((row["model"], row["version"]) for row in rows))
    return [{"model": model, "version": version} for model, version in pairs]


def _metric_cell(figures, key, form):
    value = (figures or {}).get(key)
    if value is None:
        return "-"
    return form % (value * 100 if key == "error_ratio" else value)


def status_table(rows, metrics=None):
    """The rows as aligned text lines; a drifted row starts with '!'.

    `metrics`: version_metrics' entries; when given, each row also shows its
    version's request rate, error ratio and p99 at the gateway ("-" without
    traffic in the window).
    """
    by_version = dict(((m["model"], m["version"]), m) for m in metrics or [])
    columns = list(COLUMNS) + ([(key, title) for key, title, _ in METRIC_COLUMNS] if metrics is not None else [])
    forms = dict((key, form) for key, _, form in METRIC_COLUMNS)

    def cell(row, key):
        if key in forms:
            return _metric_cell(by_version.get((row["model"], row["version"])), key, forms[key])
        value = row[key]
        if key == "labels":
            return ",".join(value) or "-"
        if key == "declared":
            return "yes" if value else "NO"
        return str(value)

    table = [[title for _, title in columns]]
    marks = [" "]
    for row in sorted(rows, key=lambda r: (r["model"], r["version"], r["host"])):
        table.append([cell(row, key) for key, _ in columns])
        marks.append(" " if row["ok"] else "!")
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    return [(mark + " " + "  ".join(c.ljust(w) for c, w in zip(line, widths))).rstrip()
            for mark, line in zip(marks, table)]
