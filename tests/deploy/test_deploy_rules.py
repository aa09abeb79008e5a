"""The alert and recording rules, checked and unit-tested by the real promtool."""

from __future__ import annotations

import yaml

from tests.deploy.tooling import RULE_TESTS_FILE, RULES_FILE, run, tool


def test_promtool_check_rules_accepts_the_rule_file():
    out = run([tool("promtool"), "check", "rules", str(RULES_FILE)]).stdout
    assert "SUCCESS" in out


def test_promtool_rule_unit_tests_fire_every_alert():
    run([tool("promtool"), "test", "rules", str(RULE_TESTS_FILE)])


def test_every_alert_has_a_unit_test_that_expects_it_to_fire():
    rules = yaml.safe_load(RULES_FILE.read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    assert {"DeepguardRejectionRateSpike", "DeepguardRecoveredShareRise",
            "DeepguardUpstreamErrorRate", "DeepguardProxyOverheadHigh",
            "DeepguardUpstreamDown"} <= alerts
    tests = yaml.safe_load(RULE_TESTS_FILE.read_text())["tests"]
    fired = {case["alertname"] for t in tests for case in t.get("alert_rule_test", [])
             if case["exp_alerts"]}
    assert alerts == fired, f"alerts without a firing test: {sorted(alerts - fired)}"


def test_every_alert_says_what_happened_and_how_bad():
    rules = yaml.safe_load(RULES_FILE.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
                assert rule["annotations"]["summary"] and rule["annotations"]["description"]
