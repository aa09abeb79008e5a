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
    assert {
        "DeepguardRejectionRateSpike",
        "DeepguardRecoveredShareRise",
        "DeepguardUpstreamErrorRate",
        "DeepguardProxyOverheadHigh",
        "DeepguardUpstreamDown",
        "DeepguardUpstreamRestarted",
    } <= alerts
    tests = yaml.safe_load(RULE_TESTS_FILE.read_text())["tests"]
    fired = {
        case["alertname"]
        for t in tests
        for case in t.get("alert_rule_test", [])
        if case["exp_alerts"]
    }
    assert alerts == fired, f"alerts without a firing test: {sorted(alerts - fired)}"


def test_every_alert_says_what_happened_and_how_bad():
    rules = yaml.safe_load(RULES_FILE.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
                assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_restart_alert_watches_the_supervisors_counter():
    rules = yaml.safe_load(RULES_FILE.read_text())
    alert = next(
        r
        for g in rules["groups"]
        for r in g["rules"]
        if r.get("alert") == "DeepguardUpstreamRestarted"
    )
    assert "increase(deepguard_upstream_restarts_total[" in alert["expr"]
    # The first restart creates the series at 1: the rule must see new series, not only increases.
    assert "unless deepguard_upstream_restarts_total offset" in alert["expr"]


def test_rules_no_longer_mention_the_retired_local_engine():
    text = RULES_FILE.read_text() + RULE_TESTS_FILE.read_text()
    assert "deepguard_engine_" not in text and "local engine" not in text
