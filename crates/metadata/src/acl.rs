//! Access control lists: Kafka's ACL model, kept in the metadata log
//! (`AccessControlEntryRecord`, `RemoveAccessControlEntryRecord`), and the decision of
//! whether a principal may perform an operation on a resource (Kafka's StandardAuthorizer).
//!
//! An ACL binds a resource pattern (type, name, LITERAL or PREFIXED) to an entry
//! (principal, host, operation, ALLOW or DENY). A request is allowed when the principal is
//! a super user, or when some ALLOW entry matches it and no DENY entry does. A DENY matches
//! only its own operation (or ALL); an ALLOW of READ, WRITE, DELETE or ALTER also allows
//! DESCRIBE, and one of ALTER_CONFIGS also allows DESCRIBE_CONFIGS. When no ACL at all
//! names the resource, `allow.everyone.if.no.acl.found` decides.

use std::collections::{BTreeMap, HashMap};

use uuid::Uuid;

/// Kafka's ResourceType codes.
pub mod resource {
    pub const UNKNOWN: i8 = 0;
    pub const ANY: i8 = 1;
    pub const TOPIC: i8 = 2;
    pub const GROUP: i8 = 3;
    pub const CLUSTER: i8 = 4;
    pub const TRANSACTIONAL_ID: i8 = 5;
    pub const DELEGATION_TOKEN: i8 = 6;
    pub const USER: i8 = 7;
}

/// Kafka's PatternType codes.
pub mod pattern {
    pub const UNKNOWN: i8 = 0;
    pub const ANY: i8 = 1;
    pub const MATCH: i8 = 2;
    pub const LITERAL: i8 = 3;
    pub const PREFIXED: i8 = 4;
}

/// Kafka's AclOperation codes.
pub mod op {
    pub const UNKNOWN: i8 = 0;
    pub const ANY: i8 = 1;
    pub const ALL: i8 = 2;
    pub const READ: i8 = 3;
    pub const WRITE: i8 = 4;
    pub const CREATE: i8 = 5;
    pub const DELETE: i8 = 6;
    pub const ALTER: i8 = 7;
    pub const DESCRIBE: i8 = 8;
    pub const CLUSTER_ACTION: i8 = 9;
    pub const DESCRIBE_CONFIGS: i8 = 10;
    pub const ALTER_CONFIGS: i8 = 11;
    pub const IDEMPOTENT_WRITE: i8 = 12;
    pub const CREATE_TOKENS: i8 = 13;
    pub const DESCRIBE_TOKENS: i8 = 14;
}

/// Kafka's AclPermissionType codes.
pub mod permission {
    pub const UNKNOWN: i8 = 0;
    pub const ANY: i8 = 1;
    pub const DENY: i8 = 2;
    pub const ALLOW: i8 = 3;
}

/// The name of the cluster resource, the only one a CLUSTER ACL may name.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// The resource name and principal that match every name and principal.
pub const WILDCARD: &str = "*";
/// The principal matching every user.
pub const WILDCARD_PRINCIPAL: &str = "User:*";

const RESOURCE_NAMES: [&str; 8] = [
    "UNKNOWN",
    "ANY",
    "TOPIC",
    "GROUP",
    "CLUSTER",
    "TRANSACTIONAL_ID",
    "DELEGATION_TOKEN",
    "USER",
];
const PATTERN_NAMES: [&str; 5] = ["UNKNOWN", "ANY", "MATCH", "LITERAL", "PREFIXED"];
const OPERATION_NAMES: [&str; 15] = [
    "UNKNOWN",
    "ANY",
    "ALL",
    "READ",
    "WRITE",
    "CREATE",
    "DELETE",
    "ALTER",
    "DESCRIBE",
    "CLUSTER_ACTION",
    "DESCRIBE_CONFIGS",
    "ALTER_CONFIGS",
    "IDEMPOTENT_WRITE",
    "CREATE_TOKENS",
    "DESCRIBE_TOKENS",
];
const PERMISSION_NAMES: [&str; 4] = ["UNKNOWN", "ANY", "DENY", "ALLOW"];

