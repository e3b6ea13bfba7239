//! No import loop between the files of the product crate: every `crate::`, `super::` and
//! `self::` path in `src/` (in `use` lines and in code alike; comments and test modules left out)
//! is resolved to the file of the longest module it names, and the files must form no circle.
//! A loop is reported with the files in it and the paths that tie them, so it can be cut where
//! it is. Modules placed with `#[path = "..."]` are followed to their files. On the same graph:
//! `host` (the politeness rules) is a leaf that reads no clock, and the lower layers never import
//! the coordinator, the subcommands or (for the HTTP client) the config.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module of a file by where it lies (`a/b.rs` and `a/b/mod.rs` are `a::b`).
fn module_by_place(rel: &Path) -> Module {
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string()).collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// The code of a file without comments and without its trailing `#[cfg(test)] mod tests`.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// Every path named in `code` from `crate`, `super` or `self`, made absolute from `module`.
/// A `use` with braces is expanded, one path per item.
fn paths(code: &str, module: &Module, is_dir_module: bool) -> Vec<Module> {
    let flat = expand_braces(code);
    let mut out = Vec::new();
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let mut rest = flat.as_str();
    while let Some(i) = rest.find(['c', 's']) {
        let before_ok = i == 0 || !rest[..i].ends_with(|c: char| word(c) || c == ':');
        let tail = &rest[i..];
        let head = ["crate::", "super::", "self::"].into_iter().find(|h| tail.starts_with(h));
        match head {
            Some(h) if before_ok => {
                let end = tail.find(|c: char| !(word(c) || c == ':')).unwrap_or(tail.len());
                let segs: Vec<&str> = tail[..end].split("::").filter(|s| !s.is_empty()).collect();
                let mut abs: Module = match h {
                    "crate::" => Vec::new(),
                    _ if is_dir_module || h == "self::" => module.clone(),
                    _ => module[..module.len().saturating_sub(1)].to_vec(),
                };
                let mut segs = segs.into_iter().skip(1).peekable();
                if h == "super::" && is_dir_module {
                    abs.pop();
                }
                while segs.peek() == Some(&"super") {
                    segs.next();
                    abs.pop();
                }
                abs.extend(segs.map(str::to_string));
                out.push(abs);
                rest = &tail[end..];
            }
            _ => rest = &tail[1..],
        }
    }
    out
}

/// `use a::{b, c::{d, e}};` as `a::b a::c::d a::c::e`, so each item is one path.
fn expand_braces(code: &str) -> String {
    let mut text = code.replace(char::is_whitespace, " ");
    while let Some(open) = text.find("::{") {
        let start = text[..open].rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).map_or(0, |i| i + 1);
        let (mut depth, mut close) = (0, open + 2);
        for (k, c) in text[open + 2..].char_indices() {
            depth += match c {
                '{' => 1,
                '}' => -1,
                _ => 0,
            };
            if depth == 0 {
                close = open + 2 + k;
                break;
            }
        }
        let prefix = &text[start..open];
        let items = split_top(&text[open + 3..close]);
        let expanded: Vec<String> = items.iter().map(|i| format!("{prefix}::{}", i.trim())).collect();
        text = format!("{}{}{}", &text[..start], expanded.join(" "), &text[close + 1..]);
    }
    text
}

/// `a, b::{c, d}, e` split at the commas outside braces.
fn split_top(s: &str) -> Vec<String> {
    let (mut parts, mut depth, mut cur) = (Vec::new(), 0, String::new());
    for c in s.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    parts.push(cur);
    parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

/// The crate's files by module, and its import edges: file -> file, with the paths that make them.
struct Graph {
    src: PathBuf,
    file_module: BTreeMap<PathBuf, Module>,
    edges: BTreeMap<PathBuf, BTreeMap<PathBuf, BTreeSet<String>>>,
}

fn import_graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.retain(|f| f != &src.join("main.rs"));
    let mut modules: BTreeMap<Module, PathBuf> = BTreeMap::new();
    for f in &files {
        modules.insert(module_by_place(f.strip_prefix(&src).unwrap()), f.clone());
    }
    // `#[path = "x.rs"] mod name;` puts x.rs at parent::name.
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let parent = module_by_place(f.strip_prefix(&src).unwrap());
        for (i, _) in text.match_indices("#[path = \"") {
            let quoted = &text[i + 10..];
            let file = &quoted[..quoted.find('"').unwrap()];
            let after = &quoted[quoted.find("mod ").unwrap() + 4..];
            let name = after[..after.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap()].to_string();
            let target = f.parent().unwrap().join(file);
            modules.retain(|_, p| p != &target);
            modules.insert([parent.clone(), vec![name]].concat(), target);
        }
    }
    let file_module: BTreeMap<PathBuf, Module> = modules.iter().map(|(m, f)| (f.clone(), m.clone())).collect();
    // Edges: file -> file, with the paths that make them.
    let mut edges: BTreeMap<PathBuf, BTreeMap<PathBuf, BTreeSet<String>>> = BTreeMap::new();
    for (file, module) in &file_module {
        if module.last().is_some_and(|m| m == "tests") {
            continue;
        }
        let is_dir = file.ends_with("mod.rs") || file.ends_with("lib.rs");
        for path in paths(&code(&std::fs::read_to_string(file).unwrap()), module, is_dir) {
            let target = (0..=path.len()).rev().find_map(|n| modules.get(&path[..n]));
            if let Some(target) = target.filter(|t| *t != file) {
                edges.entry(file.clone()).or_default().entry(target.clone()).or_default().insert(path.join("::"));
            }
        }
    }
    assert!(edges.len() > 50, "the check reads the crate's imports: only {} files import anything", edges.len());
    Graph { src, file_module, edges }
}

