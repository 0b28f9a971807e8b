"""Alert/recording rules and the Grafana dashboard cannot drift from the metrics.

Chain of checks: the metric classes (code) register exactly the metrics the docs list
(docs/metrics.md, and docs/model_store.md for the subscriber), with the same labels; every
metric name and label the rules and the dashboard use is documented; promtool accepts the
rules and their unit tests pass; every dashboard query parses. promtool is required: a
missing promtool fails these tests, it never skips them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from deploy.prometheus import rules_dir
from model_store.metrics import SubscriberMetrics
from monitoring.drift_metrics import DriftMetrics
from monitoring.freshness import FreshnessMetrics, ServingFreshness
from monitoring.metrics import FineTuneMetrics, LearnerMetrics, RankingQualityCollector
from monitoring.rules import dashboard_files, install_rules, rule_files, rules_path

ROOT = Path(__file__).resolve().parents[3]
DOCS = (ROOT / "docs" / "metrics.md", ROOT / "docs" / "model_store.md")
RULES = rules_path()
RULE_TESTS = RULES.with_name("lifelong.rules.test.yml")
DASHBOARD = ROOT / "monitoring" / "dashboards" / "lifelong.json"
TARGET_LABELS = {"job", "instance"}  # added by Prometheus to every scraped series
BUILTIN = {"up": {"job", "instance", "model"}}  # `model`: the file_sd label of each target
SEVERITIES = {"critical", "warning", "info"}


@dataclass(frozen=True)
class Metric:
    name: str  # as documented (counters with _total)
    kind: str  # counter, gauge, histogram
    labels: frozenset[str]

    def series_names(self) -> set[str]:
        if self.kind == "histogram":
            return {f"{self.name}_{s}" for s in ("bucket", "sum", "count")}
        return {self.name}


# --- the documentation --------------------------------------------------------------------

_CODE = re.compile(r"`([a-z_][a-z0-9_]*)`")


def _expand(cell: str) -> list[str]:
    """``a_b_rmse`` / ``_mae`` -> both names: a shorthand of k parts replaces the last k."""
    names: list[str] = []
    for token in _CODE.findall(cell):
        if token.startswith("_") and names:
            parts = token.strip("_").split("_")
            base = names[0].split("_")
            names.append("_".join(base[: len(base) - len(parts)] + parts))
        elif token.startswith("lifelong_"):
            names.append(token)
    return names


def _labels(cell: str) -> frozenset[str]:
    cell = re.sub(r"\([^)]*\)", "", cell)  # drop "(`integrity`, ...)" value lists
    return frozenset(w.strip(" `") for w in cell.split(",") if w.strip(" `"))


def documented_metrics() -> dict[str, Metric]:
    """Every ``lifelong_*`` metric of the docs' metric tables: name, type, labels."""
    found: dict[str, Metric] = {}
    for doc in DOCS:
        for line in doc.read_text().splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not line.startswith("| `lifelong_") or len(cells) < 2:
                continue
            names = _expand(cells[0])
            if len(cells) >= 4:  # docs/metrics.md: metric | type | labels | meaning
                kind, labels = cells[1], _labels(cells[2])
            else:  # docs/model_store.md: metric (type) | labels
                typed = re.search(r"\((gauge|counter|histogram)\)", cells[0])
                kind = typed.group(1) if typed else "counter"
                labels = _labels(cells[1])
            for name in names:
                found[name] = Metric(name, kind, labels)
    return found


@pytest.fixture(scope="module")
def documented() -> dict[str, Metric]:
    metrics = documented_metrics()
    assert len(metrics) > 30, f"could not parse the metric tables of {DOCS}"
    return metrics


def test_code_registers_exactly_the_documented_metrics(documented):
    registry = CollectorRegistry()
    LearnerMetrics(registry, model="m", topic="t")
    FineTuneMetrics(registry, model="m-deep")
    SubscriberMetrics(registry)
    DriftMetrics(registry, model="m")
    FreshnessMetrics(registry, model="m")
    ServingFreshness(registry)
    RankingQualityCollector(lambda: None, model="m", registry=registry)
    in_code = {}
    for collector in set(registry._collector_to_names):
        if hasattr(collector, "_type"):  # Counter, Gauge, Histogram
            kind = collector._type
            name = collector._name + ("_total" if kind == "counter" else "")
            in_code[name] = Metric(name, kind, frozenset(collector._labelnames))
            continue
        for family in collector.describe():  # a custom collector describes its families
            name = family.name + ("_total" if family.type == "counter" else "")
            in_code[name] = Metric(name, family.type, frozenset(family._labelnames))
    assert set(in_code) == set(documented), (
        f"undocumented: {sorted(set(in_code) - set(documented))}; "
        f"documented but not in code: {sorted(set(documented) - set(in_code))}")
    for name, metric in in_code.items():
        assert documented[name] == metric, f"{name}: docs say {documented[name]}, code {metric}"


