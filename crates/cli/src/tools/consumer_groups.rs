//! `krust consumer-groups` (kafka-consumer-groups.sh): list, describe (offsets, members,
//! state), reset offsets, delete groups and delete offsets, with Kafka's flags, messages and
//! column layouts (`ConsumerGroupCommand`, `GroupOffsetsResetter`). Failures are one
//! `Error: ...` line on stderr and exit code 1.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context};
use clap::Parser;
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::{
    consumer_group_describe_response, ConsumerGroupDescribeRequest, DeleteGroupsRequest,
    DescribeGroupsRequest, GroupId, ListGroupsRequest, OffsetDeleteRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use krust_client::{BrokerInfo, Client, ClientError};

use super::common::{self, ConnectArgs};
use super::get_offsets::list_offsets;
use super::group_member::{
    commit_offsets, decode_assignment, fetch_offsets_with_epochs, find_coordinator_info, Tp,
};

const MISSING: &str = "-";

/// An error whose message was already printed (in Kafka's layout): exit 1 without more.
#[derive(Debug)]
struct Reported;

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the command failed")
    }
}

impl std::error::Error for Reported {}

#[derive(Parser, Debug)]
#[command(
    name = "kafka-consumer-groups",
    about = "This tool helps to list all consumer groups, describe a consumer group, delete consumer group info, or reset consumer group offsets.",
    disable_version_flag = true
)]
struct Args {
    #[command(flatten)]
    connect: ConnectArgs,
    /// List all consumer groups.
    #[arg(long)]
    list: bool,
    /// Describe consumer group and list offset lag (number of messages not yet processed).
    #[arg(long)]
    describe: bool,
    /// Pass in groups to delete topic partition offsets and ownership information.
    #[arg(long)]
    delete: bool,
    /// Reset offsets of consumer group (one group at a time, inactive groups only).
    #[arg(long = "reset-offsets")]
    reset_offsets: bool,
    /// Delete offsets of consumer group.
    #[arg(long = "delete-offsets")]
    delete_offsets: bool,
    /// The consumer group we wish to act on.
    #[arg(long, value_name = "consumer group")]
    group: Vec<String>,
    /// Apply to all consumer groups.
    #[arg(long = "all-groups")]
    all_groups: bool,
    /// The topic whose consumer group information should be reset or deleted (topic or
    /// topic:partition,partition).
    #[arg(long, value_name = "topic")]
    topic: Vec<String>,
    /// Consider all topics assigned to a group in the reset-offsets process.
    #[arg(long = "all-topics")]
    all_topics: bool,
    /// Describe members of the group.
    #[arg(long)]
    members: bool,
    /// Provide additional information, if any, when describing the group.
    #[arg(long)]
    verbose: bool,
    /// Describe the group and list all topic partitions in the group along with their offset
    /// information (the default for --describe).
    #[arg(long)]
    offsets: bool,
    /// With --describe: the state of the group. With --list: show the state column, or only
    /// groups in the given comma-separated states.
    #[arg(long, num_args = 0..=1, default_missing_value = "", value_name = "String")]
    state: Option<String>,
    /// With --list: show the type column, or only groups of the given types.
    #[arg(long = "type", num_args = 0..=1, default_missing_value = "", value_name = "String")]
    group_type: Option<String>,
    /// Only show results without executing changes (the default).
    #[arg(long = "dry-run")]
    dry_run: bool,
    /// Execute the operation.
    #[arg(long)]
    execute: bool,
    /// Export the reset plan to CSV (not supported by krust).
    #[arg(long)]
    export: bool,
    /// Reset offsets to a specific offset.
    #[arg(long = "to-offset", value_name = "offset", allow_hyphen_values = true)]
    to_offset: Option<i64>,
    /// Reset offsets to offset from datetime. Format: 'YYYY-MM-DDTHH:mm:SS.sss'.
    #[arg(long = "to-datetime", value_name = "datetime")]
    to_datetime: Option<String>,
    /// Reset offsets to offset by duration from current timestamp. Format: 'PnDTnHnMnS'.
    #[arg(long = "by-duration", value_name = "duration")]
    by_duration: Option<String>,
    /// Reset offsets to earliest offset.
    #[arg(long = "to-earliest")]
    to_earliest: bool,
    /// Reset offsets to latest offset.
    #[arg(long = "to-latest")]
    to_latest: bool,
    /// Reset offsets to current offset.
    #[arg(long = "to-current")]
    to_current: bool,
    /// Reset offsets shifting current offset by 'n', where 'n' can be positive or negative.
    #[arg(
        long = "shift-by",
        value_name = "number-of-offsets",
        allow_hyphen_values = true
    )]
    shift_by: Option<i64>,
    /// Reset offsets to values defined in a CSV file (not supported by krust).
    #[arg(long = "from-file", value_name = "path to CSV file")]
    from_file: Option<PathBuf>,
    /// The timeout that can be set for some use cases (ms).
    #[arg(long, value_name = "timeout (ms)", default_value_t = 5000)]
    timeout: u64,
}

/// How to compute new offsets for --reset-offsets.
#[derive(Debug, Clone, PartialEq)]
enum Scenario {
    ToOffset(i64),
    ToEarliest,
    ToLatest,
    ToCurrent,
    ShiftBy(i64),
    ToDatetime(i64),
    ByDuration(i64),
}

enum Action {
    List,
    Describe,
    Delete,
    Reset(Scenario),
    DeleteOffsets,
}

