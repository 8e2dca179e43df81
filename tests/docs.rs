//! The user docs against the code they describe: every configuration key
//! the commands accept is in docs/configuration.md with its default, every
//! metric the daemon registers is in docs/daemon.md, every relative link of
//! README.md and docs/*.md leads to a file (and a heading) that exists, and
//! README.md stays short enough to read.
//!
//! The keys and metrics are enumerated from the code (the settings' own
//! serialisation, the metrics registry and its definitions), never from a
//! list kept here, so a new setting or metric fails this test until it is
//! documented.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use lstm_ae::config::Settings;
use lstm_ae::eval::nab::run::NabEvalConfig;
use lstm_ae::telemetry::Metrics;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A value as settings serialise it, through JSON text: `f32` fields keep
/// their short form (`0.001`, not the `f64` widening `0.0010000000474974513`).
fn tree<T: serde::Serialize>(v: &T) -> Value {
    serde_json::from_str(&serde_json::to_string(v).unwrap()).unwrap()
}

/// Every key path of a settings tree with its default: a table is walked
/// into, while a list (`kafka.inputs`) and a free-form map (`kafka.common`,
/// empty by default) are one key each.
fn keys(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                keys(&path, child, out);
            }
        }
        _ => out.push((prefix.to_string(), v.clone())),
    }
}

/// The default as the page writes it: `64`, `0.001`, `true`, `"text"`.
fn rendered(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(format!("\"{s}\"")),
        Value::Number(_) | Value::Bool(_) => Some(v.to_string()),
        _ => None,
    }
}

/// The table row that documents `key` (its first cell is the key).
fn row<'a>(page: &'a str, key: &str) -> Option<&'a str> {
    let cell = format!("| `{key}` |");
    page.lines().find(|l| l.starts_with(&cell))
}

fn settings_keys() -> Vec<(String, Value)> {
    let mut out = vec![];
    keys("", &tree(&Settings::default()), &mut out);
    // `calibration` is one of several rules, each with its own keys; the
    // default shows only POT's. The others, as the settings read them:
    for variant in [
        serde_json::json!({"rule": "quantile", "q": 0.995}),
        serde_json::json!({"rule": "mean_std", "k": 4.0}),
    ] {
        let s = Settings {
            calibration: serde_json::from_value(variant.clone())
                .unwrap_or_else(|e| panic!("{variant} is no longer a calibration rule: {e}")),
            ..Settings::default()
        };
        let mut all = vec![];
        keys("", &tree(&s), &mut all);
        for (k, _) in all {
            if k.starts_with("calibration.") && !out.iter().any(|(have, _)| *have == k) {
                // Not a default: only the key is checked.
                out.push((k, Value::Null));
            }
        }
    }
    out
}

#[test]
fn the_settings_walk_finds_nested_keys_maps_and_every_calibration_rule() {
    // The enumeration itself: a broken walk would pass the test below vacuously.
    let all: BTreeSet<String> = settings_keys().into_iter().map(|(k, _)| k).collect();
    for k in [
        "data.fill",
        "kafka.consumer",
        "kafka.inputs",
        "calibration.risk",
        "calibration.q",
        "calibration.k",
        "postprocess.fire_level",
    ] {
        assert!(all.contains(k), "{k} not enumerated: {all:?}");
    }
    assert!(
        !all.iter().any(|k| k.starts_with("kafka.consumer.")),
        "a map is one key"
    );
    assert!(all.len() > 80, "only {} keys enumerated", all.len());
}

