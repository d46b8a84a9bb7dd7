//! OffsetForLeaderEpoch (23): the end offset of a leader epoch, used by clients to detect
//! log truncation after a leader change (KIP-320).
//!
//! A single node keeps each partition's leader epoch from its creation, so the latest
//! epoch ends at the log end; a request for a later epoch gets Kafka's "undefined" answer.

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    req: OffsetForLeaderEpochRequest,
    _version: i16,
) -> OffsetForLeaderEpochResponse {
    let mut resp = OffsetForLeaderEpochResponse::default();
    for t in req.topics {
        let name = t.topic.to_string();
        let mut out = OffsetForLeaderTopicResult::default().with_topic(t.topic.clone());
        for p in t.partitions {
            let mut r = EpochEndOffset::default()
                .with_partition(p.partition)
                .with_leader_epoch(-1)
                .with_end_offset(-1);
            match broker.leader_partition(&name, p.partition) {
                Err(code) => r.error_code = code.code(),
                Ok(part) => match part.check_leader_epoch(p.current_leader_epoch) {
                    Err(code) => r.error_code = code.code(),
                    Ok(epoch) if p.leader_epoch <= epoch => {
                        let (e, end) = part.end_offset_for_epoch(p.leader_epoch);
                        r.leader_epoch = e;
                        r.end_offset = end;
                    }
                    Ok(_) => {}
                },
            }
            out.partitions.push(r);
        }
        resp.topics.push(out);
    }
    resp
}
