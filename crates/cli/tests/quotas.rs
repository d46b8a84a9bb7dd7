//! Client quotas: `krust configs` sets, describes and removes them (AlterClientQuotas,
//! DescribeClientQuotas) for users, client ids, IPs and their defaults, with Kafka's
//! validation.

mod common;

use common::*;
use krust_testkit::cli::{run, stderr, stdout};

fn configs(node: &Node, args: &[&str]) -> std::process::Output {
    let b = node.bootstrap();
    let mut full = vec!["configs", "--bootstrap-server", &b];
    full.extend_from_slice(args);
    run(BIN, &full)
}

#[test]
fn quotas_are_set_described_and_removed() {
    let node = start(&[]);
    let o = configs(
        &node,
        &[
            "--alter",
            "--entity-type",
            "users",
            "--entity-name",
            "alice",
            "--add-config",
            "producer_byte_rate=1024,consumer_byte_rate=2048",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).trim(),
        "Completed updating config for user alice."
    );
    let o = configs(
        &node,
        &[
            "--alter",
            "--entity-type",
            "clients",
            "--entity-default",
            "--add-config",
            "consumer_byte_rate=10485760",
        ],
    );
    assert_eq!(
        stdout(&o).trim(),
        "Completed updating default config for clients in the cluster.",
        "{}",
        stderr(&o)
    );
    let o = configs(
        &node,
        &[
            "--alter",
            "--entity-type",
            "ips",
            "--entity-name",
            "10.0.0.1",
            "--add-config",
            "connection_creation_rate=5",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));

    let o = configs(
        &node,
        &[
            "--describe",
            "--entity-type",
            "users",
            "--entity-name",
            "alice",
        ],
    );
    assert_eq!(
        stdout(&o).trim(),
        "Quota configs for user-principal 'alice' are consumer_byte_rate=2048.0, producer_byte_rate=1024.0"
    );
    let o = configs(&node, &["--describe", "--entity-type", "clients"]);
    assert_eq!(
        stdout(&o).trim(),
        "Quota configs for the default client-id are consumer_byte_rate=1.048576E7"
    );
    let o = configs(&node, &["--describe", "--entity-type", "ips"]);
    assert_eq!(
        stdout(&o).trim(),
        "Quota configs for ip '10.0.0.1' are connection_creation_rate=5.0"
    );

    // Kafka's validation: fractional byte rates, keys of another entity, values <= 0.
    for (entity, config, wanted) in [
        (
            "users",
            "producer_byte_rate=10.5",
            "producer_byte_rate cannot be a fractional value.",
        ),
        (
            "users",
            "connection_creation_rate=5",
            "Invalid configuration key connection_creation_rate",
        ),
        (
            "clients",
            "request_percentage=0",
            "Quota request_percentage must be greater than 0",
        ),
        (
            "users",
            "producer_byte_rate=x",
            "Cannot parse quota configuration value for producer_byte_rate: x",
        ),
    ] {
        let o = configs(
            &node,
            &[
                "--alter",
                "--entity-type",
                entity,
                "--entity-name",
                "bob",
                "--add-config",
                config,
            ],
        );
        assert!(!o.status.success(), "{config}");
        assert!(stderr(&o).contains(wanted), "{config}: {}", stderr(&o));
    }
    let o = configs(
        &node,
        &[
            "--describe",
            "--entity-type",
            "users",
            "--entity-name",
            "bob",
        ],
    );
    assert_eq!(stdout(&o).trim(), "");

    // Removing: a key that is not set is refused by the tool, as Kafka's is.
    let o = configs(
        &node,
        &[
            "--alter",
            "--entity-type",
            "users",
            "--entity-name",
            "alice",
            "--delete-config",
            "request_percentage",
        ],
    );
    assert!(
        stderr(&o).contains("Invalid config(s): request_percentage"),
        "{}",
        stderr(&o)
    );
    let o = configs(
        &node,
        &[
            "--alter",
            "--entity-type",
            "users",
            "--entity-name",
            "alice",
            "--delete-config",
            "producer_byte_rate,consumer_byte_rate",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = configs(
        &node,
        &[
            "--describe",
            "--entity-type",
            "users",
            "--entity-name",
            "alice",
        ],
    );
    assert_eq!(stdout(&o).trim(), "");
}
