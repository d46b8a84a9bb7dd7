//! Kafka script names as aliases: invoked as `kafka-topics.sh` (a symlink to krust), the
//! binary behaves as `krust topics`. `krust install-aliases <dir>` makes the symlinks.

use std::ffi::OsString;
use std::path::Path;

/// Script name (without `.sh`) and the krust subcommand it maps to.
pub const ALIASES: &[(&str, &str)] = &[
    ("kafka-topics", "topics"),
    ("kafka-console-producer", "console-producer"),
    ("kafka-console-consumer", "console-consumer"),
    ("kafka-configs", "configs"),
    ("kafka-consumer-groups", "consumer-groups"),
    ("kafka-metadata-quorum", "metadata-quorum"),
    ("kafka-get-offsets", "get-offsets"),
    ("kafka-producer-perf-test", "producer-perf-test"),
    ("kafka-consumer-perf-test", "consumer-perf-test"),
    ("kafka-delete-records", "delete-records"),
    ("kafka-reassign-partitions", "reassign-partitions"),
    ("kafka-transactions", "transactions"),
    ("kafka-log-dirs", "log-dirs"),
    ("kafka-acls", "acls"),
    ("kafka-storage", "storage"),
    ("kafka-server-start", "server"),
    ("kafka-cluster", "cluster-id"),
];

/// Rewrites `argv` when the program was invoked under a Kafka script name; otherwise
/// returns it unchanged.
pub fn rewrite(argv: Vec<OsString>) -> Result<Vec<OsString>, String> {
    let Some(program) = argv.first() else {
        return Ok(argv);
    };
    let name = Path::new(program)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let script = name.strip_suffix(".sh").unwrap_or(&name);
    let Some((_, sub)) = ALIASES.iter().find(|(s, _)| *s == script) else {
        return Ok(argv);
    };
    let mut rest: Vec<OsString> = argv[1..].to_vec();
    let mut out = vec![OsString::from("krust"), OsString::from(*sub)];
    match *sub {
        "server" => {
            // kafka-server-start.sh server.properties [--override k=v]...
            if let Some(first) = rest.first() {
                if !first.to_string_lossy().starts_with('-') {
                    out.push(OsString::from("--config"));
                }
            }
        }
        "cluster-id" => {
            // kafka-cluster.sh cluster-id --bootstrap-server ...
            match rest.first().map(|a| a.to_string_lossy().into_owned()) {
                Some(cmd) if cmd == "cluster-id" => {
                    rest.remove(0);
                }
                Some(cmd) if cmd == "-h" || cmd == "--help" => {}
                Some(cmd) => {
                    return Err(format!(
                        "{name}: the '{cmd}' command is not supported yet (supported: cluster-id)"
                    ))
                }
                None => return Err(format!("{name}: a command is required (cluster-id)")),
            }
        }
        _ => {}
    }
    out.extend(rest);
    Ok(out)
}

/// Creates `<dir>/<script>` and `<dir>/<script>.sh` symlinks to the running binary.
/// Existing links are replaced. Returns the created paths.
pub fn install(dir: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    use anyhow::Context;
    let exe = std::env::current_exe().context("cannot find the krust binary")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut made = Vec::new();
    for (script, _) in ALIASES {
        for name in [script.to_string(), format!("{script}.sh")] {
            let link = dir.join(&name);
            if link.symlink_metadata().is_ok() {
                std::fs::remove_file(&link)
                    .with_context(|| format!("cannot replace {}", link.display()))?;
            }
            std::os::unix::fs::symlink(&exe, &link)
                .with_context(|| format!("cannot create {}", link.display()))?;
            made.push(link);
        }
    }
    Ok(made)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn maps_script_names() {
        assert_eq!(
            rewrite(argv(&["/opt/bin/kafka-topics.sh", "--list"])).expect("ok"),
            argv(&["krust", "topics", "--list"])
        );
        assert_eq!(
            rewrite(argv(&[
                "kafka-server-start",
                "server.properties",
                "--override",
                "a=b"
            ]))
            .expect("ok"),
            argv(&[
                "krust",
                "server",
                "--config",
                "server.properties",
                "--override",
                "a=b"
            ])
        );
        assert_eq!(
            rewrite(argv(&[
                "kafka-cluster.sh",
                "cluster-id",
                "--bootstrap-server",
                "x:1"
            ]))
            .expect("ok"),
            argv(&["krust", "cluster-id", "--bootstrap-server", "x:1"])
        );
        assert!(rewrite(argv(&["kafka-cluster.sh", "unregister"])).is_err());
        assert_eq!(
            rewrite(argv(&["./krust", "topics"])).expect("ok"),
            argv(&["./krust", "topics"])
        );
    }
}