# --- PromQL, just enough to find metric and label names ------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"' + r"|'(?:[^'\\]|\\.)*'")
_RANGE = re.compile(r"\[[^\]]*\]")
_BRACES = re.compile(r"\{([^}]*)\}")
_MATCHER = re.compile(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_IDENT = re.compile(r"(?<![\w:$.])[A-Za-z_:][\w:]*")
_TEMPLATE_LABEL = re.compile(r"\$labels\.(\w+)|\{\{\s*(\w+)\s*\}\}")


@dataclass(frozen=True)
class Refs:
    raw: set[str]  # lifelong_* and builtin series names
    recorded: set[str]  # level:metric:operation names
    labels: set[str]  # label names used in matchers and grouping clauses
    grouping: set[str]  # label names of by/on clauses only


def refs(expr: str) -> Refs:
    text = _STRING.sub('""', expr)
    text = _RANGE.sub("", text)
    labels = {m for inner in _BRACES.findall(text) for m in _MATCHER.findall(inner)}
    grouping = {g.strip() for clause in _GROUPING.findall(text) for g in clause.split(",")}
    grouping.discard("")
    text = _BRACES.sub("", _GROUPING.sub("", text))
    idents = set(_IDENT.findall(text))
    raw = {i for i in idents if i.startswith("lifelong_") or i in BUILTIN}
    recorded = {i for i in idents if ":" in i}
    return Refs(raw, recorded, labels | grouping, grouping)


def test_refs_parser():
    r = refs('sum by (model, le) (rate(lifelong_x_bucket{model=~"$model",a="b}"}'
             '[$__rate_interval])) / on (model) model:lifelong_y:rate1m > 0 and up == 0')
    assert r.raw == {"lifelong_x_bucket", "up"}
    assert r.recorded == {"model:lifelong_y:rate1m"}
    assert r.labels == {"model", "le", "a"}
    assert _expand("`lifelong_a_rolling_rmse` / `_rolling_mae`") == [
        "lifelong_a_rolling_rmse", "lifelong_a_rolling_mae"]


def _series_index(documented: dict[str, Metric]) -> dict[str, set[str]]:
    """Series name as queried -> the labels it may carry."""
    index = {name: set(labels) for name, labels in BUILTIN.items()}
    for metric in documented.values():
        for series in metric.series_names():
            extra = {"le"} if series.endswith("_bucket") else set()
            index[series] = set(metric.labels) | TARGET_LABELS | extra
    return index


def check_expr(where: str, expr: str, index: dict[str, set[str]],
               recorded: dict[str, set[str]]) -> set[str]:
    """Assert that ``expr`` uses only documented metrics and their labels; return them."""
    r = refs(expr)
    unknown = sorted(r.raw - set(index))
    assert not unknown, (f"{where}: {unknown} not in {', '.join(str(d) for d in DOCS)} "
                         f"(or a histogram without _bucket/_sum/_count); expr: {expr}")
    undefined = sorted(r.recorded - set(recorded))
    assert not undefined, f"{where}: recording rule(s) {undefined} are not defined"
    assert r.raw or r.recorded, f"{where}: no metric in {expr!r}"
    allowed = set().union(*(index[n] for n in r.raw), *(recorded[n] for n in r.recorded))
    stray = sorted(r.labels - allowed)
    assert not stray, f"{where}: label(s) {stray} are not on {sorted(r.raw | r.recorded)}"
    return allowed


# --- the rule file ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def groups() -> list[dict]:
    return yaml.safe_load(RULES.read_text())["groups"]


def _recorded(groups: list[dict], index: dict[str, set[str]]) -> dict[str, set[str]]:
    recorded: dict[str, set[str]] = {}
    for group in groups:
        for rule in group["rules"]:
            if "record" in rule:
                r = refs(rule["expr"])
                recorded[rule["record"]] = r.grouping or set().union(*(index[n] for n in r.raw))
    return recorded


def test_rules_use_only_documented_metrics_and_labels(groups, documented):
    index = _series_index(documented)
    recorded = _recorded(groups, index)
    used = set()
    for group in groups:
        for rule in group["rules"]:
            name = rule.get("alert") or rule["record"]
            allowed = check_expr(f"rule {name}", rule["expr"], index, recorded)
            used |= refs(rule["expr"]).raw
            for key, text in rule.get("annotations", {}).items():
                for label in filter(None, sum(_TEMPLATE_LABEL.findall(text), ())):
                    assert label in allowed | set(rule.get("labels", {})), (
                        f"alert {name}: annotation {key} uses $labels.{label}, "
                        f"which its expression does not keep")
    assert {"lifelong_learner_events_invalid_total", "lifelong_finetune_bwt",
            "lifelong_subscriber_load_failures_total", "up"} <= used


def test_every_alert_is_labelled_annotated_tested_and_documented(groups):
    alerts = [r for g in groups for r in g["rules"] if "alert" in r]
    tested = RULE_TESTS.read_text()
    runbook = (ROOT / "docs" / "operations.md").read_text()
    for alert in alerts:
        name = alert["alert"]
        assert alert["labels"]["severity"] in SEVERITIES, name
        assert {"summary", "description", "runbook"} <= set(alert["annotations"]), name
        assert "$labels.model" in alert["annotations"]["summary"], name
        assert alert["annotations"]["runbook"] == f"docs/operations.md#{name.lower()}", name
        assert f"### {name}" in runbook, f"docs/operations.md has no runbook for {name}"
        assert f"alertname: {name}" in tested, f"{RULE_TESTS.name} has no test for {name}"
    assert len(alerts) >= 10


def _promtool() -> str:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is required to check the alert rules and was not found on PATH; "
                    "install it (apt install prometheus, which ships promtool)", pytrace=False)
    return promtool


