//! `krust cluster-id` (`kafka-cluster.sh cluster-id`): prints `Cluster ID: <id>` from
//! DescribeCluster.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;
use kafka_protocol::messages::DescribeClusterRequest;
use krust_client::ClientError;

use super::common::{self, ConnectArgs};

#[derive(Parser, Debug)]
#[command(
    name = "kafka-cluster cluster-id",
    about = "Get information about the ID of a cluster.",
    disable_version_flag = true
)]
struct Args {
    #[command(flatten)]
    connect: ConnectArgs,
}

pub fn run(args: Vec<OsString>) -> ExitCode {
    let args: Args = match common::parse_args("kafka-cluster cluster-id", args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let result = common::block_on(async {
        let mut client = args.connect.connect("krust-cluster").await?;
        let resp = client.send_any(&DescribeClusterRequest::default()).await?;
        ClientError::check(resp.error_code, resp.error_message.as_ref())?;
        anyhow::Ok(resp.cluster_id.to_string())
    })
    .and_then(|r| r);
    match result {
        Ok(id) => {
            outln!("Cluster ID: {id}");
            ExitCode::SUCCESS
        }
        Err(e) => common::fail("Error: ", &e),
    }
}
