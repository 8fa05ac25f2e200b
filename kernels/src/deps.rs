//! Ordering modules so that each one's `depends=` are loaded before it.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::modinfo::normalize_module_name;
use crate::Error;

/// A loadable module file and the modules it needs first (names normalized to `_`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub name: String,
    pub path: PathBuf,
    pub depends: Vec<String>,
    /// Modules that `softdep=pre:` asks to load first, resolved from names or aliases to
    /// module files. Like modprobe, ones that cannot be found are left out, not errors.
    pub softdeps: Vec<String>,
}

/// What loading a set of modules takes: the files in load order, and the requested
/// names (or dependencies) that need no loading because the kernel has them built in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LoadPlan {
    pub modules: Vec<Module>,
    pub builtin: Vec<String>,
}

pub(crate) enum Lookup {
    Module(Module),
    Builtin,
    Missing,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Visiting,
    Done,
}

struct Walk<L, N> {
    lookup: L,
    not_found: N,
    state: HashMap<String, State>,
    stack: Vec<String>,
    plan: LoadPlan,
}

/// Depth-first post-order over `depends=`: deps first, each module once, in the order the
/// caller asked for them where dependencies allow, so the result is deterministic.
///
/// `lookup` gets normalized names; `not_found` builds the error for a requested name
/// that is neither a module nor built in (a missing dependency has its own error).
pub(crate) fn resolve<L, N>(wanted: &[&str], lookup: L, not_found: N) -> Result<LoadPlan, Error>
where
    L: FnMut(&str) -> Result<Lookup, Error>,
    N: Fn(&str) -> Error,
{
    let mut walk = Walk {
        lookup,
        not_found,
        state: HashMap::new(),
        stack: Vec::new(),
        plan: LoadPlan::default(),
    };
    for name in wanted {
        walk.visit(&normalize_module_name(name), None, false)?;
    }
    Ok(walk.plan)
}

