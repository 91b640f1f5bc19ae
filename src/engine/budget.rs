//! A cooperative deadline for the engine calls one thread makes, so that a
//! caller can run a small check where it is (the webhook's small reviews,
//! on the async worker that read them) and still never answer late.
//!
//! The engine looks at the deadline between rules: past it, it stops
//! checking, and [`within`] says the work did not finish. Without a
//! deadline (the linter, the audit) the look is one thread-local read.

use std::cell::Cell;
use std::time::Instant;

thread_local! {
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
    static EXPIRED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `work` with `deadline` for the engine calls it makes on this
/// thread: `None` when the engine stopped at the deadline, so that what
/// it returned is incomplete.
pub fn within<T>(deadline: Instant, work: impl FnOnce() -> T) -> Option<T> {
    let outer = DEADLINE.with(|slot| slot.replace(Some(deadline)));
    let was_expired = EXPIRED.with(|flag| flag.replace(false));
    let result = work();
    let expired = EXPIRED.with(|flag| flag.replace(was_expired));
    DEADLINE.with(|slot| slot.set(outer));
    (!expired).then_some(result)
}

/// Whether this thread's deadline has passed (and the work is therefore
/// incomplete); false when there is none.
pub(crate) fn expired() -> bool {
    let Some(deadline) = DEADLINE.with(Cell::get) else {
        return false;
    };
    if Instant::now() < deadline {
        return false;
    }
    EXPIRED.with(|flag| flag.set(true));
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn work_past_its_deadline_is_incomplete_and_the_deadline_is_scoped() {
        let past = Instant::now() - Duration::from_millis(1);
        assert_eq!(within(past, expired), None);
        let future = Instant::now() + Duration::from_secs(60);
        assert_eq!(within(future, expired), Some(false));
        // Outside `within` there is no deadline.
        assert!(!expired());
    }

    #[test]
    fn the_engine_stops_at_the_deadline() {
        let engine =
            crate::engine::Engine::new(crate::policy::Policy::built_in().expect("built-in policy"));
        let loaded = crate::input::loader::parse_source(crate::input::source::SourceFile::new(
            "hpa.yaml",
            "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: web}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n  minReplicas: 5\n  maxReplicas: 2\n".to_string(),
        ));
        let facts = crate::engine::ClusterFacts::default();
        let past = Instant::now() - Duration::from_millis(1);
        assert!(within(past, || engine.run(&loaded, &facts)).is_none());
        let future = Instant::now() + Duration::from_secs(60);
        let outcome = within(future, || engine.run(&loaded, &facts)).expect("finished");
        let messages = |findings: &[crate::engine::finding::Finding]| {
            findings
                .iter()
                .map(|finding| finding.message.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            messages(&outcome.findings),
            messages(&engine.run(&loaded, &facts).findings)
        );
        assert!(!outcome.findings.is_empty());
    }
}
