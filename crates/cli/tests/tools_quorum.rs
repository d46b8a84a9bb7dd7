//! `krust metadata-quorum describe` against a running node, through the client listener
//! and through the controller listener, in Kafka 4.1's layout.

use krust_testkit::cli::stdout;
use std::process::Output;

use krust_testkit::Node;

const BIN: &str = env!("CARGO_BIN_EXE_krust");

fn krust(args: &[&str]) -> Output {
    krust_testkit::cli::run(BIN, args)
}

#[test]
fn describe_status_and_replication_match_kafkas_layout() {
    let node = Node::start(BIN, &[]);
    let controller = format!("127.0.0.1:{}", node.controller_port);
    for (flag, addr) in [
        ("--bootstrap-server", node.bootstrap()),
        ("--bootstrap-controller", controller.clone()),
    ] {
        let o = krust(&["metadata-quorum", flag, &addr, "describe", "--status"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let text = stdout(&o);
        let lines: Vec<&str> = text.lines().collect();
        let labels = [
            "ClusterId:",
            "LeaderId:",
            "LeaderEpoch:",
            "HighWatermark:",
            "MaxFollowerLag:",
            "MaxFollowerLagTimeMs:",
            "CurrentVoters:",
            "CurrentObservers:",
        ];
        assert_eq!(lines.len(), labels.len(), "{text}");
        for (line, label) in lines.iter().zip(labels) {
            assert!(line.starts_with(label), "{line}");
            // Labels are padded to 24 characters, values follow.
            assert_eq!(
                &line[label.len()..24],
                " ".repeat(24 - label.len()),
                "{line}"
            );
            assert_ne!(line.as_bytes().get(24), Some(&b' '), "{line}");
        }
        assert_eq!(lines[1], "LeaderId:               1");
        assert!(
            lines[3]["HighWatermark:".len()..]
                .trim()
                .parse::<i64>()
                .expect("number")
                >= 1
        );
        assert_eq!(
            lines[6],
            format!("CurrentVoters:          [{{\"id\": 1, \"endpoints\": [\"CONTROLLER://127.0.0.1:{}\"]}}]", node.controller_port)
        );
        assert_eq!(lines[7], "CurrentObservers:       []");
    }

    let o = krust(&[
        "metadata-quorum",
        "--bootstrap-controller",
        &controller,
        "describe",
        "--replication",
    ]);
    assert!(o.status.success());
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    let header: Vec<&str> = lines[0].split('\t').map(str::trim_end).collect();
    assert_eq!(
        header,
        [
            "NodeId",
            "DirectoryId",
            "LogEndOffset",
            "Lag",
            "LastFetchTimestamp",
            "LastCaughtUpTimestamp",
            "Status",
            ""
        ]
    );
    assert!(
        lines.iter().all(|l| l.ends_with('\t')),
        "every cell is followed by a tab"
    );
    let row: Vec<&str> = lines[1].split('\t').map(str::trim_end).collect();
    assert_eq!(row[0], "1");
    assert_eq!(row[1], "AAAAAAAAAAAAAAAAAAAAAA");
    assert_eq!(row[3], "0");
    assert_eq!(row[6], "Leader");
    // Columns line up: every line has its tabs at the same places.
    let tabs = |l: &str| l.match_indices('\t').map(|(i, _)| i).collect::<Vec<_>>();
    assert_eq!(tabs(lines[0]), tabs(lines[1]));
}

#[test]
fn bad_arguments_and_unreachable_nodes_exit_1() {
    for args in [
        vec![
            "metadata-quorum",
            "--bootstrap-server",
            "127.0.0.1:1",
            "describe",
        ],
        vec![
            "metadata-quorum",
            "--bootstrap-server",
            "127.0.0.1:1",
            "describe",
            "--status",
            "--replication",
        ],
        vec!["metadata-quorum", "describe", "--status"],
        vec![
            "metadata-quorum",
            "--bootstrap-server",
            "127.0.0.1:1",
            "describe",
            "--status",
            "--human-readable",
        ],
        vec![
            "metadata-quorum",
            "--bootstrap-server",
            "127.0.0.1:1",
            "describe",
            "--status",
        ],
    ] {
        let o = krust(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(!o.stderr.is_empty(), "{args:?} explains itself");
    }
}

fn status_field(node: &Node, label: &str) -> i64 {
    let o = krust(&[
        "metadata-quorum",
        "--bootstrap-server",
        &node.bootstrap(),
        "describe",
        "--status",
    ]);
    assert!(o.status.success());
    let text = stdout(&o);
    let line = text.lines().find(|l| l.starts_with(label)).expect("label");
    line[label.len()..].trim().parse().expect("number")
}

#[test]
fn a_restart_elects_again_in_a_higher_epoch_and_keeps_the_log() {
    let mut node = Node::start(BIN, &[]);
    let o = krust(&[
        "topics",
        "--bootstrap-server",
        &node.bootstrap(),
        "--create",
        "--topic",
        "q",
        "--partitions",
        "3",
    ]);
    assert!(o.status.success());
    let epoch = status_field(&node, "LeaderEpoch:");
    let high_watermark = status_field(&node, "HighWatermark:");
    node.kill9();
    node.restart();
    assert!(
        status_field(&node, "LeaderEpoch:") > epoch,
        "a new election after restart"
    );
    assert!(
        status_field(&node, "HighWatermark:") > high_watermark,
        "the log kept and a new leader marker committed"
    );
    let o = krust(&[
        "topics",
        "--bootstrap-server",
        &node.bootstrap(),
        "--describe",
        "--topic",
        "q",
    ]);
    assert!(stdout(&o).contains("PartitionCount: 3"), "{}", stdout(&o));
    assert!(node
        .data_dir
        .join("__cluster_metadata-0")
        .join("quorum-state")
        .exists());
}

#[test]
fn metadata_snapshots_rebuild_the_image_after_a_restart() {
    let mut node = Node::start(
        BIN,
        &["metadata.log.max.record.bytes.between.snapshots=2000"],
    );
    for i in 0..30 {
        let t = format!("snap-{i}");
        let o = krust(&[
            "topics",
            "--bootstrap-server",
            &node.bootstrap(),
            "--create",
            "--topic",
            &t,
            "--partitions",
            "2",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let meta = node.data_dir.join("__cluster_metadata-0");
    let snapshots = || {
        std::fs::read_dir(&meta)
            .expect("metadata dir")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".checkpoint"))
            .count()
    };
    assert_eq!(snapshots(), 1, "one snapshot kept, older ones removed");
    node.kill9();
    node.restart();
    assert!(
        node.log().contains("loaded metadata snapshot"),
        "{}",
        node.log()
    );
    let o = krust(&["topics", "--bootstrap-server", &node.bootstrap(), "--list"]);
    let listed = stdout(&o);
    for i in 0..30 {
        assert!(
            listed.lines().any(|l| l == format!("snap-{i}")),
            "snap-{i} missing after restart:\n{listed}"
        );
    }
    let o = krust(&[
        "topics",
        "--bootstrap-server",
        &node.bootstrap(),
        "--describe",
        "--topic",
        "snap-29",
    ]);
    assert!(stdout(&o).contains("PartitionCount: 2"), "{}", stdout(&o));
}