fn check_args(a: &Args) -> anyhow::Result<Action> {
    let actions = [
        a.list,
        a.describe,
        a.delete,
        a.reset_offsets,
        a.delete_offsets,
    ];
    if actions.iter().filter(|x| **x).count() != 1 {
        bail!("Command must include exactly one action: --list, --describe, --delete, --reset-offsets, --delete-offsets");
    }
    let has_group = !a.group.is_empty() || a.all_groups;
    if !a.group.is_empty() && a.all_groups {
        bail!("Option \"[group]\" can't be used with option \"[all-groups]\"");
    }
    if (a.members || a.verbose || a.offsets) && !a.describe {
        bail!("Options --members, --verbose and --offsets are only available with --describe");
    }
    if a.state.is_some() && !(a.describe || a.list) {
        bail!("Option --state is only available with --describe or --list");
    }
    if a.group_type.is_some() && !a.list {
        bail!("Option --type is only available with --list");
    }
    if a.list {
        if !a.group.is_empty() {
            bail!("Option \"[group]\" can't be used with option \"[list]\"");
        }
        if !a.topic.is_empty() {
            bail!("Option \"[topic]\" can't be used with option \"[list]\"");
        }
        return Ok(Action::List);
    }
    if a.describe {
        if !has_group {
            bail!("Option [describe] takes one of these options: [all-groups], [group]");
        }
        if [a.members, a.offsets, a.state.is_some()]
            .iter()
            .filter(|x| **x)
            .count()
            > 1
        {
            bail!("Option [describe] takes at most one of these options: [members], [offsets], [state]");
        }
        if a.state.as_deref().is_some_and(|s| !s.is_empty()) {
            bail!("Option [describe] does not take a value for [state]");
        }
        if !a.topic.is_empty() {
            bail!("Option \"[topic]\" can't be used with option \"[describe]\"");
        }
        return Ok(Action::Describe);
    }
    if a.delete {
        if !has_group {
            bail!("Option [delete] takes one of these options: [all-groups], [group]");
        }
        if !a.topic.is_empty() {
            bail!("The consumer does not support topic-specific offset deletion from a consumer group.");
        }
        return Ok(Action::Delete);
    }
    if a.delete_offsets {
        if a.group.len() != 1 || a.topic.is_empty() {
            bail!("Option [delete-offsets] takes the following options: [group], [topic]");
        }
        return Ok(Action::DeleteOffsets);
    }
    // --reset-offsets
    if a.dry_run && a.execute {
        bail!("Option [reset-offsets] only accepts one of [execute] and [dry-run]");
    }
    if a.export {
        bail!("Option [export] is not supported by krust");
    }
    if !has_group {
        bail!("Option [reset-offsets] takes one of these options: [all-groups], [group]");
    }
    let mut scenarios: Vec<(&str, Scenario)> = Vec::new();
    if let Some(o) = a.to_offset {
        scenarios.push(("to-offset", Scenario::ToOffset(o)));
    }
    if let Some(d) = &a.to_datetime {
        scenarios.push(("to-datetime", Scenario::ToDatetime(parse_datetime(d)?)));
    }
    if let Some(d) = &a.by_duration {
        scenarios.push(("by-duration", Scenario::ByDuration(parse_duration_ms(d)?)));
    }
    if a.to_earliest {
        scenarios.push(("to-earliest", Scenario::ToEarliest));
    }
    if a.to_latest {
        scenarios.push(("to-latest", Scenario::ToLatest));
    }
    if a.to_current {
        scenarios.push(("to-current", Scenario::ToCurrent));
    }
    if let Some(n) = a.shift_by {
        scenarios.push(("shift-by", Scenario::ShiftBy(n)));
    }
    if a.from_file.is_some() {
        bail!("Option [from-file] is not supported by krust");
    }
    if scenarios.len() > 1 {
        bail!(
            "Option \"[{}]\" can't be used with option \"[{}]\"",
            scenarios[0].0,
            scenarios[1].0
        );
    }
    let Some((_, scenario)) = scenarios.pop() else {
        bail!("Option '[reset-offsets]' requires one of the following scenarios: [to-offset], [to-datetime], [by-duration], [to-earliest], [to-latest], [to-current], [shift-by], [from-file]");
    };
    if !a.all_topics && a.topic.is_empty() {
        bail!("One of the reset scopes should be defined: --all-topics, --topic.");
    }
    if a.all_topics && !a.topic.is_empty() {
        bail!("Option \"[all-topics]\" can't be used with option \"[topic]\"");
    }
    Ok(Action::Reset(scenario))
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Kafka's `Utils.getDateTime`: `yyyy-MM-dd'T'HH:mm:ss[.SSS][Z|±HH:mm|±HHmm]` to epoch ms.
/// Without a zone the time is taken as UTC.
fn parse_datetime(s: &str) -> anyhow::Result<i64> {
    let bad = || {
        anyhow!("Error parsing timestamp '{s}'. Format: 'YYYY-MM-DDTHH:mm:SS.sss', optionally followed by a time zone (Z, +HH:mm or -HHmm)")
    };
    let b = s.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> anyhow::Result<i64> {
        let t = s.get(r).ok_or_else(bad)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        t.parse::<i64>().map_err(|_| bad())
    };
    let (y, mo, d, h, mi, se) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return Err(bad());
    }
    let mut rest = &s[19..];
    let mut ms = 0i64;
    if let Some(r) = rest.strip_prefix('.') {
        let digits: String = r.chars().take_while(|c| c.is_ascii_digit()).collect();
        if digits.is_empty() {
            return Err(bad());
        }
        let mut frac = digits.clone();
        frac.truncate(3);
        while frac.len() < 3 {
            frac.push('0');
        }
        ms = frac.parse().map_err(|_| bad())?;
        rest = &r[digits.len()..];
    }
    let offset_min = match rest {
        "" | "Z" => 0,
        z if z.starts_with('+') || z.starts_with('-') => {
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let digits: String = z[1..].chars().filter(|c| *c != ':').collect();
            if digits.len() != 4 || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            let hh: i64 = digits[..2].parse().map_err(|_| bad())?;
            let mm: i64 = digits[2..].parse().map_err(|_| bad())?;
            sign * (hh * 60 + mm)
        }
        _ => return Err(bad()),
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset_min * 60;
    Ok(secs * 1000 + ms)
}

/// An ISO-8601 duration as Java's `Duration.parse` reads it (`PnDTnHnMn.nS`, optional
/// sign), in milliseconds.
fn parse_duration_ms(s: &str) -> anyhow::Result<i64> {
    let bad = || anyhow!("Text cannot be parsed to a Duration: {s}");
    let upper = s.to_ascii_uppercase();
    let (neg, body) = match upper.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, upper.strip_prefix('+').unwrap_or(&upper)),
    };
    let body = body.strip_prefix('P').ok_or_else(bad)?;
    let (date, time) = match body.split_once('T') {
        Some((d, t)) => {
            if t.is_empty() {
                return Err(bad());
            }
            (d, Some(t))
        }
        None => (body, None),
    };
    let mut total = 0f64;
    let mut any = false;
    let mut take = |part: &str, units: &[(char, f64)]| -> anyhow::Result<()> {
        let mut num = String::new();
        let mut idx = 0;
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' || c == '-' || c == '+' {
                num.push(c);
                continue;
            }
            let pos = units[idx..]
                .iter()
                .position(|(u, _)| *u == c)
                .ok_or_else(bad)?;
            let (_, factor) = units[idx + pos];
            idx += pos + 1;
            let v: f64 = num.parse().map_err(|_| bad())?;
            total += v * factor;
            any = true;
            num.clear();
        }
        if !num.is_empty() {
            return Err(bad());
        }
        Ok(())
    };
    take(date, &[('D', 86_400_000.0)])?;
    if let Some(t) = time {
        take(t, &[('H', 3_600_000.0), ('M', 60_000.0), ('S', 1000.0)])?;
    }
    if !any {
        return Err(bad());
    }
    let ms = total.round() as i64;
    Ok(if neg { -ms } else { ms })
}

