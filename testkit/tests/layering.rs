//! The workspace's layering, checked: between the top-level modules of every crate (the files
//! and folders directly under `src/`), imports run one way, and no crate's `src/` grows past
//! [`MAX_CRATE_LINES`] lines.
//!
//! An edge `a -> b` is a path `crate::b…` (or a `super::` chain that reaches the crate root
//! and names `b`) in a file of module `a`, outside comments. Cycles are the strongly
//! connected components of that graph with more than one module. Today's debts are listed in
//! [`KNOWN`]: the check fails on a cycle or an oversized crate not listed there, and also
//! when a listed one is gone (so the list only ever shrinks, and says what is left to do).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Lines of Rust under one crate's `src/` (comments and blank lines included).
const MAX_CRATE_LINES: usize = 8_000;

/// Debts still to pay: (crate, the modules of one cycle, sorted) and oversized crates
/// (crate, ["lines"]). None today: a new cycle or an oversized crate fails the check.
const KNOWN: &[(&str, &[&str])] = &[];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The workspace's member crates (directories), from its Cargo.toml.
fn members(root: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(root.join("Cargo.toml")).expect("workspace Cargo.toml");
    let start = text.find("members").expect("a members list");
    let list = &text[start..text[start..].find(']').map(|e| start + e).expect("the list ends")];
    list.split('"').skip(1).step_by(2).map(str::to_string).collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a file under `src/` (`src/a/b.rs` and `src/a/b/mod.rs` are `[a, b]`).
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" && stem != "main" {
        parts.push(stem.to_string());
    }
    parts
}

/// The text without comments (line comments, doc comments and block comments).
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if rest.starts_with("//") {
            let end = rest.find('\n').unwrap_or(rest.len());
            rest = &rest[end..];
        } else if rest.starts_with("/*") {
            let end = rest.find("*/").map(|e| e + 2).unwrap_or(rest.len());
            rest = &rest[end..];
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

fn ident_at(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

/// The top-level modules a file's code names, seen from the crate root.
fn targets(code: &str, path: &[String]) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut add = |after: &str| {
        let after = after.trim_start();
        if let Some(group) = after.strip_prefix('{') {
            // `crate::{a, b::c}`: the first segment of each item of the group.
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            for item in inner.split(',') {
                let id = ident_at(item.trim());
                if !id.is_empty() {
                    found.insert(id.to_string());
                }
            }
        } else {
            let id = ident_at(after);
            if !id.is_empty() {
                found.insert(id.to_string());
            }
        }
    };
    for (i, _) in code.match_indices("crate::") {
        let before = code[..i].chars().last().unwrap_or(' ');
        if before.is_alphanumeric() || before == '_' || before == '$' {
            continue; // `dbaas_crate::`, `$crate::`
        }
        add(&code[i + "crate::".len()..]);
    }
    for (i, _) in code.match_indices("super::") {
        let before = code[..i].chars().last().unwrap_or(' ');
        if before.is_alphanumeric() || before == '_' || before == ':' {
            continue; // counted from the first `super::` of a chain
        }
        let mut depth = path.len();
        let mut rest = &code[i..];
        while let Some(r) = rest.strip_prefix("super::") {
            depth = depth.saturating_sub(1);
            rest = r;
        }
        if depth == 0 {
            add(rest);
        }
    }
    found
}

struct Crate {
    name: String,
    modules: BTreeSet<String>,
    /// Edges with one file that makes each, for the message.
    edges: BTreeMap<(String, String), PathBuf>,
    lines: usize,
}

fn scan(root: &Path, member: &str) -> Crate {
    let src = root.join(member).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut c = Crate { name: member.to_string(), modules: BTreeSet::new(), edges: BTreeMap::new(), lines: 0 };
    for f in &files {
        let text = std::fs::read_to_string(f).expect("readable source");
        c.lines += text.lines().count();
        let path = module_path(&src, f);
        if let Some(top) = path.first() {
            c.modules.insert(top.clone());
        }
    }
    for f in &files {
        let path = module_path(&src, f);
        // The crate root and a binary's main name what they contain: not an edge.
        let Some(from) = path.first().cloned() else { continue };
        let text = std::fs::read_to_string(f).expect("readable source");
        for to in targets(&code_only(&text), &path) {
            if to != from && c.modules.contains(&to) {
                c.edges.entry((from.clone(), to)).or_insert_with(|| f.clone());
            }
        }
    }
    c
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(modules: &BTreeSet<String>, edges: &BTreeMap<(String, String), PathBuf>) -> Vec<Vec<String>> {
    let names: Vec<&String> = modules.iter().collect();
    let index_of = |m: &str| names.iter().position(|n| n.as_str() == m);
    let mut adj = vec![Vec::new(); names.len()];
    for (a, b) in edges.keys() {
        if let (Some(i), Some(j)) = (index_of(a), index_of(b)) {
            adj[i].push(j);
        }
    }
    struct T {
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(v: usize, adj: &[Vec<usize>], t: &mut T) {
        t.index[v] = Some(t.next);
        t.low[v] = t.next;
        t.next += 1;
        t.stack.push(v);
        t.on[v] = true;
        for &w in &adj[v] {
            match t.index[w] {
                None => {
                    visit(w, adj, t);
                    t.low[v] = t.low[v].min(t.low[w]);
                }
                Some(iw) if t.on[w] => t.low[v] = t.low[v].min(iw),
                _ => {}
            }
        }
        if Some(t.low[v]) == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on[w] = false;
                comp.push(w);
                if w == v {
                    break;
                }
            }
            t.out.push(comp);
        }
    }
    let n = names.len();
    let mut t = T { index: vec![None; n], low: vec![0; n], on: vec![false; n], stack: vec![], next: 0, out: vec![] };
    for v in 0..n {
        if t.index[v].is_none() {
            visit(v, &adj, &mut t);
        }
    }
    let mut out: Vec<Vec<String>> = t
        .out
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|c| {
            let mut m: Vec<String> = c.into_iter().map(|i| names[i].clone()).collect();
            m.sort();
            m
        })
        .collect();
    out.sort();
    out
}

