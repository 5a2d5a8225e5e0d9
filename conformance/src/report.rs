//! What a run found: per case passed, failed (with each failure's expected and received
//! side by side) or skipped (with the reason); the expected-failures baseline and its stale
//! entries; the exit code; the JUnit and JSON renderings.

use crate::case::Level;
use serde::Serialize;
use serde_json::Value;
use std::fmt::Write;

/// How one case ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum CaseStatus {
    /// Every check held.
    Passed,
    /// At least one check failed.
    Failed,
    /// Not run: not selected, a capability the adapter lacks, an action it does not support.
    Skipped,
}

/// One check that did not hold.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// What was checked: `step 3 (createConnection)`, `expect.requests[0]`, `leak`, ….
    pub check: String,
    /// Why it failed, in one or a few lines.
    pub message: String,
    /// The expectation (normalised where requests are compared).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<Value>,
    /// What was received, normalised alike.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub received: Option<Value>,
}

impl Failure {
    /// A failure without values to compare.
    pub fn new(check: impl Into<String>, message: impl Into<String>) -> Self {
        Self { check: check.into(), message: message.into(), expected: None, received: None }
    }

    /// A failure with the two sides.
    pub fn compared(
        check: impl Into<String>,
        message: impl Into<String>,
        expected: Value,
        received: Option<Value>,
    ) -> Self {
        Self { check: check.into(), message: message.into(), expected: Some(expected), received }
    }

    /// The failure as text: the message, then expected and received side by side.
    pub fn render(&self) -> String {
        let mut s = format!("{}: {}\n", self.check, self.message);
        if let Some(expected) = &self.expected {
            s.push_str(&side_by_side(expected, self.received.as_ref()));
        }
        s
    }
}

/// Two JSON values pretty-printed in two columns, equal lines aligned (a longest common
/// subsequence of the lines, trailing commas ignored); `*` marks the rows that differ.
pub fn side_by_side(expected: &Value, received: Option<&Value>) -> String {
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
    let left_text = pretty(expected);
    let right_text = match received {
        Some(v) => pretty(v),
        None => "(nothing)".to_owned(),
    };
    let left: Vec<&str> = left_text.lines().collect();
    let right: Vec<&str> = right_text.lines().collect();
    let width = left.iter().map(|l| l.chars().count()).max().unwrap_or(0).clamp(8, 70);
    let mut s = String::new();
    let _ = writeln!(s, "    {:<width$}   | received", "expected");
    for (l, r) in align(&left, &right) {
        let (l, r) = (l.unwrap_or(""), r.unwrap_or(""));
        let same = l.trim_end_matches(',') == r.trim_end_matches(',');
        let mark = if same { ' ' } else { '*' };
        let _ = writeln!(s, "  {mark} {l:<width$}   | {r}");
    }
    s
}

/// Rows of two line lists: equal lines side by side, the differing stretches between them
/// paired up in order.
fn align<'a>(left: &[&'a str], right: &[&'a str]) -> Vec<(Option<&'a str>, Option<&'a str>)> {
    let key = |l: &str| l.trim_end_matches(',').to_owned();
    // Beyond this many cells the rows are simply zipped: a diff that big is read another way.
    const MAX_CELLS: usize = 1 << 20;
    let (n, m) = (left.len(), right.len());
    if n.saturating_mul(m) > MAX_CELLS {
        return (0..n.max(m)).map(|i| (left.get(i).copied(), right.get(i).copied())).collect();
    }
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] =
                if key(left[i]) == key(right[j]) { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let mut rows = Vec::new();
    let (mut i, mut j) = (0, 0);
    let (mut only_left, mut only_right): (Vec<&str>, Vec<&str>) = (Vec::new(), Vec::new());
    let flush = |rows: &mut Vec<_>, a: &mut Vec<&'a str>, b: &mut Vec<&'a str>| {
        for k in 0..a.len().max(b.len()) {
            rows.push((a.get(k).copied(), b.get(k).copied()));
        }
        a.clear();
        b.clear();
    };
    while i < n || j < m {
        if i < n && j < m && key(left[i]) == key(right[j]) {
            flush(&mut rows, &mut only_left, &mut only_right);
            rows.push((Some(left[i]), Some(right[j])));
            i += 1;
            j += 1;
        } else if j >= m || (i < n && lcs[i + 1][j] >= lcs[i][j + 1]) {
            only_left.push(left[i]);
            i += 1;
        } else {
            only_right.push(right[j]);
            j += 1;
        }
    }
    flush(&mut rows, &mut only_left, &mut only_right);
    rows
}

