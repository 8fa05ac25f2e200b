//! The content keys of a source build.
//!
//! Two keys, because working out the final `.config` needs the tree
//! unpacked and kconfig run: the *recipe* key covers what the plan says
//! (tree identity, base config, fragments, patches, compiler) and is known
//! at once; the *build* key covers what the kernel is built from (tree
//! identity, the final `.config`, patches) and names the cached kernel. A
//! recipe seen before maps straight to its build, so an unchanged variant
//! costs a few hashes and no make.

use sha2::{Digest, Sha256};

use super::patch::PatchStep;

fn hash(tag: &str, parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    h.update(tag.as_bytes());
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    hex::encode(&h.finalize()[..16])
}

fn patch_parts(patches: &[PatchStep]) -> Vec<u8> {
    let mut s = String::new();
    for p in patches {
        s.push_str(if p.reverse { "revert " } else { "apply " });
        s.push_str(&p.sha256);
        s.push('\n');
    }
    s.into_bytes()
}

/// Names the built kernel: same tree, same final config, same patches in
/// the same order and direction give the same key, and nothing else does.
/// The final config already carries the compiler (CONFIG_CC_VERSION_TEXT).
pub fn build_key(tree_identity: &str, final_config: &str, patches: &[PatchStep]) -> String {
    hash(
        "hilt-kernel-build-v1",
        &[
            tree_identity.as_bytes(),
            final_config.as_bytes(),
            &patch_parts(patches),
        ],
    )
}

/// Names what the plan asks for, before any config is generated.
pub fn recipe_key(
    tree_identity: &str,
    base: &str,
    fragments: &[(String, Vec<u8>)],
    patches: &[PatchStep],
    compiler: &str,
) -> String {
    let mut frag = Vec::new();
    for (name, content) in fragments {
        frag.extend_from_slice(&(content.len() as u64).to_le_bytes());
        frag.extend_from_slice(name.as_bytes());
        frag.extend_from_slice(content);
    }
    hash(
        "hilt-kernel-recipe-v1",
        &[
            tree_identity.as_bytes(),
            base.as_bytes(),
            &frag,
            &patch_parts(patches),
            compiler.as_bytes(),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn step(sha: &str, reverse: bool) -> PatchStep {
        PatchStep {
            path: PathBuf::from("p.patch"),
            sha256: sha.into(),
            reverse,
            text: String::new(),
        }
    }

    const CFG: &str = "CONFIG_PREEMPT=y\nCONFIG_EROFS_FS=y\n";

    #[test]
    fn build_key_is_stable_and_follows_every_input() {
        let fix = [step("aa", true)];
        let k = build_key("linux-source-6.1=6.1.192-2 sha256:1", CFG, &fix);
        assert_eq!(
            k,
            build_key("linux-source-6.1=6.1.192-2 sha256:1", CFG, &fix)
        );
        assert_eq!(k.len(), 32);
        // tree
        assert_ne!(
            k,
            build_key("linux-source-6.1=6.1.192-2 sha256:2", CFG, &fix)
        );
        // config
        assert_ne!(
            k,
            build_key(
                "linux-source-6.1=6.1.192-2 sha256:1",
                "CONFIG_PREEMPT=y\n",
                &fix
            )
        );
        // patch content, direction, presence and order
        assert_ne!(
            k,
            build_key(
                "linux-source-6.1=6.1.192-2 sha256:1",
                CFG,
                &[step("ab", true)]
            )
        );
        assert_ne!(
            k,
            build_key(
                "linux-source-6.1=6.1.192-2 sha256:1",
                CFG,
                &[step("aa", false)]
            )
        );
        assert_ne!(
            k,
            build_key("linux-source-6.1=6.1.192-2 sha256:1", CFG, &[])
        );
        let two = [step("aa", false), step("bb", false)];
        let swapped = [step("bb", false), step("aa", false)];
        assert_ne!(build_key("t", CFG, &two), build_key("t", CFG, &swapped));
        // the path a patch was read from is not content
        let mut moved = step("aa", true);
        moved.path = PathBuf::from("elsewhere/p.patch");
        assert_eq!(
            k,
            build_key("linux-source-6.1=6.1.192-2 sha256:1", CFG, &[moved])
        );
    }

    #[test]
    fn recipe_key_follows_fragments_base_and_compiler() {
        let f = vec![("preempt.config".to_string(), b"CONFIG_PREEMPT=y\n".to_vec())];
        let k = recipe_key("t", "board", &f, &[], "gcc 12.2");
        assert_eq!(k, recipe_key("t", "board", &f, &[], "gcc 12.2"));
        assert_ne!(k, recipe_key("t", "defconfig", &f, &[], "gcc 12.2"));
        assert_ne!(k, recipe_key("t", "board", &[], &[], "gcc 12.2"));
        let g = vec![("preempt.config".to_string(), b"CONFIG_PREEMPT=n\n".to_vec())];
        assert_ne!(k, recipe_key("t", "board", &g, &[], "gcc 12.2"));
        assert_ne!(k, recipe_key("t", "board", &f, &[], "gcc 13.1"));
        assert_ne!(
            k,
            recipe_key("t", "board", &f, &[step("aa", true)], "gcc 12.2")
        );
    }
}
