//! Tests of `Log` and `LogManager`.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;

use bytes::Bytes;

use crate::batch::{self, RecordBatch, TimestampType, CONTROL_BIT};
use crate::checkpoint::{read_offsets, LOG_START_OFFSET_CHECKPOINT, RECOVERY_POINT_CHECKPOINT};
use crate::segment::segment_file_name;
use crate::testing::{concat, decode_records, simple_batch, sized_batch, BatchBuilder};
use crate::{Log, LogConfig, LogManager, StorageError, TopicPartition};

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 100,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

fn open(dir: &Path, config: LogConfig) -> Log {
    Log::open(dir, config, 0, 0, true, 0).expect("open")
}

fn reopen(dir: &Path, config: LogConfig, clean: bool, rp: i64, log_start: i64) -> Log {
    Log::open(dir, config, rp, log_start, clean, 0).expect("reopen")
}

/// Appends `n` batches of 1..=4 records (timestamps = 1000 * batch index) and returns the
/// offset ranges `(base, last)`.
fn fill(log: &mut Log, n: usize) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    for i in 0..n {
        let count = 1 + i % 4;
        let b = simple_batch(0, count, 1000 * i as i64);
        let info = log.append_as_leader(&b, 0, 0).expect("append");
        assert_eq!(info.last_offset - info.first_offset + 1, count as i64);
        out.push((info.first_offset, info.last_offset));
    }
    out
}

/// Batch `i` of a mix of sizes: every third of 1..=4 small records, the others one record
/// of 20..320 bytes.
fn mixed_batch(i: usize) -> Bytes {
    if i.is_multiple_of(3) {
        simple_batch(0, 1 + i % 4, i as i64)
    } else {
        sized_batch(0, 20 + (i * 37) % 300, i as i64)
    }
}

fn batches_of(records: &Bytes) -> Vec<RecordBatch<'_>> {
    batch::batches(records)
        .collect::<Result<Vec<_>, _>>()
        .expect("valid batches")
}

/// Checks a read from `offset` returns contiguous valid batches starting with the one holding
/// `offset`, and every record decodes.
fn check_read_at(log: &Log, offset: i64) {
    let leo = log.log_end_offset();
    let r = log.read(offset, 1 << 20, leo, false).expect("read");
    let bs = batches_of(&r.records);
    assert!(!bs.is_empty(), "nothing read at {offset}");
    assert!(bs[0].base_offset() <= offset && offset <= bs[0].last_offset());
    let mut next = bs[0].base_offset();
    for b in &bs {
        assert_eq!(b.base_offset(), next);
        b.verify_crc().expect("crc");
        let recs = decode_records(b).expect("decode");
        assert_eq!(recs.len() as i64, b.last_offset_delta() as i64 + 1);
        next = b.next_offset();
    }
    assert_eq!(r.next_offset, next);
    assert_eq!(
        next, leo,
        "a 1 MiB read from {offset} should reach the log end"
    );
}

#[test]
fn append_then_read_every_offset_across_segments() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = open(dir.path(), small_config());
    let ranges = fill(&mut log, 40);
    assert!(log.num_segments() > 3, "segments: {}", log.num_segments());
    assert_eq!(log.log_end_offset(), ranges.last().expect("some").1 + 1);
    for offset in 0..log.log_end_offset() {
        check_read_at(&log, offset);
    }
    // Empty at the end, errors outside.
    let leo = log.log_end_offset();
    let r = log.read(leo, 1000, leo, false).expect("read at end");
    assert!(r.records.is_empty());
    assert!(matches!(
        log.read(leo + 1, 1000, leo, false),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    // Segment files are named by base offset and each is within the size limit.
    for base in log.segment_base_offsets() {
        let p = dir.path().join(segment_file_name(base, ".log"));
        let len = fs::metadata(&p).expect("segment exists").len();
        assert!(len <= 1024, "segment {base} is {len} bytes");
    }
    assert_eq!(log.segment_base_offsets()[0], 0);
    assert!(dir.path().join("00000000000000000000.log").exists());
}

#[test]
fn read_limits() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = open(dir.path(), LogConfig::default());
    let b = sized_batch(0, 100, 5);
    let size = b.len();
    for _ in 0..10 {
        log.append_as_leader(&b, 0, 0).expect("append");
    }
    // max_bytes: whole batches only.
    let r = log.read(0, size * 3 + 10, 100, false).expect("read");
    assert_eq!(r.records.len(), size * 3);
    assert_eq!(r.num_batches, 3);
    assert_eq!(r.next_offset, 3);
    // Too small for one batch.
    let r = log.read(0, size - 1, 100, false).expect("read");
    assert!(r.records.is_empty());
    let r = log.read(0, size - 1, 100, true).expect("read");
    assert_eq!(r.records.len(), size);
    let r = log.read(4, 1, 100, true).expect("read");
    assert_eq!(batches_of(&r.records)[0].base_offset(), 4);
    // High watermark.
    let r = log.read(2, 1 << 20, 5, false).expect("read");
    let bs = batches_of(&r.records);
    assert_eq!(bs.len(), 3);
    assert_eq!(bs.last().expect("some").base_offset(), 4);
    let r = log.read(5, 1 << 20, 5, true).expect("read at hw");
    assert!(r.records.is_empty());
    assert_eq!(r.log_end_offset, 10);
}

#[test]
fn read_returns_whole_batch_containing_offset() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = open(dir.path(), LogConfig::default());
    log.append_as_leader(&simple_batch(0, 5, 1), 0, 0)
        .expect("append");
    log.append_as_leader(&simple_batch(0, 5, 1), 0, 0)
        .expect("append");
    let r = log.read(7, 1 << 20, 10, false).expect("read");
    let bs = batches_of(&r.records);
    assert_eq!(bs.len(), 1);
    assert_eq!(bs[0].base_offset(), 5);
    assert_eq!(bs[0].last_offset(), 9);
}

#[test]
fn roll_by_size_and_time() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = LogConfig {
        segment_bytes: 500,
        segment_ms: 100,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), cfg);
    let b = sized_batch(0, 100, 0); // ~170 bytes
    for _ in 0..3 {
        log.append_as_leader(&b, 0, 10).expect("append");
    }
    assert_eq!(
        log.num_segments(),
        2,
        "third batch does not fit in 500 bytes"
    );
    assert_eq!(log.segment_base_offsets(), vec![0, 2]);
    // Time: the active segment's first append was at 10.
    log.append_as_leader(&simple_batch(0, 1, 0), 0, 111)
        .expect("append");
    assert_eq!(log.num_segments(), 3);
    assert_eq!(log.segment_base_offsets()[2], 3);
    log.maybe_roll(150).expect("roll");
    assert_eq!(log.num_segments(), 3, "not old enough");
    log.maybe_roll(212).expect("roll");
    assert_eq!(log.num_segments(), 4);
    assert_eq!(log.segment_base_offsets()[3], 4);
    log.maybe_roll(1000)
        .expect("an empty segment does not roll");
    assert_eq!(log.num_segments(), 4);
    for off in 0..4 {
        check_read_at(&log, off);
    }
}

