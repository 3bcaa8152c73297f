"""deploy/alert-rules.yml: its two alert rules are valid Prometheus rules, fire on what they say
(promtool), and read only series the service really exposes at /metrics."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from legacy_app.config import Settings
from legacy_app.main import create_app

from .conftest import FAST_HASHING, post_json


RULES = Path(__file__).resolve().parent.parent / "deploy" / "alert-rules.yml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt install prometheus)")

UNIT_TESTS = """\
rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      # host a: 13 of 15 connections in use for 10 minutes; host b: 2 of 15, connections come at once.
      - {series: 'db_pool_checked_out{instance="a"}', values: '13x10'}
      - {series: 'db_pool_capacity{instance="a"}', values: '15x10'}
      - {series: 'db_pool_checked_out{instance="b"}', values: '2x10'}
      - {series: 'db_pool_capacity{instance="b"}', values: '15x10'}
      - {series: 'db_pool_checkout_wait_seconds_bucket{instance="b", le="0.001"}', values: '0+50x10'}
      - {series: 'db_pool_checkout_wait_seconds_bucket{instance="b", le="+Inf"}', values: '0+50x10'}
      # host c: 3 of 15 in use, but a tenth of its connections take over 100 ms to come.
      - {series: 'db_pool_checked_out{instance="c"}', values: '3x10'}
      - {series: 'db_pool_capacity{instance="c"}', values: '15x10'}
      - {series: 'db_pool_checkout_wait_seconds_bucket{instance="c", le="0.1"}', values: '0+45x10'}
      - {series: 'db_pool_checkout_wait_seconds_bucket{instance="c", le="0.25"}', values: '0+50x10'}
      - {series: 'db_pool_checkout_wait_seconds_bucket{instance="c", le="+Inf"}', values: '0+50x10'}
    alert_rule_test:
      - eval_time: 3m
        alertname: DatabasePoolNearExhaustion
        exp_alerts: []
      - eval_time: 8m
        alertname: DatabasePoolNearExhaustion
        exp_alerts:
          - exp_labels: {alertname: DatabasePoolNearExhaustion, instance: a}
          - exp_labels: {alertname: DatabasePoolNearExhaustion, instance: c}
  - interval: 1m
    input_series:
      # host a: every transaction under 5 s; host d: one a minute over 5 s.
      - {series: 'db_transaction_duration_seconds_count{instance="a"}', values: '0+100x20'}
      - {series: 'db_transaction_duration_seconds_bucket{instance="a", le="5.0"}', values: '0+100x20'}
      - {series: 'db_transaction_duration_seconds_count{instance="d"}', values: '0+100x20'}
      - {series: 'db_transaction_duration_seconds_bucket{instance="d", le="5.0"}', values: '0+99x20'}
    alert_rule_test:
      - eval_time: 15m
        alertname: DatabaseTransactionOpenTooLong
        exp_alerts:
          - exp_labels: {alertname: DatabaseTransactionOpenTooLong, instance: d}
"""


def rules_text() -> str:
    return RULES.read_text()


@needs_promtool
@pytest.mark.server  # promtool runs as a command
def test_the_deployed_alert_rules_are_valid_and_fire_on_what_they_describe(tmp_path):
    (tmp_path / "rules.yml").write_text(rules_text())
    (tmp_path / "tests.yml").write_text(UNIT_TESTS)
    checked = subprocess.run([PROMTOOL, "check", "rules", "rules.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run([PROMTOOL, "test", "rules", "tests.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_the_deployed_alert_rules_read_only_series_and_buckets_the_service_exposes(tmp_path):
    """A rule on a series the service does not expose (a renamed metric, a bucket bound that moved)
    never fires and raises no error: every series and every `le` bound the rules name must be in a
    real scrape, taken after a request that used the database."""
    text = rules_text()
    alerts = re.findall(r"^\s*- alert: (\w+)$", text, re.MULTILINE)
    assert alerts, "the file holds alert rules"
    named = set(re.findall(r"\b((?:db|http)_[a-z_]+)\b", text))
    assert len(named) >= 4, named  # the pool's gauges, the checkout wait and the transaction histograms
    buckets = set(re.findall(r'\b(\w+_bucket)\{le="([^"]+)"\}', text))
    assert buckets, "the transaction rule reads a bucket by its bound"

    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'rules.db'}", **FAST_HASHING))
    try:
        with TestClient(app) as client:
            assert post_json(client, "/users/", {"email": "rules@example.com", "password": "secret"}).status_code == 200
            scrape = client.get("/metrics")
    finally:
        app.state.engine.dispose()
    assert scrape.status_code == 200
    samples = [s for family in text_string_to_metric_families(scrape.text) for s in family.samples]
    exposed = {s.name for s in samples}
    assert named - exposed == set(), f"the rules name series /metrics does not have: {sorted(named - exposed)}"
    exposed_buckets = {(s.name, s.labels.get("le")) for s in samples if s.name.endswith("_bucket")}
    assert buckets - exposed_buckets == set(), f"the rules name bucket bounds /metrics does not have: {sorted(buckets - exposed_buckets)}"