fn name_of(names: &[&'static str], code: i8) -> &'static str {
    usize::try_from(code)
        .ok()
        .and_then(|i| names.get(i))
        .copied()
        .unwrap_or("UNKNOWN")
}

fn code_of(names: &[&str], name: &str) -> Option<i8> {
    let wanted = name.replace(['-', ' '], "_");
    names
        .iter()
        .position(|n| {
            n.eq_ignore_ascii_case(&wanted) || n.replace('_', "").eq_ignore_ascii_case(&wanted)
        })
        .and_then(|i| i8::try_from(i).ok())
}

/// Kafka's name of a resource type code (`TOPIC`, ...).
pub fn resource_name(code: i8) -> &'static str {
    name_of(&RESOURCE_NAMES, code)
}
/// Kafka's name of a pattern type code (`LITERAL`, ...).
pub fn pattern_name(code: i8) -> &'static str {
    name_of(&PATTERN_NAMES, code)
}
/// Kafka's name of an operation code (`READ`, ...).
pub fn operation_name(code: i8) -> &'static str {
    name_of(&OPERATION_NAMES, code)
}
/// Kafka's name of a permission type code (`ALLOW`, `DENY`).
pub fn permission_name(code: i8) -> &'static str {
    name_of(&PERMISSION_NAMES, code)
}
/// An operation's code from its name, in any case, with `_`, `-` or nothing between
/// words (`DescribeConfigs`, `describe-configs`, `DESCRIBE_CONFIGS`).
pub fn operation_code(name: &str) -> Option<i8> {
    code_of(&OPERATION_NAMES, name)
}
/// A pattern type's code from its name, in any case.
pub fn pattern_code(name: &str) -> Option<i8> {
    code_of(&PATTERN_NAMES, name)
}

/// Whether `principal` has Kafka's form `Type:name` (both parts non-empty), and if not why.
pub fn check_principal(principal: &str) -> Result<(), String> {
    match principal.split_once(':') {
        Some((kind, name)) if !kind.is_empty() && !name.is_empty() => Ok(()),
        _ => Err(format!(
            "Could not parse principal from `{principal}` (no colon is present separating \
             the principal type from the principal name)"
        )),
    }
}

/// One ACL: a resource pattern and an entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Acl {
    pub resource_type: i8,
    pub resource_name: String,
    pub pattern_type: i8,
    pub principal: String,
    pub host: String,
    pub operation: i8,
    pub permission: i8,
}

impl Acl {
    /// Why this ACL cannot be stored, if it cannot (Kafka's checks before creating one).
    pub fn invalid(&self) -> Option<String> {
        let rt = self.resource_type;
        if !(resource::TOPIC..=resource::USER).contains(&rt) {
            return Some(format!("Invalid resourceType {}", resource_name(rt)));
        }
        if self.pattern_type != pattern::LITERAL && self.pattern_type != pattern::PREFIXED {
            return Some(format!(
                "Invalid patternType {}",
                pattern_name(self.pattern_type)
            ));
        }
        if !(op::ALL..=op::DESCRIBE_TOKENS).contains(&self.operation) {
            return Some(format!(
                "Invalid operation {}",
                operation_name(self.operation)
            ));
        }
        if self.permission != permission::ALLOW && self.permission != permission::DENY {
            return Some(format!(
                "Invalid permissionType {}",
                permission_name(self.permission)
            ));
        }
        if self.resource_name.is_empty() {
            return Some("Resource name should not be empty".into());
        }
        if rt == resource::CLUSTER && self.resource_name != CLUSTER_NAME {
            return Some(format!(
                "The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
            ));
        }
        if let Err(why) = check_principal(&self.principal) {
            return Some(why);
        }
        if self.host.is_empty() {
            return Some("Host should not be empty".into());
        }
        if !valid_operation(rt, self.operation) {
            return Some(format!(
                "Operation {} is not valid for resource type {}",
                operation_name(self.operation),
                resource_name(rt)
            ));
        }
        None
    }

    /// Whether this ACL's resource pattern covers resource `name` of its type.
    fn covers(&self, name: &str) -> bool {
        match self.pattern_type {
            pattern::LITERAL => self.resource_name == name || self.resource_name == WILDCARD,
            pattern::PREFIXED => name.starts_with(&self.resource_name),
            _ => false,
        }
    }
}

