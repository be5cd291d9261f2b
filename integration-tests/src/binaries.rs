//! The workspace's real binaries, for tests that run them as users would.

use std::{
    collections::HashMap,
    path::PathBuf,
    process::Command,
    sync::{Mutex, OnceLock},
};

/// The path of `bin` from `package`: `$<env_var>` when set (`cargo xtask test` points it at
/// the binary its own `cargo test --workspace` has just built), else built on first use with
/// `cargo build` into a target directory beside this test's (the running `cargo test` holds
/// the lock on its own).
pub fn workspace_binary(package: &str, bin: &str, env_var: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    if let Some(path) = std::env::var_os(env_var) {
        return path.into();
    }
    let mut built = BUILT
        .get_or_init(Mutex::default)
        .lock()
        .expect("not poisoned");
    built
        .entry(bin.to_owned())
        .or_insert_with(|| {
            let exe = std::env::current_exe().expect("test exe");
            // <target>/<profile>/deps/<test> -> <target>
            let target = exe.ancestors().nth(3).expect("target dir").join("bins");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
            let status = Command::new(cargo)
                .args([
                    "build",
                    "--quiet",
                    "--package",
                    package,
                    "--bin",
                    bin,
                    "--manifest-path",
                ])
                .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"))
                .env("CARGO_TARGET_DIR", &target)
                .status()
                .expect("run cargo build");
            assert!(status.success(), "cargo build --package {package} failed");
            target.join("debug").join(bin)
        })
        .clone()
}
