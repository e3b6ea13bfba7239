//! The docs cannot silently break: every relative link in `README.md` and `docs/**/*.md` points
//! at a file or folder of the repository, and every `#anchor` (to another file or to the same
//! one) at a heading of its target, by GitHub's slug rule. Links out of the repository
//! (`http://`, `https://`, `mailto:`) are refused: the project's docs hold none. Fenced code
//! blocks are not read, so a link-like line in an example is not taken for a link.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// GitHub's anchor for a heading: lowercase, spaces to `-`, every other character that is not
/// alphanumeric, `-` or `_` dropped (backticks, colons, parentheses, dots, ...).
fn slug(heading: &str) -> String {
    let kept = |c: &char| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_');
    heading.trim().to_lowercase().chars().filter(kept).map(|c| if c == ' ' { '-' } else { c }).collect()
}

/// The lines of a markdown file outside fenced code blocks, with their line numbers.
fn prose(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut fenced = false;
    let outside = move |(_, l): &(usize, &str)| {
        let fence = l.trim_start().starts_with("```");
        fenced ^= fence;
        !fence && !fenced
    };
    text.lines().enumerate().map(|(i, l)| (i + 1, l)).filter(outside)
}

/// The anchors of a file's headings; a repeated heading gets `-1`, `-2`, ... as on GitHub.
fn anchors(text: &str) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let headings = prose(text).filter(|(_, l)| l.starts_with('#') && l.trim_start_matches('#').starts_with(' '));
    let mut anchor = |(_, l): (usize, &str)| {
        let base = slug(l.trim_start_matches('#'));
        let n = seen.entry(base.clone()).or_default();
        *n += 1;
        if *n == 1 {
            base
        } else {
            format!("{base}-{}", *n - 1)
        }
    };
    headings.map(&mut anchor).collect()
}

/// The targets of the inline links `[text](target)` and `![alt](target)` on one line (the text
/// may have begun on an earlier line).
fn links(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("](") {
        let after = &rest[i + 2..];
        let Some(end) = after.find(')') else { break };
        let target = after[..end].trim();
        if !target.is_empty() && !target.contains(char::is_whitespace) {
            out.push(target);
        }
        rest = &after[end..];
    }
    out
}

fn markdown_files(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![root.join("README.md")];
    let mut dirs = vec![root.join("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn every_link_in_the_readme_and_docs_resolves() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = markdown_files(root);
    assert!(files.len() > 1, "no docs found under {}", root.join("docs").display());
    let mut broken = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let name = file.strip_prefix(root).unwrap().display();
        for (line, target) in prose(&text).flat_map(|(n, l)| links(l).into_iter().map(move |t| (n, t))) {
            let at = format!("{name}:{line}: ({target})");
            if ["http://", "https://", "mailto:"].iter().any(|p| target.starts_with(p)) {
                broken.push(format!("{at} leaves the repository; the docs link only to its own files"));
                continue;
            }
            let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
            let dest = if path.is_empty() { file.clone() } else { file.parent().unwrap().join(path) };
            let shown = dest.strip_prefix(root).unwrap_or(&dest).display();
            if !dest.exists() {
                broken.push(format!("{at} points at {shown}, which does not exist"));
                continue;
            }
            if !anchor.is_empty() {
                let heads = if dest.is_file() { anchors(&std::fs::read_to_string(&dest).unwrap()) } else { vec![] };
                if !heads.iter().any(|h| h == anchor) {
                    broken.push(format!("{at}: {shown} has no heading whose anchor is #{anchor}"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "{} broken link(s):\n{}", broken.len(), broken.join("\n"));
}

#[test]
fn anchors_follow_githubs_slug_rule() {
    let text = "# `prep`: from a URL list to per-server batches\n```\n# not a heading\n```\n## Memory of one rank (`make bench-scale`)\n## Memory of one rank (`make bench-scale`)\n";
    assert_eq!(
        anchors(text),
        [
            "prep-from-a-url-list-to-per-server-batches",
            "memory-of-one-rank-make-bench-scale",
            "memory-of-one-rank-make-bench-scale-1"
        ]
    );
    assert_eq!(links("see [a](b.md#c), ![i](img.png) and f(x) [not](a link)"), ["b.md#c", "img.png"]);
}