/// The operations of each resource type (besides ALL, which an ACL may always name): what
/// ACLs on it may name, and what authorized-operations fields report.
pub fn supported_operations(resource_type: i8) -> &'static [i8] {
    use op::*;
    match resource_type {
        resource::TOPIC => &[
            READ,
            WRITE,
            CREATE,
            DESCRIBE,
            DELETE,
            ALTER,
            DESCRIBE_CONFIGS,
            ALTER_CONFIGS,
        ],
        resource::GROUP => &[READ, DESCRIBE, DELETE, DESCRIBE_CONFIGS, ALTER_CONFIGS],
        resource::CLUSTER => &[
            CREATE,
            CLUSTER_ACTION,
            DESCRIBE_CONFIGS,
            ALTER_CONFIGS,
            IDEMPOTENT_WRITE,
            ALTER,
            DESCRIBE,
        ],
        resource::TRANSACTIONAL_ID => &[DESCRIBE, WRITE],
        resource::DELEGATION_TOKEN => &[DESCRIBE],
        resource::USER => &[CREATE_TOKENS, DESCRIBE_TOKENS],
        _ => &[],
    }
}

fn valid_operation(resource_type: i8, operation: i8) -> bool {
    operation == op::ALL || supported_operations(resource_type).contains(&operation)
}

/// A filter over ACLs, as DescribeAcls and DeleteAcls carry it. `None` matches anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: i8,
    pub resource_name: Option<String>,
    pub pattern_type: i8,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: i8,
    pub permission: i8,
}

impl AclFilter {
    /// Why this filter can match nothing, if so (an UNKNOWN anywhere).
    pub fn invalid(&self) -> Option<String> {
        if self.resource_type == resource::UNKNOWN {
            Some("Resource type UNKNOWN is not valid in a filter".into())
        } else if self.pattern_type == pattern::UNKNOWN {
            Some("Pattern type UNKNOWN is not valid in a filter".into())
        } else if self.operation == op::UNKNOWN {
            Some("Operation UNKNOWN is not valid in a filter".into())
        } else if self.permission == permission::UNKNOWN {
            Some("Permission type UNKNOWN is not valid in a filter".into())
        } else {
            None
        }
    }

    /// Whether `acl` passes this filter.
    pub fn matches(&self, acl: &Acl) -> bool {
        if self.resource_type != resource::ANY && self.resource_type != acl.resource_type {
            return false;
        }
        let name_ok = match (&self.resource_name, self.pattern_type) {
            (_, pattern::LITERAL | pattern::PREFIXED) if self.pattern_type != acl.pattern_type => {
                false
            }
            (None, _) => true,
            (Some(n), pattern::MATCH) => acl.covers(n),
            (Some(n), _) => *n == acl.resource_name,
        };
        name_ok
            && self.principal.as_ref().is_none_or(|p| *p == acl.principal)
            && self.host.as_ref().is_none_or(|h| *h == acl.host)
            && (self.operation == op::ANY || self.operation == acl.operation)
            && (self.permission == permission::ANY || self.permission == acl.permission)
    }
}

/// Every ACL of the cluster by id, indexed by resource for the authorizer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AclTable {
    by_id: BTreeMap<Uuid, Acl>,
    /// Ids by (resource type, pattern type), then resource name.
    index: HashMap<(i8, i8), HashMap<String, Vec<Uuid>>>,
}

impl AclTable {
    /// Adds (or replaces) the ACL with this id.
    pub fn insert(&mut self, id: Uuid, acl: Acl) {
        self.remove(&id);
        self.index
            .entry((acl.resource_type, acl.pattern_type))
            .or_default()
            .entry(acl.resource_name.clone())
            .or_default()
            .push(id);
        self.by_id.insert(id, acl);
    }

    /// Removes the ACL with this id; whether there was one.
    pub fn remove(&mut self, id: &Uuid) -> bool {
        let Some(acl) = self.by_id.remove(id) else {
            return false;
        };
        let key = (acl.resource_type, acl.pattern_type);
        if let Some(names) = self.index.get_mut(&key) {
            if let Some(ids) = names.get_mut(&acl.resource_name) {
                ids.retain(|i| i != id);
                if ids.is_empty() {
                    names.remove(&acl.resource_name);
                }
            }
            if names.is_empty() {
                self.index.remove(&key);
            }
        }
        true
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Every ACL with its id, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&Uuid, &Acl)> {
        self.by_id.iter()
    }

