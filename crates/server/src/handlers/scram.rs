//! DescribeUserScramCredentials (50) and AlterUserScramCredentials (51): users' SCRAM
//! credentials, kept in the cluster metadata as Kafka keeps them.
//!
//! A client sends the salted password it computed; the controller stores the salt, the
//! stored and server keys and the iteration count, never the salted password itself.
//! Changes to one user apply together or not at all; each user gets one result.

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use krust_metadata::controller::ItemResult;
use krust_metadata::records::MetadataRecord;
use krust_protocol::sasl::{self, Mechanism, SCRAM_MAX_ITERATIONS, SCRAM_MIN_ITERATIONS};
use krust_protocol::ErrorCode;

use super::sb;
use crate::broker::Broker;

pub async fn describe(
    broker: &Broker,
    req: DescribeUserScramCredentialsRequest,
    _version: i16,
) -> DescribeUserScramCredentialsResponse {
    let image = broker.image();
    let infos = |user: &str| -> Vec<CredentialInfo> {
        image
            .scram
            .range((user.to_string(), i8::MIN)..=(user.to_string(), i8::MAX))
            .map(|((_, mechanism), c)| {
                CredentialInfo::default()
                    .with_mechanism(*mechanism)
                    .with_iterations(c.iterations)
            })
            .collect()
    };
    let mut resp = DescribeUserScramCredentialsResponse::default();
    // No list, or an empty one: every user with a credential, as in Kafka.
    match req.users.filter(|u| !u.is_empty()) {
        None => {
            let mut users: Vec<&str> = image.scram.keys().map(|(u, _)| u.as_str()).collect();
            users.dedup();
            for u in users {
                resp.results.push(
                    DescribeUserScramCredentialsResult::default()
                        .with_user(sb(u))
                        .with_credential_infos(infos(u)),
                );
            }
        }
        Some(users) => {
            for (i, u) in users.iter().enumerate() {
                let name = u.name.as_str();
                let r = DescribeUserScramCredentialsResult::default().with_user(u.name.clone());
                let r = if users[..i].iter().any(|o| o.name == u.name) {
                    r.with_error_code(ErrorCode::DuplicateResource.code())
                        .with_error_message(Some(sb(
                            "Cannot describe SCRAM credentials for the same user twice in a single request",
                        )))
                } else {
                    let infos = infos(name);
                    if infos.is_empty() {
                        r.with_error_code(ErrorCode::ResourceNotFound.code())
                            .with_error_message(Some(sb(
                                "Attempt to describe a user credential that does not exist",
                            )))
                    } else {
                        r.with_credential_infos(infos)
                    }
                };
                // A name asked for twice is answered once, with the error.
                if let Some(prev) = resp.results.iter_mut().find(|p| p.user == u.name) {
                    *prev = r;
                } else {
                    resp.results.push(r);
                }
            }
        }
    }
    resp
}

/// One requested change: an upsertion (with its credential) or a deletion.
struct Change {
    user: String,
    mechanism: i8,
    upsert: Option<sasl::ScramCredential>,
}

fn check(
    user: &str,
    mechanism: i8,
    upsert: Option<(i32, &[u8], &[u8])>,
) -> Result<Option<sasl::ScramCredential>, ItemResult> {
    if user.is_empty() {
        return Err(ItemResult::err(
            ErrorCode::UnacceptableCredential,
            "Username must not be empty",
        ));
    }
    let Some(mech) = Mechanism::from_scram_type(mechanism) else {
        return Err(ItemResult::err(
            ErrorCode::UnsupportedSaslMechanism,
            "Unknown SCRAM mechanism",
        ));
    };
    let Some((iterations, salt, salted)) = upsert else {
        return Ok(None);
    };
    if iterations < SCRAM_MIN_ITERATIONS {
        return Err(ItemResult::err(
            ErrorCode::UnacceptableCredential,
            "Too few iterations",
        ));
    }
    if iterations > SCRAM_MAX_ITERATIONS {
        return Err(ItemResult::err(
            ErrorCode::UnacceptableCredential,
            "Too many iterations",
        ));
    }
    if salt.is_empty() || salted.is_empty() {
        return Err(ItemResult::err(
            ErrorCode::UnacceptableCredential,
            "Credential must have a salt and a salted password",
        ));
    }
    Ok(Some(sasl::credential(mech, salted, salt, iterations)))
}

