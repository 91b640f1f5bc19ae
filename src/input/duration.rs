//! Prometheus durations (`15s`, `1m30s`, `500ms`, `1w`, `1y`), read by
//! promql-parser's own duration parser so that what infergate accepts is
//! what Prometheus accepts: units from years down to milliseconds, each at
//! most once and in that order, whole numbers only.

/// Parse a duration into seconds. A bare number is not a duration here
/// (Prometheus reads it as seconds in a query, but the fields infergate
/// reads — scrape intervals, policy windows, `--step` — take a unit);
/// `0s` is zero, which promql-parser refuses as a range.
pub fn parse(text: &str) -> Option<f64> {
    let text = text.trim();
    // promql-parser reads a bare float with `Duration::from_secs_f64`,
    // which panics on a negative or non-finite number: keep floats out.
    if text.is_empty() || text.parse::<f64>().is_ok() {
        return None;
    }
    // promql-parser counts a number too large for a u32 as zero (`1h`
    // for `1h99999999999s`): refuse it instead.
    let numbers_fit = text
        .split(|ch: char| !ch.is_ascii_digit())
        .filter(|number| !number.is_empty())
        .all(|number| number.parse::<u32>().is_ok());
    if !numbers_fit {
        return None;
    }
    match promql_parser::util::parse_duration(text) {
        Ok(duration) => Some(duration.as_secs_f64()),
        Err(_) if is_zero(text) => Some(0.0),
        Err(_) => None,
    }
}

/// `0s`, `0m0s`…: a well-formed duration whose every number is zero, the
/// one case promql-parser refuses that a field may hold.
fn is_zero(text: &str) -> bool {
    text.bytes().any(|byte| byte.is_ascii_digit())
        && text
            .bytes()
            .all(|byte| byte == b'0' || byte.is_ascii_alphabetic())
        && promql_parser::util::parse_duration(&text.replace('0', "1")).is_ok()
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn durations() {
        assert_eq!(parse("15s"), Some(15.0));
        assert_eq!(parse("1m30s"), Some(90.0));
        assert_eq!(parse("500ms"), Some(0.5));
        assert_eq!(parse("1h0m"), Some(3600.0));
        assert_eq!(parse(" 2d "), Some(172_800.0));
        assert_eq!(parse("0s"), Some(0.0));
        assert_eq!(parse("0m0s"), Some(0.0));
    }

    #[test]
    fn weeks_and_years_as_prometheus_writes_them() {
        assert_eq!(parse("1w"), Some(604_800.0));
        assert_eq!(parse("1y"), Some(31_536_000.0));
        assert_eq!(parse("1y2w"), Some(31_536_000.0 + 1_209_600.0));
    }

    #[test]
    fn what_prometheus_refuses_is_refused() {
        for text in [
            "15",
            "s",
            "",
            "1.5m",
            "30s1m",
            "1m1m",
            "-1s",
            "NaN",
            "inf",
            "-5",
            "1e400",
            "0",
            "5 s",
            "0x",
            "1h99999999999s",
            "99999999999s",
        ] {
            assert_eq!(parse(text), None, "{text:?}");
        }
    }
}