#[test]
fn top_level_modules_import_one_way_and_crates_stay_small() {
    let root = workspace();
    let mut found: Vec<(String, Vec<String>)> = Vec::new();
    let mut why = Vec::new();
    for member in members(&root) {
        let c = scan(&root, &member);
        for cycle in cycles(&c.modules, &c.edges) {
            let mut refs = Vec::new();
            for ((a, b), file) in &c.edges {
                if cycle.contains(a) && cycle.contains(b) {
                    refs.push(format!("{a} -> {b} ({})", file.strip_prefix(&root).unwrap_or(file).display()));
                }
            }
            why.push(format!("{}: cycle among {}:\n    {}", c.name, cycle.join(", "), refs.join("\n    ")));
            found.push((c.name.clone(), cycle));
        }
        if c.lines > MAX_CRATE_LINES {
            why.push(format!("{}: src/ holds {} lines (at most {MAX_CRATE_LINES})", c.name, c.lines));
            found.push((c.name.clone(), vec!["lines".to_string()]));
        }
    }
    let known: Vec<(String, Vec<String>)> =
        KNOWN.iter().map(|(c, m)| (c.to_string(), m.iter().map(|s| s.to_string()).collect())).collect();
    let new: Vec<&String> = why.iter().zip(&found).filter(|(_, f)| !known.contains(f)).map(|(w, _)| w).collect();
    assert!(new.is_empty(), "layering broken:\n{}", new.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n"));
    let paid: Vec<_> = known.iter().filter(|k| !found.contains(k)).collect();
    assert!(paid.is_empty(), "no longer a debt, remove it from KNOWN: {paid:?}");
}

#[test]
fn the_scan_sees_cycles_and_paths() {
    let path = vec!["catalog".to_string(), "repack".to_string()];
    let code = code_only(
        "use crate::ops::OpError; // crate::http in a comment\nuse super::super::{naming, store::x};\n\
         use super::conn; let y = dbaas_crate::z; $crate::w",
    );
    let t = targets(&code, &path);
    assert_eq!(t.into_iter().collect::<Vec<_>>(), vec!["naming", "ops", "store"]);
    let modules: BTreeSet<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
    let edge = |a: &str, b: &str| ((a.to_string(), b.to_string()), PathBuf::new());
    let edges: BTreeMap<_, _> = [edge("a", "b"), edge("b", "c"), edge("c", "a"), edge("c", "d")].into_iter().collect();
    assert_eq!(cycles(&modules, &edges), vec![vec!["a".to_string(), "b".into(), "c".into()]]);
    let one_way: BTreeMap<_, _> = [edge("a", "b"), edge("b", "c")].into_iter().collect();
    assert!(cycles(&modules, &one_way).is_empty());
}
