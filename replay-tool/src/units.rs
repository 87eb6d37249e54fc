//! Sizes and durations on the command line: `512MiB`, `2GB`, `1073741824` (the
//! `parse-size` crate: SI units are powers of 1000, binary ones of 1024); `30s`, `2m`,
//! `1500ms` (the `humantime` crate).

use std::time::Duration;

/// Parses a size in bytes, with or without a unit.
pub fn parse_size(s: &str) -> Result<u64, String> {
    parse_size::parse_size(s)
        .map_err(|e| format!("bad size {s:?} ({e}): give bytes or 512MiB, 2GB"))
}

/// Parses a duration with its unit.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("bad duration {s:?} ({e}): give a number and a unit, such as 30s"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_si_and_binary_units() {
        assert_eq!(parse_size("1073741824"), Ok(1 << 30));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        for bad in ["", "lots", "-1GB", "99999999999999999999"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        for bad in ["", "30", "soon"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
