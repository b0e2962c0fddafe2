//! Findings and how they are written: text for people, JSON for scripts,
//! JUnit for CI test tabs, SARIF for code-scanning dashboards. A finding
//! names the layer and the history step that made what it judges; no
//! output ever carries a secret value (the checks never put one in).

use std::fmt::Write as _;

use serde::Serialize;

/// What a check concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Warn,
    Fail,
    Skip,
}

/// Where in the image a finding points.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Location {
    /// 0-based layer index and its diff id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer_digest: Option<String>,
    /// 0-based index into the image history and that step's command.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_step: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// A file path, `config.Env[NAME]`, `config.Labels[NAME]`, `history`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub place: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Stable check id (`entrypoint`, `user`, `credentials`, ...).
    pub check: &'static str,
    pub outcome: Outcome,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
}

impl Finding {
    pub fn new(check: &'static str, outcome: Outcome, message: impl Into<String>) -> Finding {
        Finding {
            check,
            outcome,
            message: message.into(),
            location: None,
        }
    }

    pub fn at(mut self, location: Location) -> Finding {
        self.location = Some(location);
        self
    }
}

/// Every check id with its one-line description (SARIF rules, JUnit cases).
pub const CHECKS: &[(&str, &str)] = &[
    ("entrypoint", "vinit is ENTRYPOINT[0], in exec form"),
    (
        "vinit-binary",
        "vinit is static, owned by root, not writable by others, not set-uid",
    ),
    (
        "user",
        "USER resolves to a uid other than 0 through the image's /etc/passwd",
    ),
    (
        "secret-env",
        "every env value whose name looks secret is a vault:/bao: reference",
    ),
    (
        "credentials",
        "no token, secret_id, .vault-token or private key in any layer, history, label or config",
    ),
    ("render-dir", "the render directory exists and is empty"),
    (
        "healthcheck",
        "a HEALTHCHECK's start_period covers vinit's start-up deadline",
    ),
    (
        "vinit-check",
        "vinit --check passes on the image's own environment and config",
    ),
    (
        "known-values",
        "no known secret value in any layer, history, label or config",
    ),
];

/// Replaces every occurrence of a known value in what a finding prints (a
/// history command can hold one: `RUN echo VALUE > file`).
pub fn scrub(findings: &mut [Finding], values: &[&[u8]]) {
    let scrub_text = |text: &mut String| {
        for value in values {
            if let Ok(value) = std::str::from_utf8(value) {
                if !value.is_empty() && text.contains(value) {
                    *text = text.replace(value, "***");
                }
            }
        }
    };
    for finding in findings {
        scrub_text(&mut finding.message);
        if let Some(location) = &mut finding.location {
            if let Some(created_by) = &mut location.created_by {
                scrub_text(created_by);
            }
            if let Some(place) = &mut location.place {
                scrub_text(place);
            }
        }
    }
}

pub fn failed(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.outcome == Outcome::Fail)
}

fn describe_location(location: &Location) -> String {
    let mut parts = Vec::new();
    if let Some(place) = &location.place {
        parts.push(place.clone());
    }
    if let Some(layer) = location.layer {
        let digest = location.layer_digest.as_deref().unwrap_or("");
        parts.push(format!("layer {layer} ({})", short(digest)));
    }
    if let Some(step) = location.history_step {
        let by = location.created_by.as_deref().unwrap_or("");
        parts.push(format!("history step {step}: {}", clip(by, 90)));
    }
    parts.join(", ")
}

fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

fn clip(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max {
        text.to_string()
    } else {
        format!("{}...", text.chars().take(max).collect::<String>())
    }
}

pub fn text(image: &str, findings: &[Finding]) -> String {
    let mut out = format!("vinit-bakery check {image}\n");
    for finding in findings {
        let tag = match finding.outcome {
            Outcome::Pass => "PASS",
            Outcome::Warn => "WARN",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "SKIP",
        };
        let _ = write!(out, "{tag} {:<13} {}", finding.check, finding.message);
        if let Some(location) = &finding.location {
            let _ = write!(out, "\n     {:<13} at {}", "", describe_location(location));
        }
        out.push('\n');
    }
    let count = |o| findings.iter().filter(|f| f.outcome == o).count();
    let _ = writeln!(
        out,
        "{} passed, {} failed, {} warned, {} skipped: {}",
        count(Outcome::Pass),
        count(Outcome::Fail),
        count(Outcome::Warn),
        count(Outcome::Skip),
        if failed(findings) { "FAILED" } else { "ok" }
    );
    out
}

