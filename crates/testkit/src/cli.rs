//! Running the `krust` binary's tools from tests.

use std::process::{Command, Output};
use std::time::Duration;

/// Runs `bin` with `args` and collects its output.
pub fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin).args(args).output().expect("run krust")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Creates a topic with `krust topics` and waits until it has leaders.
pub fn create_topic(bin: &str, bootstrap: &str, topic: &str, partitions: &str) {
    let o = run(
        bin,
        &[
            "topics",
            "--bootstrap-server",
            bootstrap,
            "--create",
            "--topic",
            topic,
            "--partitions",
            partitions,
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    crate::wait_for("topic in metadata", Duration::from_secs(20), || {
        let o = run(
            bin,
            &[
                "topics",
                "--bootstrap-server",
                bootstrap,
                "--describe",
                "--topic",
                topic,
            ],
        );
        (o.status.success() && stdout(&o).contains("Leader: 1")).then_some(())
    });
}
