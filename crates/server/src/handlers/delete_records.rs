//! DeleteRecords (21): advance a partition's log start offset. Offset -1 means the high
//! watermark. Whole segments below the new start are deleted.

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use krust_protocol::ErrorCode;

use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    req: DeleteRecordsRequest,
    _version: i16,
) -> DeleteRecordsResponse {
    let mut resp = DeleteRecordsResponse::default();
    for t in req.topics {
        let name = t.name.to_string();
        let mut out = DeleteRecordsTopicResult::default().with_name(t.name.clone());
        for p in t.partitions {
            let mut r = DeleteRecordsPartitionResult::default()
                .with_partition_index(p.partition_index)
                .with_low_watermark(-1);
            match broker.leader_partition(&name, p.partition_index) {
                Err(code) => r.error_code = code.code(),
                Ok(part) => {
                    let high_watermark = part.high_watermark();
                    let target = if p.offset == -1 {
                        high_watermark
                    } else {
                        p.offset
                    };
                    if target < 0 || target > high_watermark {
                        r.error_code = ErrorCode::OffsetOutOfRange.code();
                    } else {
                        match part.write_log().delete_records_before(target) {
                            Ok(start) => r.low_watermark = start,
                            Err(e) => r.error_code = super::produce::storage_error(&e).0.code(),
                        }
                    }
                }
            }
            out.partitions.push(r);
        }
        resp.topics.push(out);
    }
    resp
}
