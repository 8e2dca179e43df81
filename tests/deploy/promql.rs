//! Just enough PromQL scanning for the checks: the metric selectors of an
//! expression, its grouping labels, the labels a Grafana legend or an alert
//! annotation shows, and the check that grouping labels exist.

use std::collections::{BTreeMap, BTreeSet};

use super::catalog::{Kind, MetricDef, TARGET_LABELS};

/// Metric selectors in a PromQL expression: (metric name, the text of its
/// `{…}` matchers, if any). A name is an identifier starting `lstm_ae_`, or
/// `up`, not followed by `(` (a function) — enough for this project's
/// queries, which Prometheus itself evaluates in `live.rs`.
pub(crate) fn selectors(expr: &str) -> Vec<(String, Option<String>)> {
    let bytes = expr.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
    let mut out = vec![];
    let mut i = 0;
    while i < bytes.len() {
        if ident(bytes[i]) && (i == 0 || !ident(bytes[i - 1])) {
            let start = i;
            while i < bytes.len() && ident(bytes[i]) {
                i += 1;
            }
            let name = &expr[start..i];
            let prev = expr[..start].trim_end();
            let in_matchers = prev.ends_with('{') || prev.ends_with(',');
            let is_ours = name.starts_with("lstm_ae_") || name == "up";
            if is_ours && !in_matchers && !expr[i..].trim_start().starts_with('(') {
                let matchers = expr[i..]
                    .strip_prefix('{')
                    .and_then(|r| r.find('}').map(|e| r[..e].to_string()));
                out.push((name.to_string(), matchers));
            }
        } else {
            i += 1;
        }
    }
    out
}

/// The catalog metric a series name belongs to (`_bucket`, `_sum`, `_count`
/// of a histogram included).
pub(crate) fn base_metric<'a>(
    cat: &'a BTreeMap<String, MetricDef>,
    series: &str,
) -> Option<&'a str> {
    if let Some((k, _)) = cat.get_key_value(series) {
        return Some(k);
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let base = series.strip_suffix(suffix)?;
        let (k, def) = cat.get_key_value(base)?;
        (def.kind == Kind::Histogram).then_some(k.as_str())
    })
}

/// Label names in `by (…)`, `without (…)`, `on (…)`, `ignoring (…)` and
/// `group_left (…)` clauses.
pub(crate) fn grouping_labels(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for kw in [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ] {
        for (i, _) in expr.match_indices(kw) {
            let before_ok = i == 0
                || !expr.as_bytes()[i - 1].is_ascii_alphanumeric()
                    && expr.as_bytes()[i - 1] != b'_';
            let rest = expr[i + kw.len()..].trim_start();
            if before_ok && rest.starts_with('(') {
                let inner = &rest[1..rest.find(')').unwrap()];
                out.extend(
                    inner
                        .split(',')
                        .map(|l| l.trim().to_string())
                        .filter(|l| !l.is_empty()),
                );
            }
        }
    }
    out
}

#[test]
fn the_selector_scanner_finds_what_it_should() {
    assert_eq!(
        selectors(
            r#"sum by (topic) (rate(lstm_ae_messages_consumed_total{job="x", topic!=""}[5m])) / up"#
        ),
        [
            (
                "lstm_ae_messages_consumed_total".to_string(),
                Some(r#"job="x", topic!="""#.to_string())
            ),
            ("up".to_string(), None),
        ]
    );
    assert_eq!(
        grouping_labels("sum by (job, le) (x) / ignoring (reason) group_left sum by (job) (y) and on(instance) z"),
        BTreeSet::from(["job", "le", "reason", "instance"].map(String::from))
    );
    assert!(grouping_labels("absent(up)").is_empty());
}

/// `{{label}}` in a Grafana legend.
pub(crate) fn legend_labels(legend: &str) -> Vec<String> {
    let mut out = vec![];
    let mut rest = legend;
    while let Some(a) = rest.find("{{") {
        let b = rest[a..].find("}}").expect("closed {{") + a;
        out.push(rest[a + 2..b].trim().to_string());
        rest = &rest[b + 2..];
    }
    out
}

/// `$labels.name` in an alert annotation.
pub(crate) fn template_labels(text: &str) -> Vec<String> {
    text.match_indices("$labels.")
        .map(|(i, m)| {
            text[i + m.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

/// Every grouping label of `expr` is a label of one of its metrics (or a
/// target label, or `le` of a histogram).
pub(crate) fn check_grouping(cat: &BTreeMap<String, MetricDef>, what: &str, expr: &str) {
    let mut have: BTreeSet<String> = TARGET_LABELS.iter().map(|l| l.to_string()).collect();
    have.insert("le".into());
    for (name, _) in selectors(expr) {
        if let Some(base) = base_metric(cat, &name) {
            have.extend(cat[base].labels.iter().cloned());
        }
    }
    for l in grouping_labels(expr) {
        assert!(
            have.contains(&l),
            "{what}: label {l} is on none of its metrics ({have:?})"
        );
    }
}