    /// The id of an ACL equal to `acl`, if one is stored.
    pub fn find(&self, acl: &Acl) -> Option<Uuid> {
        self.index
            .get(&(acl.resource_type, acl.pattern_type))?
            .get(&acl.resource_name)?
            .iter()
            .find(|id| self.by_id.get(id) == Some(acl))
            .copied()
    }

    /// Every ACL whose pattern covers resource `name` of `resource_type`: literal ones on
    /// the name or on `*`, and prefixed ones on a prefix of the name.
    fn covering<'a>(&'a self, resource_type: i8, name: &'a str) -> impl Iterator<Item = &'a Acl> {
        let literal = self.index.get(&(resource_type, pattern::LITERAL));
        let exact = literal.and_then(|m| m.get(name)).into_iter().flatten();
        let wildcard = literal
            .filter(|_| name != WILDCARD)
            .and_then(|m| m.get(WILDCARD))
            .into_iter()
            .flatten();
        let prefixed = self.index.get(&(resource_type, pattern::PREFIXED));
        let prefixes = prefixed
            .into_iter()
            .flat_map(move |m| {
                // Whichever is fewer: the stored prefixes, or the name's own prefixes.
                let ids: Vec<&Vec<Uuid>> = if m.len() <= name.len() {
                    m.iter()
                        .filter(|(p, _)| name.starts_with(p.as_str()))
                        .map(|(_, ids)| ids)
                        .collect()
                } else {
                    name.char_indices()
                        .map(|(i, c)| &name[..i + c.len_utf8()])
                        .filter_map(|p| m.get(p))
                        .collect()
                };
                ids
            })
            .flatten();
        exact
            .chain(wildcard)
            .chain(prefixes)
            .filter_map(|id| self.by_id.get(id))
    }
}

/// Who asks: the principal (`User:alice`) and the client's address (`127.0.0.1`).
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    pub principal: &'a str,
    pub host: &'a str,
}

/// What the authorizer is configured with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizerSettings {
    /// `super.users`: principals allowed everything.
    pub super_users: Vec<String>,
    /// `allow.everyone.if.no.acl.found`.
    pub allow_if_no_acl: bool,
}

impl AuthorizerSettings {
    pub fn is_super(&self, principal: &str) -> bool {
        self.super_users.iter().any(|s| s == principal)
    }
}

fn entry_matches(acl: &Acl, who: Requester) -> bool {
    (acl.principal == who.principal || acl.principal == WILDCARD_PRINCIPAL)
        && (acl.host == who.host || acl.host == WILDCARD)
}

/// Whether an ALLOW of `granted` allows `wanted`.
fn allow_implies(granted: i8, wanted: i8) -> bool {
    granted == op::ALL
        || granted == wanted
        || (wanted == op::DESCRIBE
            && matches!(granted, op::READ | op::WRITE | op::DELETE | op::ALTER))
        || (wanted == op::DESCRIBE_CONFIGS && granted == op::ALTER_CONFIGS)
}

/// Whether `who` may perform `operation` on resource `name` of `resource_type`.
pub fn authorize(
    table: &AclTable,
    settings: &AuthorizerSettings,
    who: Requester,
    operation: i8,
    resource_type: i8,
    name: &str,
) -> bool {
    if settings.is_super(who.principal) {
        return true;
    }
    let mut any = false;
    let mut allowed = false;
    for acl in table.covering(resource_type, name) {
        any = true;
        if !entry_matches(acl, who) {
            continue;
        }
        match acl.permission {
            permission::DENY if acl.operation == op::ALL || acl.operation == operation => {
                return false
            }
            permission::ALLOW if allow_implies(acl.operation, operation) => allowed = true,
            _ => {}
        }
    }
    allowed || (!any && settings.allow_if_no_acl)
}

