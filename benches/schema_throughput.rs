//! Throughput of schema-strict: the objects of ../shared/corpus that have a
//! schema (Deployments, StatefulSets, HPAs and the custom resources)
//! validated against the strict schemas, many times over. Prints objects per second; the schemas are compiled once,
//! before timing starts.
//!
//! cargo bench --bench schema_throughput [-- ROUNDS]

use std::path::PathBuf;
use std::time::Instant;

use infergate::engine::schema;
use infergate::input::loader::{self, Input};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|argument| argument.parse().ok())
        .unwrap_or(500);
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    let loaded = loader::load(&[Input::File(corpus)])?;
    let version = schema::newest();
    let objects: Vec<_> = loaded
        .objects
        .iter()
        .filter_map(|object| {
            schema::kind_schema(version, &object.id.api_version, object.kind())
                .map(|schema| (schema, &object.value))
        })
        .collect();
    let mut errors = 0usize;
    let started = Instant::now();
    for _ in 0..rounds {
        for (schema, value) in &objects {
            errors += schema.validator.iter_errors(value).count();
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let validated = objects.len() * rounds;
    println!(
        "schema_throughput: {validated} validations ({} objects x {rounds}) in {seconds:.3} s = {:.0} objects/s ({errors} errors)",
        objects.len(),
        validated as f64 / seconds
    );
    Ok(())
}