pub fn json(image: &str, findings: &[Finding]) -> String {
    let document = serde_json::json!({
        "image": image,
        "passed": !failed(findings),
        "findings": findings,
    });
    serde_json::to_string_pretty(&document).unwrap_or_default() + "\n"
}

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// One test case per check; its failures and warnings listed inside.
pub fn junit(image: &str, findings: &[Finding]) -> String {
    let mut cases = String::new();
    let mut failures = 0;
    let mut skipped = 0;
    for (check, description) in CHECKS {
        let own: Vec<&Finding> = findings.iter().filter(|f| f.check == *check).collect();
        if own.is_empty() {
            continue;
        }
        let lines: Vec<String> = own
            .iter()
            .map(|f| match &f.location {
                Some(l) => format!("{:?}: {} ({})", f.outcome, f.message, describe_location(l)),
                None => format!("{:?}: {}", f.outcome, f.message),
            })
            .collect();
        let body = xml_escape(&lines.join("\n"));
        let _ = write!(
            cases,
            "    <testcase classname=\"vinit-bakery.{}\" name=\"{}: {}\">",
            xml_escape(image),
            check,
            xml_escape(description)
        );
        if own.iter().any(|f| f.outcome == Outcome::Fail) {
            failures += 1;
            let _ = write!(cases, "<failure message=\"{check} failed\">{body}</failure>");
        } else if own.iter().all(|f| f.outcome == Outcome::Skip) {
            skipped += 1;
            let _ = write!(cases, "<skipped message=\"{body}\"/>");
        } else {
            let _ = write!(cases, "<system-out>{body}</system-out>");
        }
        cases.push_str("</testcase>\n");
    }
    let total = CHECKS
        .iter()
        .filter(|(c, _)| findings.iter().any(|f| f.check == *c))
        .count();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n  <testsuite name=\"vinit-bakery check {}\" tests=\"{total}\" failures=\"{failures}\" skipped=\"{skipped}\" errors=\"0\">\n{cases}  </testsuite>\n</testsuites>\n",
        xml_escape(image)
    )
}

/// SARIF 2.1.0: one rule per check, one result per failure or warning.
pub fn sarif(image: &str, findings: &[Finding]) -> String {
    let rules: Vec<serde_json::Value> = CHECKS
        .iter()
        .map(|(id, description)| {
            serde_json::json!({
                "id": id,
                "shortDescription": { "text": description },
            })
        })
        .collect();
    let results: Vec<serde_json::Value> = findings
        .iter()
        .filter(|f| matches!(f.outcome, Outcome::Fail | Outcome::Warn))
        .map(|f| {
            let mut logical = vec![serde_json::json!({ "name": image, "kind": "image" })];
            if let Some(location) = &f.location {
                logical.push(serde_json::json!({
                    "name": describe_location(location),
                    "kind": "layer",
                }));
            }
            let mut result = serde_json::json!({
                "ruleId": f.check,
                "level": if f.outcome == Outcome::Fail { "error" } else { "warning" },
                "message": { "text": f.message },
                "locations": [{ "logicalLocations": logical }],
            });
            if let Some(Location {
                place: Some(place), ..
            }) = &f.location
            {
                if place.starts_with('/') {
                    result["locations"][0]["physicalLocation"] =
                        serde_json::json!({ "artifactLocation": { "uri": place.trim_start_matches('/') } });
                }
            }
            result
        })
        .collect();
    let document = serde_json::json!({
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [{
            "tool": { "driver": {
                "name": "vinit-bakery",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&document).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Finding> {
        vec![
            Finding::new("user", Outcome::Fail, "USER is root <uid 0>"),
            Finding::new("entrypoint", Outcome::Pass, "ok"),
            Finding::new("credentials", Outcome::Fail, ".vault-token").at(Location {
                layer: Some(1),
                layer_digest: Some("sha256:0123456789abcdef".into()),
                history_step: Some(3),
                created_by: Some("RUN echo x > /root/.vault-token".into()),
                place: Some("/root/.vault-token".into()),
            }),
        ]
    }

    #[test]
    fn text_names_layer_and_history_step() {
        let out = text("img", &sample());
        assert!(out.contains("layer 1 (0123456789ab)"), "{out}");
        assert!(out.contains("history step 3: RUN echo x"), "{out}");
        assert!(
            out.ends_with("1 passed, 2 failed, 0 warned, 0 skipped: FAILED\n"),
            "{out}"
        );
    }

    #[test]
    fn junit_escapes_and_counts_failures() {
        let out = junit("img", &sample());
        assert!(out.contains("failures=\"2\""), "{out}");
        assert!(out.contains("&lt;uid 0&gt;"), "{out}");
    }

    #[test]
    fn sarif_has_one_result_per_failure() {
        let out: serde_json::Value = serde_json::from_str(&sarif("img", &sample())).unwrap();
        let results = out["runs"][0]["results"].as_array().unwrap();
        assert_eq!(results.len(), 2);
        assert_eq!(results[1]["ruleId"], "credentials");
        assert_eq!(
            results[1]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            "root/.vault-token"
        );
    }
}
