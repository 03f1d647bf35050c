"""deploy/prometheus and deploy/grafana: valid for the real promtool, wired into compose.yaml,
and only over the metric names smartqueue's own exposition carries."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from smartqueue.metrics import ClusterReading, GpuReading, Metrics
from tests.deploy.conftest import REPO, Service
from tests.support.binaries import require_binary
from tests.support.prometheus import sample_names

PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERT_RULES = PROMETHEUS_DIR / "alerts.yml"
GRAFANA_DIR = REPO / "deploy" / "grafana"
DATASOURCES = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yaml"
DASHBOARD_PROVIDERS = GRAFANA_DIR / "provisioning" / "dashboards" / "smartqueue.yaml"
DASHBOARD = GRAFANA_DIR / "dashboards" / "smartqueue.json"

GAUGES_AND_COUNTERS = {
    "smartqueue_queue_depth", "smartqueue_jobs_in_flight", "smartqueue_gpu_slots_in_use",
    "smartqueue_gpu_slots", "smartqueue_dlq_depth", "smartqueue_delayed_retries",
    "smartqueue_breaker_state", "smartqueue_consumers_live", "smartqueue_gpu_load_score",
    "smartqueue_gpu_signal", "smartqueue_gpu_signal_age_seconds",
    "smartqueue_http_requests_total", "smartqueue_submissions_total",
    "smartqueue_job_outcomes_total", "smartqueue_dlq_trimmed_total",
    "smartqueue_replica_draining",
}  # fmt: skip
HISTOGRAMS = {
    "smartqueue_http_request_duration_seconds", "smartqueue_queue_wait_seconds",
    "smartqueue_job_duration_seconds",
}  # fmt: skip
HISTOGRAM_SAMPLES = {
    f"{name}{suffix}" for name in HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")
}


def exported_names() -> set[str]:
    """Every sample name of a real exposition (each labelled metric observed once)."""
    metrics = Metrics()
    metrics.submissions.labels("default", "normal", "accepted").inc()
    metrics.outcomes.labels("completed", "ok").inc()
    metrics.http_requests.labels("GET", "/status", "200").inc()
    metrics.http_duration.labels("GET", "/status").observe(0.01)
    metrics.queue_wait.labels("default", "normal").observe(1.0)
    metrics.job_duration.labels("default", "normal").observe(2.0)
    metrics.dispatch.labels("g", "ok").observe(1.0)
    gpu = GpuReading("g", 2, 1, 1, "closed", load_score=1.0, signals={"running": 1.0},
                     signal_age_s=0.1)  # fmt: skip
    reading = ClusterReading({"default": {"normal": 1}}, 1, 1, 1, [gpu])
    return sample_names(metrics.render(reading).decode())


EXPORTED = exported_names()
METRIC_NAME = re.compile(r"\bsmartqueue_[a-z_]+")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run Debian's promtool (fails under CI=true when it is missing)."""
    binary = require_binary("promtool")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)


def load_yaml(path: Path) -> Any:
    """A YAML file as data."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel of a dashboard, those inside rows included."""
    found: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def dashboard_exprs() -> list[str]:
    """The PromQL of every query of the Grafana dashboard."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [target["expr"] for panel in panels(dashboard) for target in panel.get("targets", [])]


def alert_rules() -> list[dict[str, Any]]:
    """Every rule of alerts.yml."""
    return [rule for group in load_yaml(ALERT_RULES)["groups"] for rule in group["rules"]]


def volume_targets(service: Service) -> dict[str, str]:
    """Container path -> host path of a service's bind mounts."""
    mounts = [volume.split(":") for volume in service["volumes"]]
    return {target: source for source, target, *_ in mounts if source.startswith("./")}


