//! Time as the portal writes it: the envelope's `time` object (unix seconds and Moscow-time
//! dates, `operating` and `operating_reset_at` unless omitted) and RFC 3339 at +03:00.

use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, FixedOffset, SecondsFormat};
use serde_json::{Value, json};

pub(super) fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

pub(super) fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn moscow() -> FixedOffset {
    FixedOffset::east_opt(3 * 3600).unwrap()
}

pub(super) fn iso(t: DateTime<FixedOffset>) -> String {
    t.with_timezone(&moscow()).to_rfc3339_opts(SecondsFormat::Secs, false)
}

fn iso_unix(secs: f64) -> String {
    let t = DateTime::from_timestamp(secs.floor() as i64, 0).unwrap();
    iso(t.with_timezone(&moscow()))
}

/// The envelope's `time`; `operating` = (operating_reset_at, operating) unless omitted.
pub(super) fn time_object(start: f64, finish: f64, operating: Option<(Option<i64>, f64)>) -> Value {
    let duration = round6(finish - start);
    let mut t = json!({
        "start": round6(start),
        "finish": round6(finish),
        "duration": duration,
        "processing": round6(duration * 0.6),
        "date_start": iso_unix(start),
        "date_finish": iso_unix(finish),
    });
    if let Some((reset_at, used)) = operating {
        if let Some(r) = reset_at {
            t["operating_reset_at"] = json!(r);
        }
        t["operating"] = json!(used);
    }
    t
}