#[test]
fn every_configuration_key_is_documented_with_its_default() {
    let page = read("docs/configuration.md");
    let mut missing = vec![];
    let mut wrong_default = vec![];
    for (key, default) in settings_keys() {
        let Some(line) = row(&page, &key) else {
            missing.push(key);
            continue;
        };
        if let Some(d) = rendered(&default) {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            // | `key` | `default` | meaning |
            let want = format!("`{d}`");
            if cells.get(2) != Some(&want.as_str()) {
                wrong_default.push(format!("{key}: page says {:?}, code {want}", cells.get(2)));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "keys missing from docs/configuration.md (a table row starting `| `key` |`): {missing:?}"
    );
    assert!(
        wrong_default.is_empty(),
        "defaults in docs/configuration.md that differ from the code: {wrong_default:#?}"
    );
}

#[test]
fn every_eval_nab_configuration_key_is_documented() {
    // `eval nab --config` has its own settings; its `model`, `training`
    // and `postprocess` sections share their keys with the main ones.
    let page = read("docs/configuration.md");
    let mut out = vec![];
    keys("", &tree(&NabEvalConfig::default()), &mut out);
    let missing: Vec<String> = out
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| !page.contains(&format!("`{k}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "eval nab keys missing from docs/configuration.md: {missing:?}"
    );
}

/// Every metric name the daemon defines: the registry's families (what
/// `/metrics` exports) and the names in the one file that defines them
/// (a labelled metric with no series yet is not exported until it has one).
fn metric_names() -> BTreeSet<String> {
    let m = Metrics::new();
    let exported: BTreeSet<String> = m
        .registry
        .gather()
        .iter()
        .map(|f| f.name().to_string())
        .collect();
    let src = read("src/telemetry/metrics.rs");
    // The definitions, not the file's unit tests.
    let src = src.split("#[cfg(test)]").next().unwrap();
    let mut defined = BTreeSet::new();
    for (i, _) in src.match_indices("\"lstm_ae_") {
        let rest = &src[i + 1..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        // A literal that is a whole metric name: `"lstm_ae_…"`.
        if rest[end..].starts_with('"') && end > "lstm_ae_".len() {
            defined.insert(rest[..end].to_string());
        }
    }
    assert!(
        exported.is_subset(&defined),
        "registered outside src/telemetry/metrics.rs: {:?}",
        exported.difference(&defined).collect::<Vec<_>>()
    );
    assert!(
        exported.len() >= 10,
        "the registry exports only {exported:?}"
    );
    defined
}

#[test]
fn every_metric_is_documented_in_the_daemon_page() {
    let page = read("docs/daemon.md");
    let names = metric_names();
    let missing: Vec<&String> = names.iter().filter(|n| row(&page, n).is_none()).collect();
    assert!(
        missing.is_empty(),
        "metrics missing from the table in docs/daemon.md: {missing:?}"
    );
}

/// GitHub's anchor for a heading: lower case, punctuation dropped,
/// spaces to hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            out.insert(slug(line.trim_start_matches('#')));
        }
    }
    out
}

/// `[text](target)` links outside code blocks and code spans.
fn links(markdown: &str) -> Vec<String> {
    let mut out = vec![];
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Drop code spans: `[x](y)` inside backticks is not a link.
        let text: String = line
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 0)
            .map(|(_, s)| s)
            .collect::<Vec<_>>()
            .join(" ");
        let mut rest = text.as_str();
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            out.push(after[..end].to_string());
            rest = &after[end..];
        }
    }
    out
}

fn doc_files() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    let mut pages: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort();
    files.extend(pages);
    files
}

fn broken_links(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let dir = file.parent().unwrap();
    let mut broken = vec![];
    for link in links(&text) {
        if link.contains("://") || link.starts_with("mailto:") {
            continue;
        }
        let (path, anchor) = match link.split_once('#') {
            Some((p, a)) => (p, Some(a)),
            None => (link.as_str(), None),
        };
        let target = if path.is_empty() {
            file.to_path_buf()
        } else {
            dir.join(path)
        };
        if !target.exists() {
            broken.push(format!("{link}: no file {}", target.display()));
            continue;
        }
        if let Some(a) = anchor {
            let is_md = target.extension().is_some_and(|e| e == "md");
            if is_md && !anchors(&std::fs::read_to_string(&target).unwrap()).contains(a) {
                broken.push(format!("{link}: no heading #{a} in {}", target.display()));
            }
        }
    }
    broken
}

#[test]
fn every_relative_link_in_the_docs_resolves() {
    let files = doc_files();
    let expected = [
        "guide.md",
        "daemon.md",
        "model-store.md",
        "configuration.md",
        "deploy.md",
        "evaluation.md",
        "performance.md",
        "testing.md",
        "architecture.md",
    ];
    for page in expected {
        assert!(
            root().join("docs").join(page).exists(),
            "docs/{page} missing"
        );
    }
    let mut broken = vec![];
    let mut checked = 0;
    for f in &files {
        checked += links(&std::fs::read_to_string(f).unwrap()).len();
        for b in broken_links(f) {
            broken.push(format!(
                "{}: {b}",
                f.strip_prefix(root()).unwrap().display()
            ));
        }
    }
    assert!(
        checked > 50,
        "only {checked} links found: the parser is broken"
    );
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_link_checker_sees_a_broken_file_and_a_broken_anchor() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("page.md");
    std::fs::write(
        &page,
        "# Title\n\n## Daemon memory at 100,000 keys\n\n[ok](#daemon-memory-at-100000-keys) \
         [gone](missing.md) [bad](#nowhere) `[code](not-a-link.md)`\n\n```\n[x](fenced.md)\n```\n",
    )
    .unwrap();
    let broken = broken_links(&page);
    assert_eq!(broken.len(), 2, "{broken:?}");
    assert!(broken[0].starts_with("missing.md"), "{broken:?}");
    assert!(broken[1].starts_with("#nowhere"), "{broken:?}");
}

#[test]
fn the_readme_has_at_most_300_lines() {
    let lines = read("README.md").lines().count();
    assert!(
        lines <= 300,
        "README.md has {lines} lines; move detail into docs/"
    );
}
