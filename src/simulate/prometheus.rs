//! Traces read from Prometheus directly: one `query_range` per HPA metric
//! (and one for the recorded replicas), fetched in windows of at most
//! [`MAX_POINTS`] points (Prometheus refuses more than 11,000 per series),
//! each response checked as a saved query_range file is
//! ([`super::trace::parse_prometheus`]).

use crate::input::pointer::Lookup;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use serde_json::Value;

use super::trace::{parse_prometheus, Trace};
use super::SimulateError;

/// Points per request: below Prometheus' limit of 11,000 per series.
pub const MAX_POINTS: f64 = 10_000.0;
/// The largest response read.
const MAX_BODY: usize = 256 * 1024 * 1024;
const TIMEOUT: Duration = Duration::from_secs(60);

/// Where and how to reach the server.
#[derive(Debug, Clone, Default)]
pub struct Server {
    /// `http(s)://host:port[/prefix]`.
    pub url: String,
    /// Sent as `Authorization: Bearer …`.
    pub bearer_token: Option<String>,
    /// PEM certificates to trust instead of the system's.
    pub certificate_authority: Option<Vec<u8>>,
}

/// One series to fetch: the name the trace gives it and the PromQL.
#[derive(Debug, Clone)]
pub struct Query {
    pub name: String,
    pub promql: String,
}

/// The range: Unix seconds and the step in seconds.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    pub start: f64,
    pub end: f64,
    pub step: f64,
}

fn failure(origin: &str, message: impl Into<String>) -> SimulateError {
    SimulateError::Trace {
        origin: origin.to_string(),
        message: message.into(),
    }
}

/// Letters, digits and `-._~` stay; every other byte is %-escaped
/// (RFC 3986's unreserved set, as a query value needs).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Fetch every query over `range` into one trace whose series are named
/// by the queries (`replicas` becomes the recorded replicas).
pub fn fetch(
    server: &Server,
    queries: &[Query],
    range: Range,
    max_gap: f64,
) -> Result<Trace, SimulateError> {
    let base = server.url.trim_end_matches('/');
    let uri: hyper::Uri = base.parse().map_err(|error| {
        failure(
            "--prometheus",
            format!(
                "`{}` is not a URL ({error}); write it like http://prometheus:9090",
                server.url
            ),
        )
    })?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(failure(
            "--prometheus",
            format!(
                "`{}` is not an http(s) URL with a host; write it like http://prometheus:9090",
                server.url
            ),
        ));
    }
    if !(range.step > 0.0 && range.end > range.start) {
        return Err(failure(
            "--start/--end/--step",
            format!(
                "the range {}..{} with a step of {} s is empty; --end must be after --start and --step above zero",
                range.start, range.end, range.step
            ),
        ));
    }
    let points = (range.end - range.start) / range.step;
    if points > super::run::MAX_SYNCS {
        return Err(failure(
            "--start/--end/--step",
            format!(
                "the range holds {points:.0} points of {} s per query, more than a replay takes ({:.0}); raise --step or shorten the range",
                range.step,
                super::run::MAX_SYNCS
            ),
        ));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| {
            failure(
                "--prometheus",
                format!("cannot start the HTTP client: {error}"),
            )
        })?;
    let client = client(server)?;
    let mut trace = Trace::default();
    for query in queries {
        let mut values: Vec<Value> = Vec::new();
        let mut start = range.start;
        while start <= range.end {
            let end = (start + range.step * (MAX_POINTS - 1.0)).min(range.end);
            let url = format!(
                "{base}/api/v1/query_range?query={}&start={start}&end={end}&step={}",
                percent_encode(&query.promql),
                range.step
            );
            let body = runtime.block_on(get(&client, &url, server, &query.name))?;
            let document: Value = serde_json::from_slice(&body).map_err(|error| {
                failure(
                    &query.name,
                    format!("the server's answer is not JSON ({error}); is {base} a Prometheus?"),
                )
            })?;
            let results = document
                .at("/data/result")
                .and_then(Value::as_array)
                .ok_or_else(|| {
                    failure(
                        &query.name,
                        "the answer has no data.result: is the URL a Prometheus API?",
                    )
                })?;
            if results.len() > 1 {
                return Err(failure(
                    &query.name,
                    format!(
                        "`{}` returns {} series; aggregate it to one (sum, avg, max by nothing)",
                        query.promql,
                        results.len()
                    ),
                ));
            }
            if let Some(result) = results.first() {
                values.extend(
                    result
                        .get("values")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                );
            }
            start = end + range.step;
        }
        if values.is_empty() {
            return Err(failure(
                &query.name,
                format!(
                    "`{}` returns no samples between {} and {}; check the query, the labels and the range",
                    query.promql, range.start, range.end
                ),
            ));
        }
        // The windows as one saved response: the file reader's checks
        // (numbers, NaN, order, gaps) apply.
        let merged = serde_json::json!({
            "status": "success",
            "data": {"resultType": "matrix", "result": [{"metric": {}, "values": values}]},
        });
        let origin = format!("{} ({})", query.name, query.promql);
        let parsed = parse_prometheus(&origin, &merged.to_string(), max_gap)?;
        let series = parsed.series.into_values().next().unwrap_or_default();
        if query.name == "replicas" {
            trace.replicas = Some(series);
        } else {
            trace.origin.insert(query.name.clone(), origin);
            trace.series.insert(query.name.clone(), series);
        }
    }
    Ok(trace)
}