pub fn run(args: Vec<OsString>) -> ExitCode {
    let args: Args = match common::parse_args("kafka-consumer-groups", args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let action = match check_args(&args) {
        Ok(a) => a,
        Err(e) => return common::fail("Error: ", &e),
    };
    if let Action::Reset(_) = action {
        if !args.dry_run && !args.execute {
            eprintln!("WARN: No action will be performed as the --execute option is missing. In a future major release, the default behavior of this command will be to prompt the user before executing the reset rather than doing a dry run. You should add the --dry-run option explicitly if you are scripting this command and want to keep the current default behavior without prompting.");
        }
    }
    let result = common::block_on(async {
        let mut config = args.connect.client_config("consumer-groups")?;
        config.request_timeout = config
            .request_timeout
            .min(std::time::Duration::from_millis(args.timeout.max(1)));
        let mut client = Client::connect(&args.connect.bootstrap_server, config).await?;
        match action {
            Action::List => list(&mut client, &args).await,
            Action::Describe => describe(&mut client, &args).await,
            Action::Delete => delete(&mut client, &args).await,
            Action::Reset(s) => reset(&mut client, &args, &s).await,
            Action::DeleteOffsets => delete_offsets(&mut client, &args).await,
        }
    })
    .and_then(|r| r);
    common::flush_stdout();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<Reported>().is_some() => ExitCode::FAILURE,
        Err(e) => common::fail("Error: ", &e),
    }
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// A group as ListGroups reports it.
struct Listed {
    id: String,
    state: String,
    /// "Classic" or "Consumer" (Kafka's GroupType names).
    group_type: &'static str,
}

/// Kafka's `GroupState` names, as `--state` accepts them (case-insensitively).
const STATES: &[&str] = &[
    "PreparingRebalance",
    "CompletingRebalance",
    "Stable",
    "Dead",
    "Empty",
    "Assigning",
    "Reconciling",
];

/// Every consumer group (protocol type `consumer` or empty), from every broker.
async fn list_groups(
    client: &mut Client,
    states: &[String],
    with_state: bool,
) -> anyhow::Result<Vec<Listed>> {
    client.metadata(Some(&[])).await?;
    let mut out: BTreeMap<String, Listed> = BTreeMap::new();
    for b in client.brokers() {
        let req =
            ListGroupsRequest::default().with_states_filter(states.iter().map(|s| sb(s)).collect());
        let conn = client.connection_to(b.node_id).await?;
        let v = conn.version_for::<ListGroupsRequest>()?;
        if !states.is_empty() && v < 4 {
            bail!("The broker does not support filtering groups by state");
        }
        let _ = with_state;
        let resp = conn.send_version(&req, v.min(5)).await?;
        ClientError::check(resp.error_code, None)?;
        for g in resp.groups {
            let pt = g.protocol_type.to_string();
            if !pt.is_empty() && pt != "consumer" {
                continue;
            }
            let id = g.group_id.to_string();
            let group_type = if g.group_type.eq_ignore_ascii_case("consumer") {
                "Consumer"
            } else {
                "Classic"
            };
            out.insert(
                id.clone(),
                Listed {
                    id,
                    state: g.group_state.to_string(),
                    group_type,
                },
            );
        }
    }
    Ok(out.into_values().collect())
}

async fn list(client: &mut Client, args: &Args) -> anyhow::Result<()> {
    let states: Vec<String> = match args.state.as_deref() {
        Some(s) if !s.is_empty() => {
            let mut out = Vec::new();
            for part in s.split(',') {
                let part = part.trim();
                match STATES.iter().find(|k| k.eq_ignore_ascii_case(part)) {
                    Some(k) => out.push(k.to_string()),
                    None => bail!(
                        "Invalid state list '{s}'. Valid states are: {}",
                        STATES.join(", ")
                    ),
                }
            }
            out
        }
        _ => Vec::new(),
    };
    if let Some(t) = args.group_type.as_deref().filter(|t| !t.is_empty()) {
        for part in t.split(',') {
            let p = part.trim().to_ascii_lowercase();
            if p != "classic" && p != "consumer" {
                bail!("Invalid types list '{t}'. Valid types are: classic, consumer");
            }
        }
    }
    let wanted_types: Vec<String> = args
        .group_type
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    let groups = list_groups(client, &states, args.state.is_some()).await?;
    let include_state = args.state.is_some();
    let include_type = args.group_type.is_some();
    if !include_state && !include_type {
        for g in groups {
            outln!("{}", g.id);
        }
        return Ok(());
    }
    let groups: Vec<Listed> = groups
        .into_iter()
        .filter(|g| {
            wanted_types.is_empty()
                || wanted_types
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case(g.group_type))
        })
        .collect();
    let width = groups
        .iter()
        .map(|g| g.id.len().max(15))
        .max()
        .unwrap_or(15)
        + 10;
    let row = |id: &str, ty: &str, state: &str| {
        let mut line = format!("{id:<width$}");
        if include_type {
            line.push_str(&format!(" {ty:<20}"));
        }
        if include_state {
            line.push_str(&format!(" {state:<20}"));
        }
        line
    };
    outln!("{}", row("GROUP", "TYPE", "STATE"));
    for g in &groups {
        outln!("{}", row(&g.id, g.group_type, &g.state));
    }
    Ok(())
}