def _run(*args: str, cwd: Path) -> None:
    done = subprocess.run([_promtool(), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}{done.stderr}"


def test_promtool_check_rules():
    _run("check", "rules", RULES.name, cwd=RULES.parent)


def test_promtool_unit_tests_of_the_rules():
    _run("test", "rules", RULE_TESTS.name, cwd=RULES.parent)


# --- the dashboard -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def _panels(dashboard: dict) -> list[dict]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def _queries(dashboard: dict) -> list[tuple[str, str, str]]:
    """(where, expr, legend) of every panel target."""
    return [(f"panel {p['title']!r} {t['refId']}", t["expr"], t.get("legendFormat", ""))
            for p in _panels(dashboard) for t in p.get("targets", [])]


def test_dashboard_shape(dashboard):
    assert dashboard["uid"] == "lifelong" and dashboard["schemaVersion"] >= 39
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["datasource"]["current"]["value"] == "Prometheus"  # the provisioned name
    assert variables["model"]["multi"] and variables["model"]["includeAll"]
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert [r.split()[0] for r in rows] == ["Throughput", "Quality", "Model", "Fine-tuner", "Kafka"]
    ids = [p["id"] for p in _panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in _panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert 'model=~"$model"' in target["expr"], (panel["title"], target["expr"])
    assert [f.name for f in dashboard_files()] == ["lifelong.json"]


def test_dashboard_uses_only_documented_metrics_and_labels(dashboard, documented):
    index = _series_index(documented)
    used = set()
    for where, expr, legend in _queries(dashboard):
        allowed = check_expr(where, expr, index, {})
        used |= refs(expr).raw
        for label in filter(None, sum(_TEMPLATE_LABEL.findall(legend), ())):
            assert label in allowed, f"{where}: legend uses {{{{{label}}}}}, not on the series"
    wanted = {m.name for m in documented.values()} - {
        "lifelong_learner_prequential_rolling_mae"}  # every metric but at most a few
    shown = {n.removesuffix(s) for n in used for s in ("_bucket", "_sum", "_count", "")
             if n.removesuffix(s) in wanted}
    missing = wanted - shown - {"lifelong_finetune_events_invalid_total",
                                "lifelong_finetune_events_duplicate_total",
                                "lifelong_finetune_drift_triggered_rounds_total",
                                "lifelong_subscriber_model_created_timestamp_seconds"}
    assert not missing, f"metrics on no panel: {sorted(missing)}"


def test_every_dashboard_query_parses(dashboard, tmp_path):
    """promtool parses each query (variables substituted) as a recording rule."""
    rules = []
    for i, (_, expr, _) in enumerate(_queries(dashboard)):
        expr = expr.replace("$__rate_interval", "1m").replace("$model", ".*")
        rules.append({"record": f"dashboard:query_{i}:check", "expr": expr})
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    _run("check", "rules", path.name, cwd=tmp_path)


# --- packaging and installing -----------------------------------------------------------------


def test_packaged_rules_exclude_the_promtool_tests():
    assert [f.name for f in rule_files()] == ["lifelong.rules.yml"]


def test_install_rules_goes_where_the_launcher_reads(tmp_path):
    installed = install_rules(tmp_path)
    assert [p.parent for p in installed] == [rules_dir(tmp_path)]
    assert installed[0].read_text() == RULES.read_text()
    assert install_rules(tmp_path) == []  # unchanged: nothing rewritten
    installed[0].write_text("# edited by hand\n")
    assert install_rules(tmp_path) == installed  # the packaged version comes back
    assert sorted(p.name for p in rules_dir(tmp_path).iterdir()) == ["lifelong.rules.yml"]