type Client = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Empty<Bytes>,
>;

fn client(server: &Server) -> Result<Client, SimulateError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| failure("--prometheus", format!("TLS setup: {error}")))?;
    let config = match &server.certificate_authority {
        Some(pem) => {
            use rustls_pki_types::pem::PemObject;
            let mut roots = rustls::RootCertStore::empty();
            for certificate in rustls_pki_types::CertificateDer::pem_slice_iter(pem) {
                let certificate = certificate.map_err(|error| {
                    failure(
                        "--certificate-authority",
                        format!("not a PEM certificate: {error}"),
                    )
                })?;
                roots.add(certificate).map_err(|error| {
                    failure(
                        "--certificate-authority",
                        format!("unusable certificate: {error}"),
                    )
                })?;
            }
            if roots.is_empty() {
                return Err(failure(
                    "--certificate-authority",
                    "the file holds no PEM certificate",
                ));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => {
            let mut roots = rustls::RootCertStore::empty();
            for certificate in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(certificate);
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .build();
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(connector),
    )
}

async fn get(
    client: &Client,
    url: &str,
    server: &Server,
    name: &str,
) -> Result<Vec<u8>, SimulateError> {
    let mut request = hyper::Request::get(url);
    if let Some(token) = &server.bearer_token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|error| failure(name, format!("cannot build the request: {error}")))?;
    let response = tokio::time::timeout(TIMEOUT, client.request(request))
        .await
        .map_err(|_| {
            failure(
                name,
                format!(
                    "{} did not answer within {} s",
                    server.url,
                    TIMEOUT.as_secs()
                ),
            )
        })?
        .map_err(|error| {
            failure(
                name,
                format!(
                    "cannot reach {}: {}; check the URL and that the server is up",
                    server.url,
                    crate::k8s::kube_api::with_causes(&error)
                ),
            )
        })?;
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|error| failure(name, format!("reading the answer: {error}")))?
        .to_bytes()
        .to_vec();
    if status == hyper::StatusCode::UNAUTHORIZED || status == hyper::StatusCode::FORBIDDEN {
        return Err(failure(
            name,
            format!(
                "{} answered {status}: give a bearer token (--token or --token-file) that may query it",
                server.url
            ),
        ));
    }
    if !status.is_success() {
        // Prometheus explains a bad query in its JSON error.
        let reason = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|value| {
                value
                    .get("error")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
        return Err(failure(
            name,
            format!("{} answered {status}: {reason}", server.url),
        ));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_percent_encoded() {
        assert_eq!(
            percent_encode("avg(vllm:num_requests_waiting{namespace=\"a b\"})"),
            "avg%28vllm%3Anum_requests_waiting%7Bnamespace%3D%22a%20b%22%7D%29"
        );
    }

    #[test]
    fn urls_and_ranges_are_checked_before_any_request() {
        let range = Range {
            start: 0.0,
            end: 60.0,
            step: 15.0,
        };
        let query = [Query {
            name: "q".to_string(),
            promql: "up".to_string(),
        }];
        let server = |url: &str| Server {
            url: url.to_string(),
            ..Server::default()
        };
        let error = fetch(&server("prometheus:9090"), &query, range, 300.0)
            .unwrap_err()
            .to_string();
        assert!(error.contains("is not an http(s) URL"), "{error}");
        let error = fetch(
            &server("http://127.0.0.1:9"),
            &query,
            Range { end: 0.0, ..range },
            300.0,
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("is empty"), "{error}");
        // A year at 1 ms would be 3e10 points and three million requests.
        let error = fetch(
            &server("http://127.0.0.1:9"),
            &query,
            Range {
                start: 0.0,
                end: 365.0 * 86_400.0,
                step: 0.001,
            },
            300.0,
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("raise --step"), "{error}");
    }
}
