//! The layer rule, checked: every import in `src/` points to a lower layer, and no two modules
//! of one layer import each other in a cycle (ARCHITECTURE.md draws the layers).
//!
//! Every file the crate compiles is parsed with `syn`, starting from `src/lib.rs` and
//! `src/main.rs` and following `mod` declarations. Each `crate::…` and `super::…` path is
//! collected — in `use` items, in types and expressions, and in macro arguments (`format!`,
//! `tracing::info!`) — and resolved to the module it names; in the binary, `sharecache::…` paths
//! name the library's modules. A file's layer is the layer of its top-level module, from
//! [`LAYERS`]. A module missing from the table fails too: a new module must be given a floor.
//!
//! What is not an import here: code under `#[cfg(test)]` (a unit test may set up its fixture with
//! a higher layer's helper; it is not part of the library's module graph, as for
//! `cargo modules dependencies`, which leaves tests out unless asked), doc links, and paths
//! inside one top-level module (a file and its parent or siblings: `super::` within `sync/`).
//! Paths through the crate root (`crate::Cache`) count as imports of the root, the top: import
//! from the module that defines the item instead.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::{self, Visit};

/// The layers, lowest first (layer 1 is the first), and the top-level modules on each. An import may only point to a
/// module on its own layer or a lower one.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "leaves",
        &[
            "sql",
            "schema",
            "clock",
            "platform",
            "migrate",
            "error_kind",
        ],
    ),
    ("config", &["config"]),
    ("store", &["store", "conflicts"]),
    ("remote", &["remote"]),
    ("error", &["error"]),
    ("sync", &["sync"]),
    ("handle", &["handle"]),
    ("views", &["status", "async_cache"]),
    ("cli", &["cli"]),
];

/// The crate roots: `lib.rs` declares and re-exports every module (above them all); the binary
/// names the library as `sharecache`.
const LIB: &str = "lib.rs";
const BIN: &str = "main.rs";
const LIB_NAME: &str = "sharecache";

/// One import: the file, the path as written, and the module it resolved to (top-level module
/// first; empty for the crate root).
#[derive(Debug, Clone)]
struct Import {
    file: String,
    path: String,
    from: Vec<String>,
    to: Vec<String>,
}

/// What a source tree breaks.
#[derive(Debug, Default)]
struct Findings {
    /// Human-readable, one per broken rule.
    problems: Vec<String>,
    /// Imports collected (for the sanity check that the walk saw the crate).
    imports: usize,
}

fn layer_of(unit: &str) -> Option<(usize, &'static str)> {
    LAYERS
        .iter()
        .enumerate()
        .find(|(_, (_, units))| units.contains(&unit))
        .map(|(i, (name, _))| (i + 1, *name))
}

fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        if !a.path().is_ident("cfg") {
            return false;
        }
        let Ok(list) = a.meta.require_list() else {
            return false;
        };
        let cfg: String = list
            .tokens
            .to_string()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        cfg == "test" || cfg.starts_with("all(test,")
    })
}

/// Collects the paths of one file and the modules it declares.
struct Collector<'a> {
    /// The module the visitor is in (inline modules push onto it).
    module: Vec<String>,
    /// `crate`/`super` (and, in the binary, `sharecache`) paths, made absolute, with how they
    /// were written.
    paths: Vec<(Vec<String>, Vec<String>, String)>,
    /// `mod x;` declarations: (module path, directory its file is looked up in).
    children: Vec<(Vec<String>, String)>,
    /// Directory of the current module's children.
    dir: String,
    in_bin: bool,
    _file: &'a str,
}

