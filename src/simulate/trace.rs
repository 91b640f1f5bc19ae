//! Recorded metric traces: CSV (`timestamp,metric,value[,replicas]`) or the
//! JSON of a Prometheus `query_range` response (`resultType: matrix`).
//! Errors name the line or the series.

use crate::input::pointer::Lookup;
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

/// An RFC 3339 timestamp (`2026-11-30T10:15:00Z`, `…+01:00`, fractions
/// allowed; a space for the `T` too, as Grafana exports) as Unix seconds,
/// read by jiff. Read as civil time and offset rather than as a
/// `jiff::Timestamp`, whose range stops a day short of 9999-12-31.
pub fn parse_rfc3339(text: &str) -> Option<f64> {
    const EPOCH: jiff::civil::DateTime = jiff::civil::DateTime::constant(1970, 1, 1, 0, 0, 0, 0);
    let pieces = jiff::fmt::temporal::Pieces::parse(text.trim()).ok()?;
    if pieces.time_zone_annotation().is_some() {
        return None;
    }
    let offset = pieces.offset()?.to_numeric_offset();
    let local = pieces.date().to_datetime(pieces.time()?);
    Some(local.duration_since(EPOCH).as_secs_f64() - f64::from(offset.seconds()))
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

/// Where a CSV trace holds what: the columns of a long trace (a row per
/// sample), or of a wide one (a time column, then a column per series, as
/// Grafana's "series joined by time" and spreadsheets export).
#[derive(Debug)]
enum Columns {
    Long {
        time: usize,
        metric: usize,
        value: usize,
        replicas: Option<usize>,
    },
    Wide {
        time: usize,
        series: Vec<(usize, String)>,
        replicas: Option<usize>,
    },
}

impl Columns {
    /// The layout without a header: `timestamp,metric,value[,replicas]`.
    const POSITIONAL: Self = Self::Long {
        time: 0,
        metric: 1,
        value: 2,
        replicas: Some(3),
    };

    /// The layout a header names, in any column order; `None` when the
    /// row is not a header (its first field is a time or a number).
    fn from_header(fields: &csv::StringRecord) -> Option<Self> {
        if fields.get(0).and_then(parse_time).is_some() {
            return None;
        }
        let find = |names: &[&str]| {
            fields
                .iter()
                .position(|field| names.iter().any(|name| field.eq_ignore_ascii_case(name)))
        };
        let time = find(&["timestamp", "time"])?;
        let replicas = find(&["replicas"]);
        if let (Some(metric), Some(value)) = (find(&["metric"]), find(&["value"])) {
            return Some(Self::Long {
                time,
                metric,
                value,
                replicas,
            });
        }
        let series = fields
            .iter()
            .enumerate()
            .filter(|(index, name)| *index != time && Some(*index) != replicas && !name.is_empty())
            .map(|(index, name)| (index, name.to_string()))
            .collect();
        Some(Self::Wide {
            time,
            series,
            replicas,
        })
    }

    fn describe(&self) -> String {
        match self {
            Self::Long { .. } => "`timestamp,metric,value[,replicas]`".to_string(),
            Self::Wide { series, .. } => format!("a time column and {} series", series.len()),
        }
    }

    /// The fields a row must have, at least and at most.
    fn widths(&self) -> (usize, usize) {
        match self {
            Self::Long {
                time,
                metric,
                value,
                replicas,
            } => {
                let needed = 1 + *time.max(metric).max(value);
                (needed, needed.max(replicas.map_or(0, |index| index + 1)))
            }
            Self::Wide {
                time,
                series,
                replicas,
            } => {
                let last = series
                    .iter()
                    .map(|(index, _)| *index)
                    .chain([*time])
                    .chain(*replicas)
                    .max()
                    .unwrap_or(*time);
                (1 + *time, last + 1)
            }
        }
    }
}

/// A CSV trace: `timestamp,metric,value[,replicas]` (a header may name
/// these columns in any order), or wide, `time,SERIES…[,replicas]` under a
/// header. Fields may be quoted; `#` starts a comment line.
pub fn parse_csv(name: &str, text: &str, max_gap: f64) -> Result<Trace, SimulateError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut trace = Trace::default();
    let mut origins: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut replicas: Vec<(f64, f64)> = Vec::new();
    let mut columns: Option<Columns> = None;
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(error) => {
                let line = error.position().map_or(0, csv::Position::line);
                return Err(bad(format!("{name}:{line}"), format!("not CSV: {error}")));
            }
        }
        let number = record.position().map_or(0, csv::Position::line);
        let origin = format!("{name}:{number}");
        if record.iter().all(str::is_empty) {
            continue;
        }
        // The first row is a header, or the first sample of a trace
        // without one.
        if columns.is_none() {
            if let Some(header) = Columns::from_header(&record) {
                if matches!(&header, Columns::Wide { series, .. } if series.is_empty()) {
                    return Err(bad(origin, "the header names a time column but neither `metric` and `value` columns nor any series"));
                }
                columns = Some(header);
                continue;
            }
        }
        let layout = columns.get_or_insert(Columns::POSITIONAL);
        read_row(
            layout,
            &record,
            &origin,
            &mut trace,
            &mut origins,
            &mut replicas,
        )?;
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

