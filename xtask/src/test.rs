//! `cargo xtask test`: every test, as CI runs them.
//!
//! Order: setup, lint, the eBPF object, `cargo test` over the whole workspace (unit, property
//! and privileged network-namespace tests), `systemd-analyze verify` on the units, then a
//! small lab end to end (two regions, short delays, both NATs). A test that was skipped (ignored) fails
//! the run, and so does anything a test left behind (namespaces, bpffs pins).

use std::{
    fs,
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context as _, bail, ensure};

use crate::{build_ebpf, lab, lint, setup, util};

pub fn run(workspace: &Path, no_setup: bool, cargo_args: &[String]) -> anyhow::Result<()> {
    let started = Instant::now();
    ensure!(
        util::is_root(),
        "the privileged tests need root (network namespaces, eBPF); run `sudo cargo xtask test`"
    );
    if !no_setup {
        setup::run()?;
    }
    lint::run(workspace)?;
    build_ebpf::run(workspace, true)?;
    // Tests run these binaries as users would (`cargo test` alone builds only test harnesses).
    util::run(Command::new("cargo").current_dir(workspace).args([
        "build",
        "--package",
        "hub-daemon",
        "--package",
        "agent",
        "--bins",
    ]))?;
    let before = leftovers();

    let totals = cargo_test(workspace, cargo_args)?;
    eprintln!(
        "tests: {} passed, {} failed, {} ignored",
        totals.passed, totals.failed, totals.ignored
    );
    ensure!(totals.passed > 0, "no test ran");
    ensure!(
        totals.ignored == 0,
        "{} tests were skipped; every test must run",
        totals.ignored
    );

    // The units, against the binaries `cargo test` has just built.
    util::run(Command::new("bash").arg(workspace.join("systemd/verify.sh")))?;
    lab::smoke_test(workspace)?;

    let after: Vec<String> = leftovers()
        .into_iter()
        .filter(|l| !before.contains(l))
        .collect();
    ensure!(
        after.is_empty(),
        "tests left these behind: {}",
        after.join(", ")
    );
    eprintln!("all tests passed in {:.0?}", started.elapsed());
    // The closing line, counting the units' check and the lab as one test each. CI prints
    // it again last, after its timing.
    let summary = format!("tests: {} passed, 0 failed", totals.passed + 2);
    println!("{summary}");
    fs::write(workspace.join("target/test-summary.txt"), summary + "\n")?;
    Ok(())
}

#[derive(Default)]
struct Totals {
    passed: u64,
    failed: u64,
    ignored: u64,
}

/// Runs `cargo test`, echoing its output and adding up libtest's result lines.
fn cargo_test(workspace: &Path, cargo_args: &[String]) -> anyhow::Result<Totals> {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(workspace)
        .args([
            "test",
            "--workspace",
            "--exclude",
            "hub-ebpf",
            "--color",
            "never",
        ])
        .args(cargo_args)
        // The workspace's own debug builds, for tests that run the real binaries.
        .env("EDGE_AGENT_BIN", workspace.join("target/debug/edge-agent"))
        .env("EDGEHUB_BIN", workspace.join("target/debug/edgehub"))
        .stdout(Stdio::piped());
    eprintln!("+ {}", util::describe(&cmd));
    let mut child = cmd.spawn().context("starting cargo test")?;
    let stdout = child.stdout.take().context("cargo test's stdout")?;
    let mut totals = Totals::default();
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        if let Some(result) = line.strip_prefix("test result: ") {
            totals.passed += count(result, "passed");
            totals.failed += count(result, "failed");
            totals.ignored += count(result, "ignored");
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("cargo test failed ({status})");
    }
    Ok(totals)
}

/// `ok. 3 passed; 0 failed; 1 ignored; ...` -> the number before `word`.
fn count(result: &str, word: &str) -> u64 {
    result
        .split(';')
        .filter_map(|part| {
            part.trim()
                .trim_start_matches("ok. ")
                .trim_start_matches("FAILED. ")
                .split_once(' ')
        })
        .find(|(_, w)| *w == word)
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or(0)
}

/// Test namespaces and bpffs pin directories that exist now.
fn leftovers() -> Vec<String> {
    let mut found = Vec::new();
    for (dir, prefix) in [("/run/netns", "eh"), ("/sys/fs/bpf", "edgehub-test")] {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(prefix) {
                found.push(format!("{dir}/{name}"));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn counts_libtest_result_lines() {
        let line =
            "ok. 3 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.1s";
        assert_eq!(count(line, "passed"), 3);
        assert_eq!(count(line, "failed"), 0);
        assert_eq!(count(line, "ignored"), 2);
        assert_eq!(count("FAILED. 1 passed; 4 failed; 0 ignored", "failed"), 4);
    }
}
