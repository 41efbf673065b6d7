//! The architecture as a test: modules point one way down the layers written in ARCHITECTURE.md
//! (its `layers` block, the one place the order is written), and every `§` reference in the code
//! names a section of docs/mesher-interface.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The layer order, lowest first, from ARCHITECTURE.md's fenced `layers` block (a module name
/// starts each line; the rest of the line describes it).
fn layers() -> Vec<String> {
    let doc = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let block = doc.split("```layers\n").nth(1).expect("ARCHITECTURE.md has a ```layers block");
    let block = &block[..block.find("```").expect("the layers block ends")];
    block.lines().filter_map(|l| l.split_whitespace().next()).map(str::to_string).collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The crate's top-level module of a file under src/ (`drive` for src/drive/lanes.rs).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_string()
}

/// Code without its comments: whole comment lines and trailing `// …` after code.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter_map(|(i, l)| {
        let t = l.trim_start();
        if t.starts_with("//") {
            return None;
        }
        let code = match l.find(" // ") {
            Some(k) if !l[..k].contains('"') => &l[..k],
            _ => l,
        };
        Some((i + 1, code))
    })
}

/// The top-level modules a line of code names through `crate::` (also inside `use crate::{a, b}`).
fn crate_refs(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(k) = rest.find("crate::") {
        let after = &rest[k + "crate::".len()..];
        let before = rest[..k].chars().last();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$' || c == ':') {
            rest = after;
            continue;
        }
        if let Some(group) = after.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if !name.is_empty() && name != "self" {
                    out.push(name);
                }
            }
        } else {
            let name: String = after.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                out.push(name);
            }
        }
        rest = after;
    }
    out
}

#[test]
fn every_module_imports_only_layers_below_it() {
    let order = layers();
    let rank: BTreeMap<&str, usize> = order.iter().enumerate().map(|(i, m)| (m.as_str(), i)).collect();
    let src = root().join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let declared: Vec<&str> =
        lib.lines().filter_map(|l| l.trim().strip_prefix("pub mod ")).map(|m| m.trim_end_matches(';')).collect();
    let unplaced: Vec<&&str> = declared.iter().filter(|m| !rank.contains_key(**m)).collect();
    assert!(unplaced.is_empty(), "modules of src/lib.rs missing from ARCHITECTURE.md's layers block: {unplaced:?}");

    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut upward = Vec::new();
    let mut edges = 0;
    for f in &files {
        let module = module_of(&src, f);
        let Some(&own) = rank.get(module.as_str()) else { continue }; // main.rs, lib.rs
        let text = std::fs::read_to_string(f).unwrap();
        for (line, code) in code_lines(&text) {
            for target in crate_refs(code) {
                if target == module {
                    continue;
                }
                edges += 1;
                match rank.get(target.as_str()) {
                    Some(&r) if r < own => {}
                    _ => upward.push(format!(
                        "{}:{line}: {module} imports {target} ({})",
                        f.strip_prefix(root()).unwrap().display(),
                        code.trim()
                    )),
                }
            }
        }
    }
    assert!(edges > 100, "the scan found only {edges} crate:: references: is it reading src/?");
    assert!(
        upward.is_empty(),
        "imports that run up the layers (order in ARCHITECTURE.md, lowest first: {}):\n{}",
        order.join(" < "),
        upward.join("\n")
    );
}

#[test]
fn the_scan_sees_grouped_and_plain_imports() {
    assert_eq!(crate_refs("use crate::{drive::x, report, self};"), ["drive", "report"]);
    assert_eq!(crate_refs("let a = crate::util::duration::parse(s); b::crate::x"), ["util"]);
    assert_eq!(crate_refs("$crate::x"), Vec::<String>::new());
    let lines: Vec<_> = code_lines("// crate::a\nlet x = crate::b; // crate::c\n").collect();
    assert_eq!(lines, [(2, "let x = crate::b;")]);
}

#[test]
fn every_section_reference_names_a_section_of_the_interface_doc() {
    let out = std::process::Command::new("python3")
        .arg(".ci/check-docs-refs")
        .current_dir(root())
        .output()
        .expect("python3 runs .ci/check-docs-refs (.ci/run installs it on a fresh machine)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("references resolve"), "{text}");
}