def test_alert_rules_pass_promtool_check_rules() -> None:
    result = promtool("check", "rules", str(ALERT_RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_config_passes_promtool_check_config() -> None:
    result = promtool("check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


def test_dashboard_queries_parse_as_promql(tmp_path: Path) -> None:
    # promtool has no bare PromQL check here: each query becomes a recording rule it parses.
    rules = [{"record": f"dashboard:query_{i}", "expr": e} for i, e in enumerate(dashboard_exprs())]
    rules_file = tmp_path / "dashboard-queries.yml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool("check", "rules", str(rules_file))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_metric_the_deploy_files_rely_on_is_exported() -> None:
    assert GAUGES_AND_COUNTERS | HISTOGRAM_SAMPLES <= EXPORTED


def test_dashboard_json_references_only_exported_metrics() -> None:
    names = {name for expr in dashboard_exprs() for name in METRIC_NAME.findall(expr)}
    assert names - EXPORTED == set()
    assert {name.removesuffix("_bucket") for name in names} >= GAUGES_AND_COUNTERS | HISTOGRAMS


def test_alert_rules_reference_only_exported_metrics() -> None:
    names = {name for rule in alert_rules() for name in METRIC_NAME.findall(rule["expr"])}
    assert names
    assert names - EXPORTED == set()


@pytest.mark.parametrize(
    ("alert", "metric"),
    [("SmartqueueQueueNearCeiling", "smartqueue_queue_depth"),
     ("SmartqueueBreakerOpen", "smartqueue_breaker_state"),
     ("SmartqueueNoLiveConsumer", "smartqueue_consumers_live"),
     ("SmartqueueDlqGrowing", "smartqueue_dlq_depth"),
     ("SmartqueueGpuSignalsStale", "smartqueue_gpu_signal_age_seconds")],
)  # fmt: skip
def test_alert_rules_cover_each_on_call_concern(alert: str, metric: str) -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}
    assert metric in rules[alert]["expr"]
    assert rules[alert]["for"], "an alert fires on a lasting condition, not one scrape"
    assert rules[alert]["labels"]["severity"] in {"warning", "critical"}


def test_dashboard_panels_use_the_provisioned_datasource() -> None:
    (datasource,) = load_yaml(DATASOURCES)["datasources"]
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    queried = [panel for panel in panels(dashboard) if panel.get("targets")]
    assert queried
    assert {panel["datasource"]["uid"] for panel in queried} == {datasource["uid"]}
    assert {t["datasource"]["uid"] for p in queried for t in p["targets"]} == {datasource["uid"]}


def test_grafana_datasource_points_at_compose_prometheus(services: dict[str, Service]) -> None:
    (datasource,) = load_yaml(DATASOURCES)["datasources"]
    url = urlsplit(datasource["url"])
    assert url.hostname == "prometheus"
    assert str(url.port) in services["prometheus"]["expose"]


def test_prometheus_scrapes_the_compose_smartqueue_service(services: dict[str, Service]) -> None:
    (job,) = load_yaml(PROMETHEUS_CONFIG)["scrape_configs"]
    (target,) = job["static_configs"][0]["targets"]
    host, _, port = target.partition(":")
    assert (host, job["metrics_path"]) == ("smartqueue", "/metrics")
    assert port in services["smartqueue"]["expose"]


def test_compose_prometheus_mounts_config_and_rules(services: dict[str, Service]) -> None:
    mounts = volume_targets(services["prometheus"])
    config_path = "/etc/prometheus/prometheus.yml"
    assert mounts[config_path] == "./deploy/prometheus/prometheus.yml"
    assert f"--config.file={config_path}" in services["prometheus"]["command"]
    (rule_file,) = load_yaml(PROMETHEUS_CONFIG)["rule_files"]
    assert mounts[f"/etc/prometheus/{rule_file}"] == "./deploy/prometheus/alerts.yml"


def test_compose_grafana_mounts_provisioning_and_dashboards(services: dict[str, Service]) -> None:
    mounts = volume_targets(services["grafana"])
    assert mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    (provider,) = load_yaml(DASHBOARD_PROVIDERS)["providers"]
    assert mounts[provider["options"]["path"]] == "./deploy/grafana/dashboards"


def test_compose_grafana_admin_password_unset_refuses_to_start(
    services: dict[str, Service],
) -> None:
    password = services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}", password)
