//! The stand-in apiserver of the tests, serving the objects of YAML files,
//! to try `infergate audit` without a cluster:
//!
//!   cargo run --example standin_apiserver -- testdata/audit/cluster.yaml
//!   infergate audit -A --kubeconfig /tmp/infergate-standin.kubeconfig
//!
//! It writes the kubeconfig to the path printed and serves until stopped.
//! `--without GROUP/VERSION` answers a group version with a 404, as a
//! cluster without that CRD does.

#[path = "../tests/common/apiserver.rs"]
mod apiserver;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut files = Vec::new();
    let mut without = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--without" {
            without.extend(args.next());
        } else {
            files.push(arg);
        }
    }
    if files.is_empty() {
        return Err("usage: standin_apiserver FILE.yaml... [--without GROUP/VERSION]".into());
    }
    let objects: Vec<_> = files
        .iter()
        .flat_map(|file| apiserver::objects_of(std::path::Path::new(file)))
        .collect();
    let unserved: Vec<&str> = without.iter().map(String::as_str).collect();
    let count = objects.len();
    let addr = apiserver::serve(apiserver::store(objects, &unserved)).await;
    let kubeconfig = apiserver::kubeconfig_for(addr);
    let path = std::env::temp_dir().join("infergate-standin.kubeconfig");
    std::fs::copy(kubeconfig.path(), &path)?;
    eprintln!(
        "serving {count} objects on http://{addr}; kubeconfig: {}",
        path.display()
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}
