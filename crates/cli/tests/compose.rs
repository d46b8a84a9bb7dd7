//! The container image and `docker/compose.yaml`: three containers from the image that
//! `docker/build-image.sh` makes of this build's binary form a cluster that host clients
//! reach through the published ports (produce, consume, the quorum's status); when the
//! active controller's container is killed, the others elect a new leader and carry on.
//!
//! Skipped, with the reason printed, when Docker or Compose is not usable here.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use krust_testkit::cli::{stderr, stdout};
use krust_testkit::{free_port, wait_for};

const BIN: &str = env!("CARGO_BIN_EXE_krust");
const PROJECT: &str = "krust-test";
const IMAGE: &str = "krust:compose-test";
const WAIT: Duration = Duration::from_secs(60);

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn output(cmd: &mut Command) -> Option<Output> {
    cmd.stdin(Stdio::null()).output().ok()
}

/// `docker compose` (the plugin) or `docker-compose`, whichever works.
fn compose_program() -> Option<Vec<String>> {
    let works = |prog: &[&str]| {
        output(Command::new(prog[0]).args(&prog[1..]).arg("version"))
            .is_some_and(|o| o.status.success())
    };
    if works(&["docker", "compose"]) {
        Some(vec!["docker".into(), "compose".into()])
    } else if works(&["docker-compose"]) {
        Some(vec!["docker-compose".into()])
    } else {
        None
    }
}

/// The compose project under test; `down -v` (and the test image's removal) when dropped,
/// with the containers' logs printed first if the test failed.
struct Compose {
    program: Vec<String>,
    ports: [u16; 3],
}

impl Compose {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.program[0]);
        c.args(&self.program[1..])
            .args(["-f", "docker/compose.yaml", "-p", PROJECT])
            .args(args)
            .current_dir(repo_root())
            .env("KRUST_IMAGE", IMAGE)
            .stdin(Stdio::null());
        for (i, p) in self.ports.iter().enumerate() {
            c.env(format!("KRUST_PORT_{}", i + 1), p.to_string());
        }
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        let o = self.command(args).output().expect("run docker compose");
        assert!(
            o.status.success(),
            "compose {args:?} failed:\n{}{}",
            stdout(&o),
            stderr(&o)
        );
        o
    }

    fn container(&self, service: &str) -> String {
        stdout(&self.run(&["ps", "-q", service])).trim().to_string()
    }

    fn bootstrap(&self, nodes: &[usize]) -> String {
        nodes
            .iter()
            .map(|n| format!("localhost:{}", self.ports[n - 1]))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Ok(o) = self
                .command(&["logs", "--no-color", "--tail", "60"])
                .output()
            {
                eprintln!("container logs:\n{}{}", stdout(&o), stderr(&o));
            }
        }
        // No need for a clean stop: the volumes go too.
        let _ = self.command(&["down", "-v", "-t", "2"]).output();
        let _ = output(Command::new("docker").args(["image", "rm", "-f", IMAGE]));
    }
}

fn quorum_status(bootstrap: &str) -> Option<BTreeMap<String, String>> {
    krust_testkit::cli::quorum_status(BIN, "--bootstrap-server", bootstrap)
}

fn leader_id(s: &BTreeMap<String, String>) -> i32 {
    s.get("LeaderId").and_then(|v| v.parse().ok()).unwrap_or(-1)
}

/// The partitions' leaders from `topics --describe` (-1 for none).
fn leaders(bootstrap: &str, topic: &str) -> Option<Vec<i32>> {
    krust_testkit::cli::describe_topic(BIN, bootstrap, topic)
        .map(|d| d.values().map(|r| r.leader).collect())
}

/// Creates a topic and waits until every broker in `bootstrap` knows a leader for every
/// partition (each broker's metadata catches up on its own).
fn create_topic(bootstrap: &str, topic: &str, partitions: usize, replication: usize) {
    krust_testkit::cli::create_topic_with(
        BIN,
        bootstrap,
        topic,
        &[
            "--partitions",
            &partitions.to_string(),
            "--replication-factor",
            &replication.to_string(),
        ],
    );
    for broker in bootstrap.split(',') {
        wait_for("the topic's leaders", WAIT, || {
            leaders(broker, topic)
                .filter(|l| l.len() == partitions && l.iter().all(|id| *id > 0))
                .map(|_| ())
        });
    }
}

fn produce(bootstrap: &str, topic: &str, records: &[String]) {
    krust_testkit::cli::console_produce(
        BIN,
        bootstrap,
        topic,
        records,
        &[
            "--producer-property",
            "acks=all",
            "--message-send-max-retries",
            "20",
        ],
    );
}

