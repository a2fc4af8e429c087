//! The modules of `src/` depend in one direction: the order that `docs/architecture.md`
//! declares under "Module order" (lowest first), read from that file so that it is the one
//! source of truth.
//!
//! What is checked, in every file under `src/` but `lib.rs` (the crate root) and `src/bin/` (a
//! separate crate):
//! - every `crate::x` path in code (`use crate::x::…`, `use crate::{x, y::…}`, `crate::x::f()`)
//!   names a module `x` declared before the file's own top-level module, or that module itself
//!   (its submodules are its own business). Comments, doc links and string literals are not
//!   code. A name the crate root re-exports (`crate::Error`, `crate::Backend`) counts as the
//!   module it comes from (read from `lib.rs`'s `pub use` lines); anything else defined in
//!   `lib.rs` (`crate::flush_denormals`) is the root's and may be used from anywhere.
//! - `#[cfg(test)]` modules are skipped, inline (`#[cfg(test)] mod tests { … }`) or in their own
//!   file (`#[cfg(test)] mod fixtures;`): tests may build their cases with higher modules (the
//!   mirrors' test trains with `optim::Adam`).
//! - every top-level module of `src/` is declared; a declared module that does not exist yet is
//!   allowed (it is planned).
//!
//! Paths through `super::` are not read: inside a top-level module they stay in it, and no file
//! climbs out of its module that way (write `crate::` for that).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const DOC: &str = "docs/architecture.md";
const HEADING: &str = "## Module order";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The module names of the first fenced block after [`HEADING`], lowest first: the first word
/// of each non-empty line (the rest of the line says what the module holds).
fn declared_order(doc: &str) -> Vec<String> {
    let mut lines = doc.lines().skip_while(|l| l.trim() != HEADING);
    assert!(lines.next().is_some(), "{DOC} has no `{HEADING}` section");
    let mut lines = lines.skip_while(|l| !l.trim_start().starts_with("```"));
    assert!(
        lines.next().is_some(),
        "{DOC}: no fenced block under `{HEADING}`"
    );
    let order: Vec<String> = lines
        .take_while(|l| !l.trim_start().starts_with("```"))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    let mut seen = BTreeSet::new();
    for m in &order {
        assert!(
            !m.is_empty() && m.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{DOC}: `{m}` in the module order is not a module name"
        );
        assert!(seen.insert(m), "{DOC}: `{m}` is declared twice");
    }
    order
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// `src` with comments and string and character literals blanked out to spaces; newlines are
/// kept, so byte offsets and line numbers stay those of `src`.
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = b.to_vec();
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for c in &mut out[from..to] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    };
    let prev_is_ident = |i: usize| i > 0 && is_ident(b[i - 1]);
    let mut i = 0;
    while i < b.len() {
        let rest = &b[i..];
        if rest.starts_with(b"//") {
            let end = rest
                .iter()
                .position(|&c| c == b'\n')
                .map_or(b.len(), |n| i + n);
            blank(&mut out, i, end);
            i = end;
        } else if rest.starts_with(b"/*") {
            let (mut depth, mut j) = (0usize, i);
            while j < b.len() {
                if b[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if b[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            blank(&mut out, i, j);
            i = j;
        } else if !prev_is_ident(i)
            && (rest.starts_with(b"r\"")
                || rest.starts_with(b"r#\"")
                || rest.starts_with(b"r##")
                || rest.starts_with(b"br\"")
                || rest.starts_with(b"br#"))
        {
            // A raw string: r"…", r#"…"#, and byte versions.
            let start = i + rest.iter().position(|&c| c == b'r').unwrap() + 1;
            let hashes = b[start..].iter().take_while(|&&c| c == b'#').count();
            let body = start + hashes + 1;
            let mut close = vec![b'"'];
            close.extend(std::iter::repeat_n(b'#', hashes));
            let end = b[body..]
                .windows(close.len())
                .position(|w| w == close.as_slice())
                .map_or(b.len(), |n| body + n + close.len());
            blank(&mut out, i, end);
            i = end;
        } else if b[i] == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(b.len());
            blank(&mut out, i, end);
            i = end;
        } else if b[i] == b'\'' {
            // A character literal ('x', '\n', '"'), or else a lifetime or label ('a).
            let c = src[i + 1..].chars().next().map_or(0, char::len_utf8);
            let end = if b.get(i + 1) == Some(&b'\\') {
                b[i + 2..]
                    .iter()
                    .position(|&c| c == b'\'')
                    .map(|n| i + 2 + n + 1)
            } else if b.get(i + 1 + c) == Some(&b'\'') {
                Some(i + 1 + c + 1)
            } else {
                None
            };
            match end {
                Some(end) => {
                    blank(&mut out, i, end);
                    i = end;
                }
                None => i += 1,
            }
        } else {
            i += 1;
        }
    }
    String::from_utf8(out).expect("only ASCII was written over whole characters")
}

/// `code` (from [`code_only`]) with every `#[cfg(test)]` module blanked out, and the names of
/// the test modules that live in files of their own (`#[cfg(test)] mod fixtures;`).
fn without_test_modules(code: &str) -> (String, Vec<String>) {
    let mut out = code.as_bytes().to_vec();
    let mut files = Vec::new();
    let mut from = 0;
    while let Some(n) = code[from..].find("#[cfg(test)]") {
        let at = from + n;
        from = at + "#[cfg(test)]".len();
        let item = code[from..].trim_start();
        let item = item
            .strip_prefix("pub(crate)")
            .or_else(|| item.strip_prefix("pub"))
            .unwrap_or(item)
            .trim_start();
        let Some(decl) = item.strip_prefix("mod ") else {
            continue; // a test-only item that is not a module is checked as code
        };
        let name: String = decl
            .trim_start()
            .bytes()
            .take_while(|&b| is_ident(b))
            .map(char::from)
            .collect();
        let after = decl.trim_start()[name.len()..].trim_start();
        let end = if after.starts_with(';') {
            files.push(name);
            code.len() - after.len() + 1
        } else {
            // Blank up to the brace that closes the module's.
            let open = code.len() - after.len();
            let mut depth = 0usize;
            let mut end = code.len();
            for (j, c) in code.bytes().enumerate().skip(open) {
                match c {
                    b'{' => depth += 1,
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = j + 1;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            end
        };
        for c in &mut out[at..end] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
        from = end;
    }
    (String::from_utf8(out).unwrap(), files)
}

/// The items named right after each `crate::` in `code`, with their line numbers:
/// `crate::a::b` gives `a`, `crate::{a::b, c}` gives `a` and `c`.
fn crate_paths(code: &str) -> Vec<(usize, String)> {
    let b = code.as_bytes();
    let line = |at: usize| code[..at].bytes().filter(|&c| c == b'\n').count() + 1;
    let ident_at = |mut j: usize| -> (String, usize) {
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        let start = j;
        while j < b.len() && is_ident(b[j]) {
            j += 1;
        }
        (code[start..j].to_string(), j)
    };
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(n) = code[from..].find("crate") {
        let at = from + n;
        from = at + "crate".len();
        if at > 0 && is_ident(b[at - 1]) || b.get(from).is_some_and(|&c| is_ident(c)) {
            continue; // part of another word (`mycrate`, `crates`)
        }
        let mut j = from;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        if !code[j..].starts_with("::") {
            continue; // `pub(crate)`, `$crate` alone, …
        }
        j += 2;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        if b.get(j) == Some(&b'{') {
            // A group: the first name of each of its top-level items.
            let (mut depth, mut k, mut expect) = (0usize, j, true);
            while k < b.len() {
                match b[k] {
                    b'{' => {
                        depth += 1;
                        k += 1;
                    }
                    b'}' => {
                        depth -= 1;
                        k += 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    b',' if depth == 1 => {
                        expect = true;
                        k += 1;
                    }
                    c if depth == 1 && expect && is_ident(c) => {
                        let (name, next) = ident_at(k);
                        if name != "self" {
                            out.push((line(k), name));
                        }
                        expect = false;
                        k = next;
                    }
                    _ => k += 1,
                }
            }
        } else {
            let (name, _) = ident_at(j);
            if !name.is_empty() {
                out.push((line(j), name));
            }
        }
    }
    out
}

/// What the crate root re-exports, by name: `pub use batch::{Batch, HostValues};` maps `Batch`
/// and `HostValues` to `batch`.
fn root_reexports(lib: &str) -> BTreeMap<String, String> {
    let code = code_only(lib);
    let mut out = BTreeMap::new();
    for stmt in code.split(';') {
        let Some(path) = stmt.trim().strip_prefix("pub use ") else {
            continue;
        };
        let path = path.trim().trim_start_matches("crate::");
        let Some((module, rest)) = path.split_once("::") else {
            continue;
        };
        let names = rest.rsplit_once('{').map_or(rest, |(_, n)| n);
        for item in names.trim_end_matches('}').split(',') {
            let last = item.split("::").last().unwrap_or("").trim();
            let name = last.rsplit(" as ").next().unwrap_or(last).trim();
            if !name.is_empty() {
                out.insert(name.to_string(), module.trim().to_string());
            }
        }
    }
    out
}

/// Every `.rs` file under `dir`, recursively, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The top-level modules of `src/`: `x.rs` and `x/` (but `lib.rs`, `main.rs` and `bin/`).
fn top_level_modules(src: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let module = if path.is_dir() {
            name != "bin"
        } else {
            path.extension().is_some_and(|e| e == "rs") && name != "lib" && name != "main"
        };
        if module {
            out.insert(name);
        }
    }
    out
}

/// The upward uses in `src/` against `order`, as `file:line: message` lines, and the number of
/// `crate::` paths read.
fn upward_uses(src: &Path, order: &[String]) -> (Vec<String>, usize) {
    let rank: BTreeMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, m)| (m.as_str(), i))
        .collect();
    let reexports = root_reexports(&std::fs::read_to_string(src.join("lib.rs")).unwrap());
    let modules = top_level_modules(src);
    let files: Vec<PathBuf> = rust_files(src)
        .into_iter()
        .filter(|f| f.parent() != Some(src) || f.file_name().unwrap() != "lib.rs")
        .filter(|f| !f.starts_with(src.join("bin")))
        .collect();
    // Read every file first: test-only module files are named by their parents.
    let mut texts = BTreeMap::new();
    let mut test_files = BTreeSet::new();
    for f in &files {
        let (code, tests) = without_test_modules(&code_only(&std::fs::read_to_string(f).unwrap()));
        // src/x.rs and src/x/mod.rs declare src/x/y.rs; src/x/y.rs declares src/x/y/z.rs.
        let dir = if f.file_name().unwrap() == "mod.rs" {
            f.parent().unwrap().to_path_buf()
        } else {
            f.with_extension("")
        };
        for t in tests {
            test_files.insert(dir.join(format!("{t}.rs")));
            test_files.insert(dir.join(&t).join("mod.rs"));
        }
        texts.insert(f.clone(), code);
    }
    let mut bad = Vec::new();
    let mut read = 0;
    for (f, code) in &texts {
        if test_files.contains(f) {
            continue;
        }
        let rel = f.strip_prefix(src).unwrap();
        let own = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let own = own.trim_end_matches(".rs");
        let Some(&own_rank) = rank.get(own) else {
            continue; // reported as undeclared
        };
        for (line, name) in crate_paths(code) {
            read += 1;
            let target = if modules.contains(&name) || rank.contains_key(name.as_str()) {
                name.clone()
            } else if let Some(m) = reexports.get(&name) {
                m.clone()
            } else {
                continue; // defined in lib.rs itself
            };
            match rank.get(target.as_str()) {
                Some(&r) if r > own_rank => bad.push(format!(
                    "src/{}:{line}: `{own}` uses `crate::{name}` (module `{target}`), which the \
                     order declares above it",
                    rel.display()
                )),
                Some(_) => {}
                None => bad.push(format!(
                    "src/{}:{line}: `crate::{name}` names module `{target}`, which {DOC} does \
                     not declare",
                    rel.display()
                )),
            }
        }
    }
    (bad, read)
}

#[test]
fn modules_use_only_modules_declared_below_them() {
    let root = root();
    let order = declared_order(&std::fs::read_to_string(root.join(DOC)).unwrap());
    let src = root.join("src");

    let undeclared: Vec<_> = top_level_modules(&src)
        .into_iter()
        .filter(|m| !order.contains(m))
        .collect();
    assert!(
        undeclared.is_empty(),
        "top-level modules missing from the order in {DOC} (`{HEADING}`): {undeclared:?}"
    );

    let (bad, read) = upward_uses(&src, &order);
    assert!(
        bad.is_empty(),
        "imports against the module order of {DOC}:\n{}",
        bad.join("\n")
    );
    // Guards the reader itself: today's crate has hundreds of such paths.
    assert!(read > 100, "only {read} `crate::` paths found in src/");
}

#[test]
fn the_reader_sees_code_and_skips_comments_strings_and_tests() {
    let src = r##"
//! Uses [`crate::eval`] in a doc link: not code.
use crate::{error::Error, kernels::{self, Kernels}, Backend};
use crate :: nn::Linear;
pub(crate) fn f() -> &'static str {
    let _c = '"';
    let _ = crate::model::Mvae::<2, Cpu>::new;
    /* crate::train, /* nested */ crate::plot */
    r#"crate::impute"#;
    "crate::checkpoint \" crate::eval"
}

#[cfg(test)]
mod tests {
    use crate::eval::Report;
    fn g() { if true { crate::train::x() } }
}

fn after_tests() -> crate::objective::Loss { todo!() }
#[cfg(test)]
mod fixtures;
"##;
    let (code, tests) = without_test_modules(&code_only(src));
    let names: Vec<(usize, String)> = crate_paths(&code);
    let want = [
        (3, "error"),
        (3, "kernels"),
        (3, "Backend"),
        (4, "nn"),
        (7, "model"),
        (19, "objective"),
    ];
    let want: Vec<(usize, String)> = want.iter().map(|&(l, n)| (l, n.to_string())).collect();
    assert_eq!(names, want);
    assert_eq!(tests, ["fixtures"]);

    let reexports = root_reexports("pub use backend::Backend;\npub use error::{Error, Result};");
    assert_eq!(reexports["Backend"], "backend");
    assert_eq!(reexports["Result"], "error");
}
