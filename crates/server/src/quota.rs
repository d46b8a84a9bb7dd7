//! Client byte-rate quotas (`producer_byte_rate`, `consumer_byte_rate`), measured and
//! enforced as Kafka's ClientQuotaManager does.
//!
//! A request's user and client id pick the quota: the most specific of user and client id,
//! user and default client, user, default user and client id, default user and default
//! client, default user, client id, default client. The level that matched decides who
//! shares the measured rate (the user and client id, the user alone, or the client id
//! alone). A rate is the bytes of the last `quota.window.num` windows of
//! `quota.window.size.seconds` over their span (never less than all but one of the
//! windows). A request that takes the rate over its quota is answered with
//! `throttle_time_ms` = how long the rate needs to fall back to the quota, and its
//! connection reads nothing more for that long (KIP-219).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use krust_metadata::MetadataImage;

/// Which quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Produce,
    Fetch,
}

impl Kind {
    fn key(self) -> &'static str {
        match self {
            Kind::Produce => "producer_byte_rate",
            Kind::Fetch => "consumer_byte_rate",
        }
    }
}

/// One window of a rate.
#[derive(Debug, Clone, Copy)]
struct Sample {
    start: u64,
    last_event: u64,
    bytes: f64,
}

/// A rate's samples, in start order.
#[derive(Debug, Default)]
struct Sensor {
    samples: VecDeque<Sample>,
}

/// At most this many rates are measured apart; past it, new ones share one.
const MAX_SENSORS: usize = 100_000;

/// Who shares a measured rate: (kind, user, client id), either part empty.
type SensorKey = (Kind, String, String);

/// The quota manager: every sensor, by whom it measures.
#[derive(Debug)]
pub struct QuotaManager {
    started: std::time::Instant,
    window_ms: u64,
    samples: usize,
    sensors: Mutex<Sensors>,
}

#[derive(Debug, Default)]
struct Sensors {
    by_key: HashMap<SensorKey, Sensor>,
    /// When idle rates were last dropped.
    last_sweep: u64,
}

/// The quota that applies to a request, and whose rate it is measured against.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub limit: f64,
    sensor: (String, String),
}

fn entity(
    user: Option<Option<&str>>,
    client: Option<Option<&str>>,
) -> Vec<(String, Option<String>)> {
    let mut e = Vec::new();
    if let Some(c) = client {
        e.push(("client-id".to_string(), c.map(str::to_string)));
    }
    if let Some(u) = user {
        e.push(("user".to_string(), u.map(str::to_string)));
    }
    e
}

impl QuotaManager {
    pub fn new(window_num: u32, window_seconds: u32) -> QuotaManager {
        QuotaManager {
            started: std::time::Instant::now(),
            window_ms: u64::from(window_seconds.max(1)) * 1000,
            samples: window_num.max(1) as usize,
            sensors: Mutex::new(Sensors::default()),
        }
    }

    /// The quota of `kind` for `user` (the principal's name) and `client`, if any applies.
    pub fn applied(image: &MetadataImage, kind: Kind, user: &str, client: &str) -> Option<Applied> {
        if image.quotas.is_empty() {
            return None;
        }
        let (u, c) = (Some(user), Some(client));
        // (entity, sensor shared by user and/or client id)
        let levels = [
            (entity(Some(u), Some(c)), true, true),
            (entity(Some(u), Some(None)), true, true),
            (entity(Some(u), None), true, false),
            (entity(Some(None), Some(c)), true, true),
            (entity(Some(None), Some(None)), true, true),
            (entity(Some(None), None), true, false),
            (entity(None, Some(c)), false, true),
            (entity(None, Some(None)), false, true),
        ];
        levels.into_iter().find_map(|(e, by_user, by_client)| {
            let limit = *image.quotas.get(&e)?.get(kind.key())?;
            // A limit no request could respect (not a positive number) is no limit.
            if !limit.is_finite() || limit <= 0.0 {
                return None;
            }
            Some(Applied {
                limit,
                sensor: (
                    if by_user {
                        user.to_string()
                    } else {
                        String::new()
                    },
                    if by_client {
                        client.to_string()
                    } else {
                        String::new()
                    },
                ),
            })
        })
    }

    /// The most bytes a fetch may take at once under `limit` (Kafka's largest value in a
    /// quota window).
    pub fn max_in_window(&self, limit: f64) -> f64 {
        limit * (self.samples.saturating_sub(1)) as f64 * (self.window_ms as f64 / 1000.0)
    }

    /// Records `bytes` now against `applied`; the throttle time it causes.
    pub fn charge(&self, kind: Kind, applied: &Applied, bytes: f64) -> Duration {
        let now_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.record(kind, applied, bytes, now_ms)
    }

