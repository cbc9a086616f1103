//! The host's modules form no import circle: a top-level module (a file or
//! a folder of `src/`) may use another only if that one does not, directly
//! or through others, use it back. A newcomer can then read them bottom up.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every top-level module and the top-level modules it names as `crate::…`.
fn uses() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(&src).unwrap();
            let top = relative
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_owned();
            if top == "main" {
                continue; // the root starts everything
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let named = uses.entry(top.clone()).or_default();
            for (at, _) in text.match_indices("crate::") {
                let name: String = text[at + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
                    .collect();
                if !name.is_empty() && name != top {
                    named.insert(name);
                }
            }
        }
    }
    uses
}

#[test]
fn no_module_uses_one_that_uses_it_back() {
    let uses = uses();
    assert!(uses.len() > 10, "read the modules: {uses:?}");
    for start in uses.keys() {
        // Everything `start` reaches; reaching itself is a circle.
        let mut seen = BTreeSet::new();
        let mut queue: Vec<(String, Vec<String>)> = vec![(start.clone(), vec![start.clone()])];
        while let Some((module, path)) = queue.pop() {
            for next in uses.get(&module).into_iter().flatten() {
                assert_ne!(
                    next,
                    start,
                    "import circle: {} -> {next}",
                    path.join(" -> ")
                );
                if seen.insert(next.clone()) {
                    let mut path = path.clone();
                    path.push(next.clone());
                    queue.push((next.clone(), path));
                }
            }
        }
    }
}
