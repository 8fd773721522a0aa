//! Ids, names and timestamps.

use std::time::{SystemTime, UNIX_EPOCH};

use rand::RngCore;

use crate::{Error, Object, Result};

/// A new 64-hex-digit id, as Docker's.
pub fn new_id() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Checks a container or network name: Docker's `[a-zA-Z0-9][a-zA-Z0-9_.-]*`,
/// at most 128 bytes.
pub fn check_name(kind: Object, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::BadName {
            kind,
            name: name.to_owned(),
        })
    }
}

/// Now, as RFC 3339 with nanoseconds in UTC, the way Docker prints times.
pub fn now() -> String {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

/// Formats a Unix time as `YYYY-MM-DDTHH:MM:SS.NNNNNNNNNZ`.
pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let t = berth_api::Utc::from_unix(secs);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// Parses berth's own RFC 3339 timestamps (those of [`rfc3339`]) into
/// Unix seconds.
pub fn unix_time(ts: &str) -> Option<i64> {
    let (date, time) = ts.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, dd) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.trim_end_matches('Z').split(':');
    let (hh, mm) = (t.next()?.parse::<i64>().ok()?, t.next()?.parse::<i64>().ok()?);
    let ss = t.next()?.split('.').next()?.parse::<i64>().ok()?;
    // days_from_civil (Howard Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + dd - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// Now, in Unix seconds.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times_like_docker() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(1_795_000_000, 5), "2026-11-18T11:06:40.000000005Z");
        assert_eq!(rfc3339(951_782_400, 0), "2000-02-29T00:00:00.000000000Z");
    }

    #[test]
    fn timestamps_round_trip() {
        assert_eq!(unix_time("1970-01-01T00:00:00.000000000Z"), Some(0));
        assert_eq!(unix_time(&rfc3339(1_795_000_000, 5)), Some(1_795_000_000));
        assert_eq!(unix_time(&rfc3339(951_782_400, 0)), Some(951_782_400));
        assert_eq!(unix_time("nonsense"), None);
    }

    #[test]
    fn names_follow_docker() {
        for ok in ["c1", "my-net", "a.b_c", "0"] {
            check_name(Object::Container, ok).unwrap();
        }
        for bad in ["", "-x", "a b", "a/b", "é", &"x".repeat(129)] {
            let e = check_name(Object::Container, bad).unwrap_err().to_string();
            assert!(e.contains("accepted: 1-128 characters"), "{e}");
        }
    }
}