#[test]
fn the_product_crate_has_no_import_loop() {
    let Graph { src, file_module, edges } = import_graph();
    // Files that reach each other are in one loop.
    let reach = |from: &PathBuf| -> BTreeSet<PathBuf> {
        let (mut seen, mut stack) = (BTreeSet::new(), vec![from.clone()]);
        while let Some(f) = stack.pop() {
            for next in edges.get(&f).into_iter().flat_map(|e| e.keys()) {
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&PathBuf, BTreeSet<PathBuf>> = file_module.keys().map(|f| (f, reach(f))).collect();
    let mut loops = Vec::new();
    for (a, from_a) in &reaches {
        for b in from_a.iter().filter(|b| *b > *a && reaches.get(b).is_some_and(|r| r.contains(*a))) {
            let why = |x: &PathBuf, y: &PathBuf| edges.get(x).and_then(|e| e.get(y)).map(|p| format!("{p:?}"));
            let name = |p: &PathBuf| p.strip_prefix(&src).unwrap().display().to_string();
            loops.push(format!(
                "{} <-> {} (direct: {} / {})",
                name(a),
                name(b),
                why(a, b).unwrap_or_else(|| "via others".into()),
                why(b, a).unwrap_or_else(|| "via others".into())
            ));
        }
    }
    assert!(
        loops.is_empty(),
        "files of src/ that import each other, directly or through others:\n{}",
        loops.join("\n")
    );
}

/// Files under `src/<from>` import nothing under any of `src/<to>`.
fn imports_across(g: &Graph, from: &str, to: &[&str]) -> Vec<String> {
    let under = |f: &PathBuf, dir: &str| f.strip_prefix(&g.src).unwrap().starts_with(dir);
    let mut found = Vec::new();
    for (file, targets) in g.edges.iter().filter(|(f, _)| under(f, from)) {
        for (target, why) in targets.iter().filter(|(t, _)| to.iter().any(|d| under(t, d))) {
            let name = |p: &PathBuf| p.strip_prefix(&g.src).unwrap().display().to_string();
            found.push(format!("{} -> {} ({why:?})", name(file), name(target)));
        }
    }
    found
}

/// `host` is the politeness logic as a leaf: it imports nothing else of the crate, and its code
/// (tests aside) reads no clock and uses no actor, runtime or HTTP crate, so every rule in it is
/// tested on a simulated clock.
#[test]
fn the_politeness_rules_are_a_leaf_that_reads_no_clock() {
    let g = import_graph();
    let others: Vec<String> = g
        .file_module
        .values()
        .filter_map(|m| m.first().cloned())
        .filter(|top| top != "host")
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let others: Vec<&str> = others.iter().map(String::as_str).chain(["lib.rs"]).collect();
    let out = imports_across(&g, "host", &others);
    assert!(out.is_empty(), "src/host/ imports from the rest of the crate:\n{}", out.join("\n"));
    let mut host_files = Vec::new();
    rust_files(&g.src.join("host"), &mut host_files);
    assert!(host_files.len() >= 8, "src/host/ holds the politeness logic: {host_files:?}");
    for f in host_files.iter().filter(|f| !f.to_string_lossy().ends_with("_tests.rs")) {
        let text = code(&std::fs::read_to_string(f).unwrap());
        for banned in ["Instant::now", "SystemTime::now", "actix", "tokio", "reqwest", "rand::", "std::fs", "std::net"]
        {
            assert!(
                !text.contains(banned),
                "{} uses {banned}: the caller passes time in and does the I/O",
                f.display()
            );
        }
    }
}

/// The layers point one way: the actors and the code below them never import the coordinator
/// (`download`) or the subcommands (`commands`), and the HTTP client never imports the config.
#[test]
fn lower_layers_do_not_import_the_coordinator_or_the_config() {
    let g = import_graph();
    let mut found = Vec::new();
    for low in ["actors", "fetch", "robots", "store", "imaging", "telemetry"] {
        found.extend(imports_across(&g, low, &["download", "commands"]));
    }
    found.extend(imports_across(&g, "fetch", &["config"]));
    assert!(found.is_empty(), "imports pointing back up:\n{}", found.join("\n"));
}

/// Every `mod.rs` holds its folder's docs, `mod` and `use` lines and at most one short shared
/// type (such as the module's error enum): no function, no `impl`, and the code its folder does
/// lives in files named for what they do.
#[test]
fn mod_rs_files_hold_docs_mod_lines_and_at_most_one_short_type() {
    let g = import_graph();
    let mut found = Vec::new();
    let mod_files: Vec<&PathBuf> = g.file_module.keys().filter(|f| f.ends_with("mod.rs")).collect();
    assert!(mod_files.len() >= 15, "the crate's folders: {mod_files:?}");
    for f in mod_files {
        let text = code(&std::fs::read_to_string(f).unwrap());
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        let name = f.strip_prefix(&g.src).unwrap().display();
        let top: Vec<&str> = text.lines().filter(|l| !l.starts_with(' ') && !l.trim().is_empty()).collect();
        let fns = top.iter().filter(|l| l.contains("fn ") || l.starts_with("impl")).count();
        let types = top.iter().filter(|l| l.contains("struct ") || l.contains("enum ")).count();
        let body = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with("pub mod") && !l.starts_with("mod "))
            .filter(|l| !l.starts_with("pub use") && !l.starts_with("use ") && !l.starts_with("pub(crate) mod"))
            .count();
        if fns > 0 || types > 1 || body > 60 {
            found.push(format!("{name}: {fns} function(s) or impl(s), {types} type(s), {body} lines of code"));
        }
    }
    assert!(found.is_empty(), "mod.rs files that hold code:\n{}", found.join("\n"));
}