#[test]
fn retention_by_time_and_size() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = LogConfig {
        segment_bytes: 300,
        retention_ms: 1000,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), cfg.clone());
    // One ~170-byte batch per segment, timestamps 0, 1000, 2000, ...
    for i in 0..6i64 {
        log.append_as_leader(&sized_batch(0, 100, i * 1000), 0, 0)
            .expect("append");
    }
    assert_eq!(log.num_segments(), 6);
    // now=3500: segments with largest ts < 2500 are expired (0, 1000, 2000).
    let deleted = log.enforce_retention(3500).expect("retention");
    assert_eq!(deleted, 3);
    assert_eq!(log.log_start_offset(), 3);
    assert!(matches!(
        log.read(2, 1000, 10, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    check_read_at(&log, 3);
    // The active segment is never deleted by retention.
    let deleted = log.enforce_retention(1_000_000).expect("retention");
    assert_eq!(deleted, 2);
    assert_eq!(log.num_segments(), 1);
    assert_eq!(log.log_start_offset(), 5);

    // Size.
    let dir2 = tempfile::tempdir().expect("tmp");
    let mut log = open(
        dir2.path(),
        LogConfig {
            retention_ms: -1,
            retention_bytes: 400,
            ..cfg
        },
    );
    for _ in 0..6 {
        log.append_as_leader(&sized_batch(0, 100, 0), 0, 0)
            .expect("append");
    }
    let seg = log.size_bytes() / 6;
    let deleted = log.enforce_retention(0).expect("retention");
    // Delete while size - oldest >= 400: 1020 -> 850 -> 680 -> 510 (510 - 170 < 400).
    assert_eq!(deleted, 3, "segment size {seg}");
    assert_eq!(log.log_start_offset(), 3);
    assert!(log.size_bytes() >= 400 && log.size_bytes() < 400 + seg);
}

#[test]
fn delete_records_before() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = open(dir.path(), small_config());
    fill(&mut log, 30);
    let leo = log.log_end_offset();
    let segs = log.num_segments();
    assert_eq!(log.delete_records_before(3).expect("delete"), 3);
    assert_eq!(log.num_segments(), segs, "segment 0 still has offsets >= 3");
    let bases = log.segment_base_offsets();
    let cut = bases[2] + 1;
    assert_eq!(log.delete_records_before(cut).expect("delete"), cut);
    assert_eq!(log.segment_base_offsets()[0], bases[2]);
    assert!(matches!(
        log.read(cut - 1, 100, leo, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    check_read_at(&log, cut);
    assert_eq!(log.delete_records_before(1).expect("no-op"), cut);
    assert!(log.delete_records_before(leo + 1).is_err());
    // Everything: the active segment is rolled and all old ones go.
    assert_eq!(log.delete_records_before(leo).expect("delete"), leo);
    assert_eq!(log.num_segments(), 1);
    assert_eq!(log.size_bytes(), 0);
    let info = log
        .append_as_leader(&simple_batch(0, 1, 0), 0, 0)
        .expect("append");
    assert_eq!(info.first_offset, leo);
    drop(log);
    let log = reopen(dir.path(), small_config(), true, 0, leo);
    assert_eq!(log.log_start_offset(), leo);
    assert_eq!(log.log_end_offset(), leo + 1);
}

#[test]
fn reopen_after_clean_close() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = open(dir.path(), small_config());
    fill(&mut log, 25);
    log.assign_leader_epoch(4, log.log_end_offset())
        .expect("epoch");
    let leo = log.log_end_offset();
    let size = log.size_bytes();
    let bases = log.segment_base_offsets();
    let max_ts = log.max_timestamp_and_offset().expect("max ts");
    log.close().expect("close");
    let log = reopen(dir.path(), small_config(), true, 0, 0);
    assert_eq!(log.log_end_offset(), leo);
    assert_eq!(log.size_bytes(), size);
    assert_eq!(log.segment_base_offsets(), bases);
    assert_eq!(log.recovery_point(), leo);
    assert_eq!(log.max_timestamp_and_offset().expect("max ts"), max_ts);
    assert_eq!(log.leader_epoch_cache().latest_epoch(), Some(4));
    for off in 0..leo {
        check_read_at(&log, off);
    }
    // Index files are Kafka-shaped.
    let ix = fs::metadata(dir.path().join(segment_file_name(bases[0], ".index")))
        .expect("index")
        .len();
    assert_eq!(ix % 8, 0);
    assert!(ix > 0);
    let tix = fs::metadata(dir.path().join(segment_file_name(bases[0], ".timeindex")))
        .expect("timeindex")
        .len();
    assert_eq!(tix % 12, 0);
}

/// Appends 3 batches to a fresh log, "crashes" (drop without close), damages the last batch
/// with `damage`, reopens uncleanly and checks the first two batches survive.
fn crash_and_recover(damage: impl FnOnce(&Path, u64, u64)) {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = open(dir.path(), LogConfig::default());
    log.append_as_leader(&simple_batch(0, 2, 10), 0, 0)
        .expect("append");
    log.append_as_leader(&simple_batch(0, 3, 20), 0, 0)
        .expect("append");
    let before_last = log.size_bytes();
    log.append_as_leader(&simple_batch(0, 4, 30), 0, 0)
        .expect("append");
    let total = log.size_bytes();
    drop(log); // crash: nothing flushed or closed
    let seg = dir.path().join(segment_file_name(0, ".log"));
    damage(&seg, before_last, total);
    let mut log = reopen(dir.path(), LogConfig::default(), false, 0, 0);
    assert_eq!(log.log_end_offset(), 5, "first two batches kept");
    assert_eq!(log.size_bytes(), before_last);
    assert_eq!(fs::metadata(&seg).expect("seg").len(), before_last);
    for off in 0..5 {
        check_read_at(&log, off);
    }
    let info = log
        .append_as_leader(&simple_batch(0, 1, 40), 0, 0)
        .expect("append");
    assert_eq!(info.first_offset, 5);
    check_read_at(&log, 5);
}

#[test]
fn recovery_cut_last_batch_in_half() {
    crash_and_recover(|seg, before_last, total| {
        let f = fs::OpenOptions::new().write(true).open(seg).expect("open");
        f.set_len(before_last + (total - before_last) / 2)
            .expect("cut");
    });
}

#[test]
fn recovery_flipped_byte_in_last_batch() {
    crash_and_recover(|seg, _before_last, total| {
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(seg)
            .expect("open");
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, total - 3).expect("read");
        b[0] ^= 0x5a;
        f.write_all_at(&b, total - 3).expect("write");
    });
}

#[test]
fn recovery_garbage_after_last_batch() {
    crash_and_recover(|seg, before_last, total| {
        // Replace the last batch by garbage and add more.
        let f = fs::OpenOptions::new().write(true).open(seg).expect("open");
        f.write_all_at(
            &vec![0xab; (total - before_last) as usize + 100],
            before_last,
        )
        .expect("write");
    });
}

#[test]
fn recovery_of_zeroed_tail_and_garbage_only_tail() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = open(dir.path(), LogConfig::default());
    log.append_as_leader(&simple_batch(0, 2, 10), 0, 0)
        .expect("append");
    let size = log.size_bytes();
    drop(log);
    let seg = dir.path().join(segment_file_name(0, ".log"));
    let f = fs::OpenOptions::new().write(true).open(&seg).expect("open");
    f.write_all_at(&[0u8; 4096], size).expect("zeros");
    let log = reopen(dir.path(), LogConfig::default(), false, 0, 0);
    assert_eq!(log.log_end_offset(), 2);
    assert_eq!(log.size_bytes(), size);
    // Even a "clean" open truncates garbage at the tail of the active segment.
    drop(log);
    f.write_all_at(&[7u8; 10], size).expect("garbage");
    let log = reopen(dir.path(), LogConfig::default(), true, 0, 0);
    assert_eq!(log.size_bytes(), size);
    assert_eq!(log.log_end_offset(), 2);
}

#[test]
fn recovery_deletes_segments_after_corruption_and_keeps_those_before_recovery_point() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = open(dir.path(), small_config());
    fill(&mut log, 60);
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 4);
    log.flush().expect("flush");
    let rp = log.recovery_point();
    drop(log);
    // Corrupt the first batch of the second segment: everything from there is dropped.
    let seg1 = dir.path().join(segment_file_name(bases[1], ".log"));
    let f = fs::OpenOptions::new()
        .write(true)
        .open(&seg1)
        .expect("open");
    f.write_all_at(&[0xff], 30).expect("flip");
    // Recovery point at the start: segment 1 is checked and truncated.
    let log = reopen(dir.path(), small_config(), false, 0, 0);
    assert_eq!(log.segment_base_offsets(), vec![bases[0], bases[1]]);
    assert_eq!(log.log_end_offset(), bases[1]);
    assert_eq!(
        log.size_bytes(),
        fs::metadata(dir.path().join(segment_file_name(0, ".log")))
            .expect("m")
            .len()
    );
    for b in &bases[2..] {
        assert!(!dir.path().join(segment_file_name(*b, ".log")).exists());
    }
    assert!(rp > bases[1]);
    for off in 0..bases[1] {
        check_read_at(&log, off);
    }
}

