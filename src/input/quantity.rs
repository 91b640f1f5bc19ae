//! Kubernetes resource quantities (`100m`, `2Gi`, `1.5`, `1e3`).

/// Parse a quantity into its value as a float. Returns `None` for text that
/// the apiserver would reject.
pub fn parse(text: &str) -> Option<f64> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let split = text
        .find(|ch: char| !(ch.is_ascii_digit() || ch == '.' || ch == '+' || ch == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    if number.is_empty() || number.matches('.').count() > 1 {
        return None;
    }
    let sign_ok = number
        .char_indices()
        .all(|(index, ch)| !(ch == '+' || ch == '-') || index == 0);
    if !sign_ok {
        return None;
    }
    let mantissa: f64 = number.parse().ok()?;
    let multiplier = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exponent if exponent.starts_with(['e', 'E']) => {
            let power: i32 = exponent[1..].parse().ok()?;
            10f64.powi(power)
        }
        _ => return None,
    };
    Some(mantissa * multiplier)
}

/// A quantity given as a JSON value (a number or a string).
pub fn from_value(value: &serde_json::Value) -> Option<f64> {
    match value {
        serde_json::Value::Number(number) => number.as_f64(),
        serde_json::Value::String(text) => parse(text),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(parse("100m"), Some(0.1));
        assert_eq!(parse("2Gi"), Some(2.0 * 1024.0 * 1024.0 * 1024.0));
        assert_eq!(parse("1.5"), Some(1.5));
        assert_eq!(parse("1e3"), Some(1000.0));
        assert_eq!(parse("80"), Some(80.0));
        assert_eq!(parse("$TARGET"), None);
        assert_eq!(parse("10 m"), None);
        assert_eq!(parse("1.2.3"), None);
        assert_eq!(parse("5-"), None);
        assert_eq!(parse("Gi"), None);
    }
}
