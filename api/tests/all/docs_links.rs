//! Every relative link in README.md and docs/ (and the Markdown they sit beside: examples,
//! modules) points at a file or directory that exists. Links to other sites are not fetched.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() && !name.starts_with('.') && name != "target" && name != "node_modules" {
            markdown_files(&path, out);
        } else if name.ends_with(".md") {
            out.push(path);
        }
    }
}

/// The targets of `[text](target)` links in Markdown text (code spans and blocks skipped).
fn links(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut in_block = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            continue;
        }
        // Drop inline code so `[a](b)` examples in backticks do not count.
        let mut plain = String::new();
        for (i, part) in line.split('`').enumerate() {
            if i % 2 == 0 {
                plain.push_str(part);
            }
        }
        let mut rest = plain.as_str();
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            found.push(after[..end].trim().to_string());
            rest = &after[end..];
        }
    }
    found
}

#[test]
fn relative_links_resolve() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = vec![root.join("README.md")];
    for dir in ["docs", "examples", "modules"] {
        markdown_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 10, "found only {files:?}");
    let mut broken = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for link in links(&text) {
            if link.contains("://") || link.starts_with("mailto:") || link.starts_with('#') || link.is_empty() {
                continue;
            }
            let path = link.split('#').next().unwrap();
            let target =
                if let Some(abs) = path.strip_prefix('/') { root.join(abs) } else { file.parent().unwrap().join(path) };
            if !target.exists() {
                broken.push(format!("{} -> {link}", file.strip_prefix(&root).unwrap_or(file).display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken relative links:\n{}", broken.join("\n"));
}

#[test]
fn the_link_finder_finds_links() {
    let text = "see [a](docs/a.md) and [b](https://x.y)\n`[c](no.md)`\n```\n[d](no.md)\n```\n[e](../e.md#part)";
    assert_eq!(links(text), vec!["docs/a.md", "https://x.y", "../e.md#part"]);
}