#[test]
fn unclean_open_only_checks_from_recovery_point() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = open(dir.path(), small_config());
    fill(&mut log, 30);
    let bases = log.segment_base_offsets();
    let leo = log.log_end_offset();
    log.flush().expect("flush");
    drop(log);
    // Damage segment 0, which is below the recovery point of the last segment: trusted.
    let seg0 = dir.path().join(segment_file_name(0, ".log"));
    let f = fs::OpenOptions::new()
        .write(true)
        .open(&seg0)
        .expect("open");
    f.write_all_at(&[0xff], 70).expect("flip");
    let rp = *bases.last().expect("some");
    let log = reopen(dir.path(), small_config(), false, rp, 0);
    assert_eq!(log.log_end_offset(), leo);
    assert_eq!(log.segment_base_offsets(), bases);
}

#[test]
fn corrupt_index_files_are_rebuilt() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = open(dir.path(), small_config());
    fill(&mut log, 30);
    let leo = log.log_end_offset();
    let bases = log.segment_base_offsets();
    log.close().expect("close");
    let good = fs::read(dir.path().join(segment_file_name(bases[0], ".index"))).expect("read");
    assert!(!good.is_empty());
    // Size not a multiple of 8 in segment 0.
    fs::write(
        dir.path().join(segment_file_name(bases[0], ".index")),
        [1, 2, 3],
    )
    .expect("w");
    // Entry past the end of the log in segment 1.
    let mut past = Vec::new();
    past.extend_from_slice(&1i32.to_be_bytes());
    past.extend_from_slice(&100_000i32.to_be_bytes());
    fs::write(dir.path().join(segment_file_name(bases[1], ".index")), past).expect("w");
    // Garbage time index in segment 2.
    fs::write(
        dir.path().join(segment_file_name(bases[2], ".timeindex")),
        [9u8; 24],
    )
    .expect("w");
    // Missing index for the active segment.
    let last = *bases.last().expect("some");
    fs::remove_file(dir.path().join(segment_file_name(last, ".index"))).expect("rm");
    let log = reopen(dir.path(), small_config(), true, 0, 0);
    assert_eq!(log.log_end_offset(), leo);
    for off in 0..leo {
        check_read_at(&log, off);
    }
    let rebuilt = fs::read(dir.path().join(segment_file_name(bases[0], ".index"))).expect("read");
    assert_eq!(rebuilt, good, "rebuilt index equals the original");
    assert_eq!(log.fetch_offset_by_timestamp(0).expect("ts"), Some((0, 0)));
}

#[test]
fn validation_errors_write_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = open(dir.path(), LogConfig::default());
    log.append_as_leader(&simple_batch(0, 1, 1), 0, 0)
        .expect("append");
    let good = simple_batch(0, 2, 1);
    let mutate = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.to_vec();
        f(&mut b);
        Bytes::from(b)
    };
    type Check = fn(&StorageError) -> bool;
    let cases: Vec<(&str, Bytes, Check)> = vec![
        ("magic", mutate(&|b| b[16] = 1), |e| {
            matches!(e, StorageError::InvalidMagic { .. })
        }),
        (
            "short length",
            mutate(&|b| b[8..12].copy_from_slice(&40i32.to_be_bytes())),
            |e| matches!(e, StorageError::InvalidBatchLength { .. }),
        ),
        ("truncated", good.slice(..good.len() - 1), |e| {
            matches!(e, StorageError::TruncatedBatch { .. })
        }),
        (
            "trailing garbage",
            concat(&[good.clone(), Bytes::from_static(&[1, 2, 3])]),
            |e| matches!(e, StorageError::TruncatedBatch { .. }),
        ),
        ("crc", mutate(&|b| b[70] ^= 1), |e| {
            matches!(e, StorageError::CrcMismatch { .. })
        }),
        (
            "records count",
            BatchBuilder::new(0)
                .record(None, Some(b"x"), 1)
                .records_count_override(0)
                .build(),
            |e| matches!(e, StorageError::InvalidRecordCount { .. }),
        ),
        (
            "last offset delta",
            BatchBuilder::new(0)
                .record(None, Some(b"x"), 1)
                .last_offset_delta_override(3)
                .build(),
            |e| matches!(e, StorageError::InvalidRecordCount { .. }),
        ),
        (
            "control",
            BatchBuilder::new(0)
                .attributes(CONTROL_BIT)
                .record(None, Some(b"x"), 1)
                .build(),
            |e| matches!(e, StorageError::ControlBatchNotAllowed),
        ),
        (
            "compression codec",
            BatchBuilder::new(0)
                .attributes(6)
                .record(None, Some(b"x"), 1)
                .build(),
            |e| matches!(e, StorageError::InvalidCompression { codec: 6 }),
        ),
        (
            "sequence",
            BatchBuilder::new(0)
                .producer(5, 0, -1)
                .record(None, Some(b"x"), 1)
                .build(),
            |e| matches!(e, StorageError::InvalidProducerSequence { .. }),
        ),
        ("too large", sized_batch(0, 2_000_000, 1), |e| {
            matches!(e, StorageError::MessageTooLarge { .. })
        }),
    ];
    for (name, bad, check) in cases {
        // A good batch first: nothing at all must be written.
        let buf = concat(&[good.clone(), bad]);
        let err = log.append_as_leader(&buf, 0, 0).expect_err(name);
        assert!(check(&err), "{name}: {err:?}");
        assert_eq!(log.log_end_offset(), 1, "{name}");
    }
    let size = log.size_bytes();
    assert_eq!(
        fs::metadata(dir.path().join(segment_file_name(0, ".log")))
            .expect("m")
            .len(),
        size
    );
    // Empty append is a no-op.
    let info = log.append_as_leader(&Bytes::new(), 0, 0).expect("empty");
    assert_eq!((info.first_offset, info.num_batches), (-1, 0));
    // A batch bigger than the segment.
    let mut small = open(
        tempfile::tempdir().expect("tmp").path(),
        LogConfig {
            segment_bytes: 100,
            ..LogConfig::default()
        },
    );
    assert!(matches!(
        small.append_as_leader(&sized_batch(0, 200, 0), 0, 0),
        Err(StorageError::RecordListTooLarge { .. })
    ));
}