impl Collector<'_> {
    fn record(&mut self, segments: Vec<String>) {
        if segments.len() < 2 {
            return; // `pub(crate)`, `pub(super)`: a visibility, not an import
        }
        let written = segments.join("::");
        let mut abs = match segments.first().map(String::as_str) {
            Some("crate") => {
                if self.in_bin {
                    // A path of the binary's own modules: `crate::cli::…`.
                    vec!["<bin>".to_string()]
                } else {
                    Vec::new()
                }
            }
            Some("super") => {
                let mut m = self.module.clone();
                let mut rest = &segments[..];
                while rest.first().map(String::as_str) == Some("super") {
                    m.pop();
                    rest = &rest[1..];
                }
                m.extend(rest.iter().cloned());
                self.paths.push((self.module.clone(), m, written));
                return;
            }
            Some(LIB_NAME) if self.in_bin => Vec::new(),
            _ => return,
        };
        abs.extend(segments[1..].iter().cloned());
        self.paths.push((self.module.clone(), abs, written));
    }

    fn scan_tokens(&mut self, tokens: TokenStream) {
        let tts: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < tts.len() {
            if let TokenTree::Group(g) = &tts[i] {
                self.scan_tokens(g.stream());
                i += 1;
                continue;
            }
            let starts = matches!(&tts[i], TokenTree::Ident(id)
                if id == "crate" || id == "super" || (self.in_bin && id == LIB_NAME));
            let preceded_by_colons =
                i >= 1 && matches!(&tts[i - 1], TokenTree::Punct(p) if p.as_char() == ':');
            if starts && !preceded_by_colons {
                let mut segs = vec![tts[i].to_string()];
                let mut j = i + 1;
                loop {
                    let colons = matches!(&tts.get(j), Some(TokenTree::Punct(p)) if p.as_char() == ':')
                        && matches!(&tts.get(j + 1), Some(TokenTree::Punct(p)) if p.as_char() == ':');
                    match (colons, tts.get(j + 2)) {
                        (true, Some(TokenTree::Ident(id))) => {
                            segs.push(id.to_string());
                            j += 3;
                        }
                        _ => break,
                    }
                }
                if segs.len() > 1 {
                    self.record(segs);
                }
                i = j;
                continue;
            }
            i += 1;
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let mut segs = prefix.clone();
                if n.ident != "self" {
                    segs.push(n.ident.to_string());
                }
                self.record(segs);
            }
            syn::UseTree::Rename(r) => {
                let mut segs = prefix.clone();
                if r.ident != "self" {
                    segs.push(r.ident.to_string());
                }
                self.record(segs);
            }
            syn::UseTree::Glob(_) => self.record(prefix.clone()),
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for Collector<'_> {
    fn visit_item(&mut self, i: &'ast syn::Item) {
        let attrs: &[syn::Attribute] = match i {
            syn::Item::Const(x) => &x.attrs,
            syn::Item::Enum(x) => &x.attrs,
            syn::Item::Fn(x) => &x.attrs,
            syn::Item::Impl(x) => &x.attrs,
            syn::Item::Macro(x) => &x.attrs,
            syn::Item::Mod(x) => &x.attrs,
            syn::Item::Static(x) => &x.attrs,
            syn::Item::Struct(x) => &x.attrs,
            syn::Item::Trait(x) => &x.attrs,
            syn::Item::Type(x) => &x.attrs,
            syn::Item::Use(x) => &x.attrs,
            _ => &[],
        };
        if !is_test_only(attrs) {
            visit::visit_item(self, i);
        }
    }

    fn visit_impl_item(&mut self, i: &'ast syn::ImplItem) {
        let test = match i {
            syn::ImplItem::Fn(f) => is_test_only(&f.attrs),
            syn::ImplItem::Const(c) => is_test_only(&c.attrs),
            _ => false,
        };
        if !test {
            visit::visit_impl_item(self, i);
        }
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        let name = m.ident.to_string();
        let mut module = self.module.clone();
        module.push(name.clone());
        match &m.content {
            None => self.children.push((module, self.dir.clone())),
            Some((_, items)) => {
                let inner = format!("{}/{name}", self.dir);
                let dir = std::mem::replace(&mut self.dir, inner);
                let outer = std::mem::replace(&mut self.module, module);
                for item in items {
                    self.visit_item(item);
                }
                self.module = outer;
                self.dir = dir;
            }
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &u.tree);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segs: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        if p.leading_colon.is_none() {
            self.record(segs);
        }
        visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.scan_tokens(m.tokens.clone());
        visit::visit_macro(self, m);
    }
}

