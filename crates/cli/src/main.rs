//! `krust`: the broker, the controller and the command-line tools in one binary.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use krust_server::config::ServerConfig;

mod alloc;
mod tools;

/// Reserves, rather than refuses, absurd allocation requests (see [`alloc`]).
#[global_allocator]
static ALLOCATOR: alloc::Allocator = alloc::Allocator;

#[derive(Parser)]
#[command(
    name = "krust",
    version,
    about = "A Kafka-compatible event streaming platform with a built-in KRaft quorum"
)]
struct Cli {
    /// Log level filter (e.g. info, debug, krust_server=trace). Also read from KRUST_LOG.
    #[arg(long, global = true)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node. With no arguments: a single-node cluster on localhost:9092 (client) and
    /// localhost:9093 (controller), data under /tmp/krust-logs.
    Server {
        /// A Kafka server.properties file.
        #[arg(long, short = 'c')]
        config: Option<PathBuf>,
        /// Override a config key: --override key=value (repeatable).
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
    /// Format storage directories or make a cluster id (kafka-storage).
    Storage {
        #[command(subcommand)]
        command: StorageCommand,
    },
    /// Create, list, describe, alter and delete topics (kafka-topics).
    #[command(disable_help_flag = true)]
    Topics {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Write stdin lines to a topic (kafka-console-producer).
    #[command(disable_help_flag = true)]
    ConsoleProducer {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Print a topic's records (kafka-console-consumer).
    #[command(disable_help_flag = true)]
    ConsoleConsumer {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Describe and alter topic and broker configs (kafka-configs).
    #[command(disable_help_flag = true)]
    Configs {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// List, describe, reset offsets of and delete consumer groups (kafka-consumer-groups).
    #[command(disable_help_flag = true)]
    ConsumerGroups {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Describe the KRaft metadata quorum (kafka-metadata-quorum).
    #[command(disable_help_flag = true)]
    MetadataQuorum {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Print partition offsets (kafka-get-offsets).
    #[command(disable_help_flag = true)]
    GetOffsets {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// List and describe transactions and producers, abort hanging transactions
    /// (kafka-transactions).
    #[command(disable_help_flag = true)]
    Transactions {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Add, remove and list ACLs (kafka-acls).
    #[command(disable_help_flag = true)]
    Acls {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Query brokers' log directories and the partitions in them (kafka-log-dirs).
    #[command(disable_help_flag = true)]
    LogDirs {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Delete records before given offsets (kafka-delete-records).
    #[command(disable_help_flag = true)]
    DeleteRecords {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Move partition replicas between brokers (kafka-reassign-partitions).
    #[command(disable_help_flag = true)]
    ReassignPartitions {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Measure producer throughput and latency (kafka-producer-perf-test).
    #[command(disable_help_flag = true)]
    ProducerPerfTest {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Measure consumer throughput (kafka-consumer-perf-test).
    #[command(disable_help_flag = true)]
    ConsumerPerfTest {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Print the cluster id (kafka-cluster cluster-id).
    #[command(disable_help_flag = true)]
    ClusterId {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Run a local cluster of combined nodes as child processes (see --help).
    #[command(disable_help_flag = true)]
    DevCluster {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Run a node configured from KRUST_<KEY>/KAFKA_<KEY> environment variables (node.id is
    /// KRUST_NODE_ID); formats the storage first if KRUST_CLUSTER_ID is set. The container
    /// image's entrypoint.
    ContainerStart {
        /// A Kafka server.properties file (without one: container defaults).
        #[arg(long, short = 'c')]
        config: Option<PathBuf>,
        /// Override a config key: --override key=value (repeatable; wins over the environment).
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
    /// Create kafka-*.sh symlinks to this binary in a directory.
    InstallAliases {
        /// The directory for the links (created if missing).
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum StorageCommand {
    /// Print a new random cluster id.
    RandomUuid,
    /// Write meta.properties into every log directory of the node.
    Format {
        /// The cluster id (22-character base64 UUID, e.g. from `krust storage random-uuid`).
        #[arg(long = "cluster-id", short = 't')]
        cluster_id: String,
        /// The node's server.properties.
        #[arg(long, short = 'c')]
        config: PathBuf,
        /// Override a config key: --override key=value (repeatable).
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Skip directories that are already formatted instead of failing.
        #[arg(long = "ignore-formatted", short = 'g')]
        ignore_formatted: bool,
        /// Format this controller as the only voter of a new quorum.
        #[arg(long, short = 's')]
        standalone: bool,
        /// A SCRAM credential the cluster starts with (repeatable):
        /// 'SCRAM-SHA-256=[name=alice,password=alice-secret]' (iterations=N optional).
        #[arg(long = "add-scram", short = 'S', value_name = "CREDENTIAL")]
        add_scram: Vec<String>,
    },
}

fn init_logging(level: Option<&str>) {
    let filter = level
        .map(String::from)
        .or_else(|| std::env::var("KRUST_LOG").ok())
        .unwrap_or_else(|| "info".to_string());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let argv = match tools::aliases::rewrite(std::env::args_os().collect()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cli = Cli::parse_from(argv);
    let is_tool = !matches!(
        cli.command,
        Command::Server { .. } | Command::Storage { .. } | Command::ContainerStart { .. }
    );
    let level = match (&cli.log_level, is_tool) {
        (Some(l), _) => Some(l.clone()),
        // Tools keep stderr for their own messages unless asked for logs.
        (None, true) if std::env::var("KRUST_LOG").is_err() => Some("warn".to_string()),
        (None, _) => None,
    };
    init_logging(level.as_deref());
    let result = match cli.command {
        Command::Server { config, overrides } => run_server(config, overrides),
        Command::Storage { command } => storage(command),
        Command::Topics { args } => return tools::topics::run(args),
        Command::ConsoleProducer { args } => return tools::console_producer::run(args),
        Command::ConsoleConsumer { args } => return tools::console_consumer::run(args),
        Command::Configs { args } => return tools::configs::run(args),
        Command::ConsumerGroups { args } => return tools::consumer_groups::run(args),
        Command::MetadataQuorum { args } => return tools::metadata_quorum::run(args),
        Command::GetOffsets { args } => return tools::get_offsets::run(args),
        Command::DeleteRecords { args } => return tools::delete_records::run(args),
        Command::Transactions { args } => return tools::transactions::run(args),
        Command::Acls { args } => return tools::acls::run(args),
        Command::LogDirs { args } => return tools::log_dirs::run(args),
        Command::ReassignPartitions { args } => return tools::reassign_partitions::run(args),
        Command::ProducerPerfTest { args } => return tools::producer_perf::run(args),
        Command::ConsumerPerfTest { args } => return tools::consumer_perf::run(args),
        Command::ClusterId { args } => return tools::cluster_id::run(args),
        Command::DevCluster { args } => return tools::dev_cluster::run(args),
        Command::ContainerStart { config, overrides } => {
            tools::container_start::prepare(config.as_deref(), &overrides)
                .and_then(|overrides| run_server(config, overrides))
        }
        Command::InstallAliases { dir } => tools::aliases::install(&dir).map(|links| {
            for l in links {
                println!("{}", l.display());
            }
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_server(config: Option<PathBuf>, overrides: Vec<String>) -> anyhow::Result<()> {
    let config = ServerConfig::load(config.as_deref(), &overrides)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let server = krust_server::run(config).await?;
        wait_for_signal().await;
        server.shutdown().await
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn storage(command: StorageCommand) -> anyhow::Result<()> {
    match command {
        StorageCommand::RandomUuid => {
            println!("{}", krust_server::meta_properties::random_uuid());
            Ok(())
        }
        StorageCommand::Format {
            cluster_id,
            config,
            overrides,
            ignore_formatted,
            standalone,
            add_scram,
        } => {
            let config = ServerConfig::load(Some(&config), &overrides)?;
            let bootstrap = krust_server::format::scram_records(&add_scram)?;
            for line in krust_server::format::format(
                &config,
                &cluster_id,
                ignore_formatted,
                standalone,
                &bootstrap,
            )? {
                println!("{line}");
            }
            Ok(())
        }
    }
}
