//! Writing fixes into YAML files: the engine's RFC 6902 patches become text
//! edits at the spans of the nodes they touch, and nothing else changes.
//!
//! Fixing runs in passes, as ruff does: lint, pick fixes whose paths do not
//! overlap, edit the text, re-parse and check that the result is exactly
//! the patched objects, then lint again. A fix that cannot be placed
//! exactly, or whose result does not re-parse to the patched objects, is
//! left out and reported; the file is never half-edited.

pub mod emit;
pub mod text_edit;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use json_patch::PatchOperation;
use serde_json::Value;

use crate::engine::finding::{Applicability, Finding};
use crate::engine::{ClusterFacts, Engine, Outcome};
use crate::input::loader::{self, Loaded};
use crate::input::object::Object;
use crate::input::source::SourceFile;
use rayon::prelude::*;
use text_edit::TextEdit;

/// At most this many lint-and-edit passes.
const MAX_PASSES: usize = 16;

#[derive(Debug, Clone, Copy, Default)]
pub struct FixOptions {
    /// Also apply fixes marked unsafe.
    pub unsafe_fixes: bool,
}

/// The outcome of fixing a set of sources (nothing is written here).
#[derive(Debug, Default)]
pub struct FixResult {
    /// Every source, in input order, with its text after fixing.
    pub files: Vec<FixedFile>,
    /// Findings whose fix was applied.
    pub applied: usize,
    /// Of the findings the first pass saw with a fix that may be applied
    /// (what a lint's summary counts as fixable), how many are gone at the
    /// end: a fix may also resolve another finding, so this is what the
    /// summary promised, not `applied`.
    pub resolved: usize,
    /// Findings that only later passes saw: the earlier fixes uncovered
    /// them (a converted HPA version gets the defaults of the new one).
    pub uncovered: usize,
    /// The patches applied, in order, by object index in the input (the
    /// objects and their order never change while fixing).
    pub patches: Vec<(usize, json_patch::Patch)>,
    /// Fixes that were left out, and why.
    pub skipped: Vec<String>,
    /// The last pass's input and outcome, when it ran on exactly the texts
    /// in `files` and found nothing more to fix: the report of a `--fix`
    /// run, without loading and checking everything once more.
    pub settled: Option<(Loaded, Outcome)>,
}

#[derive(Debug, Clone)]
pub struct FixedFile {
    pub name: String,
    pub original: Arc<SourceFile>,
    pub text: String,
}

impl FixedFile {
    pub fn changed(&self) -> bool {
        self.original.text != self.text
    }
}

/// What one pass did: the new texts of the files it changed, how many
/// fixes and which patches it applied.
struct PassOutcome {
    /// The edited files: name, new text, and the text as read back (the
    /// next pass reads it rather than parsing it again).
    texts: Vec<Edited>,
    /// [`finding_key`] of each finding fixed.
    keys: Vec<String>,
    patches: Vec<(usize, json_patch::Patch)>,
}

/// What identifies a finding across passes.
fn finding_key(finding: &Finding) -> String {
    format!(
        "{}|{}|{}|{}|{}",
        finding.rule,
        finding.file(),
        finding
            .object
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        finding.pointer,
        finding.message
    )
}

/// Whether two JSON pointers touch the same node or one contains the other.
fn overlaps(a: &str, b: &str) -> bool {
    let contains =
        |outer: &str, inner: &str| inner == outer || inner.starts_with(&format!("{outer}/"));
    contains(a, b) || contains(b, a)
}

/// The operations of a fix, by object index.
fn fix_operations(finding: &Finding) -> Vec<(usize, &[PatchOperation])> {
    let Some(fix) = &finding.fix else {
        return Vec::new();
    };
    let mut operations = Vec::new();
    if let Some(index) = finding.object_index {
        operations.push((index, fix.patch.0.as_slice()));
    }
    for related in &fix.related {
        operations.push((related.object_index, related.patch.0.as_slice()));
    }
    operations
}

/// Fix `sources` in memory with the engine's fixes.
pub fn fix_sources(
    engine: &Engine,
    sources: Vec<Arc<SourceFile>>,
    facts: &ClusterFacts,
    options: FixOptions,
) -> FixResult {
    fix_sources_except(engine, sources, facts, options, &|_| None)
}