/// One case's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CaseReport {
    /// The case id.
    pub id: String,
    /// MUST or SHOULD.
    pub level: Level,
    /// Its statement.
    pub statement: String,
    /// Its file.
    pub file: String,
    /// How it ended.
    pub status: CaseStatus,
    /// Why it was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<String>,
    /// What failed (empty unless `Failed`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<Failure>,
    /// Listed in the expected-failures file.
    pub expected_failure: bool,
    /// Selected by `--case` (a case not selected is reported skipped, for JUnit's one
    /// testcase per catalog case, and left out of the human summary).
    pub selected: bool,
    /// The sandbox it ran in (empty when not run).
    pub sandbox: String,
    /// The doors (surface and host form) its requests used: reported, never a failure.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub doors: Vec<String>,
    /// What the adapter wrote on stderr (the end of it when long).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub stderr: String,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
}

impl CaseReport {
    /// A case that did not run.
    pub fn skipped(case: &crate::case::LoadedCase, reason: impl Into<String>) -> Self {
        Self {
            id: case.case.id.clone(),
            level: case.case.level,
            statement: case.case.statement.clone(),
            file: case.file.clone(),
            status: CaseStatus::Skipped,
            skip_reason: Some(reason.into()),
            failures: Vec::new(),
            expected_failure: false,
            selected: true,
            sandbox: String::new(),
            doors: Vec::new(),
            stderr: String::new(),
            duration_ms: 0,
        }
    }

    /// Whether this result fails the run: a MUST case failed that was not expected to.
    pub fn fails_run(&self) -> bool {
        self.status == CaseStatus::Failed && self.level == Level::Must && !self.expected_failure
    }
}

/// A whole run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The run id (8 lower-case hex digits; sandboxes are `conf-{runId}-{n}`).
    pub run_id: String,
    /// The adapter command.
    pub adapter: String,
    /// One entry per catalog case, in id order.
    pub cases: Vec<CaseReport>,
    /// Expected-failures entries that are stale: the case passed, or no case has that id.
    pub stale: Vec<String>,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
}

/// The run's verdict as a process exit code (conformance.md): 0 when no MUST case failed
/// and no expected-failures entry is stale, 1 otherwise. (2, usage and infrastructure
/// errors, never comes from a report.)
impl Report {
    /// 0 or 1.
    pub fn exit_code(&self) -> i32 {
        i32::from(self.cases.iter().any(CaseReport::fails_run) || !self.stale.is_empty())
    }

    /// How many cases ended so.
    pub fn count(&self, status: CaseStatus) -> usize {
        self.cases.iter().filter(|c| c.status == status).count()
    }

    /// The case with this id.
    pub fn case(&self, id: &str) -> Option<&CaseReport> {
        self.cases.iter().find(|c| c.id == id)
    }