/// One CSV row into the trace: its samples, and its replicas when it says.
fn read_row(
    layout: &Columns,
    fields: &csv::StringRecord,
    origin: &str,
    trace: &mut Trace,
    origins: &mut BTreeMap<String, Vec<String>>,
    replicas: &mut Vec<(f64, f64)>,
) -> Result<(), SimulateError> {
    let (least, most) = layout.widths();
    if !(least..=most).contains(&fields.len()) {
        return Err(bad(
            origin.to_string(),
            format!(
                "expected {}, got {} fields",
                layout.describe(),
                fields.len()
            ),
        ));
    }
    let field = |index: usize| fields.get(index).unwrap_or_default();
    let (time_index, replica_index) = match layout {
        Columns::Long { time, replicas, .. } | Columns::Wide { time, replicas, .. } => {
            (*time, *replicas)
        }
    };
    let time_text = field(time_index);
    let time = parse_time(time_text).ok_or_else(|| {
        bad(
            origin.to_string(),
            format!("`{time_text}` is neither seconds nor an RFC 3339 time (2026-11-30T10:15:00Z)"),
        )
    })?;
    let time = check_time(origin, time_text, time)?;
    let mut push = |metric: &str, text: &str| -> Result<(), SimulateError> {
        let value: f64 = text
            .parse()
            .map_err(|_| bad(origin.to_string(), format!("`{text}` is not a number")))?;
        if !value.is_finite() {
            return Err(bad(
                origin.to_string(),
                format!(
                    "`{text}` is not a finite number (NaN or infinite); drop the sample or fill it"
                ),
            ));
        }
        trace
            .series
            .entry(metric.to_string())
            .or_default()
            .samples
            .push((time, value));
        origins
            .entry(metric.to_string())
            .or_default()
            .push(origin.to_string());
        Ok(())
    };
    match layout {
        Columns::Long { metric, value, .. } => {
            let metric = field(*metric);
            if metric.is_empty() {
                return Err(bad(origin.to_string(), "the metric name is empty"));
            }
            push(metric, field(*value))?;
        }
        Columns::Wide { series, .. } => {
            // An empty cell: that series has no sample at this time.
            for (index, metric) in series {
                let text = field(*index);
                if !text.is_empty() {
                    push(metric, text)?;
                }
            }
        }
    }
    if let Some(count) = replica_index.map(field).filter(|field| !field.is_empty()) {
        let count: f64 = count
            .parse()
            .ok()
            .filter(|count: &f64| (0.0..=MAX_REPLICAS).contains(count))
            .ok_or_else(|| {
                bad(
                    origin.to_string(),
                    format!("replicas `{count}` is not a count (0 to {MAX_REPLICAS})"),
                )
            })?;
        if replicas.last().is_none_or(|(at, _)| *at != time) {
            replicas.push((time, count));
        }
    }
    Ok(())
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
            .at("/metric/__name__")
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

    /// The error a CSV trace is refused with.
    fn refused(text: &str) -> String {
        match parse_csv("t.csv", text, 300.0) {
            Ok(_) => panic!("the trace is read: {text:?}"),
            Err(error) => error.to_string(),
        }
    }

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
        assert_eq!(parse_rfc3339("2026-11-30 10:15:00Z"), Some(1_796_033_700.0));
        assert_eq!(parse_rfc3339("2026-02-30T10:15:00Z"), None);
        assert_eq!(parse_rfc3339("2026-11-30T10:15:00"), None);
        assert_eq!(parse_rfc3339("2026-13-30T10:15:00Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn csv_errors_name_the_line() {
        let unsorted = "timestamp,metric,value\n0,q,1\n30,q,2\n15,q,3\n";
        let error = refused(unsorted);
        assert!(
            error.contains("t.csv:4") && error.contains("back in time"),
            "{error}"
        );
        let nan = "0,q,1\n15,q,NaN\n";
        let error = refused(nan);
        assert!(
            error.contains("t.csv:2") && error.contains("finite"),
            "{error}"
        );
        let gap = "0,q,1\n15,q,1\n3600,q,2\n";
        let error = refused(gap);
        assert!(
            error.contains("t.csv:3") && error.contains("gap of 3585 s"),
            "{error}"
        );
        let fields = "0,q\n";
        let error = refused(fields);
        assert!(
            error.contains("t.csv:1") && error.contains("2 fields"),
            "{error}"
        );
    }

    #[test]
    fn timestamps_beyond_year_9999_and_replicas_beyond_int32_are_refused() {
        let milliseconds = "1764497700000,q,1\n1764497715000,q,1\n";
        let error = refused(milliseconds);
        assert!(
            error.contains("t.csv:1") && error.contains("divide by 1000"),
            "{error}"
        );
        let huge = "0,q,1\n99999999999999999999,q,1\n";
        let error = refused(huge);
        assert!(
            error.contains("t.csv:2") && error.contains("years 0-9999") && !error.contains("milli"),
            "{error}"
        );
        let replicas = "0,q,1,3\n15,q,1,1e12\n";
        let error = refused(replicas);
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
        let before = refused("-62167219201,q,1\n");
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
    fn quoted_fields_and_headers_in_any_order_read_as_exported() {
        let quoted = "\"value\",\"timestamp\",\"metric\"\n\"1.5\",\"2026-11-30 10:15:00Z\",\"vllm:num_requests_waiting\"\n\"2\",\"2026-11-30T10:15:15Z\",\"vllm:num_requests_waiting\"\n";
        let trace = parse_csv("t.csv", quoted, 300.0).expect("quoted, reordered");
        assert_eq!(
            trace.series["vllm:num_requests_waiting"].samples,
            vec![(1_796_033_700.0, 1.5), (1_796_033_715.0, 2.0)]
        );
        let comma_in_name = "timestamp,metric,value\n0,\"sum(rate(x[1m])) by (a,b)\",1\n";
        let trace = parse_csv("t.csv", comma_in_name, 300.0).expect("a comma inside quotes");
        assert!(trace.series.contains_key("sum(rate(x[1m])) by (a,b)"));
    }

    #[test]
    fn wide_traces_hold_a_series_per_column() {
        let wide = "Time,queue,kv cache,replicas\n0,1,0.5,2\n15,,0.6,2\n30,4,0.7,3\n";
        let trace = parse_csv("t.csv", wide, 300.0).expect("wide");
        assert_eq!(trace.series["queue"].samples, vec![(0.0, 1.0), (30.0, 4.0)]);
        assert_eq!(trace.series["kv cache"].samples.len(), 3);
        assert_eq!(
            trace
                .replicas
                .as_ref()
                .map(|replicas| replicas.samples.len()),
            Some(3)
        );
        let error = refused("time\n0\n");
        assert!(
            error.contains("t.csv:1") && error.contains("nor any series"),
            "{error}"
        );
        let error = refused("time,q\n0,1,2,3\n");
        assert!(
            error.contains("t.csv:2") && error.contains("4 fields"),
            "{error}"
        );
    }

    #[test]
    fn a_metric_named_time_is_not_a_header() {
        let trace = parse_csv("t.csv", "0,time,1\n15,time,2\n", 300.0).expect("trace");
        assert_eq!(trace.series["time"].samples.len(), 2);
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
