//! Node.js for the tests that run JavaScript: the client's own tests, the
//! browser tests (playwright-core) and the GraphQL client's.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The JavaScript client's package (`clients/js`).
pub fn js_client_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/js")
}

/// Runs `npm ARGS` in `dir` with `envs` added; panics, naming the command,
/// when npm is missing or the command fails.
pub fn npm(dir: &Path, args: &[&str], envs: &[(&str, String)]) {
    let status = Command::new("npm")
        .args(args)
        .current_dir(dir)
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `npm {}` in {} (node and npm are needed): {e}",
                args.join(" "),
                dir.display()
            )
        });
    assert!(
        status.success(),
        "`npm {}` in {} failed: {status}",
        args.join(" "),
        dir.display()
    );
}
