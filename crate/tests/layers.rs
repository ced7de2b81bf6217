//! The crate's top-level modules form layers that only point down: no
//! module depends, directly or through others, on itself. A dependency is a
//! `crate::<module>` path (or a `crate::{…}` group) in a module's non-test
//! code, comments left out. See docs/architecture.md for the layers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(p: &Path, out: &mut Vec<PathBuf>) {
    if p.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(p).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for e in entries {
            rust_files(&e, out);
        }
    } else if p.extension().is_some_and(|e| e == "rs") {
        out.push(p.to_path_buf());
    }
}

/// The identifier at the start of `s`.
fn ident(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

/// Where the file's inline test module starts (`#[cfg(test)]` before
/// `mod … {`), or its length: a `#[cfg(test)]` on a single item, or on a
/// declared module, does not end the code.
fn test_module_start(text: &str) -> usize {
    let mut offset = 0;
    let mut lines = text.split_inclusive('\n').peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]" {
            let next = lines.clone().map(str::trim).find(|l| !l.is_empty() && !l.starts_with("//") && !l.starts_with("#["));
            // an inline test module (`mod tests {`); a declared one (`mod x_tests;`) is its own file
            if next.is_some_and(|l| (l.starts_with("mod ") || l.starts_with("pub mod ") || l.starts_with("pub(crate) mod ")) && l.ends_with('{')) {
                return offset;
            }
        }
        offset += line.len();
    }
    text.len()
}

/// Module → the modules its non-test code names.
fn dependencies(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut modules = BTreeMap::new();
    for entry in std::fs::read_dir(src).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        if p.is_dir() || (p.extension().is_some_and(|e| e == "rs") && name != "lib" && name != "main") {
            modules.insert(name, p);
        }
    }
    let mut deps = BTreeMap::new();
    for (name, path) in &modules {
        let mut files = Vec::new();
        rust_files(path, &mut files);
        let mut named = BTreeSet::new();
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            let code = &text[..test_module_start(&text)];
            for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for (i, _) in line.match_indices("crate::") {
                    let rest = &line[i + "crate::".len()..];
                    if let Some(group) = rest.strip_prefix('{') {
                        let group = &group[..group.find('}').unwrap_or(group.len())];
                        named.extend(group.split(',').map(|g| ident(g.trim()).to_string()));
                    } else {
                        named.insert(ident(rest).to_string());
                    }
                }
            }
        }
        named.retain(|n| n != name && modules.contains_key(n));
        deps.insert(name.clone(), named);
    }
    deps
}

/// A dependency cycle, as the path `a → b → … → a`, if there is one.
fn find_cycle(deps: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    // 0 unvisited, 1 on the current path, 2 done
    fn visit(m: &str, deps: &BTreeMap<String, BTreeSet<String>>, state: &mut BTreeMap<String, u8>, path: &mut Vec<String>) -> Option<Vec<String>> {
        state.insert(m.to_string(), 1);
        path.push(m.to_string());
        for d in &deps[m] {
            match state.get(d).copied().unwrap_or(0) {
                1 => {
                    let start = path.iter().position(|p| p == d).unwrap();
                    let mut cycle = path[start..].to_vec();
                    cycle.push(d.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(d, deps, state, path) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        state.insert(m.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for m in deps.keys() {
        if state.get(m).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(m, deps, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn top_level_modules_have_no_dependency_cycle() {
    let deps = dependencies(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(deps.len() > 10 && deps["eval"].contains("method"), "the scan found too little: {deps:?}");
    if let Some(cycle) = find_cycle(&deps) {
        panic!("module cycle: {} (layers must only point down; see docs/architecture.md)", cycle.join(" → "));
    }
}

#[test]
fn only_the_test_module_is_left_out() {
    let text = "#[cfg(test)]\nmod more_tests;\nuse a;\n#[cfg(test)]\nuse b;\nfn f() { crate::x::y(); }\n#[cfg(test)]\n// tests\nmod tests {\n    crate::z\n}\n";
    assert_eq!(&text[..test_module_start(text)], "#[cfg(test)]\nmod more_tests;\nuse a;\n#[cfg(test)]\nuse b;\nfn f() { crate::x::y(); }\n");
    assert_eq!(test_module_start("fn f() {}\n"), 10);
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let deps: BTreeMap<String, BTreeSet<String>> = [("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"]), ("d", vec![])]
        .into_iter()
        .map(|(m, ds)| (m.to_string(), ds.into_iter().map(String::from).collect()))
        .collect();
    assert_eq!(find_cycle(&deps).unwrap().join(" → "), "a → b → c → a");
    let dag: BTreeMap<String, BTreeSet<String>> =
        [("a", vec!["b"]), ("b", vec![])].into_iter().map(|(m, ds)| (m.to_string(), ds.into_iter().map(String::from).collect())).collect();
    assert!(find_cycle(&dag).is_none());
}
