//! Diagnostics with attribute paths, as Terraform shows them next to the offending line.

use crate::proto::tfplugin6 as pb;

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Attr(String),
    Key(String),
    Index(i64),
}

/// A path to an attribute: `Path::attr("placement").attr("environment")`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Path(pub Vec<Step>);

impl Path {
    pub fn attr(name: &str) -> Self {
        Self(vec![Step::Attr(name.to_string())])
    }
    pub fn then(mut self, name: &str) -> Self {
        self.0.push(Step::Attr(name.to_string()));
        self
    }
    pub fn index(mut self, i: usize) -> Self {
        self.0.push(Step::Index(i as i64));
        self
    }
    pub fn key(mut self, k: &str) -> Self {
        self.0.push(Step::Key(k.to_string()));
        self
    }

    pub fn to_proto(&self) -> pb::AttributePath {
        use pb::attribute_path::step::Selector;
        pb::AttributePath {
            steps: self
                .0
                .iter()
                .map(|s| pb::attribute_path::Step {
                    selector: Some(match s {
                        Step::Attr(a) => Selector::AttributeName(a.clone()),
                        Step::Key(k) => Selector::ElementKeyString(k.clone()),
                        Step::Index(i) => Selector::ElementKeyInt(*i),
                    }),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone)]
struct Diag {
    error: bool,
    summary: String,
    detail: String,
    path: Option<Path>,
}

#[derive(Debug, Default, Clone)]
pub struct Diags(Vec<Diag>);

impl Diags {
    pub fn error(&mut self, summary: impl Into<String>, detail: impl Into<String>) {
        self.0.push(Diag { error: true, summary: summary.into(), detail: detail.into(), path: None });
    }
    pub fn error_at(&mut self, path: Path, summary: impl Into<String>, detail: impl Into<String>) {
        self.0.push(Diag { error: true, summary: summary.into(), detail: detail.into(), path: Some(path) });
    }
    pub fn warn(&mut self, summary: impl Into<String>, detail: impl Into<String>) {
        self.0.push(Diag { error: false, summary: summary.into(), detail: detail.into(), path: None });
    }
    pub fn warn_at(&mut self, path: Path, summary: impl Into<String>, detail: impl Into<String>) {
        self.0.push(Diag { error: false, summary: summary.into(), detail: detail.into(), path: Some(path) });
    }
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.error)
    }

    /// An API failure, with the attribute path of the field it names when it names one.
    pub fn api_error(&mut self, what: &str, e: &dbaas_client::ClientError, field_map: &[(&str, Path)]) {
        match e.problem() {
            Some(p) if !p.errors.is_empty() => {
                for fe in &p.errors {
                    let base = fe.field.split(['[', '.']).next().unwrap_or(&fe.field);
                    let path = field_map.iter().find(|(f, _)| *f == base).map(|(_, p)| p.clone());
                    let summary = format!("{what}: invalid {}", fe.field);
                    match path {
                        Some(path) => self.error_at(path, summary, fe.message.clone()),
                        None => self.error(summary, fe.message.clone()),
                    }
                }
            }
            Some(p) => {
                self.error(format!("{what}: {}", p.code.replace('_', " ")), format!("{} (HTTP {})", p.detail, p.status))
            }
            None => self.error(format!("{what}: the dbaas API could not be reached"), e.to_string()),
        }
    }

    pub fn to_proto(&self) -> Vec<pb::Diagnostic> {
        self.0
            .iter()
            .map(|d| pb::Diagnostic {
                severity: if d.error { pb::diagnostic::Severity::Error } else { pb::diagnostic::Severity::Warning }
                    as i32,
                summary: d.summary.clone(),
                detail: d.detail.clone(),
                attribute: d.path.as_ref().map(Path::to_proto),
            })
            .collect()
    }
}
