//! `infergate audit`: the engine over a live cluster.

use super::*;

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("namespaces").args(["namespace", "all_namespaces"])))]
pub struct AuditArgs {
    /// Kubeconfig file (default: the pod's service account in a cluster,
    /// else $KUBECONFIG or ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: its current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Audit one namespace (Nodes and cluster-scoped monitors are still
    /// read).
    #[arg(long, short = 'n', value_name = "NS")]
    pub namespace: Option<String>,
    /// Audit every namespace, also those the webhook leaves out
    /// (kube-system, kube-node-lease, its own, and those labelled
    /// infergate.dev/webhook=exclude). The policy's `namespaces` still
    /// apply. Default: every namespace but those.
    #[arg(long, short = 'A')]
    pub all_namespaces: bool,
    /// Output format; `policyreport` prints wgpolicyk8s.io/v1alpha2
    /// PolicyReports (one per namespace) and a ClusterPolicyReport.
    #[arg(long, value_enum, default_value_t = AuditFormat::Human)]
    pub format: AuditFormat,
    /// Lowest severity that makes the exit code 1.
    #[arg(long, value_enum, default_value_t = FailOn::Error)]
    pub fail_on: FailOn,
    /// A policy file merged over the built-in policy.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Kubernetes version the schemas are checked against (default: the
    /// policy's kubernetes.version).
    #[arg(long, value_name = "MAJOR.MINOR")]
    pub kube_version: Option<String>,
    /// Apply the PolicyReports to the cluster with server-side apply (field
    /// manager `infergate`), replacing infergate's earlier reports.
    #[arg(long)]
    pub write_reports: bool,
    /// The webhook's namespace, left out by default (default:
    /// $POD_NAMESPACE, else infergate).
    #[arg(long, value_name = "NS")]
    pub webhook_namespace: Option<String>,
    /// Read prometheus-adapter's ConfigMaps (labelled
    /// app.kubernetes.io/name=prometheus-adapter) only in these namespaces,
    /// comma-separated; empty reads none. RBAC cannot narrow a list to a
    /// label, so the default (every audited namespace) needs the right to
    /// list every ConfigMap; with names, a RoleBinding in each suffices.
    #[arg(long, value_name = "NS,...", value_delimiter = ',', num_args = 0..)]
    pub adapter_config_namespaces: Option<Vec<String>>,
    /// Show infos and suppressed findings.
    #[arg(long, short)]
    pub verbose: bool,
    /// When to colour the human format.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditFormat {
    Human,
    Json,
    Sarif,
    Github,
    Policyreport,
}

pub(super) fn audit(args: &AuditArgs) -> ExitCode {
    let policy = match load_policy(args.policy.as_deref()) {
        Ok(policy) => policy,
        Err(exit) => return exit,
    };
    let policy = match with_kube_version(policy, args.kube_version.as_deref()) {
        Ok(policy) => policy,
        Err(exit) => return exit,
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_stack_size(REVIEW_STACK)
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return usage_error(error, "the async runtime could not start"),
    };
    let namespaces = match (&args.namespace, args.all_namespaces) {
        (Some(namespace), _) => crate::audit::Namespaces::One(namespace.clone()),
        (None, true) => crate::audit::Namespaces::All,
        (None, false) => crate::audit::Namespaces::AllBut(vec![
            "kube-system".to_string(),
            "kube-node-lease".to_string(),
            args.webhook_namespace
                .clone()
                .or_else(|| std::env::var("POD_NAMESPACE").ok())
                .unwrap_or_else(|| "infergate".to_string()),
        ]),
    };
    let engine = Engine::new(policy);
    runtime.block_on(audit_cluster(args, &engine, &namespaces))
}