#[test]
fn leader_append_assigns_offsets_and_epoch() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = open(dir.path(), LogConfig::default());
    let two = concat(&[simple_batch(77, 2, 100), simple_batch(3, 3, 50)]);
    let info = log.append_as_leader(&two, 5, 0).expect("append");
    assert_eq!((info.first_offset, info.last_offset), (0, 4));
    assert_eq!(info.num_batches, 2);
    assert_eq!(info.bytes, two.len());
    assert_eq!(info.max_timestamp, 101);
    assert_eq!(info.offset_of_max_timestamp, 0);
    assert_eq!(info.log_append_time, -1);
    let r = log.read(0, 1 << 20, 10, false).expect("read");
    let bs = batches_of(&r.records);
    assert_eq!(bs[0].base_offset(), 0);
    assert_eq!(bs[1].base_offset(), 2);
    assert!(bs.iter().all(|b| b.partition_leader_epoch() == 5));
    assert!(bs.iter().all(|b| b.verify_crc().is_ok()));
    // Untouched bytes after the patched fields (first batch; same CRC-covered bytes).
    let first_len = bs[0].size();
    assert_eq!(&r.records[21..first_len], &two[21..first_len]);
    log.append_as_leader(&simple_batch(0, 1, 0), 7, 0)
        .expect("append");
    assert_eq!(log.end_offset_for_epoch(5), (5, 5));
    assert_eq!(log.end_offset_for_epoch(6), (5, 5));
    assert_eq!(log.end_offset_for_epoch(7), (7, 6));
    assert_eq!(log.end_offset_for_epoch(3), (3, 0));
}

#[test]
fn log_append_time_rewrites_timestamp_and_crc() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = LogConfig {
        message_timestamp_type_log_append: true,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), cfg);
    let info = log
        .append_as_leader(&simple_batch(0, 3, 5), 1, 123_456)
        .expect("append");
    assert_eq!(info.log_append_time, 123_456);
    assert_eq!(info.max_timestamp, 123_456);
    let r = log.read(0, 1 << 20, 10, false).expect("read");
    let bs = batches_of(&r.records);
    assert_eq!(bs[0].timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(bs[0].max_timestamp(), 123_456);
    assert_eq!(bs[0].compute_crc(), bs[0].crc());
    let recs = decode_records(&bs[0]).expect("decode");
    assert!(recs.iter().all(|r| r.timestamp == 123_456));
}

#[test]
fn create_time_more_than_the_allowed_future_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = LogConfig {
        message_timestamp_after_max_ms: 1000,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), cfg.clone());
    let now = 1_000_000;
    // Up to now + 1 s is fine; a batch whose newest record is later is not.
    log.append_as_leader(&simple_batch(0, 3, now + 1000 - 2), 1, now)
        .expect("within");
    let err = log
        .append_as_leader(&simple_batch(0, 3, now + 1000), 1, now)
        .expect_err("beyond");
    assert!(
        matches!(
            err,
            StorageError::InvalidTimestamp {
                timestamp,
                latest,
                ..
            } if timestamp == now + 1002 && latest == now + 1000
        ),
        "{err}"
    );
    assert_eq!(err.kafka_error_code(), 32);
    assert_eq!(log.log_end_offset(), 3);
    // LogAppendTime replaces the producer's timestamps: nothing to check.
    log.update_config(LogConfig {
        message_timestamp_type_log_append: true,
        ..cfg
    });
    log.append_as_leader(&simple_batch(0, 3, i64::MAX / 2), 1, now)
        .expect("log append time");
}

#[test]
fn timestamp_lookups() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = open(dir.path(), small_config());
    let ranges = fill(&mut log, 30); // batch i has timestamps 1000*i ..
    assert!(log.num_segments() > 2);
    for (i, (base, _)) in ranges.iter().enumerate() {
        let ts = 1000 * i as i64;
        let (off, found_ts) = log
            .fetch_offset_by_timestamp(ts)
            .expect("lookup")
            .expect("found");
        assert_eq!(off, *base, "ts {ts}");
        assert!(found_ts >= ts);
        // Between batches: the next batch.
        if i > 0 {
            let mid = ts - 500 + (i % 4) as i64; // still > previous batch's max timestamp
            let (off, _) = log.fetch_offset_by_timestamp(mid).expect("l").expect("f");
            assert_eq!(off, *base, "mid ts {mid}");
        }
    }
    assert_eq!(log.fetch_offset_by_timestamp(10_000_000).expect("l"), None);
    let (max_ts, off) = log.max_timestamp_and_offset().expect("m").expect("some");
    assert_eq!(off, ranges[29].0);
    assert_eq!(max_ts, 29_000 + (29 % 4) as i64);
    // After deleting records, answers are raised to the log start.
    let start = ranges[10].0 + 1;
    log.delete_records_before(start).expect("delete");
    let (off, _) = log.fetch_offset_by_timestamp(0).expect("l").expect("f");
    assert!(off >= start, "{off}");
}

#[test]
fn truncate_to_and_continue() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = open(dir.path(), small_config());
    let ranges = fill(&mut log, 30);
    log.assign_leader_epoch(9, log.log_end_offset())
        .expect("epoch");
    let bases = log.segment_base_offsets();
    // Inside the active segment.
    let (b, _) = ranges[28];
    log.truncate_to(b).expect("truncate");
    assert_eq!(log.log_end_offset(), b);
    assert_eq!(log.leader_epoch_cache().latest_epoch(), Some(0));
    // Across segments, in the middle of a batch: the whole batch goes.
    let target = bases[2] + 1;
    log.truncate_to(target).expect("truncate");
    let leo = log.log_end_offset();
    assert!(leo <= target);
    assert_eq!(log.segment_base_offsets().len(), 3);
    for off in 0..leo {
        check_read_at(&log, off);
    }
    let info = log
        .append_as_leader(&simple_batch(0, 2, 99_000), 1, 0)
        .expect("append");
    assert_eq!(info.first_offset, leo);
    for off in 0..leo + 2 {
        check_read_at(&log, off);
    }
    log.close().expect("close");
    let mut log = reopen(dir.path(), small_config(), true, 0, 0);
    assert_eq!(log.log_end_offset(), leo + 2);
    for off in 0..leo + 2 {
        check_read_at(&log, off);
    }
    // Below the first segment: empty log restarted there.
    log.truncate_to(0).expect("truncate");
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.num_segments(), 1);
    assert_eq!(log.size_bytes(), 0);
    log.append_as_leader(&simple_batch(0, 1, 0), 0, 0)
        .expect("append");
    check_read_at(&log, 0);
}

#[test]
fn replicated_appends() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = open(dir.path(), LogConfig::default());
    let b = concat(&[
        BatchBuilder::new(0)
            .partition_leader_epoch(2)
            .record(None, Some(b"a"), 1)
            .build(),
        BatchBuilder::new(5)
            .partition_leader_epoch(3)
            .record(None, Some(b"b"), 2)
            .build(),
    ]);
    let info = log.append_batches_with_offsets(&b).expect("append");
    assert_eq!((info.first_offset, info.last_offset), (0, 5));
    assert_eq!(log.log_end_offset(), 6);
    let r = log.read(0, 1 << 20, 6, false).expect("read");
    assert_eq!(r.records, b, "written byte for byte");
    assert_eq!(log.end_offset_for_epoch(2), (2, 5));
    assert!(matches!(
        log.append_batches_with_offsets(&simple_batch(5, 1, 0)),
        Err(StorageError::UnexpectedAppendOffset { .. })
    ));
    // Control batches are fine when replicating.
    let ctrl = BatchBuilder::new(6)
        .attributes(CONTROL_BIT)
        .record(None, Some(b"c"), 3)
        .build();
    log.append_batches_with_offsets(&ctrl).expect("control");
    assert_eq!(log.log_end_offset(), 7);
    let mut bad = simple_batch(7, 1, 0).to_vec();
    let n = bad.len();
    bad[n - 1] ^= 1;
    assert!(matches!(
        log.append_batches_with_offsets(&Bytes::from(bad)),
        Err(StorageError::CrcMismatch { .. })
    ));
    // Offsets far ahead roll a new segment when relative offsets would overflow.
    let far = 7 + i64::from(i32::MAX) + 10;
    log.append_batches_with_offsets(&simple_batch(far, 1, 0))
        .expect("far");
    assert_eq!(log.segment_base_offsets(), vec![0, far]);
    check_read_at(&log, far);
    let r = log.read(6, 1 << 20, far + 1, false).expect("read");
    let bases: Vec<i64> = batches_of(&r.records)
        .iter()
        .map(|b| b.base_offset())
        .collect();
    assert_eq!(bases, vec![6, far], "reads continue into the next segment");
}

