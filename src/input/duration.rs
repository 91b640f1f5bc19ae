//! Prometheus-style durations (`15s`, `1m30s`, `500ms`).

/// Parse a duration into seconds.
pub fn parse(text: &str) -> Option<f64> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut total = 0.0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|ch: char| !(ch.is_ascii_digit() || ch == '.'))
            .filter(|end| *end > 0)?;
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, scale) = [
            ("ms", 0.001),
            ("s", 1.0),
            ("m", 60.0),
            ("h", 3600.0),
            ("d", 86400.0),
        ]
        .into_iter()
        .find(|(unit, _)| rest.starts_with(unit))?;
        total += number * scale;
        rest = &rest[unit.len()..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations() {
        assert_eq!(super::parse("15s"), Some(15.0));
        assert_eq!(super::parse("1m30s"), Some(90.0));
        assert_eq!(super::parse("500ms"), Some(0.5));
        assert_eq!(super::parse("15"), None);
        assert_eq!(super::parse("s"), None);
    }
}
