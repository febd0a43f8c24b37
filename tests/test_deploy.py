"""The Grafana dashboard and the Prometheus files in deploy/ (issue #19).

- The dashboard (deploy/grafana/bsecrets.json) has what Grafana's import needs: checked
  against a focused JSON Schema written here (after Grafana's dashboard model: no
  Grafana server or schema validator package is used, see deploy/README.md), unique
  panel ids, a grid that fits, every panel querying Prometheus through the import's
  ``DS_PROMETHEUS`` input, only template variables that exist.
- Every PromQL expression (dashboard panels and variables, alert rules) names only
  series that bsecrets/metrics/names.py exposes, and only labels those series carry
  (plus ``job``, ``instance``, and ``le`` on a histogram's buckets). The checker
  is tested on planted mistakes too, so it can fail.
- promtool (Debian's prometheus package, installed by .ci/run) checks the rules, runs
  their unit tests (deploy/prometheus/alerts_test.yml), parses every dashboard
  expression and checks the example scrape configuration.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from bsecrets.metrics import names

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "bsecrets.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERTS_TEST = ROOT / "deploy" / "prometheus" / "alerts_test.yml"
SCRAPE = ROOT / "deploy" / "prometheus" / "scrape.yml"

DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
EXTRA_LABELS = {"job", "instance"}  # Prometheus adds them to every scraped series
RUNBOOKS = {"lost-passphrase.md", "leaked-secret.md", "backend-down.md",
            "audit-verify-failed.md", "break-glass.md"}  # fmt: skip
GRAFANA_BUILTINS = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}

# --- the dashboard's structure --------------------------------------------------------

_DATASOURCE = {"const": DS}
_TARGET = {
    "type": "object",
    "required": ["refId", "expr", "datasource"],
    "properties": {
        "refId": {"type": "string", "minLength": 1},
        "expr": {"type": "string", "minLength": 1},
        "datasource": _DATASOURCE,
        "legendFormat": {"type": "string"},
    },
}
_GRID = {
    "type": "object",
    "required": ["h", "w", "x", "y"],
    "properties": {
        "h": {"type": "integer", "minimum": 1},
        "w": {"type": "integer", "minimum": 1, "maximum": 24},
        "x": {"type": "integer", "minimum": 0, "maximum": 23},
        "y": {"type": "integer", "minimum": 0},
    },
}
_PANEL = {
    "type": "object",
    "required": ["id", "type", "title", "gridPos", "datasource", "targets", "fieldConfig"],
    "properties": {
        "id": {"type": "integer", "minimum": 1},
        "type": {"enum": ["timeseries", "stat", "bargauge", "gauge", "table"]},
        "title": {"type": "string", "minLength": 1},
        "gridPos": _GRID,
        "datasource": _DATASOURCE,
        "targets": {"type": "array", "minItems": 1, "items": _TARGET},
        "fieldConfig": {
            "type": "object",
            "required": ["defaults", "overrides"],
            "properties": {"defaults": {"type": "object"}, "overrides": {"type": "array"}},
        },
        "options": {"type": "object"},
    },
}
_ROW = {
    "type": "object",
    "required": ["id", "type", "title", "gridPos", "collapsed", "panels"],
    "properties": {
        "id": {"type": "integer", "minimum": 1},
        "type": {"const": "row"},
        "gridPos": _GRID,
        "collapsed": {"const": False},  # a collapsed row would hold its panels inside
        "panels": {"maxItems": 0},
    },
}
_VARIABLE = {
    "type": "object",
    "required": ["type", "name", "datasource", "definition", "query", "refresh"],
    "properties": {
        "type": {"const": "query"},
        "name": {"type": "string", "pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$"},
        "datasource": _DATASOURCE,
        "definition": {"type": "string", "minLength": 1},
        "query": {
            "type": "object",
            "required": ["query", "refId"],
            "properties": {"query": {"type": "string", "minLength": 1}},
        },
        "refresh": {"enum": [1, 2]},
        "multi": {"type": "boolean"},
        "includeAll": {"type": "boolean"},
    },
}
TOP_REQUIRED = ["__inputs", "__requires", "uid", "title", "tags", "schemaVersion", "time"]
TOP_REQUIRED += ["panels", "templating", "annotations"]
DASHBOARD_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": TOP_REQUIRED,
    "properties": {
        "__inputs": {
            "type": "array",
            "minItems": 1,
            "maxItems": 1,
            "items": {
                "type": "object",
                "required": ["name", "label", "type", "pluginId"],
                "properties": {
                    "name": {"const": "DS_PROMETHEUS"},
                    "type": {"const": "datasource"},
                    "pluginId": {"const": "prometheus"},
                },
            },
        },
        "__requires": {
            "type": "array",
            "contains": {"type": "object", "properties": {"id": {"const": "prometheus"}}},
        },
        "id": {"type": "null"},  # an exported dashboard: Grafana gives it an id on import
        "uid": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{8,40}$"},
        "title": {"type": "string", "minLength": 1},
        "tags": {"type": "array", "items": {"type": "string"}, "contains": {"const": "bsecrets"}},
        "schemaVersion": {"type": "integer", "minimum": 36, "maximum": 41},  # Grafana 10/11
        "time": {
            "type": "object",
            "required": ["from", "to"],
            "properties": {"from": {"type": "string"}, "to": {"type": "string"}},
        },
        "refresh": {"type": "string"},
        "annotations": {"type": "object", "required": ["list"]},
        "templating": {
            "type": "object",
            "required": ["list"],
            "properties": {"list": {"type": "array", "items": _VARIABLE}},
        },
        "panels": {
            "type": "array",
            "minItems": 1,
            "items": {
                "if": {"properties": {"type": {"const": "row"}}},
                "then": _ROW,
                "else": _PANEL,
            },
        },
    },
}


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def schema_errors(doc: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(DASHBOARD_SCHEMA)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]


def query_panels(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in doc["panels"] if p["type"] != "row"]


def test_dashboard_has_what_grafana_import_needs() -> None:
    jsonschema.Draft7Validator.check_schema(DASHBOARD_SCHEMA)
    assert schema_errors(dashboard()) == []


@pytest.mark.parametrize(
    ("where", "change"),
    [
        ("no schemaVersion", lambda d: d.pop("schemaVersion")),
        ("a panel without targets", lambda d: query_panels(d)[0].update(targets=[])),
        ("a hard-coded datasource", lambda d: query_panels(d)[1].update(datasource={"uid": "x"})),
        ("a target without expr", lambda d: query_panels(d)[0]["targets"][0].pop("expr")),
        ("a panel off the grid", lambda d: query_panels(d)[0]["gridPos"].update(w=25)),
    ],
)
def test_the_schema_catches(where: str, change: Any) -> None:
    doc = dashboard()
    change(doc)
    assert schema_errors(doc), where


def test_panel_ids_are_unique_and_panels_do_not_overlap() -> None:
    panels = dashboard()["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), ids
    taken: dict[tuple[int, int], str] = {}
    for p in panels:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        for cell in ((x, y) for x in range(g["x"], g["x"] + g["w"])
                     for y in range(g["y"], g["y"] + g["h"])):  # fmt: skip
            assert cell not in taken, f"{p['title']!r} overlaps {taken[cell]!r}"
            taken[cell] = p["title"]


def walk(node: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair of a JSON document, at any depth."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def test_every_datasource_is_the_import_input() -> None:
    doc = dashboard()
    datasources = [value for key, value in walk(doc) if key == "datasource"]
    assert datasources and all(ds == DS for ds in datasources), datasources
    inputs = {f"${{{i['name']}}}" for i in doc["__inputs"]}
    used = set(re.findall(r"\$\{DS_[A-Z_]+\}", DASHBOARD.read_text()))
    assert used == inputs


def test_template_variables_used_are_defined() -> None:
    doc = dashboard()
    defined = {v["name"] for v in doc["templating"]["list"]}
    assert {"env", "job", "instance"} <= defined
    queries = [(v["definition"], v["name"]) for v in doc["templating"]["list"]]
    for expr, where in dashboard_exprs(doc) + queries:
        used = set(re.findall(r"\$\{?(\w+)", expr))
        assert used <= defined | set(GRAFANA_BUILTINS), (where, used - defined)


# --- PromQL: only the series and labels names.py exposes ------------------------------

FUNCTIONS = set(
    re.findall(
        r"\w+",
        """abs absent absent_over_time ceil changes clamp clamp_max clamp_min day_of_month
    day_of_week day_of_year days_in_month delta deriv exp floor histogram_count
    histogram_sum histogram_fraction histogram_quantile holt_winters hour idelta increase
    irate label_join label_replace ln log2 log10 minute month predict_linear rate resets
    round scalar sgn sort sort_desc sqrt time timestamp vector year avg_over_time
    min_over_time max_over_time sum_over_time count_over_time quantile_over_time
    stddev_over_time stdvar_over_time last_over_time present_over_time acos acosh asin
    asinh atan atanh cos cosh sin sinh tan tanh deg rad pi
    sum min max avg group stddev stdvar count count_values bottomk topk quantile""",
    )
)
KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"}
GROUPING = r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)"
SELECTOR = r"([a-zA-Z_:][\w:]*)?\s*\{([^{}]*)\}"
MATCHER = r'\s*([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"\s*(?:,|$)'


@functools.cache
def series_labels() -> dict[str, frozenset[str]]:
    """Each series name a scrape shows (names.exposed_series()), with the labels it
    carries: its metric's, plus ``le`` on a histogram's buckets."""
    out: dict[str, frozenset[str]] = {}
    for series in names.exposed_series():
        metric = max((m for m in names.ALL if series.startswith(m.name)),
                     key=lambda m: len(m.name))  # fmt: skip
        labels = set(metric.labels) | EXTRA_LABELS
        if metric.kind == "histogram" and series == metric.name + "_bucket":
            labels.add("le")
        out[series] = frozenset(labels)
    return out


def substitute(expr: str) -> str:
    """Grafana's variables made concrete: durations for its own, ".*" for ours."""
    expr = re.sub(r"\[\$\{?(\w+)\}?\]", lambda m: f"[{GRAFANA_BUILTINS.get(m[1], '5m')}]", expr)
    return re.sub(r"\$\{?(\w+)\}?", lambda m: GRAFANA_BUILTINS.get(m[1], ".*"), expr)