/// Checks a source tree given as `path relative to src/ → text`.
fn check(files: &BTreeMap<String, String>) -> Findings {
    let mut findings = Findings::default();
    // Module path → file, for the library (module paths) and the binary (under `<bin>`).
    let mut modules: BTreeMap<Vec<String>, String> = BTreeMap::new();
    let mut imports: Vec<Import> = Vec::new();
    let mut queue: Vec<(Vec<String>, String, String, bool)> = Vec::new(); // module, file, dir, bin
    if files.contains_key(LIB) {
        queue.push((Vec::new(), LIB.into(), String::new(), false));
    }
    if files.contains_key(BIN) {
        queue.push((vec!["<bin>".into()], BIN.into(), String::new(), true));
    }
    while let Some((module, file, dir, in_bin)) = queue.pop() {
        let Some(text) = files.get(&file) else {
            continue;
        };
        modules.insert(module.clone(), file.clone());
        let parsed = match syn::parse_file(text) {
            Ok(f) => f,
            Err(e) => {
                findings
                    .problems
                    .push(format!("src/{file}: cannot be parsed: {e}"));
                continue;
            }
        };
        let mut c = Collector {
            module: module.clone(),
            paths: Vec::new(),
            children: Vec::new(),
            dir: dir.clone(),
            in_bin,
            _file: &file,
        };
        for item in &parsed.items {
            c.visit_item(item);
        }
        for (child, child_dir) in c.children {
            let name = child.last().expect("named").clone();
            let prefix = if child_dir.is_empty() {
                String::new()
            } else {
                format!("{child_dir}/")
            };
            let flat = format!("{prefix}{name}.rs");
            let nested = format!("{prefix}{name}/mod.rs");
            let (child_file, grandchildren) = if files.contains_key(&flat) {
                (flat, format!("{prefix}{name}"))
            } else if files.contains_key(&nested) {
                (nested, format!("{prefix}{name}"))
            } else {
                findings.problems.push(format!(
                    "src/{file}: `mod {name};` has no file ({flat} or {nested})"
                ));
                continue;
            };
            queue.push((child, child_file, grandchildren, in_bin));
        }
        for (from, to, path) in c.paths {
            imports.push(Import {
                file: file.clone(),
                path,
                from,
                to,
            });
        }
    }
    findings.imports = imports.len();

    // The unit (top-level module) of a module path; the binary's modules are `cli`-like units
    // under `<bin>`.
    let unit = |m: &[String]| -> Option<String> {
        match m {
            [] => None,
            [bin] if bin == "<bin>" => None,
            [bin, u, ..] if bin == "<bin>" => Some(u.clone()),
            [u, ..] => Some(u.clone()),
        }
    };
    // Resolve every import to the longest module prefix that exists.
    let mut edges: BTreeMap<(String, String), Import> = BTreeMap::new();
    let mut unknown = BTreeSet::new();
    for imp in &imports {
        let mut target = imp.to.clone();
        while !target.is_empty() && !modules.contains_key(&target) {
            target.pop();
        }
        let (Some(from_unit), to_unit) = (unit(&imp.from), unit(&target)) else {
            continue; // from a crate root: the roots sit above everything
        };
        let Some((from_layer, from_name)) = layer_of(&from_unit) else {
            unknown.insert(from_unit.clone());
            continue;
        };
        let from_bin = imp.from.first().is_some_and(|m| m == "<bin>");
        if from_bin && target.is_empty() {
            continue; // the binary uses the library's public face, its root: below the binary
        }
        let Some(to_unit) = to_unit else {
            findings.problems.push(format!(
                "src/{}: `{}` imports through the crate root (the top): import from the module that defines it",
                imp.file, imp.path
            ));
            continue;
        };
        if to_unit == from_unit {
            continue;
        }
        let Some((to_layer, to_name)) = layer_of(&to_unit) else {
            unknown.insert(to_unit.clone());
            continue;
        };
        if to_layer > from_layer {
            findings.problems.push(format!(
                "src/{}: `{}` points up: {from_unit} is on layer {from_layer} ({from_name}), {to_unit} on layer {to_layer} ({to_name})",
                imp.file, imp.path
            ));
        } else if to_layer == from_layer {
            edges
                .entry((from_unit.clone(), to_unit.clone()))
                .or_insert_with(|| imp.clone());
        }
    }
    for u in unknown {
        findings.problems.push(format!(
            "module `{u}` has no layer: add it to LAYERS in tests/layers.rs (and ARCHITECTURE.md)"
        ));
    }
    // Cycles among the modules of one layer.
    let mut graph: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in edges.keys() {
        graph.entry(a).or_default().push(b);
    }
    let mut reported = BTreeSet::new();
    for start in graph.keys() {
        let mut stack = vec![(*start, vec![*start])];
        while let Some((at, trail)) = stack.pop() {
            for next in graph.get(at).into_iter().flatten() {
                if next == start {
                    let mut cycle = trail.clone();
                    let mut key = cycle.clone();
                    key.sort();
                    if reported.insert(key) {
                        cycle.push(start);
                        let how: Vec<String> = cycle
                            .windows(2)
                            .map(|w| {
                                let imp = &edges[&(w[0].to_string(), w[1].to_string())];
                                format!("src/{} `{}`", imp.file, imp.path)
                            })
                            .collect();
                        findings.problems.push(format!(
                            "cycle on one layer: {} ({})",
                            cycle.join(" -> "),
                            how.join("; ")
                        ));
                    }
                } else if !trail.contains(next) {
                    let mut t = trail.clone();
                    t.push(next);
                    stack.push((next, t));
                }
            }
        }
    }
    findings
}

