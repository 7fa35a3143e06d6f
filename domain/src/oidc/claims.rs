//! What a trust binding requires of a token's claims, as data: the claims a binding may
//! name, the globs it matches them with, and the rules a binding must meet to be created
//! (it names the project or namespace by id, and something about the ref unless it is
//! explicitly unprotected). Pure: tested without an issuer.

use std::collections::BTreeMap;

/// Claims a binding may require (GitLab's names; every value is a string in its tokens).
pub const CLAIMS: &[&str] = &[
    "project_id",
    "namespace_id",
    "ref_type",
    "ref",
    "ref_path",
    "ref_protected",
    "environment",
    "environment_protected",
    "pipeline_source",
];

/// Claims that say which code may sign in: a binding without one trusts every branch.
const REF_CLAIMS: &[&str] = &["ref", "ref_path", "ref_protected", "environment", "environment_protected"];

/// Whether `value` matches `pattern`, where `*` is any run of characters and `?` one.
pub fn glob(pattern: &str, value: &str) -> bool {
    let (p, v): (Vec<char>, Vec<char>) = (pattern.chars().collect(), value.chars().collect());
    // Iterative matching with one backtrack point (the last `*`): linear in practice, never
    // exponential whatever the pattern.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < v.len() {
        if i < p.len() && (p[i] == '?' || p[i] == v[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

/// The problems of a binding's requirements, as (field, code, message).
pub fn check(required: &BTreeMap<String, String>, unprotected: bool) -> Vec<(String, &'static str, String)> {
    let mut out = Vec::new();
    for (k, v) in required {
        if !CLAIMS.contains(&k.as_str()) {
            out.push((format!("claims.{k}"), "unknown_claim", format!("one of {}", CLAIMS.join(", "))));
        } else if v.is_empty() || v.len() > 255 {
            out.push((format!("claims.{k}"), "invalid_value", "1-255 characters; `*` and `?` match".into()));
        }
    }
    let pinned = |k: &str| required.get(k).is_some_and(|v| !v.is_empty() && !v.contains(['*', '?']));
    if !pinned("project_id") && !pinned("namespace_id") {
        out.push((
            "claims".into(),
            "no_project",
            "require `project_id` or `namespace_id` (exact ids, not globs: paths can be renamed)".into(),
        ));
    }
    if !unprotected && !REF_CLAIMS.iter().any(|k| required.contains_key(*k)) {
        out.push((
            "claims".into(),
            "no_ref_requirement",
            "require something of the ref (`ref`, `ref_path`, `ref_protected`, `environment` or \
             `environment_protected`), or set `unprotected: true` to trust every branch of the project"
                .into(),
        ));
    }
    out
}

/// A claim's value as a string (GitLab sends strings; other issuers may send booleans or
/// numbers).
pub fn claim_text(claims: &serde_json::Map<String, serde_json::Value>, name: &str) -> Option<String> {
    match claims.get(name)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The first requirement the claims do not meet.
pub fn mismatch(
    required: &BTreeMap<String, String>,
    claims: &serde_json::Map<String, serde_json::Value>,
) -> Option<String> {
    required.iter().find_map(|(k, pattern)| match claim_text(claims, k) {
        Some(v) if glob(pattern, &v) => None,
        Some(v) => Some(format!("{k} is {v:?}, the binding requires {pattern:?}")),
        None => Some(format!("the token has no {k} claim")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn globs() {
        assert!(glob("main", "main"));
        assert!(!glob("main", "main2"));
        assert!(glob("release/*", "release/1.2"));
        assert!(!glob("release/*", "feature/x"));
        assert!(glob("v?.*", "v1.0"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("a*b*c", "aXXbYY"));
        assert!(glob(&"*a".repeat(20), &"a".repeat(40)), "no exponential blow-up");
    }

    #[test]
    fn bindings_must_pin_a_project_and_the_ref() {
        assert!(check(&req(&[("project_id", "42"), ("ref_protected", "true")]), false).is_empty());
        assert!(check(&req(&[("namespace_id", "7"), ("ref", "main")]), false).is_empty());
        assert!(check(&req(&[("project_id", "42")]), true).is_empty(), "explicitly unprotected");
        let codes = |r, u| check(&r, u).into_iter().map(|(_, c, _)| c).collect::<Vec<_>>();
        assert_eq!(codes(req(&[("project_id", "42")]), false), vec!["no_ref_requirement"]);
        assert_eq!(codes(req(&[("project_id", "4*"), ("ref", "main")]), false), vec!["no_project"]);
        assert_eq!(codes(req(&[("ref", "main")]), false), vec!["no_project"]);
        assert_eq!(
            codes(req(&[("project_path", "a/b"), ("project_id", "1"), ("ref", "main")]), false),
            vec!["unknown_claim"]
        );
    }

    #[test]
    fn claims_match_or_say_why_not() {
        let claims: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(r#"{"project_id": "42", "ref": "main", "ref_protected": "true", "flag": true}"#)
                .expect("json");
        assert_eq!(mismatch(&req(&[("project_id", "42"), ("ref", "ma*")]), &claims), None);
        assert_eq!(
            mismatch(&req(&[("project_id", "43")]), &claims).as_deref(),
            Some("project_id is \"42\", the binding requires \"43\"")
        );
        assert!(mismatch(&req(&[("environment", "prod")]), &claims).is_some_and(|m| m.contains("no environment")));
        assert_eq!(claim_text(&claims, "flag").as_deref(), Some("true"));
    }
}