async fn audit_cluster(
    args: &AuditArgs,
    engine: &Engine,
    namespaces: &crate::audit::Namespaces,
) -> ExitCode {
    let connect_help = "check --kubeconfig and --context, and that the apiserver is reachable (`kubectl get --raw /version`)";
    let client =
        match crate::audit::client(args.kubeconfig.as_deref(), args.context.as_deref()).await {
            Ok(client) => client,
            Err(error) => return usage_error(error, connect_help),
        };
    let terminal = std::io::stderr().is_terminal();
    let mut progress = |step: crate::audit::Progress<'_>| {
        if terminal {
            eprintln!("listed {} {}", step.listed, step.kind.plural);
        }
    };
    let adapter_configs = match &args.adapter_config_namespaces {
        None => crate::audit::AdapterConfigs::Everywhere,
        Some(names) => crate::audit::AdapterConfigs::In(
            names
                .iter()
                .map(|name| name.trim().to_string())
                .filter(|name| !name.is_empty())
                .collect(),
        ),
    };
    if adapter_configs == crate::audit::AdapterConfigs::In(Vec::new()) {
        eprintln!(
            "note: prometheus-adapter's ConfigMaps are not read (--adapter-config-namespaces is empty): HPA metrics are not checked against its rules"
        );
    }
    let listing =
        match crate::audit::list_with(&client, namespaces, &adapter_configs, &mut progress).await {
            Ok(listing) => listing,
            Err(error) => return usage_error(error, connect_help),
        };
    if !listing.absent.is_empty() {
        let absent: Vec<String> = listing
            .absent
            .iter()
            .map(|kind| format!("{} ({})", kind.kind, kind.api_version))
            .collect();
        eprintln!(
            "note: not served by this cluster, skipped: {}",
            absent.join(", ")
        );
    }
    if !listing.opted_out.is_empty() {
        let opted_out: Vec<&str> = listing.opted_out.iter().map(String::as_str).collect();
        let audited = if matches!(namespaces, crate::audit::Namespaces::AllBut(_)) {
            "not audited; -A audits them"
        } else {
            "audited here"
        };
        eprintln!(
            "note: namespaces opted out of the webhook ({}, {audited}): {}",
            crate::audit::OPT_OUT_SELECTOR,
            opted_out.join(", ")
        );
    }
    if !listing.left_out.is_empty() && args.verbose {
        let left_out: Vec<&str> = listing.left_out.iter().map(String::as_str).collect();
        eprintln!(
            "note: namespaces left out (-A audits them): {}",
            left_out.join(", ")
        );
    }
    for (kind, error) in &listing.failed {
        eprintln!(
            "error: cannot list {} ({}): {error}",
            kind.plural, kind.api_version
        );
    }
    let incomplete = !listing.failed.is_empty();
    let scope = match namespaces {
        crate::audit::Namespaces::One(namespace) => Some(namespace.clone()),
        _ => None,
    };
    let audited = crate::audit::check(engine, listing);
    let visibility = Visibility {
        verbose: args.verbose,
    };
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64);
    let reports = crate::audit::report::reports(&audited, seconds, &|object| {
        crate::k8s::workload::inference_reason(object, engine.policy()).is_some()
    });
    let printed = print_with(|out| match args.format {
        AuditFormat::Human => human::write(
            &audited.outcome,
            visibility,
            terminal_style(args.color),
            out,
        ),
        AuditFormat::Json => output::json::write(&audited.outcome, visibility, out),
        AuditFormat::Sarif => output::sarif::write(
            &audited.outcome,
            &output::sarif::SourceRoot::find(None),
            out,
        ),
        AuditFormat::Github => output::github::write(&audited.outcome, visibility, out),
        AuditFormat::Policyreport => out.write_all(crate::audit::report::yaml(&reports).as_bytes()),
    });
    if printed != ExitCode::SUCCESS {
        return printed;
    }
    if args.write_reports {
        match crate::audit::report::write(&client, &reports, scope.as_deref()).await {
            Ok(done) => eprintln!(
                "wrote {} report(s) with server-side apply (field manager {}); {} unchanged, left as they were; deleted {} earlier one(s)",
                done.written,
                crate::audit::report::FIELD_MANAGER,
                done.unchanged,
                done.deleted
            ),
            Err(error @ crate::audit::report::WriteError::NotInstalled) => {
                return usage_error(
                    error,
                    "install the PolicyReport CRDs (kubernetes-sigs/wg-policy-prototypes, or Kyverno, which ships them), or audit without --write-reports",
                )
            }
            Err(error) => {
                return usage_error(
                    error,
                    "the audit's ClusterRole needs create, get, list, patch and delete of policyreports and clusterpolicyreports (webhook-deploy/audit/)",
                )
            }
        }
    }
    if incomplete {
        eprintln!("error: the audit is incomplete: some kinds could not be listed (see above)");
        return ExitCode::from(2);
    }
    exit_code(&audited.outcome.summary, args.fail_on)
}
