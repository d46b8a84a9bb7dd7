//! `krust acls` (kafka-acls.sh): adds, removes and lists ACLs with CreateAcls, DeleteAcls
//! and DescribeAcls, with Kafka's options and output:
//!
//! ```text
//! Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name=orders, patternType=LITERAL)`:
//!      (principal=User:alice, host=*, operation=READ, permissionType=ALLOW)
//! ```
//!
//! `--producer` stands for WRITE, DESCRIBE and CREATE on the topics (WRITE and DESCRIBE on
//! the transactional ids, IDEMPOTENT_WRITE on the cluster with `--idempotent`);
//! `--consumer` for READ and DESCRIBE on the topics and READ on the groups.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io::BufRead;
use std::process::ExitCode;

use anyhow::{anyhow, bail};
use clap::Parser;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
use kafka_protocol::protocol::StrBytes;
use krust_client::ClientError;
use krust_metadata::acl::{self, op, pattern, permission, resource, CLUSTER_NAME};

use super::common::{self, ConnectArgs};

#[derive(Parser, Debug)]
#[command(
    name = "kafka-acls",
    about = "This tool helps to manage acls on kafka.",
    disable_version_flag = true
)]
struct Args {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Indicates you are trying to add ACLs.
    #[arg(long)]
    add: bool,
    /// Indicates you are trying to remove ACLs.
    #[arg(long)]
    remove: bool,
    /// List ACLs for the specified resource, use --topic <topic> or --group <group> or
    /// --cluster to specify a resource.
    #[arg(long)]
    list: bool,
    /// topic to which ACLs should be added or removed. A value of '*' indicates ACL should
    /// apply to all topics.
    #[arg(long, value_name = "topic")]
    topic: Vec<String>,
    /// Consumer Group to which the ACLs should be added or removed. A value of '*'
    /// indicates the ACLs should apply to all groups.
    #[arg(long, value_name = "group")]
    group: Vec<String>,
    /// Add/Remove cluster ACLs.
    #[arg(long)]
    cluster: bool,
    /// The transactionalId to which ACLs should be added or removed. A value of '*'
    /// indicates the ACLs should apply to all transactionalIds.
    #[arg(long = "transactional-id", value_name = "transactional-id")]
    transactional_id: Vec<String>,
    /// The type of the resource pattern or pattern filter: LITERAL or PREFIXED when
    /// adding, also ANY or MATCH when listing or removing.
    #[arg(
        long = "resource-pattern-type",
        value_name = "ANY|MATCH|LITERAL|PREFIXED",
        default_value = "LITERAL"
    )]
    resource_pattern_type: String,
    /// principal is in principalType:name format. Note that principalType must be
    /// supported by the Authorizer being used.
    #[arg(long = "allow-principal", value_name = "allow-principal")]
    allow_principal: Vec<String>,
    /// principal is in principalType:name format. By default anyone not added through
    /// --allow-principal is denied access.
    #[arg(long = "deny-principal", value_name = "deny-principal")]
    deny_principal: Vec<String>,
    /// List ACLs for the specified principal. principal is in principalType:name format.
    #[arg(long, value_name = "principal")]
    principal: Vec<String>,
    /// Host from which principals listed in --allow-principal will have access. If you
    /// have specified --allow-principal then the default for this option will be set to
    /// '*' which allows access from all hosts.
    #[arg(long = "allow-host", value_name = "allow-host")]
    allow_host: Vec<String>,
    /// Host from which principals listed in --deny-principal will be denied access.
    #[arg(long = "deny-host", value_name = "deny-host")]
    deny_host: Vec<String>,
    /// Operation that is being allowed or denied (All, Read, Write, Create, Delete, Alter,
    /// Describe, ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite).
    #[arg(long, value_name = "operation")]
    operation: Vec<String>,
    /// Convenience option to add/remove ACLs for producer role.
    #[arg(long)]
    producer: bool,
    /// Convenience option to add/remove ACLs for consumer role.
    #[arg(long)]
    consumer: bool,
    /// Enable idempotence for the producer (with --producer).
    #[arg(long)]
    idempotent: bool,
    /// Assume Yes to all queries and do not prompt.
    #[arg(long)]
    force: bool,
}

