//! `krust storage` and node startup checks: formatting, identity mismatches and config
//! errors are refused with clear messages before anything is served.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_krust");

fn krust(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run krust")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn write_config(dir: &Path, node_id: i32, voters: &str) -> std::path::PathBuf {
    let path = dir.join(format!("server-{node_id}.properties"));
    let props = format!(
        "process.roles=broker,controller\nnode.id={node_id}\n\
         listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:0\n\
         controller.listener.names=CONTROLLER\n\
         controller.quorum.voters={voters}\n\
         log.dirs={}\n",
        dir.join(format!("data-{node_id}")).display()
    );
    std::fs::write(&path, props).expect("write config");
    path
}

#[test]
fn random_uuid_is_a_kafka_uuid() {
    let o = krust(&["storage", "random-uuid"]);
    assert!(o.status.success());
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert_eq!(id.len(), 22, "{id}");
    assert!(id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert!(!id.starts_with('-'));
}

#[test]
fn format_writes_meta_properties_and_refuses_twice() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = write_config(
        dir.path(),
        1,
        "1@127.0.0.1:19093,2@127.0.0.1:19095,3@127.0.0.1:19097",
    );
    let id = "J8aAPcGqQWyyMZGNXz0n1w";
    let o = krust(&[
        "storage",
        "format",
        "-t",
        id,
        "-c",
        cfg.to_str().expect("utf8"),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("Formatting"), "{}", text(&o));
    let meta = std::fs::read_to_string(dir.path().join("data-1/meta.properties"))
        .expect("meta.properties");
    assert!(meta.contains(&format!("cluster.id={id}")));
    assert!(meta.contains("node.id=1"));
    assert!(meta.contains("version=1"));
    assert!(meta.contains("directory.id="));

    let again = krust(&[
        "storage",
        "format",
        "-t",
        id,
        "-c",
        cfg.to_str().expect("utf8"),
    ]);
    assert!(!again.status.success());
    assert!(
        text(&again).contains("already formatted"),
        "{}",
        text(&again)
    );
    let ignored = krust(&[
        "storage",
        "format",
        "-t",
        id,
        "-c",
        cfg.to_str().expect("utf8"),
        "--ignore-formatted",
    ]);
    assert!(ignored.status.success(), "{}", text(&ignored));

    let bad = krust(&[
        "storage",
        "format",
        "-t",
        "not-a-uuid",
        "-c",
        cfg.to_str().expect("utf8"),
    ]);
    assert!(!bad.status.success());
}

#[test]
fn a_multi_voter_node_refuses_to_start_unformatted() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = write_config(
        dir.path(),
        1,
        "1@127.0.0.1:19093,2@127.0.0.1:19095,3@127.0.0.1:19097",
    );
    let o = krust(&["server", "--config", cfg.to_str().expect("utf8")]);
    assert!(!o.status.success());
    assert!(text(&o).contains("meta.properties"), "{}", text(&o));
    assert!(text(&o).contains("storage format"), "{}", text(&o));
}

#[test]
fn a_lone_member_of_a_larger_quorum_waits_for_the_others() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = write_config(
        dir.path(),
        1,
        "1@127.0.0.1:19093,2@127.0.0.1:19095,3@127.0.0.1:19097",
    );
    let o = krust(&[
        "storage",
        "format",
        "-t",
        "J8aAPcGqQWyyMZGNXz0n1w",
        "-c",
        cfg.to_str().expect("utf8"),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut child = std::process::Command::new(BIN)
        .args([
            "server",
            "--config",
            cfg.to_str().expect("utf8"),
            "--override",
            "controller.quorum.election.timeout.ms=100",
        ])
        .env("KRUST_LOG", "info")
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start krust");
    // It must not serve as an isolated cluster of one: it keeps asking for votes and says
    // what it waits for.
    let waited = krust_testkit::wait_for(
        "the node to say it waits for the quorum",
        std::time::Duration::from_secs(30),
        || {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            text.contains("waiting for the metadata quorum")
                .then_some(text)
        },
    );
    let still_running = child.try_wait().expect("status").is_none();
    let _ = child.kill();
    let _ = child.wait();
    assert!(still_running, "{waited}");
    assert!(!waited.contains("krust node started"), "{waited}");
}

#[test]
fn a_directory_of_another_node_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = write_config(dir.path(), 1, "1@127.0.0.1:19093");
    let o = krust(&[
        "storage",
        "format",
        "-t",
        "J8aAPcGqQWyyMZGNXz0n1w",
        "-c",
        cfg.to_str().expect("utf8"),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    // Same directory, different node id.
    let o = krust(&[
        "server",
        "--config",
        cfg.to_str().expect("utf8"),
        "--override",
        "node.id=2",
        "--override",
        "controller.quorum.voters=2@127.0.0.1:19093",
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("node id"), "{}", text(&o));
}

#[test]
fn bad_config_is_a_clear_startup_error() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = format!("log.dirs={}", dir.path().join("d").display());
    for (override_, expect) in [
        ("num.partitions=lots", "num.partitions"),
        ("log.retention.hourz=5", "log.retention.hourz"),
        (
            "auto.create.topics.enable=maybe",
            "auto.create.topics.enable",
        ),
        ("process.roles=worker", "worker"),
    ] {
        let o = krust(&["server", "--override", &data, "--override", override_]);
        assert!(!o.status.success(), "{override_} accepted");
        assert!(text(&o).contains(expect), "{override_}: {}", text(&o));
        assert!(
            !dir.path().join("d").join("meta.properties").exists(),
            "nothing formatted on a bad config"
        );
    }
    let o = krust(&["server", "--override", "no-equals-sign"]);
    assert!(!o.status.success());
}

#[test]
fn two_nodes_cannot_share_a_log_directory() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = format!("log.dirs={}", dir.path().join("d").display());
    let (p1, p2) = (krust_testkit::free_port(), krust_testkit::free_port());
    let listeners = format!("listeners=PLAINTEXT://127.0.0.1:{p1},CONTROLLER://127.0.0.1:{p2}");
    let voters = format!("controller.quorum.voters=1@127.0.0.1:{p2}");
    let mut first = Command::new(BIN)
        .args([
            "server",
            "--override",
            &data,
            "--override",
            &listeners,
            "--override",
            &voters,
        ])
        .args(["--override", "http.listener="])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("first node");
    krust_testkit::wait_for("the first node", std::time::Duration::from_secs(30), || {
        krust_testkit::api_versions_ok(std::net::SocketAddr::from(([127, 0, 0, 1], p1)))
            .then_some(())
    });
    let (q1, q2) = (krust_testkit::free_port(), krust_testkit::free_port());
    let o = krust(&[
        "server",
        "--override",
        &data,
        "--override",
        &format!("listeners=PLAINTEXT://127.0.0.1:{q1},CONTROLLER://127.0.0.1:{q2}"),
        "--override",
        &format!("controller.quorum.voters=1@127.0.0.1:{q2}"),
        "--override",
        "http.listener=",
    ]);
    let _ = first.kill();
    let _ = first.wait();
    assert!(
        !o.status.success(),
        "a second node on the same directory must not start"
    );
    assert!(text(&o).contains("Failed to acquire lock"), "{}", text(&o));
}