/// A member as DescribeGroups reports it, with its decoded assignment.
struct Member {
    id: String,
    instance_id: Option<String>,
    client_id: String,
    host: String,
    assignment: BTreeMap<String, Vec<i32>>,
    /// A consumer-protocol member's epoch and target assignment.
    epoch: Option<i32>,
    target: Option<BTreeMap<String, Vec<i32>>>,
}

impl Member {
    fn partitions(&self) -> usize {
        self.assignment.values().map(Vec::len).sum()
    }
}

/// A group as DescribeGroups reports it.
struct Described {
    coordinator: BrokerInfo,
    state: String,
    protocol_type: String,
    protocol: String,
    members: Vec<Member>,
    /// A consumer-protocol group's epoch and target assignment epoch.
    epochs: Option<(i32, i32)>,
}

/// A group as ConsumerGroupDescribe reports it; `None` when it is not a consumer-protocol
/// group (or the coordinator does not serve the API), as Kafka's admin client falls back.
async fn describe_consumer_group(
    client: &mut Client,
    coordinator: &BrokerInfo,
    group: &str,
) -> anyhow::Result<Option<Described>> {
    let conn = client.connection_to(coordinator.node_id).await?;
    let Ok(v) = conn.version_for::<ConsumerGroupDescribeRequest>() else {
        return Ok(None);
    };
    let req = ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(sb(group))]);
    let resp = conn.send_version(&req, v.min(1)).await?;
    let Some(g) = resp.groups.into_iter().next() else {
        return Ok(None);
    };
    // GROUP_ID_NOT_FOUND: a classic group, or none.
    if g.error_code == 69 {
        return Ok(None);
    }
    ClientError::check(g.error_code, g.error_message.as_ref())?;
    let partitions = |a: &consumer_group_describe_response::Assignment| {
        let mut out: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for t in &a.topic_partitions {
            let mut p = t.partitions.clone();
            p.sort_unstable();
            out.entry(t.topic_name.to_string()).or_default().extend(p);
        }
        out
    };
    let members = g
        .members
        .iter()
        .map(|m| Member {
            id: m.member_id.to_string(),
            instance_id: m.instance_id.as_ref().map(|s| s.to_string()),
            client_id: m.client_id.to_string(),
            host: m.client_host.to_string(),
            assignment: partitions(&m.assignment),
            epoch: Some(m.member_epoch),
            target: Some(partitions(&m.target_assignment)),
        })
        .collect();
    Ok(Some(Described {
        coordinator: coordinator.clone(),
        state: g.group_state.to_string(),
        protocol_type: "consumer".into(),
        protocol: g.assignor_name.to_string(),
        members,
        epochs: Some((g.group_epoch, g.assignment_epoch)),
    }))
}

async fn describe_group(client: &mut Client, group: &str) -> anyhow::Result<Described> {
    let coordinator = find_coordinator_info(client, group).await?;
    if let Some(d) = describe_consumer_group(client, &coordinator, group).await? {
        return Ok(d);
    }
    let req = DescribeGroupsRequest::default().with_groups(vec![GroupId(sb(group))]);
    let conn = client.connection_to(coordinator.node_id).await?;
    let v = conn.version_for::<DescribeGroupsRequest>()?.min(5);
    let resp = conn.send_version(&req, v).await?;
    let g = resp
        .groups
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("No description returned for group {group}"))?;
    ClientError::check(g.error_code, None)?;
    let protocol_type = g.protocol_type.to_string();
    let members = g
        .members
        .into_iter()
        .map(|m| Member {
            id: m.member_id.to_string(),
            instance_id: m.group_instance_id.map(|s| s.to_string()),
            client_id: m.client_id.to_string(),
            host: m.client_host.to_string(),
            assignment: if protocol_type == "consumer" {
                decode_assignment(&m.member_assignment)
            } else {
                BTreeMap::new()
            },
            epoch: None,
            target: None,
        })
        .collect();
    Ok(Described {
        coordinator,
        state: g.group_state.to_string(),
        protocol_type,
        protocol: g.protocol_data.to_string(),
        members,
        epochs: None,
    })
}

/// The groups named on the command line, or every group with --all-groups.
async fn target_groups(client: &mut Client, args: &Args) -> anyhow::Result<Vec<String>> {
    if args.all_groups {
        Ok(list_groups(client, &[], false)
            .await?
            .into_iter()
            .map(|g| g.id)
            .collect())
    } else {
        Ok(args.group.clone())
    }
}

/// Kafka's `shouldPrintMemberState`: the notices for the group's state. A dead group is an
/// error.
fn state_notice(group: &str, state: &str) -> anyhow::Result<()> {
    match state {
        "Dead" => bail!("Consumer group '{group}' does not exist."),
        "Empty" => eprintln!("\nConsumer group '{group}' has no active members."),
        "PreparingRebalance" | "CompletingRebalance" | "Assigning" | "Reconciling" => {
            eprintln!("\nWarning: Consumer group '{group}' is rebalancing.")
        }
        _ => {}
    }
    Ok(())
}

/// Log offsets (ListOffsets at `time`: -1 latest, -2 earliest, else a timestamp) of
/// `partitions`; `None` for a partition that has no leader or is unknown.
async fn log_offsets(
    client: &mut Client,
    partitions: &BTreeSet<Tp>,
    time: i64,
) -> anyhow::Result<BTreeMap<Tp, Option<i64>>> {
    let topics: BTreeSet<String> = partitions.iter().map(|(t, _)| t.clone()).collect();
    let topics: Vec<String> = topics.into_iter().collect();
    let mut out: BTreeMap<Tp, Option<i64>> =
        partitions.iter().map(|tp| (tp.clone(), None)).collect();
    if topics.is_empty() {
        return Ok(out);
    }
    let md = client.metadata(Some(&topics)).await?;
    let mut by_leader: BTreeMap<i32, BTreeMap<String, Vec<i32>>> = BTreeMap::new();
    for t in &md.topics {
        let Some(name) = t.name.as_ref().map(|n| n.to_string()) else {
            continue;
        };
        for p in &t.partitions {
            let tp = (name.clone(), p.partition_index);
            if partitions.contains(&tp) && p.leader_id.0 >= 0 {
                by_leader
                    .entry(p.leader_id.0)
                    .or_default()
                    .entry(name.clone())
                    .or_default()
                    .push(p.partition_index);
            }
        }
    }
    for (leader, topics) in by_leader {
        for (tp, r) in list_offsets(client, leader, &topics, time).await? {
            if let Ok(o) = r {
                out.insert(tp, Some(o));
            }
        }
    }
    Ok(out)
}

