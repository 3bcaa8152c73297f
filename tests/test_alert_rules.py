"""The README's two alert rules are valid Prometheus rules and fire on what they say (promtool)."""
import re
import shutil
import subprocess

import pytest

from .live_server import REPO_ROOT

PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt install prometheus)")

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


def readme_rules() -> str:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("**Two alert rules**", 1)[1]
    return re.search(r"```yaml\n(.*?)```", section, re.DOTALL).group(1)


def test_the_readme_alert_rules_are_valid_and_fire_on_what_they_describe(tmp_path):
    (tmp_path / "rules.yml").write_text(readme_rules())
    (tmp_path / "tests.yml").write_text(UNIT_TESTS)
    checked = subprocess.run([PROMTOOL, "check", "rules", "rules.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run([PROMTOOL, "test", "rules", "tests.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert tested.returncode == 0, tested.stdout + tested.stderr