/// Whether `who` may perform `operation` on some resource of `resource_type` (Kafka's
/// authorizeByResourceType, KIP-679): some ALLOW of it matches `who` on a resource that no
/// DENY of it (matching `who`) covers. Used for idempotent producers, which may write when
/// they may write to any topic.
pub fn authorize_any(
    table: &AclTable,
    settings: &AuthorizerSettings,
    who: Requester,
    operation: i8,
    resource_type: i8,
) -> bool {
    // Super users, `allow.everyone.if.no.acl.found`, and ACLs on every name (`*`) or on
    // a prefix of any name first: as Kafka does, by asking about one made-up name.
    if authorize(table, settings, who, operation, resource_type, "hardcode") {
        return true;
    }
    let applies = |acl: &&Acl, perm: i8| {
        acl.resource_type == resource_type
            && acl.permission == perm
            && entry_matches(acl, who)
            && (acl.operation == op::ALL || acl.operation == operation)
    };
    let denies: Vec<&Acl> = table
        .by_id
        .values()
        .filter(|a| applies(a, permission::DENY))
        .collect();
    let denied = |allow: &Acl| {
        denies.iter().any(|d| match d.pattern_type {
            pattern::LITERAL => {
                d.resource_name == WILDCARD
                    || (allow.pattern_type == pattern::LITERAL
                        && d.resource_name == allow.resource_name)
            }
            pattern::PREFIXED => allow.resource_name.starts_with(&d.resource_name),
            _ => false,
        })
    };
    if denies
        .iter()
        .any(|d| d.pattern_type == pattern::LITERAL && d.resource_name == WILDCARD)
    {
        return false;
    }
    table
        .by_id
        .values()
        .any(|a| applies(&a, permission::ALLOW) && !denied(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(rt: i8, name: &str, pt: i8, principal: &str, operation: i8, perm: i8) -> Acl {
        Acl {
            resource_type: rt,
            resource_name: name.into(),
            pattern_type: pt,
            principal: principal.into(),
            host: "*".into(),
            operation,
            permission: perm,
        }
    }

    fn table(acls: Vec<Acl>) -> AclTable {
        let mut t = AclTable::default();
        for (i, a) in acls.into_iter().enumerate() {
            t.insert(Uuid::from_u128(i as u128 + 1), a);
        }
        t
    }

    const ALICE: Requester = Requester {
        principal: "User:alice",
        host: "10.0.0.1",
    };

    #[test]
    fn allow_deny_and_implications() {
        let t = table(vec![
            acl(
                resource::TOPIC,
                "orders",
                pattern::LITERAL,
                "User:alice",
                op::READ,
                permission::ALLOW,
            ),
            acl(
                resource::TOPIC,
                "pay",
                pattern::PREFIXED,
                "User:*",
                op::WRITE,
                permission::ALLOW,
            ),
            acl(
                resource::TOPIC,
                "payroll",
                pattern::LITERAL,
                "User:alice",
                op::WRITE,
                permission::DENY,
            ),
        ]);
        let s = AuthorizerSettings::default();
        let can = |o, n| authorize(&t, &s, ALICE, o, resource::TOPIC, n);
        assert!(can(op::READ, "orders"));
        assert!(can(op::DESCRIBE, "orders"), "READ implies DESCRIBE");
        assert!(!can(op::WRITE, "orders"));
        assert!(can(op::WRITE, "payments"), "prefixed, wildcard principal");
        assert!(!can(op::WRITE, "payroll"), "DENY wins");
        assert!(
            can(op::DESCRIBE, "payroll"),
            "a DENY of WRITE leaves DESCRIBE"
        );
        assert!(
            !can(op::READ, "other"),
            "no ACL, allow.everyone.if.no.acl.found off"
        );
        let open = AuthorizerSettings {
            allow_if_no_acl: true,
            ..Default::default()
        };
        assert!(authorize(
            &t,
            &open,
            ALICE,
            op::READ,
            resource::TOPIC,
            "other"
        ));
        assert!(
            !authorize(&t, &open, ALICE, op::WRITE, resource::TOPIC, "orders"),
            "an ACL names the resource, so the setting does not apply"
        );
        let sup = AuthorizerSettings {
            super_users: vec!["User:alice".into()],
            ..Default::default()
        };
        assert!(authorize(
            &t,
            &sup,
            ALICE,
            op::WRITE,
            resource::TOPIC,
            "payroll"
        ));
    }

    #[test]
    fn hosts_wildcards_and_removal() {
        let mut a = acl(
            resource::GROUP,
            "*",
            pattern::LITERAL,
            "User:alice",
            op::ALL,
            permission::ALLOW,
        );
        a.host = "10.0.0.2".into();
        let mut t = table(vec![a.clone()]);
        let s = AuthorizerSettings::default();
        assert!(!authorize(&t, &s, ALICE, op::READ, resource::GROUP, "g"));
        let other_host = Requester {
            host: "10.0.0.2",
            ..ALICE
        };
        assert!(authorize(
            &t,
            &s,
            other_host,
            op::READ,
            resource::GROUP,
            "g"
        ));
        let id = t.find(&a).expect("test value");
        assert!(t.remove(&id));
        assert!(t.is_empty() && t.index.is_empty());
        assert!(!authorize(
            &t,
            &s,
            other_host,
            op::READ,
            resource::GROUP,
            "g"
        ));
    }

    #[test]
    fn by_resource_type() {
        let s = AuthorizerSettings::default();
        let t = table(vec![acl(
            resource::TOPIC,
            "a",
            pattern::PREFIXED,
            "User:alice",
            op::WRITE,
            permission::ALLOW,
        )]);
        assert!(authorize_any(&t, &s, ALICE, op::WRITE, resource::TOPIC));
        assert!(!authorize_any(&t, &s, ALICE, op::READ, resource::TOPIC));
        let t = table(vec![
            acl(
                resource::TOPIC,
                "a",
                pattern::PREFIXED,
                "User:alice",
                op::WRITE,
                permission::ALLOW,
            ),
            acl(
                resource::TOPIC,
                "*",
                pattern::LITERAL,
                "User:alice",
                op::WRITE,
                permission::DENY,
            ),
        ]);
        assert!(!authorize_any(&t, &s, ALICE, op::WRITE, resource::TOPIC));
    }

    #[test]
    fn filters() {
        let a = acl(
            resource::TOPIC,
            "pay",
            pattern::PREFIXED,
            "User:bob",
            op::READ,
            permission::ALLOW,
        );
        let any = AclFilter {
            resource_type: resource::ANY,
            resource_name: None,
            pattern_type: pattern::ANY,
            principal: None,
            host: None,
            operation: op::ANY,
            permission: permission::ANY,
        };
        assert!(any.matches(&a));
        let matching = AclFilter {
            resource_name: Some("payments".into()),
            pattern_type: pattern::MATCH,
            ..any.clone()
        };
        assert!(matching.matches(&a));
        let literal = AclFilter {
            resource_name: Some("pay".into()),
            pattern_type: pattern::LITERAL,
            ..any.clone()
        };
        assert!(!literal.matches(&a));
        let named_any = AclFilter {
            resource_name: Some("pay".into()),
            ..any.clone()
        };
        assert!(named_any.matches(&a));
        let alice = AclFilter {
            principal: Some("User:alice".into()),
            ..any
        };
        assert!(!alice.matches(&a));
    }

    #[test]
    fn validation_and_names() {
        let good = acl(
            resource::TOPIC,
            "t",
            pattern::LITERAL,
            "User:a",
            op::READ,
            permission::ALLOW,
        );
        assert_eq!(good.invalid(), None);
        let bad = Acl {
            operation: op::IDEMPOTENT_WRITE,
            ..good.clone()
        };
        assert!(bad
            .invalid()
            .expect("test value")
            .contains("not valid for resource type TOPIC"));
        let bad = Acl {
            principal: "alice".into(),
            ..good.clone()
        };
        assert!(bad.invalid().is_some());
        let bad = Acl {
            resource_type: resource::CLUSTER,
            resource_name: "c".into(),
            operation: op::ALTER,
            ..good
        };
        assert!(bad.invalid().is_some());
        assert_eq!(
            operation_code("describe-configs"),
            Some(op::DESCRIBE_CONFIGS)
        );
        assert_eq!(
            operation_code("IdempotentWrite"),
            Some(op::IDEMPOTENT_WRITE)
        );
        assert_eq!(operation_name(op::CLUSTER_ACTION), "CLUSTER_ACTION");
        assert_eq!(pattern_code("prefixed"), Some(pattern::PREFIXED));
    }
}