pub async fn alter(
    broker: &Broker,
    req: AlterUserScramCredentialsRequest,
    _version: i16,
) -> AlterUserScramCredentialsResponse {
    // Users in order of first mention; each one's changes, or its first error.
    let mut users: Vec<(String, Result<Vec<Change>, ItemResult>)> = Vec::new();
    let mut add = |user: &str, r: Result<Change, ItemResult>| {
        let i = match users.iter().position(|(u, _)| u == user) {
            Some(i) => i,
            None => {
                users.push((user.to_string(), Ok(Vec::new())));
                users.len() - 1
            }
        };
        let entry = &mut users[i].1;
        match (entry.as_mut(), r) {
            (Err(_), _) => {}
            (Ok(changes), Ok(c)) => {
                if changes.iter().any(|o| o.mechanism == c.mechanism) {
                    *entry = Err(ItemResult::err(
                        ErrorCode::DuplicateResource,
                        "A user credential cannot be altered twice in the same request",
                    ));
                } else {
                    changes.push(c);
                }
            }
            (Ok(_), Err(e)) => *entry = Err(e),
        }
    };
    for d in &req.deletions {
        let user = d.name.as_str();
        add(
            user,
            check(user, d.mechanism, None).map(|_| Change {
                user: user.to_string(),
                mechanism: d.mechanism,
                upsert: None,
            }),
        );
    }
    for u in &req.upsertions {
        let user = u.name.as_str();
        add(
            user,
            check(
                user,
                u.mechanism,
                Some((u.iterations, &u.salt, &u.salted_password)),
            )
            .map(|c| Change {
                user: user.to_string(),
                mechanism: u.mechanism,
                upsert: c,
            }),
        );
    }
    let outcome = broker
        .control(|image| {
            let mut records = Vec::new();
            let mut results = Vec::new();
            for (user, r) in &users {
                let r = r.as_ref().map_err(Clone::clone).and_then(|changes| {
                    let mut recs = Vec::new();
                    for c in changes {
                        match &c.upsert {
                            Some(cred) => recs.push(MetadataRecord::user_scram_credential(
                                &c.user,
                                c.mechanism,
                                cred,
                            )),
                            None if !image.scram.contains_key(&(c.user.clone(), c.mechanism)) => {
                                return Err(ItemResult::err(
                                    ErrorCode::ResourceNotFound,
                                    "Attempt to delete a user credential that does not exist",
                                ))
                            }
                            None => recs.push(MetadataRecord::RemoveUserScramCredential {
                                name: c.user.clone(),
                                mechanism: c.mechanism,
                            }),
                        }
                    }
                    Ok(recs)
                });
                match r {
                    Ok(recs) => {
                        records.extend(recs);
                        results.push((user.clone(), ItemResult::ok()));
                    }
                    Err(e) => results.push((user.clone(), e)),
                }
            }
            (records, results)
        })
        .await;
    let results = outcome.unwrap_or_else(|e| {
        users
            .iter()
            .map(|(u, _)| {
                (
                    u.clone(),
                    ItemResult::err(crate::broker::control_error_code(&e), e.to_string()),
                )
            })
            .collect()
    });
    let mut resp = AlterUserScramCredentialsResponse::default();
    for (user, r) in results {
        resp.results.push(
            AlterUserScramCredentialsResult::default()
                .with_user(sb(user))
                .with_error_code(r.error.code())
                .with_error_message(r.message.map(sb)),
        );
    }
    resp
}