/// [`fix_sources`], leaving alone the findings `suppress` gives a reason
/// for (a repository config's per-path ignores): they are not fixed.
pub fn fix_sources_except(
    engine: &Engine,
    sources: Vec<Arc<SourceFile>>,
    facts: &ClusterFacts,
    options: FixOptions,
    suppress: &dyn Fn(&crate::engine::finding::Finding) -> Option<String>,
) -> FixResult {
    let mut texts: Vec<String> = sources.iter().map(|source| source.text.clone()).collect();
    let position: HashMap<String, usize> = sources
        .iter()
        .enumerate()
        .map(|(index, source)| (source.name.clone(), index))
        .collect();
    let mut blocked: HashSet<String> = HashSet::new();
    let mut result = FixResult::default();
    let mut passes = 0;
    // The findings of the first pass a fix may be applied to: what the
    // summary of a lint counts.
    let mut fixable_at_first: Option<HashSet<String>> = None;
    // Each pass reads the files as the last one left them: the files it
    // edited as their verification read them back, the others as they were.
    let mut loaded = loader::parse_all(sources.clone());
    while passes < MAX_PASSES {
        passes += 1;
        let mut outcome = engine.run(&loaded, facts);
        outcome.suppress_where(suppress);
        let fixable_now = || -> HashSet<String> {
            outcome
                .findings
                .iter()
                .filter(|finding| may_fix(finding, options))
                .map(finding_key)
                .collect()
        };
        let first = fixable_at_first.get_or_insert_with(fixable_now);
        let still_there = |first: &HashSet<String>| {
            outcome
                .findings
                .iter()
                .filter(|finding| first.contains(&finding_key(finding)))
                .count()
        };
        // Recounted each pass; the last pass sees the texts as they end.
        result.resolved = first.len() - still_there(first).min(first.len());
        match plan_pass(
            &loaded,
            &outcome,
            options,
            &mut blocked,
            &mut result.skipped,
        ) {
            Some(PassOutcome {
                texts: edited,
                keys,
                patches: applied,
            }) => {
                result.uncovered += keys.iter().filter(|key| !first.contains(*key)).count();
                result.applied += keys.len();
                result.patches.extend(applied);
                drop(outcome);
                let mut reread = HashMap::new();
                for (name, text, reading) in edited {
                    if let Some(&index) = position.get(&name) {
                        texts[index] = text;
                        reread.insert(name, reading);
                    }
                }
                loaded = replace_files(loaded, reread).unwrap_or_else(|| {
                    loader::parse_all(
                        sources
                            .iter()
                            .zip(&texts)
                            .map(|(source, text)| source.with_text(text.clone()))
                            .collect(),
                    )
                });
            }
            None => {
                result.settled = Some((loaded, outcome));
                break;
            }
        }
    }
    result.files = sources
        .into_iter()
        .zip(texts)
        .map(|(original, text)| FixedFile {
            name: original.name.clone(),
            original,
            text,
        })
        .collect();
    result
}

/// `loaded` with the files of `reread` replaced by their new reading, in
/// the same order. [`loader::parse_all`] keeps each file's objects,
/// documents and problems together and in file order, so the others move
/// over as they are; `None` if an item is not where that order puts it
/// (the caller then reads every file again).
fn replace_files(loaded: Loaded, mut reread: HashMap<String, Loaded>) -> Option<Loaded> {
    let Loaded {
        files,
        objects,
        documents,
        problems,
    } = loaded;
    let mut objects = objects.into_iter().peekable();
    let mut documents = documents.into_iter().peekable();
    let mut problems = problems.into_iter().peekable();
    let mut out = Loaded::default();
    for file in files {
        let of_file = |source: &Arc<SourceFile>| Arc::ptr_eq(source, &file);
        let old_objects = std::iter::from_fn(|| objects.next_if(|item| of_file(&item.source)));
        let old_documents = std::iter::from_fn(|| documents.next_if(|item| of_file(&item.source)));
        let old_problems = std::iter::from_fn(|| problems.next_if(|item| of_file(&item.source)));
        match reread.remove(&file.name) {
            Some(part) => {
                old_objects.for_each(drop);
                old_documents.for_each(drop);
                old_problems.for_each(drop);
                out.files.extend(part.files);
                out.objects.extend(part.objects);
                out.documents.extend(part.documents);
                out.problems.extend(part.problems);
            }
            None => {
                out.objects.extend(old_objects);
                out.documents.extend(old_documents);
                out.problems.extend(old_problems);
                out.files.push(file);
            }
        }
    }
    let all_placed = objects.next().is_none()
        && documents.next().is_none()
        && problems.next().is_none()
        && reread.is_empty();
    all_placed.then_some(out)
}

