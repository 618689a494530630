//! Durations as people write them in specs, flags and the backends file (Go's form).

use std::time::Duration;

/// A duration as Go writes it (`90s`, `10m`, `1h30m0s`, `1.5h`, `250ms`), or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let invalid = || format!("{text:?} is not a duration such as 90s, 10m or 1h30m");
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map(Duration::from_secs).map_err(|_| invalid());
    }
    let (mut rest, mut nanos) = (text, 0u128);
    while !rest.is_empty() {
        let number_end = rest.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(rest.len());
        let unit_end = rest[number_end..].find(|c: char| c.is_ascii_digit()).map_or(rest.len(), |i| number_end + i);
        let (number, unit) = (&rest[..number_end], &rest[number_end..unit_end]);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(format!("{text:?}: unknown unit {unit:?} (use ms, s, m or h)")),
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && fraction.is_empty()) || whole.len() > 20 || fraction.len() > 18 {
            return Err(invalid());
        }
        let digits = |d: &str| if d.is_empty() { Ok(0) } else { d.parse::<u128>().map_err(|_| invalid()) };
        let scale = 10u128.pow(fraction.len() as u32);
        nanos = nanos
            .checked_add(digits(whole)? * unit_nanos + digits(fraction)? * unit_nanos / scale)
            .ok_or_else(invalid)?;
        rest = &rest[unit_end..];
    }
    if text.is_empty() {
        return Err(invalid());
    }
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| invalid())?;
    Ok(Duration::new(secs, (nanos % 1_000_000_000) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("15"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("h").is_err());
        // Go's own form, as Hydra writes its lifespans.
        assert_eq!(parse_duration("1h30m0s"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1m0.5s"), Ok(Duration::from_millis(60_500)));
        assert!(parse_duration("99999999999999999999999h").is_err(), "no overflow");
    }
}
