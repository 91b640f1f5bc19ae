//! `infergate simulate`: replay the Kubernetes HPA controller on a recorded
//! metric trace and show the replicas it would have set.
//!
//! [`hpa`] reads the autoscaler as the controller sees it, [`controller`]
//! is the controller's decision each sync period, [`trace`] reads CSV and
//! Prometheus traces, [`run`] drives the replay under the load model, and
//! [`render`] / [`plot`] present it. The CLI is a thin adapter.

pub mod controller;
pub mod hpa;
pub mod plot;
pub mod prometheus;
pub mod render;
pub mod run;
pub mod trace;
pub mod tune;

use serde_json::Value;

use crate::engine::finding::Applicability;
use crate::engine::{ClusterFacts, Engine};
use crate::input::loader::Loaded;
use crate::input::object::{Object, PositionMap};

#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("{0}")]
    Hpa(String),
    #[error("{origin}: {message}")]
    Trace { origin: String, message: String },
}

/// The autoscaler to simulate: the one named, else the only one.
pub fn find_autoscaler(loaded: &Loaded, name: Option<&str>) -> Result<usize, SimulateError> {
    let autoscalers: Vec<usize> = loaded
        .objects
        .iter()
        .enumerate()
        .filter(|(_, object)| crate::k8s::autoscaler::is_autoscaler(object))
        .filter(|(_, object)| !crate::k8s::autoscaler::is_keda_owned(object))
        .map(|(index, _)| index)
        .collect();
    let label = |index: &usize| {
        let object = &loaded.objects[*index];
        format!("{} {}", object.kind(), object.name().unwrap_or("unnamed"))
    };
    match name {
        Some(name) => autoscalers
            .iter()
            .copied()
            .find(|index| loaded.objects[*index].name() == Some(name))
            .ok_or_else(|| {
                SimulateError::Hpa(format!(
                    "no HPA or ScaledObject named `{name}`; the file has {}",
                    if autoscalers.is_empty() {
                        "none".to_string()
                    } else {
                        autoscalers.iter().map(label).collect::<Vec<_>>().join(", ")
                    }
                ))
            }),
        None => match autoscalers.as_slice() {
            [only] => Ok(*only),
            [] => Err(SimulateError::Hpa(
                "the file holds no HPA or ScaledObject".to_string(),
            )),
            many => Err(SimulateError::Hpa(format!(
                "the file holds {} autoscalers ({}); pick one with --hpa NAME",
                many.len(),
                many.iter().map(label).collect::<Vec<_>>().join(", ")
            ))),
        },
    }
}

/// How long the autoscaler's workload takes to become Ready: the slowest
/// model-load estimate of its serving containers (as
/// model-server-startup-probe computes it), with how it was found.
pub fn startup_estimate(engine: &Engine, loaded: &Loaded, index: usize) -> Option<(f64, String)> {
    let load = with_workload(engine, loaded, index, |workload| {
        crate::k8s::serving::slowest_load(workload, engine.policy())
    })?;
    Some((
        load.seconds,
        format!(
            "model-load estimate of `{}` ({:.0} GB {} at {:.0} MB/s, plus the server's start)",
            load.model_id,
            load.bytes / 1e9,
            load.how(),
            load.throughput / 1e6
        ),
    ))
}

/// The accelerator chips one replica of the autoscaler's workload takes
/// (GPUs, TPU chips; a LeaderWorkerSet's whole group), when it takes any.
pub fn accelerators_per_replica(engine: &Engine, loaded: &Loaded, index: usize) -> Option<f64> {
    let chips = with_workload(engine, loaded, index, |workload| {
        let templates = crate::k8s::workload::pod_templates(workload);
        Some(crate::k8s::workload::chips_per_replica(
            workload,
            &templates,
            &engine.policy().inference.accelerator_resources,
        ))
    })?;
    (chips > 0.0).then_some(chips)
}

/// `read` of the workload the autoscaler at `index` scales, found in the
/// bundle as the rules find it.
fn with_workload<T>(
    engine: &Engine,
    loaded: &Loaded,
    index: usize,
    read: impl FnOnce(&Object) -> Option<T>,
) -> Option<T> {
    let facts = ClusterFacts::default();
    let index_of = crate::engine::Index::new(&loaded.objects, engine.policy());
    let cx = crate::engine::Context {
        policy: engine.policy(),
        objects: &loaded.objects,
        documents: &loaded.documents,
        index: &index_of,
        facts: &facts,
    };
    read(cx.hpa_target(loaded.objects.get(index)?)?)
}

/// The autoscaler as `lint --fix` would leave it: the safe fixes of the
/// findings on it (and the unsafe ones with `unsafe_fixes`, as `lint --fix
/// --unsafe-fixes`), applied round after round until none is left.
pub fn fixed_autoscaler(
    engine: &Engine,
    loaded: &Loaded,
    index: usize,
    unsafe_fixes: bool,
) -> Option<Object> {
    const ROUNDS: usize = 8;
    let original = loaded.objects.get(index)?;
    let mut value = original.value.clone();
    let mut changed = false;
    for _ in 0..ROUNDS {
        let round = with_object_value(loaded, index, value.clone())?;
        let outcome = engine.run(&round, &ClusterFacts::default());
        let fix = outcome.findings.iter().find_map(|finding| {
            let fix = finding.fix.as_ref()?;
            (finding.object_index == Some(index)
                && finding.suppressed.is_none()
                && (unsafe_fixes || fix.applicability == Applicability::Safe))
                .then_some(fix)
        });
        let Some(fix) = fix else { break };
        let mut next = value.clone();
        if json_patch::patch(&mut next, &fix.patch.0).is_err() || next == value {
            break;
        }
        value = next;
        changed = true;
    }
    changed.then(|| with_value(original, value)).flatten()
}

/// The bundle with the object at `index` holding `value` instead, to run
/// the engine on (its documents and problems are not carried over).
pub fn with_object_value(loaded: &Loaded, index: usize, value: Value) -> Option<Loaded> {
    let mut objects = loaded.objects.clone();
    *objects.get_mut(index)? = with_value(loaded.objects.get(index)?, value)?;
    Some(Loaded {
        files: loaded.files.clone(),
        objects,
        documents: Vec::new(),
        problems: Vec::new(),
    })
}

/// `object` with another value, at the same place in its file.
pub fn with_value(object: &Object, value: Value) -> Option<Object> {
    Object::from_value(
        value,
        object.source.clone(),
        object.document,
        object.base_pointer.clone(),
        PositionMap::default(),
    )
}