/// One pass: choose fixes, edit, verify. Returns the new texts of the files
/// it changed, how many fixes and which patches it applied, or `None` when nothing more can
/// be fixed.
fn plan_pass(
    loaded: &Loaded,
    outcome: &Outcome,
    options: FixOptions,
    blocked: &mut HashSet<String>,
    skipped: &mut Vec<String>,
) -> Option<PassOutcome> {
    loop {
        let chosen = choose_fixes(outcome, options, blocked);
        if chosen.is_empty() {
            return None;
        }
        match build_edits(loaded, &chosen) {
            Ok(texts) => {
                let patches = chosen
                    .iter()
                    .flat_map(|finding| fix_operations(finding))
                    .map(|(index, operations)| (index, json_patch::Patch(operations.to_vec())))
                    .collect();
                return Some(PassOutcome {
                    texts,
                    keys: chosen.iter().map(|finding| finding_key(finding)).collect(),
                    patches,
                });
            }
            Err((finding, reason)) => {
                skipped.push(format!(
                    "{}:{}:{}: {} fix not applied: {reason}",
                    finding.file(),
                    finding.location.line,
                    finding.location.column,
                    finding.rule
                ));
                blocked.insert(finding_key(finding));
            }
        }
    }
}

/// Whether `--fix` (with these options) applies a finding's fix: it has
/// one, it is not suppressed, and it is safe or unsafe fixes are on.
fn may_fix(finding: &Finding, options: FixOptions) -> bool {
    finding.suppressed.is_none()
        && finding
            .fix
            .as_ref()
            .is_some_and(|fix| fix.applicability == Applicability::Safe || options.unsafe_fixes)
}

fn choose_fixes<'a>(
    outcome: &'a Outcome,
    options: FixOptions,
    blocked: &HashSet<String>,
) -> Vec<&'a Finding> {
    let mut claimed: HashMap<usize, Vec<String>> = HashMap::new();
    let mut chosen = Vec::new();
    for finding in &outcome.findings {
        if !may_fix(finding, options) || blocked.contains(&finding_key(finding)) {
            continue;
        }
        let operations = fix_operations(finding);
        let paths: Vec<(usize, String)> = operations
            .iter()
            .flat_map(|(index, ops)| {
                ops.iter().flat_map(move |operation| {
                    let mut paths = vec![(*index, operation.path().to_string())];
                    if let PatchOperation::Move(moved) = operation {
                        paths.push((*index, moved.from.to_string()));
                    }
                    paths
                })
            })
            .collect();
        let free = paths.iter().all(|(index, path)| {
            claimed
                .get(index)
                .is_none_or(|taken| taken.iter().all(|other| !overlaps(other, path)))
        });
        if free {
            for (index, path) in paths {
                claimed.entry(index).or_default().push(path);
            }
            chosen.push(finding);
        }
    }
    chosen
}

/// Edit the files for the chosen fixes and verify each edited file. On
/// failure, name the finding whose fix could not be placed.
fn build_edits<'a>(
    loaded: &Loaded,
    chosen: &[&'a Finding],
) -> Result<Texts, (&'a Finding, String)> {
    let items: Vec<Owned<&'a Finding>> = chosen
        .iter()
        .map(|finding| (*finding, fix_operations(finding)))
        .collect();
    edit_files(loaded, &items).map_err(|(owner, reason)| match owner {
        Some(finding) => (finding, reason),
        None => unreachable_blame(chosen),
    })
}

/// Write one patch of an object into its file, verified as fixes are (the
/// edited file reads back as exactly the patched objects): the new text
/// of the file, or why it could not be placed. `infergate tune --write`
/// uses it.
pub fn patch_file(
    loaded: &Loaded,
    index: usize,
    operations: &[PatchOperation],
) -> Result<Option<(String, String)>, String> {
    edit_files(loaded, &[((), vec![(index, operations)])])
        .map(|texts| texts.into_iter().next().map(|(name, text, _)| (name, text)))
        .map_err(|(_, reason)| reason)
}

/// An edited file: its name, its new text, and that text as read back.
type Edited = (String, String, Loaded);