impl<L, N> Walk<L, N>
where
    L: FnMut(&str) -> Result<Lookup, Error>,
    N: Fn(&str) -> Error,
{
    /// `soft` marks a softdep: a loop through one is not an error (modprobe breaks it the
    /// same way, by loading whichever it reaches first), and a missing one is skipped.
    fn visit(&mut self, name: &str, needed_by: Option<&str>, soft: bool) -> Result<(), Error> {
        match self.state.get(name) {
            Some(State::Done) => return Ok(()),
            Some(State::Visiting) if soft => return Ok(()),
            Some(State::Visiting) => {
                let start = self.stack.iter().position(|n| n == name).unwrap_or(0);
                let mut cycle = self.stack[start..].to_vec();
                cycle.push(name.to_string());
                return Err(Error::DependencyCycle { cycle });
            }
            None => {}
        }
        match (self.lookup)(name)? {
            Lookup::Builtin => {
                self.state.insert(name.to_string(), State::Done);
                self.plan.builtin.push(name.to_string());
            }
            Lookup::Missing if soft => {}
            Lookup::Missing => {
                return Err(match needed_by {
                    Some(module) => Error::MissingDependency {
                        module: module.to_string(),
                        dependency: name.to_string(),
                    },
                    None => (self.not_found)(name),
                })
            }
            Lookup::Module(module) => {
                self.state.insert(name.to_string(), State::Visiting);
                self.stack.push(name.to_string());
                for dep in &module.softdeps {
                    self.visit(dep, Some(name), true)?;
                }
                for dep in &module.depends {
                    self.visit(dep, Some(name), false)?;
                }
                self.stack.pop();
                self.state.insert(name.to_string(), State::Done);
                self.plan.modules.push(module);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake module tree: name -> deps (`~name` for a softdep); names listed in `builtin`
    /// are built in.
    fn plan(
        graph: &[(&str, &[&str])],
        builtin: &[&str],
        wanted: &[&str],
    ) -> Result<LoadPlan, Error> {
        let graph: HashMap<String, Vec<String>> = graph
            .iter()
            .map(|(n, d)| {
                (
                    n.to_string(),
                    d.iter().map(|s| normalize_module_name(s)).collect(),
                )
            })
            .collect();
        let mut lookups = Vec::new();
        let result = resolve(
            wanted,
            |name| {
                lookups.push(name.to_string());
                Ok(if builtin.contains(&name) {
                    Lookup::Builtin
                } else if let Some(deps) = graph.get(name) {
                    let (soft, hard): (Vec<String>, Vec<String>) =
                        deps.iter().cloned().partition(|d| d.starts_with('~'));
                    Lookup::Module(Module {
                        name: name.to_string(),
                        path: PathBuf::from(format!("{name}.ko")),
                        depends: hard,
                        softdeps: soft.iter().map(|d| d[1..].to_string()).collect(),
                    })
                } else {
                    Lookup::Missing
                })
            },
            |name| Error::ModuleNotFound {
                name: name.to_string(),
                release: "test".into(),
                modules_dir: PathBuf::from("/nowhere"),
            },
        );
        // Each module's modinfo is read at most once.
        let mut unique = lookups.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), lookups.len(), "{lookups:?}");
        result
    }

    fn names(p: &LoadPlan) -> Vec<&str> {
        p.modules.iter().map(|m| m.name.as_str()).collect()
    }

    #[test]
    fn dependencies_come_first_without_duplicates() {
        let graph: &[(&str, &[&str])] = &[
            ("dm_verity", &["reed_solomon", "dm-mod", "dm-bufio"]),
            ("dm_bufio", &["dm_mod"]),
            ("dm_mod", &[]),
            ("reed_solomon", &[]),
            ("erofs", &["dax"]),
            ("dax", &[]),
            ("zram", &["zsmalloc"]),
            ("zsmalloc", &[]),
        ];
        let p = plan(
            graph,
            &["virtio_blk"],
            &["erofs", "dm-verity", "zram", "dm_mod", "virtio-blk"],
        )
        .unwrap();
        assert_eq!(
            names(&p),
            [
                "dax",
                "erofs",
                "reed_solomon",
                "dm_mod",
                "dm_bufio",
                "dm_verity",
                "zsmalloc",
                "zram"
            ]
        );
        assert_eq!(p.builtin, ["virtio_blk"]);
        // Every module appears after all of its dependencies.
        for (i, m) in p.modules.iter().enumerate() {
            for d in &m.depends {
                let j = p.modules.iter().position(|x| &x.name == d).unwrap();
                assert!(j < i, "{d} must precede {}", m.name);
            }
        }
    }

    #[test]
    fn builtin_dependencies_are_skipped_and_reported() {
        let graph: &[(&str, &[&str])] = &[("sdhci_pci", &["sdhci", "cqhci"]), ("cqhci", &[])];
        let p = plan(graph, &["sdhci"], &["sdhci-pci"]).unwrap();
        assert_eq!(names(&p), ["cqhci", "sdhci_pci"]);
        assert_eq!(p.builtin, ["sdhci"]);
    }

    #[test]
    fn softdeps_load_first_and_never_fail() {
        let graph: &[(&str, &[&str])] = &[
            ("erofs", &["libcrc32c"]),
            ("libcrc32c", &["~crc32c_generic", "~gone"]),
            ("crc32c_generic", &[]),
            // A softdep loop back to a module being visited must not be a cycle error.
            ("a", &["~b"]),
            ("b", &["a"]),
        ];
        let p = plan(graph, &[], &["erofs", "b"]).unwrap();
        assert_eq!(
            names(&p),
            ["crc32c_generic", "libcrc32c", "erofs", "a", "b"]
        );
    }

    #[test]
    fn cycle_is_an_error_naming_the_loop() {
        let graph: &[(&str, &[&str])] = &[("a", &["b"]), ("b", &["c"]), ("c", &["b"])];
        match plan(graph, &[], &["a"]).unwrap_err() {
            Error::DependencyCycle { cycle } => assert_eq!(cycle, ["b", "c", "b"]),
            other => panic!("unexpected {other}"),
        }
        let self_loop: &[(&str, &[&str])] = &[("a", &["a"])];
        assert!(matches!(
            plan(self_loop, &[], &["a"]),
            Err(Error::DependencyCycle { .. })
        ));
    }

    #[test]
    fn missing_dependency_names_the_module_that_needs_it() {
        let graph: &[(&str, &[&str])] = &[("a", &["b"]), ("b", &["gone-away"])];
        match plan(graph, &[], &["a"]).unwrap_err() {
            Error::MissingDependency { module, dependency } => {
                assert_eq!((module.as_str(), dependency.as_str()), ("b", "gone_away"))
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn unknown_requested_module_is_not_found() {
        let err = plan(&[], &[], &["nonesuch"]).unwrap_err();
        assert!(matches!(err, Error::ModuleNotFound { ref name, .. } if name == "nonesuch"));
    }
}
