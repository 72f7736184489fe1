//! XEP-0082 date-time strings (`CCYY-MM-DDThh:mm:ss.sssZ`, always UTC) from Unix time.
//! The calendar is the `time` crate's; this module only fixes the format.

use std::time::{SystemTime, UNIX_EPOCH};
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

/// XEP-0082 `DateTime` with milliseconds (truncated, not rounded) and a literal `Z`.
const XEP_0082: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// Formats a point in time as an XEP-0082 `DateTime` with milliseconds. Instants before
/// 1970 or past what the calendar holds (year 9999) read as the Unix epoch.
pub fn datetime(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let utc = i128::try_from(since.as_nanos())
        .ok()
        .and_then(|nanos| OffsetDateTime::from_unix_timestamp_nanos(nanos).ok())
        .filter(|t| t.year() <= 9999)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    utc.format(XEP_0082)
        .expect("a UTC date-time within years 0-9999 always formats")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn known_instants() {
        let at = |s| UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(datetime(at(0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(datetime(at(951_782_400)), "2000-02-29T00:00:00.000Z");
        assert_eq!(datetime(at(1_795_547_045)), "2026-11-24T19:04:05.000Z");
        assert_eq!(
            datetime(at(4_107_542_399) + Duration::from_millis(7)),
            "2100-02-28T23:59:59.007Z"
        );
    }

    #[test]
    fn milliseconds_truncate_and_out_of_range_reads_as_the_epoch() {
        let at = |s| UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(
            datetime(at(0) + Duration::from_nanos(999_999_999)),
            "1970-01-01T00:00:00.999Z"
        );
        assert_eq!(
            datetime(UNIX_EPOCH - Duration::from_secs(1)),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(datetime(at(253_402_300_799)), "9999-12-31T23:59:59.000Z");
        assert_eq!(datetime(at(253_402_300_800)), "1970-01-01T00:00:00.000Z");
    }
}