/// Edited files.
type Texts = Vec<Edited>;

/// One edited file checked: its name, new text and reading, nothing when
/// it is not in the input, or the owner to blame and why it was refused.
type Verified<T> = Result<Option<Edited>, (Option<T>, String)>;

/// Patches by object index, owned by a `T` (the finding they fix).
type Owned<'p, T> = (T, Vec<(usize, &'p [PatchOperation])>);

/// One patch of one object: its owner, the object's index and the object,
/// the operations.
type ObjectPatch<'p, T> = (T, usize, &'p Object, &'p [PatchOperation]);

/// A file's patched objects by index and the text edits that patch them.
type FileEdit = (HashMap<usize, Value>, Vec<TextEdit>);

/// Edit the files for some patches, each owned by a `T` (a finding), and
/// verify each edited file; on failure, the owner of the patch that could
/// not be placed, when one is known.
fn edit_files<T: Copy + Send + Sync>(
    loaded: &Loaded,
    items: &[Owned<'_, T>],
) -> Result<Texts, (Option<T>, String)> {
    // The patches of each file, in the order of the items. Ordered by file
    // name, so that the first refusal reported is the same from one run to
    // the next.
    let mut patches_of: BTreeMap<&str, Vec<ObjectPatch<'_, T>>> = BTreeMap::new();
    for (finding, patches) in items {
        for &(index, operations) in patches {
            let object = loaded.objects.get(index).ok_or((
                Some(*finding),
                "the fix names an unknown object".to_string(),
            ))?;
            patches_of
                .entry(object.source.name.as_str())
                .or_default()
                .push((*finding, index, object, operations));
        }
    }
    // Each file is edited and verified (parsed back and compared) on its
    // own, in parallel; files and objects are found by name through one
    // index, not a scan of the input per file (quadratic on 10,000 files).
    let sources: HashMap<&str, &Arc<SourceFile>> = loaded
        .files
        .iter()
        .map(|file| (file.name.as_str(), file))
        .collect();
    let mut objects_of: HashMap<&str, Vec<usize>> = HashMap::new();
    for (index, object) in loaded.objects.iter().enumerate() {
        objects_of
            .entry(object.source.name.as_str())
            .or_default()
            .push(index);
    }
    let mut problems_of: HashMap<&str, Vec<&loader::LoadProblem>> = HashMap::new();
    for problem in &loaded.problems {
        problems_of
            .entry(problem.source.name.as_str())
            .or_default()
            .push(problem);
    }
    let verified: Vec<Verified<T>> = patches_of
        .into_par_iter()
        .map(|(name, patches)| {
            let Some(source) = sources.get(name) else {
                return Ok(None);
            };
            let (values, file_edits) = edit_file(source, &patches)?;
            let indices = objects_of.get(name).map_or(&[][..], Vec::as_slice);
            let problems = problems_of.get(name).map_or(&[][..], Vec::as_slice);
            let blame = patches.first().map(|(finding, ..)| *finding);
            verify_edit(loaded, source, indices, problems, &values, file_edits)
                .map(|(text, reread)| Some((name.to_string(), text, reread)))
                .map_err(|reason| (blame, reason))
        })
        .collect();
    // The first failure in file order.
    verified.into_iter().filter_map(Result::transpose).collect()
}

/// The text edits of one file's patches, in order, and its patched
/// objects by index; or the owner of the patch that could not be placed
/// and why.
fn edit_file<T: Copy>(
    source: &SourceFile,
    patches: &[ObjectPatch<'_, T>],
) -> Result<FileEdit, (Option<T>, String)> {
    let layout = text_edit::detect_layout(&source.text);
    let mut values: HashMap<usize, Value> = HashMap::new();
    let mut edits = Vec::new();
    for &(finding, index, object, operations) in patches {
        let value = values.entry(index).or_insert_with(|| object.value.clone());
        for operation in operations {
            let new_edits = text_edit::edits_for(object, value, operation, layout)
                .map_err(|error| (Some(finding), error.to_string()))?;
            json_patch::patch(value, std::slice::from_ref(operation))
                .map_err(|error| (Some(finding), format!("the patch does not apply: {error}")))?;
            edits.extend(new_edits);
        }
    }
    Ok((values, edits))
}

/// Apply `file_edits` to `source` and check that the new text reads back
/// as exactly the patched objects (`values` by object index, the others
/// as they were) with no problem beside the file's own `problems`: the new
/// text and its reading (in the file's scope, as the next pass reads it),
/// or why not.
fn verify_edit(
    loaded: &Loaded,
    source: &SourceFile,
    indices: &[usize],
    problems: &[&loader::LoadProblem],
    values: &HashMap<usize, Value>,
    file_edits: Vec<TextEdit>,
) -> Result<(String, Loaded), String> {
    let new_text =
        text_edit::apply(&source.text, &file_edits).map_err(|reason| reason.to_string())?;
    let expected: Vec<&Value> = indices
        .iter()
        .filter_map(|index| {
            values
                .get(index)
                .or_else(|| loaded.objects.get(*index).map(|object| &object.value))
        })
        .collect();
    let reparsed = loader::parse_source(source.with_text(new_text.clone()));
    let actual: Vec<&Value> = reparsed
        .objects
        .iter()
        .map(|object| &object.value)
        .collect();
    // A document the file already could not read (a broken one beside
    // fixable ones) does not block the others' fixes; a problem the
    // edit made does.
    let mut had: Vec<String> = problems
        .iter()
        .map(|problem| problem_signature(&problem.kind))
        .collect();
    let new_problem = reparsed.problems.iter().find(|problem| {
        let signature = problem_signature(&problem.kind);
        match had.iter().position(|known| *known == signature) {
            Some(known) => {
                had.swap_remove(known);
                false
            }
            None => true,
        }
    });
    if let Some(problem) = new_problem {
        return Err(format!(
            "the edited file would not read back: line {} of the edit is {}",
            problem.location.line,
            describe_problem(&problem.kind)
        ));
    }
    if actual.len() != expected.len() || actual.iter().zip(&expected).any(|(got, want)| got != want)
    {
        let why = match expected.len() == actual.len() {
            true => expected
                .iter()
                .zip(&actual)
                .find_map(|(want, got)| first_difference(want, got, String::new()))
                .map_or_else(
                    || "the objects differ".to_string(),
                    |(pointer, difference)| {
                        format!(
                            "at {}: {difference}",
                            crate::input::pointer::display(&pointer)
                        )
                    },
                ),
            false => format!(
                "it reads {} object(s) where {} were patched",
                actual.len(),
                expected.len()
            ),
        };
        return Err(format!(
            "the edited file would not read back as the patched objects ({why})"
        ));
    }
    Ok((new_text, reparsed))
}

/// A loader problem without its position: an edit that adds lines moves
/// the problems after it, which are still the same problems.
fn problem_signature(kind: &loader::ProblemKind) -> String {
    match kind {
        loader::ProblemKind::DuplicateKey { key, dropped, .. } => {
            format!("a second `{key}` dropping {dropped:?}")
        }
        other => describe_problem(other),
    }
}

/// A loader problem in a few words, for a refused fix.
fn describe_problem(kind: &loader::ProblemKind) -> String {
    match kind {
        loader::ProblemKind::InvalidYaml(message) => format!("invalid YAML ({message})"),
        loader::ProblemKind::DuplicateKey { key, .. } => format!("a second `{key}`"),
        other => format!("{other:?}"),
    }
}

/// The first place where `got` differs from `want`, with what each holds
/// (values cut to a few dozen characters).
fn first_difference(want: &Value, got: &Value, pointer: String) -> Option<(String, String)> {
    let short = |value: &Value| {
        let text = value.to_string();
        match text.char_indices().nth(40) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None => text,
        }
    };
    match (want, got) {
        (Value::Object(want_map), Value::Object(got_map)) => {
            for (key, want_value) in want_map {
                let child = crate::input::pointer::join(&pointer, key);
                match got_map.get(key) {
                    None => return Some((child, format!("{} is missing", short(want_value)))),
                    Some(got_value) => {
                        if let Some(found) = first_difference(want_value, got_value, child) {
                            return Some(found);
                        }
                    }
                }
            }
            got_map
                .keys()
                .find(|key| !want_map.contains_key(*key))
                .map(|key| {
                    (
                        crate::input::pointer::join(&pointer, key),
                        "an extra key".to_string(),
                    )
                })
        }
        (Value::Array(want_items), Value::Array(got_items))
            if want_items.len() == got_items.len() =>
        {
            want_items.iter().zip(got_items).enumerate().find_map(
                |(index, (want_item, got_item))| {
                    first_difference(want_item, got_item, format!("{pointer}/{index}"))
                },
            )
        }
        _ if want == got => None,
        _ => Some((
            pointer,
            format!("expected {}, read {}", short(want), short(got)),
        )),
    }
}

/// Every edited file has an owner; this keeps the error path total.
fn unreachable_blame<'a>(chosen: &[&'a Finding]) -> (&'a Finding, String) {
    (
        chosen[0],
        "internal error while placing the fix".to_string(),
    )
}

