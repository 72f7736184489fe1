//! XEP-0082 date-time strings (`CCYY-MM-DDThh:mm:ss.sssZ`, always UTC) from Unix time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Formats a point in time as an XEP-0082 `DateTime` with milliseconds.
pub fn datetime(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Proleptic Gregorian calendar date of a day count since 1970-01-01, using 400-year
/// eras of 146,097 days that start on March 1st (so leap days fall at an era's end).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153; // month counted from March
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
