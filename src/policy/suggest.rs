//! "Did you mean": the known name closest to a misspelt one.

/// The candidate `given` most likely meant: one that starts with it (a
/// name cut short), else the nearest by edit distance when that is small
/// against the name's length (at most a third of it, and at least 2).
pub fn closest<'a>(given: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let candidates: Vec<&str> = candidates.into_iter().collect();
    if given.len() >= 3 {
        let mut extended = candidates
            .iter()
            .filter(|candidate| candidate.starts_with(given));
        if let (Some(only), None) = (extended.next(), extended.next()) {
            return Some(only);
        }
    }
    let length = given.chars().count();
    let bound = (length / 3).max(2);
    candidates
        .into_iter()
        // The distance is at least the difference in length: skipping those
        // keeps a hostile megabyte-long "id" from costing seconds.
        .filter(|candidate| candidate.chars().count().abs_diff(length) <= bound)
        .map(|candidate| (strsim::levenshtein(given, candidate), candidate))
        .filter(|(distance, _)| *distance <= bound)
        .min()
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDS: &[&str] = &[
        "metric-name-lowercase",
        "hpa-target-sanity",
        "hpa-stabilization-defaults",
    ];

    #[test]
    fn a_cut_short_or_misspelt_name_finds_its_rule() {
        let ids = || IDS.iter().copied();
        assert_eq!(
            closest("metric-name-lower", ids()),
            Some("metric-name-lowercase")
        );
        assert_eq!(
            closest("hpa-target-sanety", ids()),
            Some("hpa-target-sanity")
        );
        assert_eq!(closest("hpa-", ids()), None, "two rules start with it");
        assert_eq!(closest("shm", ids()), None);
        assert_eq!(closest(&"x".repeat(1_000_000), ids()), None);
    }
}
