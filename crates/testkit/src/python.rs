//! A Python virtual environment under `target/` with Kafka's Python clients, created on
//! first use (under a lock, so parallel test binaries share one). The marker file holds
//! the package list, so changing [`PACKAGES`] reinstalls.

use std::path::PathBuf;
use std::process::Command;

/// The packages tests use, pinned.
pub const PACKAGES: &[&str] = &[
    "kafka-python==2.3.3",
    "confluent-kafka==2.16.1",
    "aiokafka==0.14.0",
    "lz4==4.4.4",
    "zstandard==0.23.0",
];

/// Path to the venv's python, creating the venv if needed.
pub fn python() -> PathBuf {
    let dir = crate::target_dir().join("pyenv");
    let py = dir.join("bin/python");
    let marker = dir.join(".krust-ready");
    let wanted = PACKAGES.join("\n");
    let ready = || std::fs::read_to_string(&marker).is_ok_and(|m| m == wanted);
    if ready() {
        return py;
    }
    std::fs::create_dir_all(crate::target_dir()).expect("target dir");
    let lock_path = crate::target_dir().join("pyenv.lock");
    // A crude lock: create_new succeeds for one process; others wait for the marker.
    let got_lock = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&lock_path)
        .is_ok();
    if !got_lock {
        crate::wait_for(
            "the python venv another test is creating",
            std::time::Duration::from_secs(600),
            || (ready() || !lock_path.exists()).then_some(()),
        );
        if ready() {
            return py;
        }
        return python();
    }
    let result = (|| -> Result<(), String> {
        if !py.exists() {
            let status = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&dir)
                .status()
                .map_err(|e| format!("python3 -m venv: {e}"))?;
            if !status.success() {
                return Err("python3 -m venv failed".into());
            }
        }
        let status = Command::new(&py)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(PACKAGES)
            .status()
            .map_err(|e| format!("pip: {e}"))?;
        if !status.success() {
            return Err(format!("pip install {PACKAGES:?} failed"));
        }
        std::fs::write(&marker, &wanted).map_err(|e| e.to_string())
    })();
    let _ = std::fs::remove_file(&lock_path);
    if let Err(e) = result {
        panic!("could not prepare the Python test environment: {e}");
    }
    py
}
