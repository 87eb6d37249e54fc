//! Running the binary, generating small stores, and imaging directories.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binary under test.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_orderlog"))
}

/// A finished run: exit code, stdout and stderr as text.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts exit code 0 and returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "stdout: {}\nstderr: {}", self.stdout, self.stderr);
        &self.stdout
    }

    /// Every stdout line parsed as JSON.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.ok().lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
    }

    /// The one JSON object on stdout.
    pub fn json(&self) -> serde_json::Value {
        let mut lines = self.json_lines();
        assert_eq!(lines.len(), 1, "{}", self.stdout);
        lines.remove(0)
    }

    /// Asserts a failure with `code`, a message and no panic.
    pub fn fails(&self, code: i32, message: &str) {
        assert_eq!(self.code, code, "stdout: {}\nstderr: {}", self.stdout, self.stderr);
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        assert!(self.stderr.contains(message), "expected {message:?} in stderr: {}", self.stderr);
    }
}

/// Runs the binary with `args`.
pub fn run<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    let Output { status, stdout, stderr } = bin().args(args).output().expect("run orderlog");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Path as a string argument.
pub fn arg(p: &Path) -> String {
    p.to_str().expect("utf-8 path").to_owned()
}

/// A store of `orders` / `events` over 1 MiB segments, written by `generate`; returns
/// its JSON summary.
pub fn generated(dir: &Path, orders: u64, events: u64, seed: u64) -> serde_json::Value {
    run(&[
        "generate",
        &arg(dir),
        "--orders",
        &orders.to_string(),
        "--events",
        &events.to_string(),
        "--seed",
        &seed.to_string(),
        "--segment-mib",
        "1",
        "--batch",
        "16",
        "--json",
    ])
    .json()
}

/// Every file and directory under `dir`, with file bytes.
pub fn image(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                out.insert(path.clone(), None);
                stack.push(path);
            } else {
                out.insert(path.clone(), Some(std::fs::read(&path).expect("read")));
            }
        }
    }
    out
}

/// Copies a directory tree.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}