/// Write a file atomically: a temporary file in the same directory, then a
/// rename, with the original permissions, owner and group. Refuses when the
/// file changed on disk since it was read (checked again just before the
/// rename), when it is read-only, or when its owner cannot be kept. A
/// symbolic link stays a link: the file it names is written. A file with
/// other hard links is replaced under this name only: the other names keep
/// the old text (docs/linting.md, "Fixing files").
pub fn write_atomically(path: &Path, original: &str, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    // A symbolic link is kept: the file it names is what gets fixed, in
    // that file's own directory.
    let target = std::fs::canonicalize(path)?;
    let on_disk = std::fs::read_to_string(&target)?;
    if on_disk.trim_start_matches('\u{feff}') != original {
        return Err(std::io::Error::other(
            "the file changed since it was read; run again",
        ));
    }
    let metadata = std::fs::metadata(&target)?;
    if metadata.permissions().readonly() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "the file is read-only; make it writable to fix it",
        ));
    }
    let directory = target
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // The temporary file is created anew (O_CREAT|O_EXCL, which never
    // follows a link), and from here on only its descriptor is used: its
    // owner, mode and text are set on the open file, and the one use of its
    // path is the rename, in a directory where no other user can swap it.
    let mut temporary = tempfile::NamedTempFile::new_in(directory)?;
    refuse_shared_directory(directory, &metadata, temporary.as_file())?;
    if on_disk.starts_with('\u{feff}') {
        temporary.write_all("\u{feff}".as_bytes())?;
    }
    temporary.write_all(text.as_bytes())?;
    // Owner first: changing it clears the setuid and setgid bits, which the
    // mode set after it restores.
    keep_owner(temporary.as_file(), &metadata)?;
    temporary
        .as_file()
        .set_permissions(metadata.permissions())?;
    temporary.as_file().sync_all()?;
    // Another writer may have changed the file while the new text was
    // written: look again just before the rename. (What remains is the
    // moment between this look and the rename.)
    let now = std::fs::metadata(&target)?;
    let unchanged = now.len() == metadata.len()
        && now.modified().ok() == metadata.modified().ok()
        && std::fs::read_to_string(&target)? == on_disk;
    if !unchanged {
        return Err(std::io::Error::other(
            "the file changed while it was being fixed; run again",
        ));
    }
    temporary.persist(&target).map_err(|error| error.error)?;
    Ok(())
}

