//! Sarama, the Go client (its own protocol code, neither librdkafka nor Java), against a
//! krust node: `tests/go/sarama_check.go`, built with Debian's Go and Sarama packages
//! (`golang-go`, `golang-github-shopify-sarama-dev`), which .ci/run installs.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Where Debian's Go packages keep their sources (a GOPATH).
const GOPATH: &str = "/usr/share/gocode";

/// Builds the check program; `None` (with a notice) where Go or Sarama is missing outside
/// CI. In CI a missing one fails the test.
fn sarama_check() -> Option<PathBuf> {
    let have_go = Command::new("go").arg("version").output().is_ok();
    let have_sarama = Path::new(GOPATH)
        .join("src/github.com/Shopify/sarama")
        .is_dir();
    if !have_go || !have_sarama {
        let what = "Go and Sarama are not installed (apt-get install golang-go \
                    golang-github-shopify-sarama-dev)";
        if std::env::var("CI").is_ok() {
            panic!("{what}");
        }
        eprintln!("SKIPPED: {what}");
        return None;
    }
    let dir = krust_testkit::target_dir().join("go");
    std::fs::create_dir_all(&dir).expect("target/go");
    let bin = dir.join("sarama_check");
    let source = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/go/sarama_check.go");
    let out = Command::new("go")
        .args(["build", "-o"])
        .arg(&bin)
        .arg(source)
        .env("GOPATH", GOPATH)
        .env("GO111MODULE", "off")
        .env("GOCACHE", dir.join("cache"))
        .env("GOFLAGS", "")
        .output()
        .expect("go build");
    assert!(
        out.status.success(),
        "go build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(bin)
}

#[test]
fn sarama_produces_consumes_and_commits() {
    let Some(bin) = sarama_check() else { return };
    run_check(&bin, &start(&[]), &[]);
    // Again through SASL/OAUTHBEARER, Sarama's own RFC 7628 messages with an extension,
    // on a listener with Kafka's unsecured validator.
    let node = Node::start_listener(
        BIN,
        "SASL_PLAINTEXT",
        &[
            "sasl.enabled.mechanisms=OAUTHBEARER",
            "sasl.mechanism.inter.broker.protocol=OAUTHBEARER",
            "listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config=\
             org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required \
             unsecuredLoginStringClaim_sub=\"broker\";",
        ],
    );
    let b64 =
        |v: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, v);
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 600;
    let token = format!(
        "{}.{}.",
        b64(br#"{"alg":"none"}"#),
        b64(format!(r#"{{"sub":"gopher","exp":{exp}}}"#).as_bytes())
    );
    run_check(&bin, &node, &["oauthbearer", &token]);
}

/// Runs the check program against `node` with `args`, stopped after two minutes.
fn run_check(bin: &Path, node: &Node, args: &[&str]) {
    let mut child = Command::new(bin)
        .arg(node.bootstrap())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sarama_check");
    // Stopped in any case after two minutes.
    let deadline = Instant::now() + Duration::from_secs(120);
    let finished = loop {
        if child.try_wait().expect("wait").is_some() {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if !finished {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        finished && out.status.success(),
        "sarama_check failed\nstdout:\n{stdout}\nstderr:\n{}\nnode log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        node.log()
    );
    for line in [
        "sarama admin: ok",
        "sarama producer: ok",
        "sarama partition consumer: ok",
        "sarama consumer group: ok",
    ] {
        assert!(stdout.contains(line), "{stdout}");
    }
}