#[test]
fn flushing_and_pending_flush() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = LogConfig {
        flush_interval_messages: 5,
        ..small_config()
    };
    let mut log = open(dir.path(), cfg);
    log.append_as_leader(&simple_batch(0, 2, 0), 0, 0)
        .expect("a");
    assert_eq!(log.recovery_point(), 0);
    log.append_as_leader(&simple_batch(0, 3, 0), 0, 0)
        .expect("a");
    assert_eq!(log.recovery_point(), 5, "flush.messages reached");
    // A flush left to the caller: due, not done, until it flushes.
    log.append_as_leader_unflushed(&simple_batch(0, 5, 0), 0, 0)
        .expect("a");
    assert!(log.flush_due());
    assert_eq!(log.recovery_point(), 5);
    assert_eq!(
        log.high_watermark_limit(),
        5,
        "unflushed records stay invisible"
    );
    log.flush().expect("flush");
    assert!(!log.flush_due());
    assert_eq!(log.recovery_point(), 10);
    assert_eq!(log.high_watermark_limit(), 10);
    log.append_as_leader_unflushed(&simple_batch(0, 2, 0), 0, 0)
        .expect("a");
    assert_eq!(
        log.high_watermark_limit(),
        12,
        "below flush.messages: visible"
    );
    log.flush().expect("flush");
    // A flush whose fsyncs run outside the lock: appends go on meanwhile, and completing
    // it moves the recovery point only to the log end it was prepared at.
    assert!(
        log.pending_flush().expect("p").is_none(),
        "nothing to flush"
    );
    log.append_as_leader_unflushed(&simple_batch(0, 5, 0), 0, 0)
        .expect("a");
    let pending = log.pending_flush().expect("p").expect("some");
    log.append_as_leader_unflushed(&simple_batch(0, 5, 0), 0, 0)
        .expect("a");
    let synced = pending.sync();
    log.complete_segment_flush(pending, synced)
        .expect("complete");
    assert_eq!(log.recovery_point(), 17);
    assert!(log.flush_due(), "the later append is still unflushed");
    assert_eq!(log.high_watermark_limit(), 17);
    let pending = log.pending_flush().expect("p").expect("some");
    let synced = pending.sync();
    log.complete_segment_flush(pending, synced)
        .expect("complete");
    assert_eq!(log.recovery_point(), 22);
    // Completing after a truncation changes nothing, though the log has grown back past
    // where the flush was prepared (with data it never synced).
    log.append_as_leader_unflushed(&simple_batch(0, 5, 0), 0, 0)
        .expect("a");
    let pending = log.pending_flush().expect("p").expect("some");
    log.truncate_to(22).expect("truncate");
    log.append_as_leader_unflushed(&simple_batch(0, 5, 0), 0, 0)
        .expect("a");
    let synced = pending.sync();
    log.complete_segment_flush(pending, synced)
        .expect("complete");
    assert_eq!(log.recovery_point(), 22);
    log.update_config(small_config());
    fill(&mut log, 20);
    let pending = log.pending_segment_flush().expect("p").expect("some");
    let synced = pending.sync();
    let active_base = *log.segment_base_offsets().last().expect("some");
    log.complete_segment_flush(pending, synced)
        .expect("complete");
    assert_eq!(log.recovery_point(), active_base);
    assert!(log.pending_segment_flush().expect("p").is_none());
    log.maybe_flush(10).expect("not due");
    assert_eq!(log.recovery_point(), active_base);
    log.update_config(LogConfig {
        flush_interval_ms: 100,
        ..small_config()
    });
    log.maybe_flush(100).expect("due");
    assert_eq!(log.recovery_point(), log.log_end_offset());
}

#[test]
fn a_failed_fsync_takes_the_log_offline() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = open(&dir.path().join("t-0"), small_config());
    log.append_as_leader(&simple_batch(0, 2, 0), 0, 0)
        .expect("a");
    let pending = log.pending_flush().expect("p").expect("some");
    // The kernel may have dropped the pages a failed fsync did not write, and a later
    // fsync would succeed: nothing counts as flushed any more.
    log.fail(&StorageError::Io(std::io::Error::other("EIO")));
    let synced = pending.sync();
    log.complete_segment_flush(pending, synced)
        .expect("ignored");
    assert_eq!(log.recovery_point(), 0);
    let e = log
        .append_as_leader(&simple_batch(0, 1, 0), 0, 0)
        .expect_err("offline");
    assert_eq!(e.kafka_error_code(), 56, "KAFKA_STORAGE_ERROR: {e}");
    assert!(log.flush().is_err());
    assert!(log.read(0, 1024, 2, true).is_err());
    log.delete().expect("a failed log can still be deleted");
}

#[test]
fn closed_log_rejects_operations() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = open(dir.path(), LogConfig::default());
    log.shutdown().expect("shutdown");
    assert!(matches!(
        log.append_as_leader(&simple_batch(0, 1, 0), 0, 0),
        Err(StorageError::LogClosed(_))
    ));
    assert!(matches!(
        log.read(0, 10, 0, true),
        Err(StorageError::LogClosed(_))
    ));
    let log2 = open(&dir.path().join("x"), LogConfig::default());
    log2.delete().expect("delete");
    assert!(!dir.path().join("x").exists());
}

