//! `date`, `day_of_week` and `time_of_day`: parsed at compile time, decided
//! from a unix time given by the caller. Time zones come from the IANA
//! database bundled into the binary (no file reads), so DST changes are
//! applied as the zone's rules say.

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// `date: {after, before}`: after ≤ now < before.
#[derive(Debug, Clone)]
pub(crate) struct DateWindow {
    pub(crate) after: Option<i64>,
    pub(crate) before: Option<i64>,
}

impl DateWindow {
    pub(crate) fn contains(&self, now: i64) -> bool {
        self.after.is_none_or(|a| now >= a) && self.before.is_none_or(|b| now < b)
    }
}

/// `day_of_week`: the set of days, in a time zone (UTC unless given).
#[derive(Debug, Clone)]
pub(crate) struct Days {
    /// Bit 0 = Monday ... bit 6 = Sunday.
    pub(crate) mask: u8,
    pub(crate) tz: TimeZone,
}

impl Days {
    pub(crate) fn contains(&self, now: i64) -> bool {
        match civil(&self.tz, now) {
            Some(dt) => self.mask & (1 << dt.weekday().to_monday_zero_offset()) != 0,
            None => false,
        }
    }
}

/// `time_of_day: {timezone, after, before}` as seconds since local
/// midnight; a window whose `after` is later than its `before` crosses
/// midnight (22:00–06:00).
#[derive(Debug, Clone)]
pub(crate) struct TimeWindow {
    pub(crate) after: Option<u32>,
    pub(crate) before: Option<u32>,
    pub(crate) tz: TimeZone,
}

impl TimeWindow {
    pub(crate) fn contains(&self, now: i64) -> bool {
        let Some(dt) = civil(&self.tz, now) else {
            return false;
        };
        let t = dt.hour() as u32 * 3600 + dt.minute() as u32 * 60 + dt.second() as u32;
        match (self.after, self.before) {
            (Some(a), Some(b)) if a <= b => t >= a && t < b,
            (Some(a), Some(b)) => t >= a || t < b,
            (Some(a), None) => t >= a,
            (None, Some(b)) => t < b,
            (None, None) => true,
        }
    }
}

fn civil(tz: &TimeZone, now: i64) -> Option<jiff::civil::DateTime> {
    Timestamp::from_second(now)
        .ok()
        .map(|ts| tz.to_datetime(ts))
}

/// An IANA time zone name (`Europe/Berlin`, `America/New_York`, `UTC`).
pub(crate) fn zone(name: &str) -> Result<TimeZone, String> {
    let name = name.trim();
    if name.eq_ignore_ascii_case("utc") || name == "Z" {
        return Ok(TimeZone::UTC);
    }
    jiff::tz::db().get(name).map_err(|_| {
        format!(
            "unknown time zone `{name}` (an IANA name such as Europe/Berlin or America/New_York)"
        )
    })
}

/// An RFC 3339 timestamp (`2025-01-01T09:00:00Z`, `2025-01-01T09:00:00+01:00`)
/// or a date (`2025-01-01`, midnight UTC).
pub(crate) fn instant(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Ok(ts.as_second());
    }
    if let Ok(date) = text.parse::<jiff::civil::Date>()
        && let Ok(z) = date.to_zoned(TimeZone::UTC)
    {
        return Ok(z.timestamp().as_second());
    }
    Err(format!(
        "`{text}` is not a date: use RFC 3339 (2025-01-01T09:00:00Z, 2025-01-01T09:00:00+01:00) or 2025-01-01"
    ))
}

/// A time of day: `15:04`, `15:04:05`, `3:04PM`, `3:04 pm`, `3PM`, `15`.
pub(crate) fn time_of_day(text: &str) -> Result<u32, String> {
    let bad = || format!("`{text}` is not a time of day (15:04, 15:04:05, 3:04PM, 3 PM)");
    let t = text.trim().to_ascii_lowercase();
    let (clock, meridiem) = if let Some(c) = t.strip_suffix("am") {
        (c.trim(), Some(false))
    } else if let Some(c) = t.strip_suffix("pm") {
        (c.trim(), Some(true))
    } else {
        (t.as_str(), None)
    };
    let mut parts = clock.split(':');
    let mut field = |max: u32| -> Result<Option<u32>, String> {
        match parts.next() {
            None => Ok(None),
            Some(p) if !p.is_empty() && p.len() <= 2 && p.bytes().all(|b| b.is_ascii_digit()) => {
                let v: u32 = p.parse().map_err(|_| bad())?;
                if v > max { Err(bad()) } else { Ok(Some(v)) }
            }
            Some(_) => Err(bad()),
        }
    };
    let hour = field(23)?.ok_or_else(bad)?;
    let minute = field(59)?.unwrap_or(0);
    let second = field(59)?.unwrap_or(0);
    if parts.next().is_some() {
        return Err(bad());
    }
    let hour = match meridiem {
        None => hour,
        Some(_) if !(1..=12).contains(&hour) => return Err(bad()),
        Some(false) => hour % 12,
        Some(true) => hour % 12 + 12,
    };
    Ok(hour * 3600 + minute * 60 + second)
}

/// Days: `*`, `mon,wed,fri`, `mon-fri`, `fri-mon` (wraps), full names too.
pub(crate) fn days(text: &str) -> Result<u8, String> {
    let text = text.trim();
    if text == "*" {
        return Ok(0x7f);
    }
    let day = |name: &str| -> Result<u8, String> {
        let n = name.trim().to_ascii_lowercase();
        const NAMES: [(&str, &str); 7] = [
            ("mon", "monday"),
            ("tue", "tuesday"),
            ("wed", "wednesday"),
            ("thu", "thursday"),
            ("fri", "friday"),
            ("sat", "saturday"),
            ("sun", "sunday"),
        ];
        NAMES
            .iter()
            .position(|(short, long)| {
                n == *short
                    || n == *long
                    || (n == "tues" && *short == "tue")
                    || (n == "thurs" && *short == "thu")
            })
            .map(|i| i as u8)
            .ok_or_else(|| {
                format!(
                    "`{}` is not a day (mon, tue, ..., sun or full names)",
                    name.trim()
                )
            })
    };
    let mut mask = 0u8;
    for item in text.split(',') {
        if item.trim().is_empty() {
            return Err(format!("empty day in `{text}`"));
        }
        match item.split_once('-') {
            Some((from, to)) => {
                let (from, to) = (day(from)?, day(to)?);
                let mut d = from;
                loop {
                    mask |= 1 << d;
                    if d == to {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => mask |= 1 << day(item)?,
        }
    }
    Ok(mask)
}