    /// The human summary: one line per case, each failure in full, then the totals.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for c in self.cases.iter().filter(|c| c.selected) {
            let tag = match c.status {
                CaseStatus::Passed => "PASS",
                CaseStatus::Failed if c.expected_failure => "XFAIL",
                CaseStatus::Failed => "FAIL",
                CaseStatus::Skipped => "SKIP",
            };
            let _ = write!(s, "{tag:<5} {} [{}]", c.id, c.level.as_str());
            if let Some(r) = &c.skip_reason {
                let _ = write!(s, " — {r}");
            }
            s.push('\n');
            if c.status == CaseStatus::Failed {
                let _ = writeln!(s, "      {} ({})", c.statement, c.file);
                for f in &c.failures {
                    for line in f.render().lines() {
                        let _ = writeln!(s, "      {line}");
                    }
                }
                if !c.stderr.is_empty() {
                    let _ = writeln!(s, "      adapter stderr:");
                    for line in c.stderr.lines() {
                        let _ = writeln!(s, "        {line}");
                    }
                }
            }
        }
        for id in &self.stale {
            let _ = writeln!(s, "STALE {id} — listed in the expected failures, but it did not fail");
        }
        let failed_must = self.cases.iter().filter(|c| c.fails_run()).count();
        let _ = writeln!(
            s,
            "{} passed, {} failed ({} MUST), {} expected failures, {} skipped, {} not selected, {} stale; run {} in {:.1} s",
            self.count(CaseStatus::Passed),
            self.cases.iter().filter(|c| c.status == CaseStatus::Failed && !c.expected_failure).count(),
            failed_must,
            self.cases.iter().filter(|c| c.status == CaseStatus::Failed && c.expected_failure).count(),
            self.cases.iter().filter(|c| c.status == CaseStatus::Skipped && c.selected).count(),
            self.cases.iter().filter(|c| !c.selected).count(),
            self.stale.len(),
            self.run_id,
            self.duration_ms as f64 / 1000.0
        );
        s
    }

    /// The JSON report (`--json`).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The JUnit XML report (`--junit`): one `<testcase>` per catalog case, classname the id's
    /// first two segments, skipped ones as `<skipped/>`, failures with their rendering.
    pub fn to_junit(&self) -> String {
        let failures = self.cases.iter().filter(|c| c.status == CaseStatus::Failed).count();
        let skipped = self.count(CaseStatus::Skipped);
        let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            s,
            "<testsuites name=\"conformance\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\" time=\"{:.3}\">",
            self.cases.len(),
            self.duration_ms as f64 / 1000.0
        );
        let _ = writeln!(
            s,
            "  <testsuite name=\"conformance\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{:.3}\">",
            self.cases.len(),
            self.duration_ms as f64 / 1000.0
        );
        for c in &self.cases {
            let classname = c.id.split('/').take(2).collect::<Vec<_>>().join("/");
            let _ = write!(
                s,
                "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\">",
                xml(&c.id),
                xml(&classname),
                c.duration_ms as f64 / 1000.0
            );
            match c.status {
                CaseStatus::Passed => {}
                CaseStatus::Skipped => {
                    let _ = write!(s, "<skipped message=\"{}\"/>", xml(c.skip_reason.as_deref().unwrap_or("")));
                }
                CaseStatus::Failed => {
                    let first = c.failures.first().map_or(String::new(), |f| format!("{}: {}", f.check, f.message));
                    let body: String = c.failures.iter().map(Failure::render).collect();
                    let kind = if c.expected_failure { "expected failure" } else { c.level.as_str() };
                    let _ = write!(s, "<failure message=\"{}\" type=\"{kind}\">{}</failure>", xml(&first), xml(&body));
                    if !c.stderr.is_empty() {
                        let _ = write!(s, "<system-err>{}</system-err>", xml(&c.stderr));
                    }
                }
            }
            s.push_str("</testcase>\n");
        }
        s.push_str("  </testsuite>\n</testsuites>\n");
        s
    }
}

/// Text escaped for XML attributes and content; characters XML 1.0 cannot hold are dropped.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// Reads an expected-failures file: one case id per line; `#` starts a comment.
pub fn parse_expected_failures(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Removes what must never reach a report: the sandbox's secrets (and their default-world
/// forms) and anything shaped like a token, wherever an adapter's stderr or outcome put them.
#[derive(Debug)]
pub struct Scrubber {
    secrets: Option<aho_corasick::AhoCorasick>,
}

impl Scrubber {
    /// A scrubber for these secrets.
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        let list: Vec<&str> = secrets.into_iter().filter(|s| !s.is_empty()).collect();
        let secrets =
            aho_corasick::AhoCorasick::builder().match_kind(aho_corasick::MatchKind::LeftmostLongest).build(list).ok();
        Self { secrets }
    }

    /// `s` without secrets or tokens.
    pub fn text(&self, s: &str) -> String {
        let s = match &self.secrets {
            Some(m) => m.replace_all(s, &vec!["<redacted>"; m.patterns_len()]),
            None => s.to_owned(),
        };
        let jwts = mock_server::tokens::find_jwts(&s);
        if jwts.is_empty() {
            return s;
        }
        let mut out = String::with_capacity(s.len());
        let mut last = 0;
        for (start, end) in jwts {
            out.push_str(&s[last..start]);
            out.push_str("<redacted:token>");
            last = end;
        }
        out.push_str(&s[last..]);
        out
    }

    /// Every string of `v` scrubbed.
    pub fn value(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.text(s)),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.value(x)).collect()),
            Value::Object(o) => Value::Object(o.iter().map(|(k, x)| (k.clone(), self.value(x))).collect()),
            _ => v.clone(),
        }
    }

    /// A case's report scrubbed: stderr and every failure.
    pub fn case(&self, report: &mut CaseReport) {
        report.stderr = self.text(&report.stderr);
        for f in &mut report.failures {
            f.message = self.text(&f.message);
            f.expected = f.expected.as_ref().map(|v| self.value(v));
            f.received = f.received.as_ref().map(|v| self.value(v));
        }
    }
}