#[test]
fn log_manager_lifecycle() {
    let root = tempfile::tempdir().expect("tmp");
    let dirs = vec![root.path().join("d1"), root.path().join("d2")];
    let cfg = |_: &TopicPartition| LogConfig::default();
    let m = LogManager::open(&dirs, &cfg, true, 0).expect("open");
    for p in 0..4 {
        let log = m.create("orders", p, LogConfig::default()).expect("create");
        log.write()
            .append_as_leader(&simple_batch(0, p as usize + 1, 0), 0, 0)
            .expect("append");
    }
    let again = m
        .create("orders", 0, LogConfig::default())
        .expect("existing");
    assert_eq!(again.read().log_end_offset(), 1);
    assert!(m.create("../evil", 0, LogConfig::default()).is_err());
    // Spread over both dirs.
    let in_d1 = fs::read_dir(&dirs[0]).expect("d1").count();
    let in_d2 = fs::read_dir(&dirs[1]).expect("d2").count();
    assert_eq!((in_d1, in_d2), (2, 2));
    m.get("orders", 3)
        .expect("exists")
        .write()
        .delete_records_before(2)
        .expect("delete records");
    // A metadata log dir is skipped when asked.
    fs::create_dir_all(dirs[0].join("__cluster_metadata-0")).expect("mkdir");
    m.flush_pass(0).expect("flush pass");
    assert_eq!(m.retention_pass(0).expect("retention"), 0);
    m.shutdown().expect("shutdown");
    for d in &dirs {
        assert!(d.join(".kafka_cleanshutdown").exists());
    }
    let rp = read_offsets(&dirs[0].join(RECOVERY_POINT_CHECKPOINT)).expect("rp");
    assert_eq!(rp.len(), 2);
    let ls3: i64 = dirs
        .iter()
        .filter_map(|d| {
            read_offsets(&d.join(LOG_START_OFFSET_CHECKPOINT))
                .expect("ls")
                .get(&TopicPartition::new("orders", 3))
                .copied()
        })
        .sum();
    assert_eq!(ls3, 2);
    drop(m);

    // Leftover -delete dir is removed at startup.
    let leftover = dirs[1].join("orders-9.0123abcd-delete");
    fs::create_dir_all(&leftover).expect("mkdir");
    let m = LogManager::open(&dirs, &cfg, true, 0).expect("reopen");
    assert!(!leftover.exists());
    for d in &dirs {
        assert!(
            !d.join(".kafka_cleanshutdown").exists(),
            "marker removed at startup"
        );
    }
    assert_eq!(m.logs().len(), 4);
    for p in 0..4 {
        let log = m.get("orders", p).expect("found");
        assert_eq!(log.read().log_end_offset(), i64::from(p) + 1);
    }
    assert_eq!(m.get("orders", 3).expect("x").read().log_start_offset(), 2);
    let info = m.skipped_log("__cluster_metadata", 0).expect("skipped");
    assert!(info.clean_shutdown);
    assert!(m.get("__cluster_metadata", 0).is_none());

    // Delete a partition.
    let held = m.get("orders", 1).expect("x");
    assert!(m.delete("orders", 1).expect("delete"));
    assert!(!m.delete("orders", 1).expect("gone"));
    assert!(m.get("orders", 1).is_none());
    assert!(matches!(
        held.read().read(0, 10, 10, true),
        Err(StorageError::LogClosed(_))
    ));
    for d in &dirs {
        for e in fs::read_dir(d).expect("ls") {
            let name = e.expect("e").file_name();
            assert!(!name.to_string_lossy().starts_with("orders-1"), "{name:?}");
        }
    }
    m.checkpoint_all().expect("checkpoint");
    drop(m);

    // Crash (no shutdown): no marker, logs are recovered and still complete.
    let m = LogManager::open(&dirs, &cfg, false, 0).expect("reopen unclean");
    assert_eq!(m.logs().len(), 4, "3 orders partitions + the metadata log");
    assert!(!m
        .get("__cluster_metadata", 0)
        .expect("opened")
        .read()
        .dir()
        .as_os_str()
        .is_empty());
    assert_eq!(m.get("orders", 2).expect("x").read().log_end_offset(), 3);
}

#[test]
fn many_batches_in_one_append_use_several_writev_calls() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = open(dir.path(), LogConfig::default());
    // 1500 batches -> 3000 I/O slices, more than IOV_MAX (1024).
    let parts: Vec<Bytes> = (0..1500).map(|i| simple_batch(0, 1, i)).collect();
    let all = concat(&parts);
    let info = log.append_as_leader(&all, 0, 0).expect("append");
    assert_eq!((info.first_offset, info.last_offset), (0, 1499));
    assert_eq!(info.bytes, all.len());
    assert_eq!(log.size_bytes(), all.len() as u64);
    for off in [0, 1, 700, 1024, 1499] {
        check_read_at(&log, off);
    }
    log.close().expect("close");
    let log = reopen(dir.path(), LogConfig::default(), false, 0, 0);
    assert_eq!(log.log_end_offset(), 1500);
}

#[test]
fn shared_log_concurrent_readers_and_writer() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Log>();
    assert_send_sync::<LogManager>();
    let dir = tempfile::tempdir().expect("tmp");
    let log = std::sync::Arc::new(parking_lot::RwLock::new(open(dir.path(), small_config())));
    std::thread::scope(|s| {
        let w = log.clone();
        s.spawn(move || {
            for i in 0..200 {
                w.write()
                    .append_as_leader(&simple_batch(0, 2, i), 0, 0)
                    .expect("append");
            }
        });
        for _ in 0..2 {
            let r = log.clone();
            s.spawn(move || {
                for _ in 0..200 {
                    let g = r.read();
                    let leo = g.log_end_offset();
                    if leo > 0 {
                        check_read_at(&g, leo / 2);
                    }
                }
            });
        }
    });
    assert_eq!(log.read().log_end_offset(), 400);
}

#[test]
fn epochs_are_written_with_their_first_data_and_recovered_from_unflushed_batches() {
    let dir = tempfile::tempdir().expect("tmp");
    let ckpt = dir.path().join("leader-epoch-checkpoint");
    let mut log = open(dir.path(), LogConfig::default());
    log.append_as_leader(&simple_batch(0, 2, 0), 1, 0)
        .expect("append");
    log.flush().expect("flush");
    let written = fs::read_to_string(&ckpt).expect("checkpoint written by the flush");
    assert!(written.contains("\n1 0\n"), "{written}");

    // An epoch starting at the log end has no data: closing does not rewrite the file.
    log.assign_leader_epoch(2, log.log_end_offset())
        .expect("epoch");
    log.close().expect("close");
    assert_eq!(fs::read_to_string(&ckpt).expect("read"), written);
    let mut log = reopen(dir.path(), LogConfig::default(), true, 0, 0);
    assert_eq!(log.leader_epoch_cache().latest_epoch(), Some(1));

    // Data in a new epoch, then a crash before any flush: recovery scans past the recovery
    // point and finds the epoch in the batches.
    log.assign_leader_epoch(3, log.log_end_offset())
        .expect("epoch");
    log.append_as_leader(&simple_batch(0, 1, 0), 3, 0)
        .expect("append");
    let rp = log.recovery_point();
    assert_eq!(fs::read_to_string(&ckpt).expect("read"), written);
    drop(log);
    let log = reopen(dir.path(), LogConfig::default(), false, rp, 0);
    assert_eq!(log.leader_epoch_cache().latest_epoch(), Some(3));
    assert_eq!(log.end_offset_for_epoch(1), (1, 2));
    assert_eq!(log.end_offset_for_epoch(3), (3, 3));
}

/// `read_slices` names exactly the bytes `read` returns, for every start offset, budget and
/// limit (including limits inside a batch), across segments and with sparse or dense indexes.
#[test]
fn read_slices_name_the_bytes_read_returns() {
    for (segment_bytes, index_interval_bytes) in [(1024, 100), (4096, 4096), (1 << 20, 1)] {
        let dir = tempfile::tempdir().expect("tmp");
        let config = LogConfig {
            segment_bytes,
            index_interval_bytes,
            retention_ms: -1,
            ..LogConfig::default()
        };
        let mut log = open(dir.path(), config);
        for i in 0..60usize {
            log.append_as_leader(&mixed_batch(i), 0, 0).expect("append");
        }
        let leo = log.log_end_offset();
        let budgets = [0usize, 1, 60, 100, 250, 700, 1500, 5000, 1 << 20];
        for start in 0..=leo {
            for limit in [start, start + 1, start + 3, leo - 1, leo] {
                for max_bytes in budgets {
                    for min_one in [false, true] {
                        let want = log.read(start, max_bytes, limit, min_one).expect("read");
                        let slices = log
                            .read_slices(start, max_bytes, limit, min_one)
                            .expect("slices");
                        let mut got = Vec::new();
                        for s in &slices {
                            assert!(s.len > 0, "empty slice");
                            s.read_into(&mut got).expect("read slice");
                        }
                        assert_eq!(
                            got,
                            want.records.as_ref(),
                            "start {start} limit {limit} max {max_bytes} min_one {min_one}"
                        );
                    }
                }
            }
        }
        assert!(matches!(
            log.read_slices(leo + 1, 1000, leo, false),
            Err(StorageError::OffsetOutOfRange { .. })
        ));
    }
}