def promql_problems(expr: str) -> list[str]:
    """Series names not in names.py, labels a series does not carry, and what this small
    checker can not read (promtool parses the expressions for real, further below)."""
    known = series_labels()
    problems: list[str] = []
    text = substitute(expr)
    selected: set[str] = set()
    for metric, body in re.findall(SELECTOR, text):
        if not metric:
            problems.append(f"a selector without a metric name: {{{body}}}")
            continue
        if re.sub(MATCHER, "", body).strip():
            problems.append(f"unreadable matchers: {{{body}}}")
        for label, _ in re.findall(MATCHER, body):
            if metric in known and label not in known[metric]:
                problems.append(f"{metric} has no label {label!r}")
    text = re.sub(SELECTOR, r" \1 ", text)
    grouping = [label.strip() for _, labels in re.findall(GROUPING, text)
                for label in labels.split(",") if label.strip()]  # fmt: skip
    text = re.sub(GROUPING, " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = re.sub(r'"(?:[^"\\]|\\.)*"', " ", text)  # strings (label_replace's arguments)
    text = re.sub(r"\boffset\s+\w+", " ", text)
    text = re.sub(r"(?<![\w:])\d[\w.]*", " ", text)  # numbers, durations
    for word, call in re.findall(r"([a-zA-Z_:][\w:]*)(\s*\()?", text):
        if call:
            if word not in FUNCTIONS:
                problems.append(f"unknown function {word}()")
        elif word not in KEYWORDS:
            if word in known:
                selected.add(word)
            else:
                problems.append(f"{word} is not a series names.py exposes")
    carried = set().union(*(known[m] for m in selected)) if selected else EXTRA_LABELS
    problems += [f"no series here has the label {g!r}" for g in grouping if g not in carried]
    return problems


def variable_problems(query: str) -> list[str]:
    """A template variable's ``label_values(SELECTOR, LABEL)``."""
    m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query.strip())
    if not m:
        return [f"not label_values(selector, label): {query}"]
    selector, label = m[1], m[2]
    metric = re.match(r"\s*([a-zA-Z_:][\w:]*)", selector)
    found = promql_problems(selector)
    if metric and label not in series_labels().get(metric[1], {label}):
        found.append(f"{metric[1]} has no label {label!r}")
    return found


def dashboard_exprs(doc: dict[str, Any]) -> list[tuple[str, str]]:
    return [(t["expr"], f"{p['title']}/{t['refId']}") for p in query_panels(doc)
            for t in p["targets"]]  # fmt: skip


def alert_rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(ALERTS.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def all_exprs() -> list[tuple[str, str]]:
    exprs = dashboard_exprs(dashboard())
    return exprs + [(r["expr"], f"alert {r['alert']}") for r in alert_rules()]


@pytest.mark.parametrize(("expr", "where"), all_exprs(), ids=[w for _, w in all_exprs()])
def test_expressions_use_only_exposed_series_and_their_labels(expr: str, where: str) -> None:
    assert promql_problems(expr) == [], where


def test_variables_use_only_exposed_series_and_their_labels() -> None:
    variables = dashboard()["templating"]["list"]
    assert any(v["definition"] == "label_values(bsecrets_operations_total, env)"
               for v in variables)  # fmt: skip
    for v in variables:
        assert v["query"]["query"] == v["definition"], v["name"]
        assert variable_problems(v["definition"]) == [], v["name"]


@pytest.mark.parametrize(
    "bad",
    [
        "rate(bsecrets_operation_total[5m])",  # a typo in the name
        "rate(bsecrets_operations[5m])",  # the counter without its _total
        'sum(bsecrets_backend_up{outcome="ok"})',  # a label the gauge does not have
        "sum by (outcome) (bsecrets_backend_up)",  # grouping by a label it does not have
        'bsecrets_audit_events{env=~"$env"}',  # the audit series have no env
        "histogram_quantile(0.9, sum by (le) (rate(bsecrets_backend_call_seconds[5m])))",
        'sum(rate({__name__="bsecrets_operations_total"}[5m]))',
        "up == 0",  # a series names.py does not list
        "rates(bsecrets_operations_total[5m])",
    ],
)
def test_the_expression_checker_catches(bad: str) -> None:
    assert promql_problems(bad), bad


def test_the_variable_checker_catches() -> None:
    assert variable_problems("label_values(bsecrets_audit_events, env)")
    assert variable_problems("label_values(bsecrets_operation_total, env)")
    assert variable_problems("query_result(bsecrets_operations_total)")


# --- alert rules ------------------------------------------------------------------------


def test_each_alert_has_severity_summary_description_and_runbook() -> None:
    rules = alert_rules()
    assert {r["alert"] for r in rules} >= {
        "BsecretsRotationOverdue", "BsecretsBackendDown", "BsecretsAuditVerifyFailed",
        "BsecretsAuditNotVerified", "BsecretsBreakGlassActive", "BsecretsDeniedAccessSpike",
    }  # fmt: skip
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        notes = rule["annotations"]
        assert {"summary", "description", "runbook_url"} <= set(notes), rule["alert"]
        runbook = re.fullmatch(r"docs/runbooks/([\w-]+\.md)", notes["runbook_url"])
        assert runbook and runbook[1] in RUNBOOKS, notes["runbook_url"]
        text = notes["summary"] + notes["description"]
        assert "$value" not in text and ".Value" not in text, rule["alert"]  # labels only
        by = re.search(r"\bby\s*\(([^)]*)\)", rule["expr"])
        metric = re.search(r"bsecrets_\w+", rule["expr"])
        assert metric, rule["alert"]
        carried = ({x.strip() for x in by[1].split(",")} if by
                   else series_labels()[metric[0]])  # fmt: skip
        assert set(re.findall(r"\$labels\.(\w+)", text)) <= carried, rule["alert"]


def test_the_runbooks_the_alerts_link_exist() -> None:
    """Strict once docs/runbooks/ exists (written alongside, issue #19)."""
    folder = ROOT / "docs" / "runbooks"
    if not folder.is_dir():
        pytest.skip("docs/runbooks/ is not there yet")
    for rule in alert_rules():
        assert (ROOT / rule["annotations"]["runbook_url"]).is_file(), rule["alert"]


def test_each_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    cases = [case for test in yaml.safe_load(ALERTS_TEST.read_text())["tests"]
             for case in test["alert_rule_test"]]  # fmt: skip
    for rule in alert_rules():
        mine = [case for case in cases if case["alertname"] == rule["alert"]]
        assert any(case["exp_alerts"] for case in mine), f"{rule['alert']} never fires"
        assert any(not case["exp_alerts"] for case in mine), f"{rule['alert']} never quiet"


# --- promtool ---------------------------------------------------------------------------

needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool is not installed (Debian's prometheus package: .ci/run installs it)",
)


def promtool(*args: str, cwd: Path = ROOT) -> None:
    done = subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_promtool_checks_the_rules() -> None:
    promtool("check", "rules", str(ALERTS))


@needs_promtool
def test_promtool_unit_tests_of_the_rules_pass() -> None:
    promtool("test", "rules", str(ALERTS_TEST))


@needs_promtool
def test_promtool_parses_every_dashboard_expression(tmp_path: Path) -> None:
    """Each panel's query as a recording rule (variables made concrete): promtool's
    PromQL parser reads them all."""
    rules = [{"record": f"bsecrets_dashboard:check_{i}", "expr": substitute(expr)}
             for i, (expr, _) in enumerate(dashboard_exprs(dashboard()))]  # fmt: skip
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    promtool("check", "rules", str(path))


@needs_promtool
def test_promtool_checks_the_scrape_config(tmp_path: Path) -> None:
    """As shipped (syntax), then whole with the files it names made in tmp_path: the
    bearer token file, the CA and the rule file (alerts.yml beside it)."""
    promtool("check", "config", "--syntax-only", str(SCRAPE))
    text = SCRAPE.read_text()
    for name in ("bsecrets-metrics-token", "bsecrets-ca.pem"):
        assert f"/etc/prometheus/{name}" in text
        (tmp_path / name).write_text("")
        text = text.replace(f"/etc/prometheus/{name}", str(tmp_path / name))
    (tmp_path / "scrape.yml").write_text(text)
    shutil.copy(ALERTS, tmp_path / "alerts.yml")
    promtool("check", "config", str(tmp_path / "scrape.yml"))


def test_scrape_config_reads_the_bearer_from_a_file() -> None:
    config = yaml.safe_load(SCRAPE.read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "bsecrets")
    assert job["metrics_path"] == "/metrics"
    assert job["authorization"]["type"] == "Bearer"
    assert "credentials_file" in job["authorization"] and "credentials" not in job["authorization"]
    assert "--metrics-token-file" in SCRAPE.read_text()