fn read_tree(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).expect("readable src") {
            let p: PathBuf = entry.expect("entry").path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                let rel = p.strip_prefix(root).expect("under src");
                let rel = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                out.insert(rel, std::fs::read_to_string(&p).expect("readable file"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

#[test]
fn every_import_points_down() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let f = check(&read_tree(&src));
    assert!(
        f.imports > 300,
        "the walk found only {} imports: is it reading the crate?",
        f.imports
    );
    assert!(
        f.problems.is_empty(),
        "the layer rule is broken (see ARCHITECTURE.md):\n{}",
        f.problems.join("\n")
    );
}

fn tree(files: &[(&str, &str)]) -> BTreeMap<String, String> {
    files
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect()
}

#[test]
fn an_upward_import_fails_naming_file_import_and_layers() {
    let f = check(&tree(&[
        ("lib.rs", "pub mod store; pub mod sync;"),
        ("store/mod.rs", "mod create;"),
        ("store/create.rs", "fn f() { crate::sync::write_tx(); }"),
        ("sync/mod.rs", "use crate::store::X; pub fn write_tx() {}"),
    ]));
    assert_eq!(f.problems.len(), 1, "{:?}", f.problems);
    let p = &f.problems[0];
    for part in [
        "src/store/create.rs",
        "crate::sync::write_tx",
        "store is on layer 3 (store)",
        "sync on layer 6 (sync)",
    ] {
        assert!(p.contains(part), "{p:?} lacks {part:?}");
    }
}

#[test]
fn upward_imports_are_found_in_use_groups_super_paths_and_macros() {
    for (name, text) in [
        (
            "use group",
            "use crate::{sql::quote, sync::{Engine, Progress}};",
        ),
        ("super path", "impl super::super::sync::Engine {}"),
        (
            "macro",
            "fn f() { tracing::info!(x = %crate::sync::id()); }",
        ),
        ("glob", "use crate::sync::*;"),
        ("type", "fn f(_: &crate::sync::Engine) {}"),
    ] {
        let f = check(&tree(&[
            ("lib.rs", "pub mod store; pub mod sync; pub mod sql;"),
            ("store/mod.rs", "mod inner;"),
            ("store/inner.rs", text),
            ("sync/mod.rs", ""),
            ("sql.rs", ""),
        ]));
        assert!(!f.problems.is_empty(), "{name}: not found");
        assert!(
            f.problems.iter().all(|p| p.contains("points up")),
            "{name}: {:?}",
            f.problems
        );
    }
}

#[test]
fn a_cycle_within_one_layer_fails_and_test_code_or_downward_imports_do_not() {
    let f = check(&tree(&[
        ("lib.rs", "mod sql; mod schema; mod store;"),
        ("sql.rs", "use crate::schema::Table;"),
        ("schema.rs", "fn f() { crate::sql::quote(); }"),
        (
            "store/mod.rs",
            "use crate::sql::quote; #[cfg(test)] mod tests; #[cfg(test)] fn t() { crate::sync::x(); }",
        ),
        ("store/tests.rs", "use crate::sync::Engine;"),
    ]));
    assert_eq!(f.problems.len(), 1, "{:?}", f.problems);
    assert!(
        f.problems[0].starts_with("cycle on one layer: schema -> sql -> schema"),
        "{:?}",
        f.problems
    );
}

#[test]
fn a_module_without_a_layer_or_an_import_through_the_root_fails() {
    let f = check(&tree(&[
        ("lib.rs", "mod gadget; mod store; pub use store::X;"),
        ("gadget.rs", "use crate::store::X;"),
        ("store/mod.rs", "use crate::X as Y;"),
    ]));
    assert_eq!(f.problems.len(), 2, "{:?}", f.problems);
    assert!(f.problems.iter().any(|p| p.contains("crate root")));
    assert!(
        f.problems
            .iter()
            .any(|p| p.contains("`gadget` has no layer"))
    );
}

#[test]
fn the_binary_may_import_any_library_module_but_not_the_other_way() {
    let f = check(&tree(&[
        ("lib.rs", "pub mod handle; pub mod sql;"),
        ("handle/mod.rs", "use crate::sql::quote;"),
        ("sql.rs", ""),
        ("main.rs", "mod cli;"),
        (
            "cli/mod.rs",
            "mod sync; use sharecache::handle::Cache; struct Failure;",
        ),
        (
            "cli/sync.rs",
            "use super::Failure; fn f() { sharecache::sql::quote(); }",
        ),
    ]));
    assert!(f.problems.is_empty(), "{:?}", f.problems);
}