/// Refuse to fix in a directory where a user other than the file's owner
/// could swap the temporary file between its writing and its rename, and
/// so have a privileged fix leave a link to a file of their choosing in
/// place of the one fixed. Safe are: a sticky directory (only the owner of
/// an entry may rename it, and the temporary file is ours); a directory
/// only its owner can write, when that owner is the file's owner, the user
/// fixing or root; and a group-writable one when the user fixing owns the
/// file (the group's members could change that file anyway, so nothing is
/// gained by swapping). `us` is the temporary file, created as the user
/// fixing.
#[cfg(unix)]
fn refuse_shared_directory(
    directory: &Path,
    file: &std::fs::Metadata,
    us: &std::fs::File,
) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    let fixer = us.metadata()?.uid();
    let shared = std::fs::metadata(directory)?;
    let mode = shared.mode();
    if mode & 0o1000 != 0 {
        return Ok(());
    }
    let trusted = |uid: u32| uid == 0 || uid == fixer || uid == file.uid();
    let writers = if mode & 0o002 != 0 {
        Some("every user")
    } else if !trusted(shared.uid()) {
        Some("its owner")
    } else if mode & 0o020 != 0 && fixer != file.uid() {
        Some("its group")
    } else {
        None
    };
    match writers {
        None => Ok(()),
        Some(writers) => Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "not fixed: {} can be written by {writers} (mode {:o}, owner uid {}), who could swap the file while it is replaced; run the fix as the file's owner (uid {}), or make the directory sticky or writable by its owner only",
                directory.display(),
                mode & 0o7777,
                shared.uid(),
                file.uid()
            ),
        )),
    }
}