pub fn run(args: Vec<OsString>) -> ExitCode {
    let args: Args = match common::parse_args("kafka-acls", args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    common::exit_code(
        common::block_on(execute(&args))
            .and_then(|r| r)
            .map(|()| true),
        "Error while executing ACL command: ",
    )
}

/// A resource pattern (or pattern filter): type, name, pattern type.
type Pattern = (i8, String, i8);
/// An entry: principal, host, operation, permission.
type Entry = (String, String, i8, i8);

fn pattern_text(p: &Pattern) -> String {
    format!(
        "ResourcePattern(resourceType={}, name={}, patternType={})",
        acl::resource_name(p.0),
        p.1,
        acl::pattern_name(p.2)
    )
}

fn entry_text(e: &Entry) -> String {
    format!(
        "(principal={}, host={}, operation={}, permissionType={})",
        e.0,
        e.1,
        acl::operation_name(e.2),
        acl::permission_name(e.3)
    )
}

/// The resource patterns the options name.
fn patterns(args: &Args, pattern_type: i8) -> Vec<Pattern> {
    let mut out = Vec::new();
    for t in &args.topic {
        out.push((resource::TOPIC, t.trim().to_string(), pattern_type));
    }
    for g in &args.group {
        out.push((resource::GROUP, g.trim().to_string(), pattern_type));
    }
    for id in &args.transactional_id {
        out.push((resource::TRANSACTIONAL_ID, id.clone(), pattern_type));
    }
    if args.cluster && pattern_type == pattern::LITERAL {
        out.push((resource::CLUSTER, CLUSTER_NAME.to_string(), pattern_type));
    }
    out
}

fn principals(list: &[String]) -> anyhow::Result<Vec<String>> {
    list.iter()
        .map(|p| {
            acl::check_principal(p).map_err(|why| anyhow!(why))?;
            Ok(p.clone())
        })
        .collect()
}

/// The entries for the explicit options: each principal by each host by each operation.
fn entries(args: &Args, operations: &[i8]) -> anyhow::Result<Vec<Entry>> {
    let mut out = Vec::new();
    for (principals_of, hosts, perm) in [
        (&args.allow_principal, &args.allow_host, permission::ALLOW),
        (&args.deny_principal, &args.deny_host, permission::DENY),
    ] {
        let hosts = if hosts.is_empty() {
            vec!["*".to_string()]
        } else {
            hosts.clone()
        };
        for p in principals(principals_of)? {
            for h in &hosts {
                for &o in operations {
                    out.push((p.clone(), h.clone(), o, perm));
                }
            }
        }
    }
    Ok(out)
}

/// The ACLs to add or remove, by resource pattern.
fn bindings(args: &Args, pattern_type: i8) -> anyhow::Result<BTreeMap<Pattern, BTreeSet<Entry>>> {
    let mut out: BTreeMap<Pattern, BTreeSet<Entry>> = BTreeMap::new();
    if args.producer || args.consumer {
        if !args.operation.is_empty()
            || !args.deny_principal.is_empty()
            || !args.deny_host.is_empty()
        {
            bail!("--operation, --deny-principal and --deny-host are not allowed with --producer or --consumer");
        }
        if args.topic.is_empty() {
            bail!("With --producer or --consumer you must specify a --topic");
        }
        if args.consumer && args.group.is_empty() {
            bail!("With --consumer you must specify a --group");
        }
        let with = |ops: &[i8]| entries(args, ops);
        if args.producer && args.idempotent {
            out.entry((
                resource::CLUSTER,
                CLUSTER_NAME.to_string(),
                pattern::LITERAL,
            ))
            .or_default()
            .extend(with(&[op::IDEMPOTENT_WRITE])?);
        }
        for p in patterns(args, pattern_type) {
            let ops: Vec<i8> = match p.0 {
                resource::TOPIC => {
                    let mut ops = Vec::new();
                    if args.producer {
                        ops.extend([op::WRITE, op::DESCRIBE, op::CREATE]);
                    }
                    if args.consumer {
                        ops.extend([op::READ, op::DESCRIBE]);
                    }
                    ops
                }
                resource::GROUP if args.consumer => vec![op::READ],
                resource::TRANSACTIONAL_ID if args.producer => vec![op::WRITE, op::DESCRIBE],
                // As kafka-acls.sh: what the role does not use is left out.
                _ => continue,
            };
            out.entry(p).or_default().extend(with(&ops)?);
        }
        return Ok(out);
    }
    let operations: Vec<i8> = if args.operation.is_empty() {
        vec![op::ALL]
    } else {
        args.operation
            .iter()
            .map(|o| {
                acl::operation_code(o)
                    .filter(|&c| c >= op::ALL)
                    .ok_or_else(|| anyhow!("Unknown operation: {o}"))
            })
            .collect::<anyhow::Result<_>>()?
    };
    let es = entries(args, &operations)?;
    for p in patterns(args, pattern_type) {
        out.entry(p).or_default().extend(es.iter().cloned());
    }
    Ok(out)
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn confirm(question: &str) -> bool {
    println!("{question} (y/n)");
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    line.trim().eq_ignore_ascii_case("y")
}

async fn execute(args: &Args) -> anyhow::Result<()> {
    let actions = [args.add, args.remove, args.list]
        .iter()
        .filter(|x| **x)
        .count();
    if actions != 1 {
        bail!("Command must include exactly one action: --list, --add, --remove.");
    }
    let pattern_type = acl::pattern_code(&args.resource_pattern_type)
        .filter(|&p| p != pattern::UNKNOWN)
        .ok_or_else(|| {
            anyhow!(
                "Unknown resource pattern type: {}",
                args.resource_pattern_type
            )
        })?;
    if args.add && pattern_type != pattern::LITERAL && pattern_type != pattern::PREFIXED {
        bail!("A --resource-pattern-type of LITERAL or PREFIXED is needed to add ACLs");
    }
    if args.list
        && (args.producer
            || args.consumer
            || !args.allow_principal.is_empty()
            || !args.deny_principal.is_empty()
            || !args.allow_host.is_empty()
            || !args.deny_host.is_empty())
    {
        bail!("--list takes no --producer, --consumer, --allow-* or --deny-* option");
    }
    let mut client = args.connect.connect("acls-tool").await?;
    if args.list {
        return list(args, &mut client, pattern_type).await;
    }
    let bindings = bindings(args, pattern_type)?;
    if bindings.is_empty() {
        bail!(
            "You must specify one of: --topic, --cluster, --group, --transactional-id when \
             using this command."
        );
    }
    if args.add {
        // Every ACL is checked before any is sent, so that none is added when one cannot be.
        for (p, entries) in &bindings {
            for e in entries {
                let acl = acl::Acl {
                    resource_type: p.0,
                    resource_name: p.1.clone(),
                    pattern_type: p.2,
                    principal: e.0.clone(),
                    host: e.1.clone(),
                    operation: e.2,
                    permission: e.3,
                };
                if let Some(why) = acl.invalid() {
                    bail!("{why}");
                }
            }
        }
        let mut creations = Vec::new();
        for (p, entries) in &bindings {
            if entries.is_empty() {
                bail!("You must specify one of: --allow-principal, --deny-principal when trying to add ACLs.");
            }
            let shown: Vec<String> = entries
                .iter()
                .map(|e| format!("\t{}", entry_text(e)))
                .collect();
            outln!(
                "Adding ACLs for resource `{}`: \n {} \n",
                pattern_text(p),
                shown.join("\n")
            );
            for e in entries {
                creations.push(
                    AclCreation::default()
                        .with_resource_type(p.0)
                        .with_resource_name(s(&p.1))
                        .with_resource_pattern_type(p.2)
                        .with_principal(s(&e.0))
                        .with_host(s(&e.1))
                        .with_operation(e.2)
                        .with_permission_type(e.3),
                );
            }
        }
        let resp = client
            .send_any(&CreateAclsRequest::default().with_creations(creations))
            .await?;
        for r in &resp.results {
            ClientError::check(r.error_code, r.error_message.as_ref())?;
        }
        return Ok(());
    }
    // --remove
    let mut filters = Vec::new();
    for (p, entries) in &bindings {
        let base = DeleteAclsFilter::default()
            .with_resource_type_filter(p.0)
            .with_resource_name_filter(Some(s(&p.1)))
            .with_pattern_type_filter(p.2)
            .with_principal_filter(None)
            .with_host_filter(None);
        if entries.is_empty() {
            if !args.force
                && !confirm(&format!(
                    "Are you sure you want to delete all ACLs for resource filter `{}`?",
                    pattern_text(p)
                ))
            {
                continue;
            }
            filters.push(
                base.with_operation(op::ANY)
                    .with_permission_type(permission::ANY),
            );
        } else {
            let shown: Vec<String> = entries
                .iter()
                .map(|e| format!("\t{}", entry_text(e)))
                .collect();
            if !args.force
                && !confirm(&format!(
                    "Are you sure you want to remove ACLs: \n {} \n from resource filter `{}`?",
                    shown.join("\n"),
                    pattern_text(p)
                ))
            {
                continue;
            }
            for e in entries {
                filters.push(
                    base.clone()
                        .with_principal_filter(Some(s(&e.0)))
                        .with_host_filter(Some(s(&e.1)))
                        .with_operation(e.2)
                        .with_permission_type(e.3),
                );
            }
        }
    }
    if filters.is_empty() {
        return Ok(());
    }
    let resp = client
        .send_any(&DeleteAclsRequest::default().with_filters(filters))
        .await?;
    for r in &resp.filter_results {
        ClientError::check(r.error_code, r.error_message.as_ref())?;
    }
    Ok(())
}

async fn list(
    args: &Args,
    client: &mut krust_client::Client,
    pattern_type: i8,
) -> anyhow::Result<()> {
    let mut filters = patterns(args, pattern_type);
    if filters.is_empty() {
        filters.push((resource::ANY, String::new(), pattern::ANY));
    }
    let mut found: BTreeMap<Pattern, BTreeSet<Entry>> = BTreeMap::new();
    for f in &filters {
        let req = DescribeAclsRequest::default()
            .with_resource_type_filter(f.0)
            .with_resource_name_filter((f.0 != resource::ANY).then(|| s(&f.1)))
            .with_pattern_type_filter(f.2)
            .with_principal_filter(None)
            .with_host_filter(None)
            .with_operation(op::ANY)
            .with_permission_type(permission::ANY);
        let resp = client.send_any(&req).await?;
        ClientError::check(resp.error_code, resp.error_message.as_ref())?;
        for r in resp.resources {
            let entries = found
                .entry((r.resource_type, r.resource_name.to_string(), r.pattern_type))
                .or_default();
            for a in r.acls {
                entries.insert((
                    a.principal.to_string(),
                    a.host.to_string(),
                    a.operation,
                    a.permission_type,
                ));
            }
        }
    }
    let show = |found: &BTreeMap<Pattern, BTreeSet<Entry>>, only: Option<&str>| {
        for (p, entries) in found {
            let shown: Vec<String> = entries
                .iter()
                .filter(|e| only.is_none_or(|o| e.0 == o))
                .map(|e| format!("\t{}", entry_text(e)))
                .collect();
            if shown.is_empty() {
                continue;
            }
            outln!(
                "Current ACLs for resource `{}`: \n {} \n",
                pattern_text(p),
                shown.join("\n")
            );
        }
    };
    if args.principal.is_empty() {
        show(&found, None);
    } else {
        for p in principals(&args.principal)? {
            outln!("ACLs for principal `{p}`");
            show(&found, Some(&p));
        }
    }
    Ok(())
}
