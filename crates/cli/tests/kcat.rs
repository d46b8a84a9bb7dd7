//! kcat, the librdkafka command-line client, against a krust node: metadata listing,
//! producing lines with keys, and consuming them back with offsets.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;

/// kcat is installed by .ci/run; outside CI a missing kcat skips this test loudly.
fn kcat() -> Option<&'static str> {
    if Command::new("kcat").arg("-V").output().is_ok() {
        return Some("kcat");
    }
    if std::env::var("CI").is_ok() {
        panic!("kcat is not installed (apt-get install kcat)");
    }
    eprintln!("SKIPPED: kcat is not installed (apt-get install kcat)");
    None
}

#[tokio::test(flavor = "multi_thread")]
async fn kcat_lists_produces_and_consumes() {
    let Some(kcat) = kcat() else { return };
    let node = start(&[]);
    create_topic(&node, "kc", 2, &[]).await;

    let out = Command::new(kcat)
        .args(["-b", &node.bootstrap(), "-L", "-t", "kc"])
        .output()
        .expect("kcat -L");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("topic \"kc\" with 2 partitions"), "{text}");
    assert!(text.contains("leader 1"), "{text}");

    let mut p = Command::new(kcat)
        .args([
            "-b",
            &node.bootstrap(),
            "-P",
            "-t",
            "kc",
            "-p",
            "1",
            "-K",
            ":",
            "-z",
            "zstd",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .expect("kcat -P");
    {
        let stdin = p.stdin.as_mut().expect("stdin");
        for i in 0..100 {
            writeln!(stdin, "k{i}:v{i}").expect("write");
        }
    }
    drop(p.stdin.take());
    assert!(p.wait().expect("wait").success());

    let out = Command::new(kcat)
        .args([
            "-b",
            &node.bootstrap(),
            "-C",
            "-t",
            "kc",
            "-p",
            "1",
            "-o",
            "beginning",
            "-e",
            "-f",
            "%o %k %s\n",
        ])
        .output()
        .expect("kcat -C");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 100, "{text}");
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(*l, format!("{i} k{i} v{i}"));
    }
}