/// A flush fsyncs the active segment's data but not its index files; losing or damaging
/// those (as a power loss may) costs a rebuild or a longer scan, never data or correct reads.
#[test]
fn active_index_files_lost_after_a_flush_are_rebuilt() {
    let config = LogConfig {
        segment_bytes: 1 << 20,
        index_interval_bytes: 100,
        retention_ms: -1,
        ..LogConfig::default()
    };
    for (clean, damage) in [(true, 0), (true, 1), (true, 2), (false, 0), (false, 2)] {
        let dir = tempfile::tempdir().expect("tmp");
        let mut log = open(dir.path(), config.clone());
        fill(&mut log, 40);
        log.flush().expect("flush");
        let leo = log.log_end_offset();
        drop(log);
        let index = dir.path().join(segment_file_name(0, ".index"));
        let times = dir.path().join(segment_file_name(0, ".timeindex"));
        let full = fs::read(&index).expect("index");
        assert!(full.len() >= 16, "index entries were written");
        match damage {
            // Only the older half of the entries reached the disk.
            0 => fs::write(&index, &full[..full.len() / 16 * 8]).expect("w"),
            // Nothing reached it.
            1 => {
                fs::write(&index, []).expect("w");
                fs::write(&times, []).expect("w");
            }
            // Zeroed pages.
            _ => fs::write(&index, vec![0u8; full.len()]).expect("w"),
        }
        let log = reopen(dir.path(), config.clone(), clean, leo, 0);
        assert_eq!(log.log_end_offset(), leo, "clean {clean} damage {damage}");
        for off in 0..leo {
            check_read_at(&log, off);
        }
        assert_eq!(log.fetch_offset_by_timestamp(0).expect("ts"), Some((0, 0)));
        assert_eq!(
            log.fetch_offset_by_timestamp(1000 * 39)
                .expect("ts")
                .map(|(o, _)| o),
            Some(leo - 4)
        );
    }
}

/// After a clean shutdown, `open_with(defer)` leaves logs unopened until asked for; their
/// checkpoints survive untouched, they can be deleted unopened, and the next shutdown is
/// clean. After a crash every log is opened (and recovered) at once.
#[test]
fn deferred_logs_open_on_demand_after_a_clean_shutdown() {
    let root = tempfile::tempdir().expect("tmp");
    let dirs = vec![root.path().join("d1")];
    let cfg = |_: &TopicPartition| LogConfig::default();
    let m = LogManager::open(&dirs, &cfg, true, 0).expect("open");
    for p in 0..3 {
        let log = m.create("t", p, LogConfig::default()).expect("create");
        log.write()
            .append_as_leader(&simple_batch(0, p as usize + 2, 0), 0, 0)
            .expect("append");
    }
    m.get("t", 2)
        .expect("t-2")
        .write()
        .delete_records_before(1)
        .expect("delete records");
    m.shutdown().expect("shutdown");
    drop(m);

    let m = LogManager::open_with(&dirs, &cfg, true, true, 0).expect("reopen deferred");
    assert!(!dirs[0].join(".kafka_cleanshutdown").exists());
    assert!(m.logs().is_empty(), "nothing opened");
    assert_eq!(m.deferred().len(), 3);
    assert_eq!(m.partitions().len(), 3);
    assert!(m.get("t", 0).is_none() && m.is_deferred("t", 0));
    // Checkpoints keep deferred logs' values.
    m.checkpoint_all().expect("checkpoint");
    let ls = read_offsets(&dirs[0].join(LOG_START_OFFSET_CHECKPOINT)).expect("ls");
    assert_eq!(ls.get(&TopicPartition::new("t", 2)), Some(&1));
    let rp = read_offsets(&dirs[0].join(RECOVERY_POINT_CHECKPOINT)).expect("rp");
    assert_eq!(rp.get(&TopicPartition::new("t", 1)), Some(&3));
    // Opened on demand, with its data and log start.
    let log = m
        .open_deferred("t", 2, LogConfig::default())
        .expect("open")
        .expect("exists");
    assert_eq!(log.read().log_end_offset(), 4);
    assert_eq!(log.read().log_start_offset(), 1);
    assert!(!m.is_deferred("t", 2));
    assert!(std::sync::Arc::ptr_eq(
        &log,
        &m.get("t", 2).expect("open now")
    ));
    assert!(m
        .open_deferred("t", 9, LogConfig::default())
        .expect("absent")
        .is_none());
    // `create` of a deferred partition opens it rather than making a new one.
    let log0 = m.create("t", 0, LogConfig::default()).expect("create");
    assert_eq!(log0.read().log_end_offset(), 2);
    // A deferred log is deleted without being opened.
    assert!(m.delete("t", 1).expect("delete"));
    assert!(!dirs[0].join("t-1").exists());
    assert_eq!(m.partitions().len(), 2);
    m.shutdown().expect("shutdown");
    drop(m);

    // Once shutdown began, no log opens and none is created.
    let m = LogManager::open_with(&dirs, &cfg, true, true, 0).expect("reopen");
    assert_eq!(m.deferred().len(), 2, "clean again");
    m.shutdown().expect("shutdown");
    assert!(matches!(
        m.open_deferred("t", 0, LogConfig::default()),
        Err(StorageError::LogClosed(_))
    ));
    assert!(m.create("t", 7, LogConfig::default()).is_err());
    drop(m);
    // A crash after a deferred start: logs are opened and recovered eagerly.
    let m = LogManager::open_with(&dirs, &cfg, true, true, 0).expect("reopen");
    assert_eq!(m.deferred().len(), 2, "clean again");
    drop(m);
    let m = LogManager::open_with(&dirs, &cfg, true, true, 0).expect("reopen after crash");
    assert!(m.deferred().is_empty(), "no marker: everything opened");
    assert_eq!(m.get("t", 0).expect("t-0").read().log_end_offset(), 2);
    assert_eq!(m.get("t", 2).expect("t-2").read().log_start_offset(), 1);
}

#[test]
fn reads_located_by_recent_batches_match_reads_from_the_files() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 4096,
        retention_ms: -1,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), config.clone());
    let append = |log: &mut Log, n: usize, seed: usize| {
        for i in seed..seed + n {
            log.append_as_leader(&mixed_batch(i), 0, 0).expect("append");
        }
    };
    append(&mut log, 80, 0);
    // Truncation inside the active segment forgets what it removed.
    let leo = log.log_end_offset();
    log.truncate_to(leo - 5).expect("truncate");
    append(&mut log, 10, 1);
    // Follower-style appends (offsets as given) are remembered too.
    let from_leader = simple_batch(log.log_end_offset(), 3, 7);
    log.append_batches_with_offsets(&from_leader)
        .expect("follower append");
    let leo = log.log_end_offset();
    let reads = |log: &Log| -> Vec<(Bytes, i64)> {
        let mut out = Vec::new();
        for start in log.log_start_offset()..=leo {
            for max_bytes in [1usize, 100, 1 << 20] {
                let r = log.read(start, max_bytes, leo, true).expect("read");
                out.push((r.records, r.next_offset));
                let mut sliced = Vec::new();
                for s in log
                    .read_slices(start, max_bytes, leo, true)
                    .expect("slices")
                {
                    s.read_into(&mut sliced).expect("read slice");
                }
                assert_eq!(sliced, out.last().expect("read").0.as_ref());
            }
        }
        out
    };
    let with_recent = reads(&log);
    log.close().expect("close");
    let reopened = reopen(dir.path(), config, true, leo, 0);
    assert_eq!(reopened.log_end_offset(), leo);
    assert_eq!(with_recent, reads(&reopened));
}