#[cfg(not(unix))]
fn refuse_shared_directory(
    _directory: &Path,
    _file: &std::fs::Metadata,
    _us: &std::fs::File,
) -> std::io::Result<()> {
    Ok(())
}

/// Give the new file the owner and group of the old one, or refuse: a fix
/// run as root must not hand a user's file to root.
#[cfg(unix)]
fn keep_owner(file: &std::fs::File, original: &std::fs::Metadata) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    let current = file.metadata()?;
    if current.uid() == original.uid() && current.gid() == original.gid() {
        return Ok(());
    }
    std::os::unix::fs::fchown(file, Some(original.uid()), Some(original.gid())).map_err(|error| {
        std::io::Error::new(
            error.kind(),
            format!("cannot keep the file's owner and group ({error}); not fixed"),
        )
    })
}

#[cfg(not(unix))]
fn keep_owner(_file: &std::fs::File, _original: &std::fs::Metadata) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The reading each pass reuses (the edited files as verification read
    /// them back, the others moved over) is what reading every fixed file
    /// again gives: the same objects, positions and problems, in order.
    #[test]
    fn each_pass_reads_what_a_fresh_read_of_the_texts_gives() {
        let engine = Engine::new(crate::policy::Policy::built_in().expect("built-in policy"));
        let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/fix");
        let mut names: Vec<_> = std::fs::read_dir(&directory)
            .expect("testdata/fix")
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.to_string_lossy().ends_with(".yaml"))
            .filter(|path| !path.to_string_lossy().ends_with(".fixed.yaml"))
            .collect();
        names.sort();
        let sources: Vec<Arc<SourceFile>> = names
            .iter()
            .map(|path| {
                let text = std::fs::read_to_string(path).expect("fixture");
                SourceFile::in_scope(path.display().to_string(), text, "fixtures".to_string())
            })
            .collect();
        let result = fix_sources(
            &engine,
            sources,
            &ClusterFacts::default(),
            FixOptions { unsafe_fixes: true },
        );
        assert!(result.applied > 10, "{} fixes", result.applied);
        let (settled, _) = result.settled.as_ref().expect("a settled pass");
        let fresh = loader::parse_all(
            result
                .files
                .iter()
                .map(|file| file.original.with_text(file.text.clone()))
                .collect(),
        );
        let names = |loaded: &Loaded| -> Vec<String> {
            loaded.files.iter().map(|file| file.name.clone()).collect()
        };
        assert_eq!(names(settled), names(&fresh));
        let objects = |loaded: &Loaded| -> Vec<(String, Value, String)> {
            loaded
                .objects
                .iter()
                .map(|object| {
                    let spec = object
                        .locate("/spec")
                        .map(|location| format!("{location:?}"));
                    (
                        object.source.name.clone(),
                        object.value.clone(),
                        spec.unwrap_or_default(),
                    )
                })
                .collect()
        };
        assert_eq!(objects(settled), objects(&fresh));
        let problems = |loaded: &Loaded| -> Vec<String> {
            loaded
                .problems
                .iter()
                .map(|problem| {
                    format!(
                        "{} {:?} {:?}",
                        problem.source.name, problem.location, problem.kind
                    )
                })
                .collect()
        };
        assert_eq!(problems(settled), problems(&fresh));
        assert_eq!(settled.documents.len(), fresh.documents.len());
    }

    /// A refused fix names the node that would not read back and what it
    /// held (#31 item 9), not only that something differs.
    #[test]
    fn the_first_difference_is_named_with_both_values() {
        let want = json!({"spec": {"args": ["--port", "8000"], "replicas": 2}});
        let got = json!({"spec": {"args": ["--port", 8000], "replicas": 2}});
        assert_eq!(
            first_difference(&want, &got, String::new()),
            Some((
                "/spec/args/1".to_string(),
                "expected \"8000\", read 8000".to_string()
            ))
        );
        let missing = json!({"spec": {"replicas": 2}});
        assert_eq!(
            first_difference(&want, &missing, String::new()).map(|(pointer, _)| pointer),
            Some("/spec/args".to_string())
        );
        assert_eq!(first_difference(&want, &want, String::new()), None);
    }
}