fn consume(bootstrap: &str, topic: &str, n: usize) -> Vec<String> {
    krust_testkit::cli::console_consume(BIN, bootstrap, topic, n)
}

#[test]
fn compose_cluster_serves_the_host_and_survives_losing_its_leader() {
    let started = Instant::now();
    match output(Command::new("docker").arg("info")) {
        Some(o) if o.status.success() => {}
        Some(o) => {
            eprintln!(
                "skipped: `docker info` failed: {}",
                stderr(&o).lines().next().unwrap_or("")
            );
            return;
        }
        None => {
            eprintln!("skipped: no docker command");
            return;
        }
    }
    let Some(program) = compose_program() else {
        eprintln!("skipped: neither `docker compose` nor `docker-compose` works");
        return;
    };

    // The image, from the binary this test run built (no second cargo build).
    let o = Command::new("bash")
        .arg(repo_root().join("docker/build-image.sh"))
        .env("KRUST_IMAGE", IMAGE)
        .env("KRUST_IMAGE_PROFILE", "debug")
        .env("KRUST_IMAGE_BINARY", BIN)
        .stdin(Stdio::null())
        .output()
        .expect("run docker/build-image.sh");
    assert!(
        o.status.success(),
        "build-image.sh failed:\n{}{}",
        stdout(&o),
        stderr(&o)
    );
    eprintln!("image built after {:.1}s", started.elapsed().as_secs_f64());

    let compose = Compose {
        program,
        ports: [free_port(), free_port(), free_port()],
    };
    // Leftovers of an interrupted run would carry old data.
    let _ = compose.command(&["down", "-v", "-t", "2"]).output();
    compose.run(&["up", "-d"]);
    let all = compose.bootstrap(&[1, 2, 3]);

    let status = wait_for("a quorum of three voters with a leader", WAIT, || {
        quorum_status(&all).filter(|s| leader_id(s) > 0)
    });
    assert_eq!(
        status["CurrentVoters"].matches("\"id\":").count(),
        3,
        "{status:?}"
    );
    for n in 1..=3 {
        assert!(
            status["CurrentVoters"].contains(&format!("CONTROLLER://krust-{n}:9093")),
            "{status:?}"
        );
    }
    // A broker serves clients once the controller has unfenced it.
    for n in 1..=3 {
        let one = compose.bootstrap(&[n]);
        wait_for("every broker registered and serving", WAIT, || {
            let o = krust_testkit::cli::run(BIN, &["topics", "--bootstrap-server", &one, "--list"]);
            o.status.success().then_some(())
        });
    }
    eprintln!("cluster up after {:.1}s", started.elapsed().as_secs_f64());

    // From the host, through the published ports: the metadata sends the client to each
    // node's localhost:<published port>.
    create_topic(&all, "compose", 3, 3);
    let records: Vec<String> = (0..9).map(|i| format!("record-{i}")).collect();
    produce(&all, "compose", &records);
    assert_eq!(consume(&all, "compose", records.len()), records);

    // Kill the active controller's container.
    let leader = leader_id(&status);
    let victim = compose.container(&format!("krust-{leader}"));
    assert!(!victim.is_empty());
    let o = output(Command::new("docker").args(["kill", &victim])).expect("docker kill");
    assert!(o.status.success(), "{}", stderr(&o));
    let survivors: Vec<usize> = (1..=3).filter(|n| *n as i32 != leader).collect();
    let alive = compose.bootstrap(&survivors);

    let status = wait_for("a new leader among the survivors", WAIT, || {
        quorum_status(&alive).filter(|s| {
            let l = leader_id(s);
            l > 0 && l != leader
        })
    });
    assert_eq!(
        status["CurrentVoters"].matches("\"id\":").count(),
        3,
        "{status:?}"
    );
    // Once the dead broker is fenced, its partitions are led by in-sync replicas on the
    // survivors, and every acknowledged record is still there...
    wait_for("leadership moved off the killed broker", WAIT, || {
        leaders(&alive, "compose")
            .filter(|l| l.iter().all(|id| *id > 0 && *id != leader))
            .map(|_| ())
    });
    assert_eq!(consume(&alive, "compose", records.len()), records);
    // ...and new partitions go to the live brokers only.
    create_topic(&alive, "after-kill", 2, 2);
    let more: Vec<String> = (0..4).map(|i| format!("later-{i}")).collect();
    produce(&alive, "after-kill", &more);
    assert_eq!(consume(&alive, "after-kill", more.len()), more);
    let placed = leaders(&alive, "after-kill").expect("describe");
    assert!(!placed.contains(&leader), "{placed:?}");

    eprintln!(
        "compose test done after {:.1}s",
        started.elapsed().as_secs_f64()
    );
}