#[test]
fn megabytes_of_appends_pass_write_behind_and_truncate_below_it() {
    // Past the write-behind threshold (1 MiB), in one segment: the ranges handed to
    // writeback change nothing a reader sees, before or after a truncation below them.
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = open(dir.path(), LogConfig::default());
    let mut last = -1;
    for i in 0..400 {
        let info = log
            .append_as_leader(&sized_batch(0, 8000, i), 0, 0)
            .expect("append");
        last = info.last_offset;
    }
    assert_eq!(last, 399);
    log.truncate_to(100).expect("truncate");
    for i in 0..300 {
        log.append_as_leader(&sized_batch(0, 8000, i), 0, 0)
            .expect("append");
    }
    assert_eq!(log.log_end_offset(), 400);
    let read_at = |log: &Log, offset: i64| {
        let r = log
            .read(offset, 1 << 16, log.log_end_offset(), false)
            .expect("read");
        let b = &batches_of(&r.records)[0];
        assert_eq!(b.base_offset(), offset);
        b.verify_crc().expect("crc");
    };
    for offset in [0, 99, 100, 250, 399] {
        read_at(&log, offset);
    }
    log.close().expect("close");
    let log = reopen(dir.path(), LogConfig::default(), true, 400, 0);
    assert_eq!(log.log_end_offset(), 400);
    read_at(&log, 399);
}

/// Length of the data file of the segment starting at `base`.
fn segment_file_len(dir: &Path, base: i64) -> u64 {
    fs::metadata(dir.join(segment_file_name(base, ".log")))
        .expect("segment file")
        .len()
}

/// Appends `n` batches of one 8000-byte record each; returns the log end offset.
fn append_8k(log: &mut Log, n: i64) -> i64 {
    for i in 0..n {
        log.append_as_leader(&sized_batch(0, 8000, i), 0, 0)
            .expect("append");
    }
    log.log_end_offset()
}

/// Every batch from 0 to the log end reads back whole, with a valid CRC.
fn check_all_batches(log: &Log) {
    let mut offset = 0;
    while offset < log.log_end_offset() {
        let r = log
            .read(offset, 1 << 20, log.log_end_offset(), false)
            .expect("read");
        let bs = batches_of(&r.records);
        assert!(!bs.is_empty(), "nothing at {offset}");
        for b in &bs {
            assert_eq!(b.base_offset(), offset);
            b.verify_crc().expect("crc");
            offset = b.next_offset();
        }
    }
}

#[test]
fn small_appends_fill_ahead_and_the_zeros_never_become_data() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = open(dir.path(), LogConfig::default());
    // Past 1 MiB in the segment, small appends find the file already extended.
    let leo = append_8k(&mut log, 200);
    let size = log.size_bytes();
    let len = segment_file_len(dir.path(), 0);
    assert!(len > size, "file {len} bytes, data {size}");
    assert_eq!(len % (64 << 10), 0);
    check_all_batches(&log);
    // A crash leaves the zeros; recovery stops at them, as at a torn tail.
    drop(log);
    let mut log = reopen(dir.path(), LogConfig::default(), false, 0, 0);
    assert_eq!(log.log_end_offset(), leo);
    assert_eq!(segment_file_len(dir.path(), 0), size);
    check_all_batches(&log);
    // So does a start that believes it was clean.
    append_8k(&mut log, 50);
    let (leo, size) = (log.log_end_offset(), log.size_bytes());
    assert!(segment_file_len(dir.path(), 0) > size);
    drop(log);
    let mut log = reopen(dir.path(), LogConfig::default(), true, leo, 0);
    assert_eq!(log.log_end_offset(), leo);
    assert_eq!(segment_file_len(dir.path(), 0), size);
    // A truncation inside the filled space, then appends over it.
    append_8k(&mut log, 50);
    log.truncate_to(260).expect("truncate");
    assert_eq!(segment_file_len(dir.path(), 0), log.size_bytes());
    // No zeros where the truncated data was (a read handed out before the truncation may
    // still be sent from there) ...
    assert_eq!(append_8k(&mut log, 40), 300);
    assert_eq!(segment_file_len(dir.path(), 0), log.size_bytes());
    // ... only past its old end.
    let base = append_8k(&mut log, 10);
    assert!(segment_file_len(dir.path(), 0) > log.size_bytes());
    check_all_batches(&log);
    // A roll cuts the old segment back to its data; so does a clean shutdown.
    log.roll_now().expect("roll");
    assert_eq!(segment_file_len(dir.path(), 0), log.size_bytes());
    append_8k(&mut log, 200);
    assert!(
        segment_file_len(dir.path(), base) > log.size_bytes() - segment_file_len(dir.path(), 0)
    );
    let leo = log.log_end_offset();
    let size = log.size_bytes();
    log.close().expect("close");
    assert_eq!(
        segment_file_len(dir.path(), 0) + segment_file_len(dir.path(), base),
        size
    );
    let log = reopen(dir.path(), LogConfig::default(), true, leo, 0);
    assert_eq!(log.log_end_offset(), leo);
    check_all_batches(&log);
}

#[test]
fn no_fill_ahead_under_a_flush_setting_or_for_large_appends() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = LogConfig {
        flush_interval_ms: 60_000,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), config);
    append_8k(&mut log, 200);
    assert_eq!(segment_file_len(dir.path(), 0), log.size_bytes());
    log.close().expect("close");

    let dir = tempfile::tempdir().expect("tmp");
    let mut log = open(dir.path(), LogConfig::default());
    for i in 0..8 {
        log.append_as_leader(&sized_batch(0, 300 << 10, i), 0, 0)
            .expect("append");
    }
    assert_eq!(segment_file_len(dir.path(), 0), log.size_bytes());
    check_all_batches(&log);
}

#[test]
fn cleaner_offsets_are_checkpointed_reloaded_and_forgotten_with_their_log() {
    let root = tempfile::tempdir().expect("tmp");
    let dirs = vec![root.path().join("d1")];
    let cfg = |_: &TopicPartition| LogConfig::default();
    let m = LogManager::open(&dirs, &cfg, true, 0).expect("open");
    for p in 0..2 {
        let log = m.create("c", p, LogConfig::default()).expect("create");
        let mut log = log.write();
        log.append_as_leader(&simple_batch(0, 10, 0), 0, 0)
            .expect("append");
        log.set_cleaner_offset(Some(4 + i64::from(p)));
    }
    m.checkpoint_cleaner_offsets().expect("checkpoint");
    let file = dirs[0].join(crate::checkpoint::CLEANER_OFFSET_CHECKPOINT);
    let read = || read_offsets(&file).expect("read");
    assert_eq!(read().get(&TopicPartition::new("c", 1)), Some(&5));
    // Deleting a compacted log rewrites the checkpoint without it.
    m.delete("c", 1).expect("delete");
    assert_eq!(read().len(), 1);
    m.shutdown().expect("shutdown");
    drop(m);
    // Reloaded after a clean shutdown (open and deferred alike), ignored past the log end.
    let m = LogManager::open_with(&dirs, &cfg, true, true, 0).expect("reopen deferred");
    let log = m
        .open_deferred("c", 0, LogConfig::default())
        .expect("open")
        .expect("c-0");
    assert_eq!(log.read().cleaner_offset(), Some(4));
    log.write().set_cleaner_offset(Some(99));
    m.shutdown().expect("shutdown");
    drop(m);
    let m = LogManager::open(&dirs, &cfg, true, 0).expect("reopen");
    assert_eq!(m.get("c", 0).expect("c-0").read().cleaner_offset(), None);
}
