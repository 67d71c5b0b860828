//! The shape of `src/` (docs/architecture.md, "Who may import whom"): which top-level module
//! names which, read from the source itself. A `crate::x` path anywhere outside comments and
//! unit-test modules counts as an import of `x`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its comments and its `#[cfg(test)] mod tests`.
fn code(text: &str) -> String {
    let text = text
        .find("#[cfg(test)]\nmod tests")
        .map_or(text, |at| &text[..at]);
    text.lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Top-level module -> the top-level modules its files name, plus whether it uses actix or
/// diesel.
fn graph() -> (Graph, BTreeMap<String, BTreeSet<&'static str>>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut graph = Graph::new();
    let mut frameworks: BTreeMap<String, BTreeSet<&'static str>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&src).expect("under src");
        let first = rel.components().next().expect("a path");
        let module = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        let code = code(&std::fs::read_to_string(&file).expect("a source file"));
        let names = graph.entry(module.clone()).or_default();
        for (at, _) in code.match_indices("crate::") {
            let name: String = code[at + 7..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != module {
                names.insert(name);
            }
        }
        for framework in ["actix_web", "diesel"] {
            if code.contains(&format!("{framework}::")) {
                frameworks
                    .entry(module.clone())
                    .or_default()
                    .insert(framework);
            }
        }
    }
    (graph, frameworks)
}

fn importers_of<'g>(graph: &'g Graph, module: &str) -> Vec<&'g str> {
    graph
        .iter()
        .filter(|(_, names)| names.contains(module))
        .map(|(m, _)| m.as_str())
        .collect()
}

/// A path `from -> … -> from` if there is one.
fn cycle_through(graph: &Graph, from: &str) -> Option<Vec<String>> {
    fn walk(
        graph: &Graph,
        at: &str,
        goal: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in graph.get(at).into_iter().flatten() {
            if next == goal {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(graph, next, goal, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![from.to_string()];
    walk(graph, from, from, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn no_import_circle_between_modules() {
    let (graph, _) = graph();
    assert!(
        graph.len() > 15,
        "the modules of src/ were found: {graph:?}"
    );
    for module in graph.keys() {
        if let Some(cycle) = cycle_through(&graph, module) {
            panic!("import circle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn each_layer_imports_only_the_layers_below_it() {
    let (graph, frameworks) = graph();
    let names = |m: &str| graph.get(m).cloned().unwrap_or_default();
    // The rules of the trade know nothing of the crate, of HTTP or of SQL.
    assert_eq!(
        names("domain"),
        BTreeSet::new(),
        "domain imports nothing of the crate"
    );
    assert_eq!(
        frameworks.get("domain"),
        None,
        "domain uses neither actix nor diesel"
    );
    // Storage: the domain's types and its own helpers, nothing that uses it.
    let above_db = [
        "service",
        "routes",
        "web",
        "cli",
        "startup",
        "http",
        "middleware",
        "auth",
        "state",
    ];
    for m in above_db {
        assert!(!names("db").contains(m), "db imports {m}");
    }
    // Use cases: called by the front doors, never calling them.
    for m in ["routes", "web", "cli", "startup", "http", "middleware"] {
        assert!(!names("service").contains(m), "service imports {m}");
    }
    assert_eq!(
        frameworks.get("service").and_then(|f| f.get("actix_web")),
        None,
        "service knows no HTTP"
    );
    // The front doors do not call each other.
    assert!(!names("web").contains("routes"), "web imports routes");
    assert!(!names("routes").contains("web"), "routes imports web");
    assert!(!names("cli").contains("routes") && !names("cli").contains("web"));
    // Only the command line assembles the application (main.rs and the tests use the library).
    assert_eq!(importers_of(&graph, "startup"), ["cli"]);
    // The application's state sits below access control.
    assert!(!names("state").contains("auth") && !names("state").contains("startup"));
}