async fn committed_offsets(
    client: &mut Client,
    node: i32,
    group: &str,
) -> anyhow::Result<BTreeMap<Tp, i64>> {
    Ok(committed_with_epochs(client, node, group)
        .await?
        .into_iter()
        .map(|(tp, (o, _))| (tp, o))
        .collect())
}

/// The committed offsets of `group` with their leader epochs (-1 when unknown).
async fn committed_with_epochs(
    client: &mut Client,
    node: i32,
    group: &str,
) -> anyhow::Result<BTreeMap<Tp, (i64, i32)>> {
    Ok(fetch_offsets_with_epochs(client, node, group, None)
        .await
        .with_context(|| format!("Fetching offsets of group {group}"))?
        .into_iter()
        .filter_map(|(tp, o)| o.map(|o| (tp, o)))
        .collect())
}

fn dash<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string())
        .unwrap_or_else(|| MISSING.to_string())
}

async fn describe(client: &mut Client, args: &Args) -> anyhow::Result<()> {
    let groups = target_groups(client, args).await?;
    let mut failed: Option<anyhow::Error> = None;
    for group in groups {
        let r = if args.members {
            describe_members(client, &group, args.verbose).await
        } else if args.state.is_some() {
            describe_state(client, &group, args.verbose).await
        } else {
            describe_offsets(client, &group, args.verbose).await
        };
        if let Err(e) = r {
            failed = Some(e);
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// One row of the offsets view.
struct OffsetRow {
    topic: String,
    partition: i32,
    epoch: Option<i32>,
    current: Option<i64>,
    log_end: Option<i64>,
    consumer: String,
    host: String,
    client: String,
}

async fn describe_offsets(client: &mut Client, group: &str, verbose: bool) -> anyhow::Result<()> {
    let d = describe_group(client, group).await?;
    state_notice(group, &d.state)?;
    let with_epochs = committed_with_epochs(client, d.coordinator.node_id, group).await?;
    let committed: BTreeMap<Tp, i64> = with_epochs
        .iter()
        .map(|(tp, (o, _))| (tp.clone(), *o))
        .collect();
    let mut members: Vec<&Member> = d.members.iter().filter(|m| m.partitions() > 0).collect();
    members.sort_by_key(|m| std::cmp::Reverse(m.partitions()));
    let mut all: BTreeSet<Tp> = committed.keys().cloned().collect();
    for m in &members {
        for (t, ps) in &m.assignment {
            for p in ps {
                all.insert((t.clone(), *p));
            }
        }
    }
    let ends = log_offsets(client, &all, -1).await?;
    let mut rows: Vec<OffsetRow> = Vec::new();
    let mut assigned: BTreeSet<Tp> = BTreeSet::new();
    let row = |tp: &Tp, consumer: &str, host: &str, client: &str| OffsetRow {
        topic: tp.0.clone(),
        partition: tp.1,
        epoch: with_epochs.get(tp).map(|(_, e)| *e).filter(|e| *e >= 0),
        current: committed.get(tp).copied(),
        log_end: ends.get(tp).copied().flatten(),
        consumer: consumer.to_string(),
        host: host.to_string(),
        client: client.to_string(),
    };
    for m in &members {
        let mut tps: Vec<Tp> = m
            .assignment
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
            .collect();
        tps.sort();
        for tp in tps {
            rows.push(row(&tp, &m.id, &m.host, &m.client_id));
            assigned.insert(tp);
        }
    }
    for tp in committed.keys() {
        if !assigned.contains(tp) {
            rows.push(row(tp, MISSING, MISSING, MISSING));
        }
    }
    if rows.is_empty() {
        return Ok(());
    }
    let gw = group.len().max(15);
    let tw = rows
        .iter()
        .map(|r| r.topic.len())
        .max()
        .unwrap_or(0)
        .max(15);
    let cw = rows
        .iter()
        .map(|r| r.consumer.len())
        .max()
        .unwrap_or(0)
        .max(15);
    let hw = rows.iter().map(|r| r.host.len()).max().unwrap_or(0).max(15);
    let line = |g: &str,
                t: &str,
                p: &str,
                epoch: &str,
                cur: &str,
                end: &str,
                lag: &str,
                c: &str,
                h: &str,
                cl: &str| {
        if verbose {
            format!("{g:<gw$} {t:<tw$} {p:<10} {epoch:<15} {cur:<15} {end:<15} {lag:<15} {c:<cw$} {h:<hw$} {cl}")
        } else {
            format!(
                "{g:<gw$} {t:<tw$} {p:<10} {cur:<15} {end:<15} {lag:<15} {c:<cw$} {h:<hw$} {cl}"
            )
        }
    };
    outln!("");
    outln!(
        "{}",
        line(
            "GROUP",
            "TOPIC",
            "PARTITION",
            "LEADER-EPOCH",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID"
        )
    );
    for r in &rows {
        let lag = match (r.current, r.log_end) {
            (Some(c), Some(e)) => Some(e - c),
            _ => None,
        };
        outln!(
            "{}",
            line(
                group,
                &r.topic,
                &r.partition.to_string(),
                &dash(r.epoch),
                &dash(r.current),
                &dash(r.log_end),
                &dash(lag),
                &r.consumer,
                &r.host,
                &r.client
            )
        );
    }
    outln!("");
    Ok(())
}

/// Kafka's assignment string: `topic:p,p;topic:p`, topics sorted.
fn assignment_string(a: &BTreeMap<String, Vec<i32>>) -> String {
    let parts: Vec<String> = a
        .iter()
        .filter(|(_, ps)| !ps.is_empty())
        .map(|(t, ps)| {
            let mut ps = ps.clone();
            ps.sort_unstable();
            let list: Vec<String> = ps.iter().map(i32::to_string).collect();
            format!("{t}:{}", list.join(","))
        })
        .collect();
    if parts.is_empty() {
        MISSING.to_string()
    } else {
        parts.join(";")
    }
}

async fn describe_members(client: &mut Client, group: &str, verbose: bool) -> anyhow::Result<()> {
    let d = describe_group(client, group).await?;
    state_notice(group, &d.state)?;
    let gw = d
        .members
        .iter()
        .map(|_| group.len())
        .max()
        .unwrap_or(0)
        .max(15);
    let cw = d
        .members
        .iter()
        .map(|m| m.id.len())
        .max()
        .unwrap_or(0)
        .max(15);
    let iw = d
        .members
        .iter()
        .map(|m| m.instance_id.as_deref().unwrap_or("").len())
        .max()
        .unwrap_or(0)
        .max(17);
    let hw = d
        .members
        .iter()
        .map(|m| m.host.len())
        .max()
        .unwrap_or(0)
        .max(15);
    let lw = d
        .members
        .iter()
        .map(|m| m.client_id.len())
        .max()
        .unwrap_or(0)
        .max(15);
    let aw = d
        .members
        .iter()
        .map(|m| assignment_string(&m.assignment).len())
        .max()
        .unwrap_or(0)
        .max(20);
    let with_instance = d.members.iter().any(|m| m.instance_id.is_some());
    let base = |g: &str, c: &str, i: &str, h: &str, l: &str, n: &str| {
        if with_instance {
            format!("{g:<gw$} {c:<cw$} {i:<iw$} {h:<hw$} {l:<lw$} {n:<15} ")
        } else {
            format!("{g:<gw$} {c:<cw$} {h:<hw$} {l:<lw$} {n:<15} ")
        }
    };
    let extra =
        |ce: &str, ca: &str, te: &str, ta: &str| format!("{ce:<15} {ca:<aw$} {te:<15} {ta:<20}");
    let mut header = base(
        "GROUP",
        "CONSUMER-ID",
        "GROUP-INSTANCE-ID",
        "HOST",
        "CLIENT-ID",
        "#PARTITIONS",
    );
    if verbose {
        header.push_str(&extra(
            "CURRENT-EPOCH",
            "CURRENT-ASSIGNMENT",
            "TARGET-EPOCH",
            "TARGET-ASSIGNMENT",
        ));
    }
    outln!("");
    outln!("{header}");
    for m in &d.members {
        let mut line = base(
            group,
            &m.id,
            m.instance_id.as_deref().unwrap_or(""),
            &m.host,
            &m.client_id,
            &m.partitions().to_string(),
        );
        if verbose {
            let target_epoch = d.epochs.map(|(_, t)| t);
            line.push_str(&extra(
                &dash(m.epoch),
                &assignment_string(&m.assignment),
                &dash(target_epoch.filter(|_| m.target.is_some())),
                &m.target
                    .as_ref()
                    .map_or_else(|| MISSING.to_string(), assignment_string),
            ));
        }
        outln!("{line}");
    }
    let _ = &d.protocol_type;
    Ok(())
}

async fn describe_state(client: &mut Client, group: &str, verbose: bool) -> anyhow::Result<()> {
    let d = describe_group(client, group).await?;
    state_notice(group, &d.state)?;
    let coordinator = format!(
        "{}:{}  ({})",
        d.coordinator.host, d.coordinator.port, d.coordinator.node_id
    );
    let cw = coordinator.len().max(25);
    let gw = group.len().max(15);
    let strategy = if d.protocol.is_empty() {
        MISSING.to_string()
    } else {
        d.protocol.clone()
    };
    let members = d.members.len().to_string();
    outln!("");
    if verbose {
        outln!(
            "{:<gw$} {:<cw$} {:<20} {:<20} {:<15} {:<25} {}",
            "GROUP",
            "COORDINATOR (ID)",
            "ASSIGNMENT-STRATEGY",
            "STATE",
            "GROUP-EPOCH",
            "TARGET-ASSIGNMENT-EPOCH",
            "#MEMBERS"
        );
        outln!(
            "{:<gw$} {:<cw$} {:<20} {:<20} {:<15} {:<25} {}",
            group,
            coordinator,
            strategy,
            d.state,
            dash(d.epochs.map(|e| e.0)),
            dash(d.epochs.map(|e| e.1)),
            members
        );
    } else {
        outln!(
            "{:<gw$} {:<cw$} {:<20} {:<20} {}",
            "GROUP",
            "COORDINATOR (ID)",
            "ASSIGNMENT-STRATEGY",
            "STATE",
            "#MEMBERS"
        );
        outln!(
            "{:<gw$} {:<cw$} {:<20} {:<20} {}",
            group,
            coordinator,
            strategy,
            d.state,
            members
        );
    }
    outln!("");
    Ok(())
}

/// Kafka's exception for a group error code, as `toString()` prints it.
fn exception(code: i16) -> String {
    let (class, text) = match code {
        68 => ("GroupNotEmptyException", "The group is not empty."),
        69 => ("GroupIdNotFoundException", "The group id does not exist."),
        24 => (
            "InvalidGroupIdException",
            "The configured groupId is invalid.",
        ),
        15 => (
            "CoordinatorNotAvailableException",
            "The coordinator is not available.",
        ),
        16 => (
            "NotCoordinatorException",
            "This is not the correct coordinator.",
        ),
        30 => ("GroupAuthorizationException", "Group authorization failed."),
        86 => (
            "GroupSubscribedToTopicException",
            "The consumer group is actively subscribed to the topic",
        ),
        3 => (
            "UnknownTopicOrPartitionException",
            "This server does not host this topic-partition.",
        ),
        _ => {
            return format!(
                "org.apache.kafka.common.errors.ApiException: {}",
                krust_client::error_description(code)
            )
        }
    };
    format!("org.apache.kafka.common.errors.{class}: {text}")
}

async fn delete(client: &mut Client, args: &Args) -> anyhow::Result<()> {
    let groups = target_groups(client, args).await?;
    let mut ok: Vec<String> = Vec::new();
    let mut failed: Vec<(String, String)> = Vec::new();
    for group in &groups {
        let coordinator = find_coordinator_info(client, group).await?;
        let req = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(sb(group))]);
        let resp = client.send_to(coordinator.node_id, &req).await?;
        let code = resp
            .results
            .iter()
            .find(|r| r.group_id.as_str() == group)
            .map(|r| r.error_code)
            .unwrap_or(0);
        if code == 0 {
            ok.push(group.clone());
        } else {
            failed.push((group.clone(), exception(code)));
        }
    }
    let quoted = |v: &[String]| {
        v.iter()
            .map(|g| format!("'{g}'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if failed.is_empty() {
        outln!(
            "Deletion of requested consumer groups ({}) was successful.",
            quoted(&ok)
        );
        return Ok(());
    }
    eprintln!("Error: Deletion of some consumer groups failed:");
    for (g, e) in &failed {
        eprintln!("* Group '{g}' could not be deleted due to: {e}");
    }
    if !ok.is_empty() {
        outln!(
            "\nThese consumer groups were deleted successfully: {}",
            quoted(&ok)
        );
    }
    Err(anyhow::Error::new(Reported))
}

/// The partitions of `topic` from Metadata; an unknown topic is an error.
async fn topic_partition_list(client: &mut Client, topic: &str) -> anyhow::Result<Vec<i32>> {
    let md = client.metadata(Some(&[topic.to_string()])).await?;
    let t = md
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.as_str()) == Some(topic))
        .ok_or_else(|| anyhow!("Topic {topic} not found"))?;
    if t.error_code != 0 {
        return Err(anyhow::Error::new(ClientError::broker(t.error_code, None)));
    }
    let mut ps: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
    ps.sort_unstable();
    Ok(ps)
}

/// `topic:0,1` into partitions (Kafka's `parseTopicsWithPartitions`).
fn parse_topic_partitions(arg: &str) -> anyhow::Result<Vec<Tp>> {
    let parts: Vec<&str> = arg.split(':').collect();
    if parts.len() != 2 {
        bail!("Invalid topic arg '{arg}', expected topic name and partitions");
    }
    parts[1]
        .split(',')
        .map(|p| {
            p.parse::<i32>()
                .map(|n| (parts[0].to_string(), n))
                .map_err(|_| anyhow!("Invalid partition '{p}' specified in topic arg '{arg}''"))
        })
        .collect()
}

async fn reset(client: &mut Client, args: &Args, scenario: &Scenario) -> anyhow::Result<()> {
    let groups = target_groups(client, args).await?;
    let mut plans: BTreeMap<String, BTreeMap<Tp, i64>> = BTreeMap::new();
    let mut failure: Option<anyhow::Error> = None;
    for group in &groups {
        let d = describe_group(client, group).await?;
        if d.state != "Empty" && d.state != "Dead" {
            let e = anyhow!(
                "Assignments can only be reset if the group '{group}' is inactive, but the current state is {}.",
                d.state
            );
            eprintln!("Error: {e}");
            failure = Some(anyhow::Error::new(Reported));
            continue;
        }
        let node = d.coordinator.node_id;
        let committed = committed_offsets(client, node, group).await?;
        let partitions: Vec<Tp> = if args.all_topics {
            committed.keys().cloned().collect()
        } else {
            let mut out = Vec::new();
            for t in &args.topic {
                if t.contains(':') {
                    out.extend(parse_topic_partitions(t)?);
                } else {
                    let ps = topic_partition_list(client, t).await.map_err(|e| {
                        anyhow!("Executing consumer group command failed due to {e:#}")
                    })?;
                    out.extend(ps.into_iter().map(|p| (t.clone(), p)));
                }
            }
            out
        };
        let set: BTreeSet<Tp> = partitions.iter().cloned().collect();
        // Every partition must exist and have a leader.
        let ends = log_offsets(client, &set, -1).await?;
        let missing: Vec<String> = ends
            .iter()
            .filter(|(_, o)| o.is_none())
            .map(|((t, p), _)| format!("{t}-{p}"))
            .collect();
        if !missing.is_empty() {
            bail!(
                "Executing consumer group command failed due to The partitions \"{}\" do not exist",
                missing.join(",")
            );
        }
        let ends: BTreeMap<Tp, i64> = ends
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
        let starts: BTreeMap<Tp, i64> = log_offsets(client, &set, -2)
            .await?
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
        let clamp = |tp: &Tp, o: i64| -> i64 {
            let end = ends.get(tp).copied().unwrap_or(o);
            let start = starts.get(tp).copied().unwrap_or(0);
            if o > end {
                end
            } else if o < start {
                start
            } else {
                o
            }
        };
        let mut plan: BTreeMap<Tp, i64> = BTreeMap::new();
        match scenario {
            Scenario::ToEarliest => {
                for tp in &set {
                    plan.insert(tp.clone(), starts.get(tp).copied().unwrap_or(0));
                }
            }
            Scenario::ToLatest => {
                for tp in &set {
                    plan.insert(tp.clone(), ends[tp]);
                }
            }
            Scenario::ToOffset(o) => {
                for tp in &set {
                    plan.insert(tp.clone(), clamp(tp, *o));
                }
            }
            Scenario::ToCurrent => {
                for tp in &set {
                    let o = committed.get(tp).copied().unwrap_or(ends[tp]);
                    plan.insert(tp.clone(), o);
                }
            }
            Scenario::ShiftBy(n) => {
                for tp in &set {
                    let Some(c) = committed.get(tp) else {
                        bail!(
                            "Cannot shift offset for partition {}-{} since there is no current committed offset",
                            tp.0,
                            tp.1
                        );
                    };
                    plan.insert(tp.clone(), clamp(tp, c.saturating_add(*n)));
                }
            }
            Scenario::ToDatetime(ts) | Scenario::ByDuration(ts) => {
                let ts = match scenario {
                    Scenario::ByDuration(d) => common::now_ms() - d,
                    _ => *ts,
                };
                let found = log_offsets(client, &set, ts).await?;
                for tp in &set {
                    let o = match found.get(tp).copied().flatten() {
                        Some(o) if o >= 0 => o,
                        _ => {
                            outln!(
                                "\nWarn: Partition {} from topic {} is empty. Falling back to latest known offset.",
                                tp.1,
                                tp.0
                            );
                            ends[tp]
                        }
                    };
                    plan.insert(tp.clone(), o);
                }
            }
        }
        if args.execute {
            let results = commit_offsets(client, node, group, -1, "", None, &plan)
                .await
                .with_context(|| format!("Committing offsets of group {group}"))?;
            if let Some(code) = results.values().copied().find(|c| *c != 0) {
                bail!(
                    "Executing consumer group command failed due to {}",
                    exception(code)
                );
            }
        }
        plans.insert(group.clone(), plan);
    }
    print_reset_plan(&plans);
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Kafka's `printOffsetsToReset`.
fn print_reset_plan(plans: &BTreeMap<String, BTreeMap<Tp, i64>>) {
    let gw = plans.keys().map(String::len).max().unwrap_or(0).max(15);
    let tw = plans
        .values()
        .flat_map(|p| p.keys().map(|(t, _)| t.len()))
        .max()
        .unwrap_or(0)
        .max(15);
    if !plans.is_empty() {
        outln!("");
        outln!(
            "{:<gw$} {:<tw$} {:<10} {}",
            "GROUP",
            "TOPIC",
            "PARTITION",
            "NEW-OFFSET"
        );
    }
    for (g, plan) in plans {
        for ((t, p), o) in plan {
            outln!("{g:<gw$} {t:<tw$} {p:<10} {o}");
        }
    }
    outln!("");
}

async fn delete_offsets(client: &mut Client, args: &Args) -> anyhow::Result<()> {
    let group = &args.group[0];
    let mut results: BTreeMap<Tp, Option<String>> = BTreeMap::new();
    let mut partitions: BTreeSet<Tp> = BTreeSet::new();
    for t in &args.topic {
        if t.contains(':') {
            partitions.extend(parse_topic_partitions(t)?);
        } else {
            match topic_partition_list(client, t).await {
                Ok(ps) => partitions.extend(ps.into_iter().map(|p| (t.clone(), p))),
                Err(e) => {
                    results.insert((t.clone(), -1), Some(format!("{e:#}")));
                }
            }
        }
    }
    let coordinator = find_coordinator_info(client, group).await?;
    let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (t, p) in &partitions {
        topics.entry(t.clone()).or_default().push(*p);
    }
    let req = OffsetDeleteRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_topics(
            topics
                .iter()
                .map(|(t, ps)| {
                    OffsetDeleteRequestTopic::default()
                        .with_name(TopicName(sb(t)))
                        .with_partitions(
                            ps.iter()
                                .map(|p| {
                                    OffsetDeleteRequestPartition::default().with_partition_index(*p)
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    let resp = client.send_to(coordinator.node_id, &req).await?;
    let mut top = resp.error_code;
    let mut by_tp: HashMap<Tp, i16> = HashMap::new();
    for t in &resp.topics {
        for p in &t.partitions {
            by_tp.insert((t.name.to_string(), p.partition_index), p.error_code);
        }
    }
    for tp in &partitions {
        let code = if top != 0 {
            top
        } else {
            by_tp.get(tp).copied().unwrap_or(0)
        };
        let err = (code != 0).then(|| krust_client::error_description(code));
        results.insert(tp.clone(), err);
    }
    if top == 0 && results.values().any(Option::is_some) {
        top = -2;
    }
    let failure = match top {
        0 => {
            outln!("Request succeeded for deleting offsets from group {group}.");
            None
        }
        24 | 69 | 30 | 68 => Some(krust_client::error_description(top)),
        -2 | 86 | 29 | 3 => {
            Some("Encountered some partition-level error, see the follow-up details.".to_string())
        }
        other => Some(format!(
            "Encountered some unknown error: {}",
            krust_client::error_description(other)
        )),
    };
    if let Some(f) = &failure {
        eprintln!("Error: {f}");
    }
    let tw = results
        .keys()
        .map(|(t, _)| t.len())
        .max()
        .unwrap_or(0)
        .max(15);
    outln!("");
    outln!("{:<tw$} {:<10} {:<15}", "TOPIC", "PARTITION", "STATUS");
    for ((t, p), e) in &results {
        let p = if *p >= 0 {
            p.to_string()
        } else {
            MISSING.to_string()
        };
        let status = match e {
            Some(e) => format!("Error: {e}"),
            None => "Successful".to_string(),
        };
        outln!("{t:<tw$} {p:<10} {status:<15}");
    }
    match failure {
        Some(_) => Err(anyhow::Error::new(Reported)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_parse_like_kafka() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00").expect("parse"), 0);
        assert_eq!(
            parse_datetime("1970-01-01T00:00:01.5Z").expect("parse"),
            1500
        );
        assert_eq!(
            parse_datetime("2024-02-29T12:00:00.000+01:00").expect("parse"),
            1_709_204_400_000
        );
        assert_eq!(
            parse_datetime("2024-02-29T12:00:00-0100").expect("parse"),
            1_709_211_600_000
        );
        assert!(parse_datetime("2024-02-29 12:00:00").is_err());
        assert!(parse_datetime("yesterday").is_err());
    }

    #[test]
    fn durations_parse_like_java() {
        assert_eq!(parse_duration_ms("PT1S").expect("parse"), 1000);
        assert_eq!(
            parse_duration_ms("P1DT2H3M4.5S").expect("parse"),
            93_784_500
        );
        assert_eq!(parse_duration_ms("PT10M").expect("parse"), 600_000);
        assert_eq!(parse_duration_ms("-PT1S").expect("parse"), -1000);
        assert!(parse_duration_ms("P").is_err());
        assert!(parse_duration_ms("PT").is_err());
        assert!(parse_duration_ms("1S").is_err());
    }

    #[test]
    fn topic_partition_args() {
        assert_eq!(
            parse_topic_partitions("t:0,2").expect("parse"),
            vec![("t".to_string(), 0), ("t".to_string(), 2)]
        );
        assert!(parse_topic_partitions("t:x").is_err());
        assert!(parse_topic_partitions("a:b:c").is_err());
    }

    #[test]
    fn assignment_strings() {
        let mut a = BTreeMap::new();
        a.insert("u".to_string(), vec![3, 1]);
        a.insert("t".to_string(), vec![0]);
        assert_eq!(assignment_string(&a), "t:0;u:1,3");
        assert_eq!(assignment_string(&BTreeMap::new()), "-");
    }
}
