//! The generated rules against the real promtool (Debian's `prometheus` package; CI installs
//! it): `promtool check rules` accepts them, and `promtool test rules` shows a 20× burn pages
//! within minutes while a steady 1× burn never does.

use std::process::Command;

use ballast_model::slo::SloSpec;
use ballast_slo_engine::rules::rules;

fn promtool(args: &[&str], dir: &std::path::Path) -> Option<(bool, String)> {
    let out = Command::new("promtool").args(args).current_dir(dir).output().ok()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), text))
}

const TESTS: &str = r#"
rule_files:
  - rules.yml
evaluation_interval: 1m
tests:
  # 2% errors: 20 times the 0.1% budget. The 1 h / 5 m page row (14.4x) holds at once.
  - interval: 1m
    input_series:
      - series: 'ballast_route_requests_total{route="checkout",status_class="2xx"}'
        values: '0+980x120'
      - series: 'ballast_route_requests_total{route="checkout",status_class="5xx"}'
        values: '0+20x120'
    alert_rule_test:
      - eval_time: 10m
        alertname: checkout-page
        exp_alerts:
          - exp_labels:
              severity: page
              slo: checkout
              service: shop
            exp_annotations:
              summary: 'SLO checkout is burning its error budget too fast (page)'
  # 0.1% errors: exactly the budget (1x). Never a page.
  - interval: 1m
    input_series:
      - series: 'ballast_route_requests_total{route="checkout",status_class="2xx"}'
        values: '0+999x300'
      - series: 'ballast_route_requests_total{route="checkout",status_class="5xx"}'
        values: '0+1x300'
    alert_rule_test:
      - eval_time: 2h
        alertname: checkout-page
        exp_alerts: []
      - eval_time: 5h
        alertname: checkout-page
        exp_alerts: []
"#;

#[test]
fn promtool_checks_the_rules_and_their_burn_rate_tests_pass() {
    let spec: SloSpec = toml::from_str(
        "name = \"checkout\"\nservice = \"shop\"\nobjective = 0.999\nwindow = \"30d\"\nsli = { availability = { route = \"checkout\" } }",
    )
    .unwrap();
    let latency: SloSpec = toml::from_str(
        "name = \"checkout-latency\"\nobjective = 0.99\nwindow = \"7d\"\nalerting = \"scaled\"\nsli = { latency = { route = \"checkout\", threshold = \"300ms\" } }",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), rules(&[spec, latency])).unwrap();
    std::fs::write(dir.path().join("tests.yml"), TESTS).unwrap();
    let Some((ok, out)) = promtool(&["check", "rules", "rules.yml"], dir.path()) else {
        assert!(std::env::var_os("CI").is_none(), "promtool must be installed in CI");
        return;
    };
    assert!(ok, "promtool check rules:\n{out}");
    let (ok, out) = promtool(&["test", "rules", "tests.yml"], dir.path()).unwrap();
    assert!(ok, "promtool test rules:\n{out}");
}