    /// Records `bytes` at `now_ms` against `applied`; the throttle time it causes. As
    /// Kafka's sampled rate: up to `samples + 1` windows, a window dropped once its last
    /// bytes are `samples` windows old, the rate taken over the windows' span but never
    /// less than `samples - 1` whole windows.
    pub fn record(&self, kind: Kind, applied: &Applied, bytes: f64, now_ms: u64) -> Duration {
        let window = self.window_ms;
        let horizon = window.saturating_mul(self.samples as u64);
        let mut sensors = self.sensors.lock().unwrap_or_else(|e| e.into_inner());
        // Rates idle for longer than every window are dropped now and then.
        if now_ms.saturating_sub(sensors.last_sweep) >= horizon {
            sensors.last_sweep = now_ms;
            sensors.by_key.retain(|_, s| {
                s.samples
                    .back()
                    .is_some_and(|x| now_ms.saturating_sub(x.last_event) < horizon)
            });
        }
        let mut key = (kind, applied.sensor.0.clone(), applied.sensor.1.clone());
        if sensors.by_key.len() >= MAX_SENSORS && !sensors.by_key.contains_key(&key) {
            key = (kind, String::new(), String::new());
        }
        let sensor = sensors.by_key.entry(key).or_default();
        sensor
            .samples
            .retain(|x| now_ms.saturating_sub(x.last_event) < horizon);
        match sensor.samples.back_mut() {
            Some(x) if now_ms < x.start.saturating_add(window) => {
                x.bytes += bytes;
                x.last_event = now_ms;
            }
            _ => {
                sensor.samples.push_back(Sample {
                    start: now_ms,
                    last_event: now_ms,
                    bytes,
                });
                while sensor.samples.len() > self.samples + 1 {
                    sensor.samples.pop_front();
                }
            }
        }
        let total: f64 = sensor.samples.iter().map(|x| x.bytes).sum();
        let oldest = sensor.samples.front().map_or(now_ms, |x| x.start);
        let mut span = now_ms.saturating_sub(oldest);
        let full = span / window;
        let min_full = self.samples.saturating_sub(1) as u64;
        if full < min_full {
            span = span.saturating_add((min_full - full).saturating_mul(window));
        }
        let span_ms = span.max(1) as f64;
        let rate = total / (span_ms / 1000.0);
        if rate <= applied.limit {
            return Duration::ZERO;
        }
        let throttle = (rate - applied.limit) / applied.limit * span_ms;
        Duration::from_millis(throttle.round().min(u64::MAX as f64) as u64)
    }

    /// Takes back `bytes` just recorded (a fetch answered empty instead).
    pub fn unrecord(&self, kind: Kind, applied: &Applied, bytes: f64) {
        let mut sensors = self.sensors.lock().unwrap_or_else(|e| e.into_inner());
        let key = (kind, applied.sensor.0.clone(), applied.sensor.1.clone());
        if let Some(x) = sensors
            .by_key
            .get_mut(&key)
            .and_then(|s| s.samples.back_mut())
        {
            x.bytes -= bytes;
        }
    }
}

/// The user name of a principal (`User:alice` → `alice`).
pub fn user_of(principal: &str) -> &str {
    principal.split_once(':').map_or(principal, |(_, n)| n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use krust_metadata::MetadataRecord;

    /// A quota: entity parts, key, value.
    type Quota<'a> = (Vec<(&'a str, Option<&'a str>)>, &'a str, f64);

    fn image(quotas: &[Quota]) -> MetadataImage {
        let mut img = MetadataImage::new();
        for (i, (e, key, value)) in quotas.iter().enumerate() {
            img.apply(
                i as i64,
                &MetadataRecord::ClientQuota {
                    entity: e
                        .iter()
                        .map(|(t, n)| (t.to_string(), n.map(str::to_string)))
                        .collect(),
                    key: key.to_string(),
                    value: *value,
                    remove: false,
                },
            )
            .expect("apply");
        }
        img
    }

    #[test]
    fn the_most_specific_quota_applies() {
        let img = image(&[
            (vec![("user", None)], "producer_byte_rate", 100.0),
            (vec![("user", Some("alice"))], "producer_byte_rate", 200.0),
            (
                vec![("user", Some("alice")), ("client-id", Some("app"))],
                "producer_byte_rate",
                300.0,
            ),
            (
                vec![("client-id", Some("tool"))],
                "consumer_byte_rate",
                50.0,
            ),
        ]);
        let a = |u, c, k| QuotaManager::applied(&img, k, u, c).map(|a| (a.limit, a.sensor));
        let bad = image(&[(vec![("user", None)], "producer_byte_rate", f64::NAN)]);
        assert_eq!(QuotaManager::applied(&bad, Kind::Produce, "u", "c"), None);
        let s = |u: &str, c: &str| (u.to_string(), c.to_string());
        assert_eq!(
            a("alice", "app", Kind::Produce),
            Some((300.0, s("alice", "app")))
        );
        assert_eq!(
            a("alice", "other", Kind::Produce),
            Some((200.0, s("alice", "")))
        );
        assert_eq!(a("bob", "app", Kind::Produce), Some((100.0, s("bob", ""))));
        assert_eq!(a("bob", "tool", Kind::Fetch), Some((50.0, s("", "tool"))));
        assert_eq!(a("bob", "app", Kind::Fetch), None);
    }

    #[test]
    fn a_rate_over_its_quota_is_throttled_until_it_falls_back() {
        let q = QuotaManager::new(11, 1);
        let applied = Applied {
            limit: 1000.0,
            sensor: ("u".into(), String::new()),
        };
        // 10 000 bytes over the minimum span of 10 s: exactly the quota.
        assert_eq!(
            q.record(Kind::Produce, &applied, 10_000.0, 0),
            Duration::ZERO
        );
        // 10 000 more half a second later: 20 000 bytes over 10.5 s, so 9.5 s more
        // before the rate is back at 1000 B/s.
        assert_eq!(
            q.record(Kind::Produce, &applied, 10_000.0, 500),
            Duration::from_millis(9_500)
        );
        q.unrecord(Kind::Produce, &applied, 10_000.0);
        // Eleven windows later, the old bytes no longer count, and idle rates are dropped.
        assert_eq!(
            q.record(Kind::Produce, &applied, 5_000.0, 30_000),
            Duration::ZERO
        );
        let other = Applied {
            limit: 1000.0,
            sensor: ("v".into(), String::new()),
        };
        q.record(Kind::Produce, &other, 1.0, 60_000);
        assert_eq!(q.sensors.lock().expect("lock").by_key.len(), 1);
        assert_eq!(q.max_in_window(1000.0), 10_000.0);
        assert_eq!(user_of("User:alice"), "alice");
    }
}
