//! Recorded metric traces: CSV (`timestamp,metric,value[,replicas]`) or the
//! JSON of a Prometheus `query_range` response (`resultType: matrix`).
//! Errors name the line or the series.

use std::collections::BTreeMap;

use serde_json::Value;

use super::SimulateError;

/// One metric's samples, sorted by time (seconds).
#[derive(Debug, Clone, Default)]
pub struct Series {
    pub samples: Vec<(f64, f64)>,
}

impl Series {
    /// The value at `t`: the last sample at or before it (the first
    /// before the series starts), as a scrape holds until the next one.
    pub fn at(&self, t: f64) -> Option<f64> {
        let index = self.samples.partition_point(|(at, _)| *at <= t);
        match index {
            0 => self.samples.first().map(|(_, value)| *value),
            index => self.samples.get(index - 1).map(|(_, value)| *value),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Trace {
    /// Series by the name the trace gives them.
    pub series: BTreeMap<String, Series>,
    /// The replicas the trace was recorded at, when it says.
    pub replicas: Option<Series>,
    /// Where each series came from, for errors (`line 12`, `series 2`).
    pub origin: BTreeMap<String, String>,
}

impl Trace {
    pub fn start(&self) -> Option<f64> {
        self.all()
            .filter_map(|series| series.samples.first().map(|(at, _)| *at))
            .reduce(f64::min)
    }

    /// The trace up to `end` (Unix or trace seconds, as its samples are):
    /// the samples at or before it.
    pub fn until(&self, end: f64) -> Self {
        let cut = |series: &Series| Series {
            samples: series
                .samples
                .iter()
                .copied()
                .take_while(|(at, _)| *at <= end)
                .collect(),
        };
        Self {
            series: self
                .series
                .iter()
                .map(|(name, series)| (name.clone(), cut(series)))
                .collect(),
            replicas: self.replicas.as_ref().map(cut),
            origin: self.origin.clone(),
        }
    }

    pub fn end(&self) -> Option<f64> {
        self.all()
            .filter_map(|series| series.samples.last().map(|(at, _)| *at))
            .reduce(f64::max)
    }

    fn all(&self) -> impl Iterator<Item = &Series> {
        self.series.values().chain(self.replicas.iter())
    }
}

/// Days from 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// An RFC 3339 timestamp (`2026-11-30T10:15:00Z`, `…+01:00`, fractions
/// allowed; a space for the `T` too, as Grafana exports) as Unix seconds.
pub fn parse_rfc3339(text: &str) -> Option<f64> {
    let bytes = text.as_bytes();
    if bytes.len() < 20 {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|byte| byte.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if bytes[4] != b'-' || bytes[7] != b'-' || !matches!(bytes[10], b'T' | b't' | b' ') {
        return None;
    }
    if bytes[13] != b':' || bytes[16] != b':' {
        return None;
    }
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &text[19..];
    let mut fraction = 0.0;
    if let Some(after) = rest.strip_prefix('.') {
        let length = after.bytes().take_while(u8::is_ascii_digit).count();
        if length == 0 {
            return None;
        }
        fraction = format!("0.{}", &after[..length]).parse().ok()?;
        rest = &after[length..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        zone if zone.len() == 6
            && matches!(zone.as_bytes()[0], b'+' | b'-')
            && zone.as_bytes()[3] == b':' =>
        {
            let hours: i64 = zone.get(1..3)?.parse().ok()?;
            let minutes: i64 = zone.get(4..6)?.parse().ok()?;
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            sign * (hours * 3600 + minutes * 60)
        }
        _ => return None,
    };
    let seconds =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Some(seconds as f64 + fraction)
}

fn parse_time(text: &str) -> Option<f64> {
    let text = text.trim();
    match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() => Some(seconds),
        _ => parse_rfc3339(text),
    }
}

/// Unix seconds from 0000-01-01T00:00:00Z to 9999-12-31T23:59:59Z, the
/// instants RFC 3339 can write. A timestamp outside is not a time in
/// seconds, and far enough out an `f64` can no longer tell one 15 s sync
/// from the next.
const SECONDS: std::ops::RangeInclusive<f64> = -62_167_219_200.0..=253_402_300_799.0;

/// Refuse a timestamp outside years 0–9999, with the likely cause: Grafana
/// and some exporters write milliseconds.
fn check_time(origin: &str, text: &str, seconds: f64) -> Result<f64, SimulateError> {
    if SECONDS.contains(&seconds) {
        return Ok(seconds);
    }
    let hint = if SECONDS.contains(&(seconds / 1000.0)) {
        "; it looks like milliseconds: divide by 1000"
    } else {
        ""
    };
    Err(bad(
        origin.to_string(),
        format!("timestamp `{text}` is outside years 0-9999 in seconds{hint}"),
    ))
}

/// The Kubernetes API holds replica counts as int32.
const MAX_REPLICAS: f64 = i32::MAX as f64;

fn bad(origin: String, message: impl Into<String>) -> SimulateError {
    SimulateError::Trace {
        origin,
        message: message.into(),
    }
}

/// Check one series: sorted, no repeated instant, finite, no gap longer
/// than `max_gap` seconds.
fn check_series(
    name: &str,
    series: &Series,
    origins: &[String],
    max_gap: f64,
) -> Result<(), SimulateError> {
    for (index, pair) in series.samples.windows(2).enumerate() {
        let (before, after) = (pair[0].0, pair[1].0);
        let origin = || origins.get(index + 1).cloned().unwrap_or_default();
        if after < before {
            return Err(bad(
                origin(),
                format!(
                    "`{name}` goes back in time ({after} after {before}); sort the trace by time"
                ),
            ));
        }
        if after == before {
            return Err(bad(origin(), format!("`{name}` has two samples at {after}; one series per metric, aggregate the query (sum, max)")));
        }
        if after - before > max_gap {
            return Err(bad(
                origin(),
                format!(
                    "`{name}` has a gap of {:.0} s (from {before} to {after}), more than --max-gap {max_gap:.0} s; export without gaps or raise --max-gap",
                    after - before
                ),
            ));
        }
    }
    Ok(())
}

/// A CSV trace: `timestamp,metric,value[,replicas]`, an optional header
/// line, `#` comments.
pub fn parse_csv(name: &str, text: &str, max_gap: f64) -> Result<Trace, SimulateError> {
    let mut trace = Trace::default();
    let mut origins: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut replicas: Vec<(f64, f64)> = Vec::new();
    let mut replica_origins: Vec<String> = Vec::new();
    let mut first_row = true;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let origin = format!("{name}:{number}");
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        // A header, as the first line that is not a comment.
        let header = first_row
            && fields
                .first()
                .is_some_and(|field| field.eq_ignore_ascii_case("timestamp"));
        first_row = false;
        if header {
            continue;
        }
        if !(3..=4).contains(&fields.len()) {
            return Err(bad(
                origin,
                format!(
                    "expected `timestamp,metric,value[,replicas]`, got {} fields",
                    fields.len()
                ),
            ));
        }
        let time = parse_time(fields[0]).ok_or_else(|| {
            bad(
                origin.clone(),
                format!(
                    "`{}` is neither seconds nor an RFC 3339 time (2026-11-30T10:15:00Z)",
                    fields[0]
                ),
            )
        })?;
        let time = check_time(&origin, fields[0], time)?;
        let metric = fields[1];
        if metric.is_empty() {
            return Err(bad(origin, "the metric name is empty"));
        }
        let value: f64 = fields[2]
            .parse()
            .map_err(|_| bad(origin.clone(), format!("`{}` is not a number", fields[2])))?;
        if !value.is_finite() {
            return Err(bad(
                origin,
                format!(
                    "`{}` is not a finite number (NaN or infinite); drop the sample or fill it",
                    fields[2]
                ),
            ));
        }
        if let Some(count) = fields.get(3).filter(|field| !field.is_empty()) {
            let count: f64 = count
                .parse()
                .ok()
                .filter(|count: &f64| (0.0..=MAX_REPLICAS).contains(count))
                .ok_or_else(|| {
                    bad(
                        origin.clone(),
                        format!("replicas `{count}` is not a count (0 to {MAX_REPLICAS})"),
                    )
                })?;
            if replicas.last().is_none_or(|(at, _)| *at != time) {
                replicas.push((time, count));
                replica_origins.push(origin.clone());
            }
        }
        trace
            .series
            .entry(metric.to_string())
            .or_default()
            .samples
            .push((time, value));
        origins.entry(metric.to_string()).or_default().push(origin);
    }
    if trace.series.is_empty() {
        return Err(bad(name.to_string(), "the trace has no samples"));
    }
    for (metric, series) in &trace.series {
        check_series(metric, series, &origins[metric], max_gap)?;
        trace.origin.insert(
            metric.clone(),
            origins[metric].first().cloned().unwrap_or_default(),
        );
    }
    if !replicas.is_empty() {
        replicas.sort_by(|a, b| a.0.total_cmp(&b.0));
        trace.replicas = Some(Series { samples: replicas });
    }
    Ok(trace)
}

/// A Prometheus `query_range` response. Each series is named by its
/// `__name__`, or `#N` (its place in `result`) when the query dropped it;
/// `--map NAME=SERIES` is applied by the caller.
pub fn parse_prometheus(name: &str, text: &str, max_gap: f64) -> Result<Trace, SimulateError> {
    let document: Value = serde_json::from_str(text).map_err(|error| {
        bad(
            format!("{name}:{}:{}", error.line(), error.column()),
            format!("not JSON: {error}"),
        )
    })?;
    let data = document.get("data").unwrap_or(&document);
    match data.get("resultType").and_then(Value::as_str) {
        Some("matrix") => {}
        Some(other) => return Err(bad(name.to_string(), format!("resultType is `{other}`; export a range query (query_range), whose resultType is matrix"))),
        None => return Err(bad(name.to_string(), "no data.resultType: not a Prometheus query_range response")),
    }
    let results = data
        .get("result")
        .and_then(Value::as_array)
        .ok_or_else(|| bad(name.to_string(), "no data.result list"))?;
    let mut trace = Trace::default();
    for (index, result) in results.iter().enumerate() {
        let series_name = result
            .pointer("/metric/__name__")
            .and_then(Value::as_str)
            .map_or_else(|| format!("#{index}"), str::to_string);
        let origin = format!("{name}: series {index} ({series_name})");
        if trace.series.contains_key(&series_name) {
            return Err(bad(origin, format!("a second series named `{series_name}`; aggregate the query to one series per metric, or --map a name to `#{index}`")));
        }
        let values = result
            .get("values")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                bad(
                    origin.clone(),
                    "no `values` (a matrix series holds [time, \"value\"] pairs)",
                )
            })?;
        let mut series = Series::default();
        let mut origins = Vec::new();
        for (position, pair) in values.iter().enumerate() {
            let sample_origin = format!("{origin}, sample {position}");
            let (Some(time), Some(value)) = (
                pair.get(0).and_then(Value::as_f64),
                pair.get(1).and_then(Value::as_str),
            ) else {
                return Err(bad(
                    sample_origin,
                    format!("expected [time, \"value\"], got {pair}"),
                ));
            };
            let time = check_time(&sample_origin, &pair[0].to_string(), time)?;
            let value: f64 = value
                .parse()
                .map_err(|_| bad(sample_origin.clone(), format!("`{value}` is not a number")))?;
            if !value.is_finite() {
                return Err(bad(
                    sample_origin,
                    format!(
                        "`{value}` is not finite (NaN: the query had no data); fill or drop it"
                    ),
                ));
            }
            series.samples.push((time, value));
            origins.push(sample_origin);
        }
        if series.samples.is_empty() {
            return Err(bad(origin, "the series has no samples"));
        }
        check_series(&series_name, &series, &origins, max_gap)?;
        trace.origin.insert(series_name.clone(), origin);
        trace.series.insert(series_name, series);
    }
    if trace.series.is_empty() {
        return Err(bad(name.to_string(), "the response holds no series"));
    }
    Ok(trace)
}

/// Read a trace, by its content: JSON for a Prometheus response, CSV
/// otherwise.
pub fn parse(name: &str, text: &str, max_gap: f64) -> Result<Trace, SimulateError> {
    // Spreadsheets and Windows tools start UTF-8 with a byte-order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim_start().starts_with('{') {
        parse_prometheus(name, text, max_gap)
    } else {
        parse_csv(name, text, max_gap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_read_as_unix_seconds() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(parse_rfc3339("2026-11-30T10:15:00Z"), Some(1_796_033_700.0));
        assert_eq!(
            parse_rfc3339("2026-11-30T11:15:00+01:00"),
            Some(1_796_033_700.0)
        );
        assert_eq!(
            parse_rfc3339("2026-11-30T10:15:00.5Z"),
            Some(1_796_033_700.5)
        );
        assert_eq!(parse_rfc3339("2026-13-30T10:15:00Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn csv_errors_name_the_line() {
        let unsorted = "timestamp,metric,value\n0,q,1\n30,q,2\n15,q,3\n";
        let error = parse_csv("t.csv", unsorted, 300.0)
            .expect_err("unsorted")
            .to_string();
        assert!(
            error.contains("t.csv:4") && error.contains("back in time"),
            "{error}"
        );
        let nan = "0,q,1\n15,q,NaN\n";
        let error = parse_csv("t.csv", nan, 300.0).expect_err("NaN").to_string();
        assert!(
            error.contains("t.csv:2") && error.contains("finite"),
            "{error}"
        );
        let gap = "0,q,1\n15,q,1\n3600,q,2\n";
        let error = parse_csv("t.csv", gap, 300.0).expect_err("gap").to_string();
        assert!(
            error.contains("t.csv:3") && error.contains("gap of 3585 s"),
            "{error}"
        );
        let fields = "0,q\n";
        let error = parse_csv("t.csv", fields, 300.0)
            .expect_err("fields")
            .to_string();
        assert!(
            error.contains("t.csv:1") && error.contains("2 fields"),
            "{error}"
        );
    }

    #[test]
    fn timestamps_beyond_year_9999_and_replicas_beyond_int32_are_refused() {
        let milliseconds = "1764497700000,q,1\n1764497715000,q,1\n";
        let error = parse_csv("t.csv", milliseconds, 300.0)
            .expect_err("milliseconds")
            .to_string();
        assert!(
            error.contains("t.csv:1") && error.contains("divide by 1000"),
            "{error}"
        );
        let huge = "0,q,1\n99999999999999999999,q,1\n";
        let error = parse_csv("t.csv", huge, 300.0)
            .expect_err("huge")
            .to_string();
        assert!(
            error.contains("t.csv:2") && error.contains("years 0-9999") && !error.contains("milli"),
            "{error}"
        );
        let replicas = "0,q,1,3\n15,q,1,1e12\n";
        let error = parse_csv("t.csv", replicas, 300.0)
            .expect_err("replicas")
            .to_string();
        assert!(
            error.contains("t.csv:2") && error.contains("not a count"),
            "{error}"
        );
        let latest = "253402300784,q,1\n9999-12-31T23:59:59Z,q,1,2147483647\n";
        let trace = parse_csv("t.csv", latest, 300.0).expect("the last instant is a time");
        assert_eq!(trace.end(), Some(*SECONDS.end()));
        let earliest = "0000-01-01T00:00:00Z,q,1\n-62167219185,q,1\n";
        let trace = parse_csv("t.csv", earliest, 300.0).expect("year 0 is a time");
        assert_eq!(trace.start(), Some(*SECONDS.start()));
        let before = parse_csv("t.csv", "-62167219201,q,1\n", 300.0)
            .expect_err("before year 0")
            .to_string();
        assert!(
            before.contains("t.csv:1") && before.contains("years 0-9999"),
            "{before}"
        );
        let prometheus = r#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"__name__":"q"},"values":[[1764497700000,"1"]]}]}}"#;
        let error = parse_prometheus("p.json", prometheus, 300.0)
            .expect_err("milliseconds")
            .to_string();
        assert!(
            error.contains("series 0 (q), sample 0") && error.contains("divide by 1000"),
            "{error}"
        );
    }

    #[test]
    fn a_sample_holds_until_the_next() {
        let trace = parse_csv("t.csv", "0,q,1,2\n15,q,3,2\n30,q,5,3\n", 300.0).expect("trace");
        let series = &trace.series["q"];
        assert_eq!(series.at(-5.0), Some(1.0));
        assert_eq!(series.at(0.0), Some(1.0));
        assert_eq!(series.at(20.0), Some(3.0));
        assert_eq!(series.at(99.0), Some(5.0));
        assert_eq!(
            trace
                .replicas
                .as_ref()
                .and_then(|replicas| replicas.at(31.0)),
            Some(3.0)
        );
    }

    #[test]
    fn prometheus_matrices_are_series_by_name() {
        let text = r#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"__name__":"vllm:num_requests_waiting","pod":"a"},"values":[[1700000000,"1"],[1700000015,"4"]]},
            {"metric":{},"values":[[1700000000,"2"],[1700000015,"2"]]}]}}"#;
        let trace = parse_prometheus("p.json", text, 300.0).expect("trace");
        assert_eq!(trace.series["vllm:num_requests_waiting"].samples.len(), 2);
        assert!(trace.series.contains_key("#1"));
        let twice = r#"{"data":{"resultType":"matrix","result":[
            {"metric":{"__name__":"m"},"values":[[0,"1"]]},{"metric":{"__name__":"m"},"values":[[0,"1"]]}]}}"#;
        let error = parse_prometheus("p.json", twice, 300.0)
            .expect_err("two")
            .to_string();
        assert!(
            error.contains("series 1") && error.contains("aggregate"),
            "{error}"
        );
        let vector = r#"{"data":{"resultType":"vector","result":[]}}"#;
        assert!(parse_prometheus("p.json", vector, 300.0)
            .expect_err("vector")
            .to_string()
            .contains("query_range"));
    }
}
