//! A null admission webhook: infergate's stack (axum on hyper over
//! tokio-rustls) answering every review "allowed" after reading only its
//! uid, which the apiserver requires back. It is the baseline for what a
//! review costs in infergate beside what any webhook on this stack costs:
//! benches/webhook_throughput runs it as its own process, the e2e tier
//! registers it for one namespace.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Serves on `address` with the certificate chain and key of these PEM
/// files, until the process ends.
pub fn serve(
    address: SocketAddr,
    certificate: &Path,
    key: &Path,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(certificate)?.collect::<Result<_, _>>()?;
    let key = PrivateKeyDer::from_pem_file(key)?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(chain, key)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let router =
        axum::Router::new().fallback(axum::routing::post(|body: axum::body::Bytes| async move {
            let uid = infergate::webhook::uid::peek(&body).unwrap_or_default();
            axum::Json(serde_json::json!({
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "response": {"uid": uid, "allowed": true}
            }))
        }));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(address).await?;
        loop {
            let (tcp, _) = listener.accept().await?;
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let service = hyper_util::service::TowerToHyperService::new(router.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                }
            });
        }
    })
}

/// [`serve`] on a thread of its own, for a test that needs one beside it.
#[allow(dead_code)] // the bench runs it as a process of its own
pub fn spawn(address: SocketAddr, certificate: &Path, key: &Path) {
    let (certificate, key) = (certificate.to_path_buf(), key.to_path_buf());
    std::thread::spawn(move || {
        if let Err(error) = serve(address, &certificate, &key) {
            eprintln!("null webhook on {address}: {error}");
        }
    });
}
