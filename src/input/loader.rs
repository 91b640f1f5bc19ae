//! Reading YAML files into Kubernetes objects with a position for every node.
//!
//! saphyr parses with spans on every node; the tree is turned into the
//! `serde_json::Value` that rules see while a [`PositionMap`] records where
//! each JSON pointer is written. Scalars are resolved the way Kubernetes
//! reads YAML (YAML 1.1 rules of go-yaml v2, used by sigs.k8s.io/yaml):
//! an unquoted `yes`, `on` or `y` is a boolean, `0755` is octal.

use std::cell::Cell;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use rayon::prelude::*;
use regex::Regex;
use saphyr::{MarkedYaml, ScalarStyle, YamlData, YamlLoader};
use serde_json::{Map, Number, Value};

use crate::input::nesting;
use crate::input::object::{NodeSpan, Object, PositionMap};
use crate::input::pointer;
use crate::input::source::{Location, SourceFile};

/// An input named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Stdin,
    /// Standard input, named as this path (`--stdin-filename`): shown as
    /// it, filtered by the config's globs and placed in its application
    /// like the file it stands for.
    StdinAs(PathBuf),
    File(PathBuf),
    /// A path a directory walk found but does not read, and why: it is
    /// reported as a finding, never read.
    Skipped(PathBuf, &'static str),
}

/// The largest file read: far above the apiserver's 3 MiB request limit,
/// small enough that `/dev/zero` or a stray dump cannot exhaust memory.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// A path that could not be read at all: a usage problem, not a finding.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Unreadable {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read standard input: {0}")]
    Stdin(#[source] std::io::Error),
    #[error("{path} holds no YAML file (*.yaml, *.yml, *.tftpl, *.yaml.tpl), so there is nothing to lint")]
    NoYaml { path: String },
}

/// A file-level problem that is reported as a finding (the other files are
/// still linted).
#[derive(Debug, Clone)]
pub struct LoadProblem {
    pub source: Arc<SourceFile>,
    pub location: Location,
    pub kind: ProblemKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemKind {
    /// The YAML parser rejected the text; the message is the parser's.
    InvalidYaml(String),
    /// The text nests deeper than [`nesting::MAX_DEPTH`].
    TooDeep,
    /// The input's aliases expand past [`nesting::MAX_ALIAS_NODES`]; the
    /// documents from this one on that use aliases are not read.
    TooManyAliases,
    /// A mapping writes a key twice; the later value is kept.
    DuplicateKey {
        key: String,
        first_line: usize,
        second_line: usize,
        /// The value written first, which is dropped, when it is a scalar
        /// on the key's line.
        dropped: Option<String>,
    },
    /// A document has metadata or spec and `kind` without `apiVersion`, or
    /// the reverse: the apiserver rejects it.
    IncompleteObject { missing: &'static str },
    /// The file holds Helm template markers and must be rendered first.
    HelmTemplate,
    /// The file was not read (not a regular file, too large, not UTF-8):
    /// the reason, as the finding's message.
    Unread(String),
}

/// A YAML document that is not a Kubernetes object (no apiVersion/kind),
/// such as Helm values; kept because some rules read them.
#[derive(Debug, Clone)]
pub struct Document {
    pub value: Value,
    pub source: Arc<SourceFile>,
    pub document: usize,
    pub positions: PositionMap,
}

/// Everything read from the inputs.
#[derive(Debug, Default)]
pub struct Loaded {
    pub files: Vec<Arc<SourceFile>>,
    pub objects: Vec<Object>,
    pub documents: Vec<Document>,
    pub problems: Vec<LoadProblem>,
}

/// Expand directories (recursively, `*.yaml` and `*.yml`, in a stable order).
/// A path that does not exist is an error.
pub fn expand_inputs(inputs: &[Input]) -> Result<Vec<Input>, LoadError> {
    let mut expanded = Vec::new();
    for input in inputs {
        match input {
            Input::Stdin | Input::StdinAs(_) => expanded.push(input.clone()),
            Input::Skipped(..) => expanded.push(input.clone()),
            Input::File(path) => {
                let metadata = std::fs::metadata(path).map_err(|source| LoadError::Unreadable {
                    path: path.display().to_string(),
                    source,
                })?;
                if metadata.is_dir() {
                    let root = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
                    let before = expanded.len();
                    walk_directory(path, &root, &mut expanded)?;
                    // A typo'd or empty directory must not pass as a green run.
                    if expanded.len() == before {
                        return Err(LoadError::NoYaml {
                            path: path.display().to_string(),
                        });
                    }
                } else {
                    expanded.push(Input::File(path.clone()));
                }
            }
        }
    }
    // `lint .` names `a.yaml`, not `./a.yaml`, as ruff and kube-linter do:
    // the name is what reports, fingerprints and config globs see.
    for input in &mut expanded {
        match input {
            Input::File(path) | Input::Skipped(path, _) | Input::StdinAs(path) => {
                *path = without_leading_dot(path)
            }
            Input::Stdin => {}
        }
    }
    Ok(expanded)
}

/// A directory named on the command line as the paths a walk of it
/// yields begin: `./apps` as `apps`, and `.` (or `./`) as the empty path,
/// since `lint .` names `apps/x.yaml`, not `./apps/x.yaml`. Applications are
/// found below this root, so `lint .` groups files as `lint ../repo` does.
fn walk_root(path: &Path) -> PathBuf {
    let trimmed = without_leading_dot(path);
    if trimmed
        .components()
        .all(|component| matches!(component, std::path::Component::CurDir))
    {
        PathBuf::new()
    } else {
        trimmed
    }
}

/// `path` without leading `./` components (`.` itself stays).
fn without_leading_dot(path: &Path) -> PathBuf {
    let trimmed: PathBuf = path
        .components()
        .skip_while(|component| matches!(component, std::path::Component::CurDir))
        .collect();
    if trimmed.as_os_str().is_empty() {
        path.to_path_buf()
    } else {
        trimmed
    }
}

/// Walk a directory for YAML files. Only regular files are read: a FIFO
/// would block the run, a device (`/dev/zero`) would never end. A symbolic
/// link is followed to a regular file inside the tree being walked; one
/// that is broken, or leads out of the tree (to `/proc/self/environ`, whose
/// text the snippet would print into CI logs), is reported, not read.
fn walk_directory(directory: &Path, root: &Path, found: &mut Vec<Input>) -> Result<(), LoadError> {
    // What git would not commit is not linted: `.gitignore` (also outside a
    // git work tree, and those of parent directories), `.git/info/exclude`
    // and `.ignore`, as ripgrep and ruff read them. Hidden directories
    // (`.github/`) are walked; `.git/` is not. A directory named on the
    // command line is walked even when ignored.
    let walker = ignore::WalkBuilder::new(directory)
        .standard_filters(false)
        .git_ignore(true)
        .git_exclude(true)
        .ignore(true)
        .parents(true)
        .require_git(false)
        .follow_links(false)
        .sort_by_file_name(|left, right| left.cmp(right))
        .filter_entry(|entry| entry.file_name() != ".git")
        .build();
    for entry in walker {
        let entry = match entry {
            Ok(entry) => entry,
            Err(error) => match error.into_io_error() {
                Some(source) => {
                    return Err(LoadError::Unreadable {
                        path: directory.display().to_string(),
                        source,
                    })
                }
                // A malformed ignore file: its other lines still apply.
                None => continue,
            },
        };
        if entry.depth() == 0 {
            continue;
        }
        let path = entry.path().to_path_buf();
        let Some(file_type) = entry.file_type() else {
            continue;
        };
        // Symbolic links to directories are not followed, so a link cycle
        // cannot make the walk endless.
        if file_type.is_dir() || !is_yaml_file(&path) {
            continue;
        } else if file_type.is_file() {
            found.push(Input::File(path));
        } else if file_type.is_symlink() {
            let target = std::fs::canonicalize(&path);
            let regular = std::fs::metadata(&path).is_ok_and(|metadata| metadata.is_file());
            match target {
                Err(_) => found.push(Input::Skipped(path, "a broken symbolic link")),
                Ok(_) if !regular => found.push(Input::Skipped(
                    path,
                    "a symbolic link to something that is not a regular file",
                )),
                Ok(target) if !target.starts_with(root) => found.push(Input::Skipped(
                    path,
                    "a symbolic link out of the directory being linted",
                )),
                Ok(_) => found.push(Input::File(path)),
            }
        } else {
            found.push(Input::Skipped(
                path,
                "not a regular file (a FIFO, socket or device)",
            ));
        }
    }
    Ok(())
}

/// YAML files, and YAML templates rendered by Terraform (`x.tftpl`,
/// `x.yaml.tftpl`, `x.yaml.tpl`). A bare `*.tpl` is left out: in a Helm
/// chart it holds `define`s, not a manifest.
fn is_yaml_file(path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or_default();
    matches!(
        path.extension().and_then(|extension| extension.to_str()),
        Some("yaml" | "yml" | "tftpl")
    ) || name.ends_with(".yaml.tpl")
        || name.ends_with(".yml.tpl")
}

/// Whether a file is a Terraform template (`x.tftpl.yaml`, `x.yaml.tftpl`,
/// `x.tpl.yaml`): its `%{ if … }` directives are blanked before parsing.
fn is_terraform_template(name: &str) -> bool {
    let file = name.rsplit(['/', '\\']).next().unwrap_or(name);
    file.split('.')
        .skip(1)
        .any(|part| part == "tftpl" || part == "tpl")
}

static TERRAFORM_DIRECTIVE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"%\{~?\s*(if|else|endif|for|endfor)\b[^}]*~?\}")
        .unwrap_or_else(|error| unreachable!("static pattern: {error}"))
});

/// The text of a template with its directives replaced by spaces, so that
/// every other character keeps its line and column.
fn without_directives(text: &str) -> std::borrow::Cow<'_, str> {
    TERRAFORM_DIRECTIVE.replace_all(text, |captures: &regex::Captures<'_>| {
        " ".repeat(captures[0].len())
    })
}

/// Read and parse every input, files in parallel. Standard input is read
/// once.
pub fn load(inputs: &[Input]) -> Result<Loaded, LoadError> {
    Ok(parse_all(read_sources(inputs)?))
}

/// Read every input (directories expanded), files in parallel.
pub fn read_sources(inputs: &[Input]) -> Result<Vec<Arc<SourceFile>>, LoadError> {
    read_sources_where(inputs, &|_| true).map(|(sources, _)| sources)
}

/// Read every input like [`read_sources`], but only the files (found in a
/// directory or named) that `keep` accepts; standard input is always read.
/// Also returns the paths left out, so that a run can say so.
pub fn read_sources_where(
    inputs: &[Input],
    keep: &(dyn Fn(&Path) -> bool + Sync),
) -> Result<(Vec<Arc<SourceFile>>, Vec<PathBuf>), LoadError> {
    let (listed, left_out) = list_inputs_where(inputs, keep)?;
    let sources = listed
        .par_iter()
        .map(|(input, scope)| read_input(input, scope))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((sources, left_out))
}

/// An input and its application scope.
type Scoped = (Input, String);

/// The inputs [`read_sources_where`] reads, each with its application
/// scope, not read yet; and the paths left out.
fn list_inputs_where(
    inputs: &[Input],
    keep: &(dyn Fn(&Path) -> bool + Sync),
) -> Result<(Vec<Scoped>, Vec<PathBuf>), LoadError> {
    let mut scoped = Vec::new();
    let mut left_out = Vec::new();
    for input in inputs {
        let root = match input {
            Input::File(path) if path.is_dir() => Some(walk_root(path)),
            _ => None,
        };
        let root = root.as_deref();
        for found in expand_inputs(std::slice::from_ref(input))? {
            let path = match &found {
                Input::Stdin => None,
                Input::File(path) | Input::Skipped(path, _) | Input::StdinAs(path) => Some(path),
            };
            if let Some(path) = path.filter(|path| !keep(path)) {
                left_out.push(path.clone());
                continue;
            }
            let scope = scope_of(&found, root);
            scoped.push((found, scope));
        }
    }
    Ok((scoped, left_out))
}

/// A source to check: read already, or found and placed in its
/// application but read only when its turn comes, so that a lint of many
/// applications never holds every file's text at once.
#[derive(Debug, Clone)]
pub enum Pending {
    Read(Arc<SourceFile>),
    Unread {
        input: Input,
        scope: String,
        /// The name its source will have.
        name: String,
        /// Its size on disk, 0 when unknown (standard input).
        bytes: usize,
    },
}

impl Pending {
    pub fn scope(&self) -> &str {
        match self {
            Pending::Read(source) => &source.scope,
            Pending::Unread { scope, .. } => scope,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Pending::Read(source) => &source.name,
            Pending::Unread { name, .. } => name,
        }
    }

    pub fn bytes(&self) -> usize {
        match self {
            Pending::Read(source) => source.text.len(),
            Pending::Unread { bytes, .. } => *bytes,
        }
    }
}

/// Like [`read_sources_where`], but nothing is read: the files to read,
/// each with its scope, name and size, to be read by [`read_pending`].
pub fn list_sources_where(
    inputs: &[Input],
    keep: &(dyn Fn(&Path) -> bool + Sync),
) -> Result<(Vec<Pending>, Vec<PathBuf>), LoadError> {
    let (listed, left_out) = list_inputs_where(inputs, keep)?;
    let pending = listed
        .into_iter()
        .map(|(input, scope)| {
            let (name, bytes) = match &input {
                Input::Stdin => ("<stdin>".to_string(), 0),
                Input::StdinAs(path) | Input::Skipped(path, _) => (path.display().to_string(), 0),
                Input::File(path) => {
                    let bytes = std::fs::metadata(path).map_or(0, |metadata| metadata.len());
                    (
                        path.display().to_string(),
                        usize::try_from(bytes).unwrap_or(usize::MAX),
                    )
                }
            };
            Pending::Unread {
                input,
                scope,
                name,
                bytes,
            }
        })
        .collect();
    Ok((pending, left_out))
}

/// The sources of `pending`, in order, the unread ones read in parallel.
/// A file that cannot be read now (removed or made unreadable since it was
/// found) is a source that was not read, with the reason: a finding, as a
/// file too large or not UTF-8 is, rather than an end to a run whose
/// report is already being written.
pub fn read_pending(pending: Vec<Pending>) -> Vec<Arc<SourceFile>> {
    pending
        .into_par_iter()
        .map(|pending| match pending {
            Pending::Read(source) => source,
            Pending::Unread {
                input, scope, name, ..
            } => read_input(&input, &scope).unwrap_or_else(|error| {
                SourceFile::unread(name, scope, format!("not read: {error}"))
            }),
        })
        .collect()
}

/// The name a file named on the command line gets in reports: its path
/// without a leading `./`.
pub fn display_name(path: &Path) -> String {
    without_leading_dot(path).display().to_string()
}

/// `files` (relative to the current directory, as pre-commit passes them)
/// and the other files of their applications, grouped as `lint .` run in
/// the current directory groups them: context for the rules that pair
/// objects across files. The context comes first, so that a rule that
/// reports a pair at the later object reports it at a file given. A file
/// given outside the current directory is read on its own, as without
/// this. Returns the sources and the files given that the config leaves
/// out.
pub fn read_with_applications(
    files: &[PathBuf],
    keep: &(dyn Fn(&Path) -> bool + Sync),
) -> Result<(Vec<Arc<SourceFile>>, Vec<PathBuf>), LoadError> {
    let root = PathBuf::new();
    let inside = |path: &Path| {
        path.components().all(|component| {
            matches!(
                component,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        })
    };
    let given: Vec<PathBuf> = files.iter().map(|file| without_leading_dot(file)).collect();
    // Looked up for every file the walk finds, and `pre-commit run
    // --all-files` gives every file of the repository: a set.
    let is_given: std::collections::HashSet<&Path> = given.iter().map(PathBuf::as_path).collect();
    let mut left_out = Vec::new();
    let mut named = Vec::new();
    for file in &given {
        if keep(file) {
            let input = Input::File(file.clone());
            let scope = scope_of(&input, inside(file).then_some(root.as_path()));
            named.push((input, scope));
        } else {
            left_out.push(file.clone());
        }
    }
    let wanted: std::collections::HashSet<&str> = named
        .iter()
        .filter(|(input, _)| matches!(input, Input::File(path) if inside(path)))
        .map(|(_, scope)| scope.as_str())
        .collect();
    let mut scoped = Vec::new();
    if !wanted.is_empty() {
        // Nothing else to read (every other file ignored) is no error here.
        let walked = match expand_inputs(&[Input::File(PathBuf::from("."))]) {
            Err(LoadError::NoYaml { .. }) => Vec::new(),
            other => other?,
        };
        for found in walked {
            let path = match &found {
                Input::File(path) | Input::Skipped(path, _) => path,
                Input::Stdin | Input::StdinAs(_) => continue,
            };
            if is_given.contains(path.as_path()) || !keep(path) {
                continue;
            }
            let scope = scope_of(&found, Some(&root));
            if wanted.contains(scope.as_str()) {
                scoped.push((found, scope));
            }
        }
    }
    scoped.extend(named);
    let sources = scoped
        .par_iter()
        .map(|(input, scope)| read_input(input, scope))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((sources, left_out))
}

const KUSTOMIZATION_FILES: &[&str] = &["kustomization.yaml", "kustomization.yml", "Kustomization"];

pub use crate::input::source::KUSTOMIZATION_SCOPE;

/// The application a file belongs to: the nearest directory at or above it
/// with a kustomization file, looked for up to `root` (the directory named
/// on the command line) or, for a file named on its own, up its path as
/// given. Without one, the top directory under `root` that holds the file
/// (a repository in a directory of repositories, an application in a
/// directory of applications), `root` itself for files directly in it, or
/// the directory of a file named on its own.
fn scope_of(input: &Input, root: Option<&Path>) -> String {
    let (Input::File(path) | Input::StdinAs(path)) = input else {
        return "<stdin>".to_string();
    };
    let mut directory = path.parent();
    while let Some(current) = directory {
        if KUSTOMIZATION_FILES
            .iter()
            .any(|name| current.join(name).is_file())
        {
            return format!("{KUSTOMIZATION_SCOPE}{}", current.display());
        }
        if Some(current) == root {
            break;
        }
        // `a.yaml`'s parent is the empty path: the current directory,
        // looked at only when it is the root named (`lint .`).
        directory = current
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty() || root == Some(Path::new("")));
    }
    let top = root.and_then(|root| {
        let below = path.strip_prefix(root).ok()?;
        let mut components = below.components();
        let first = components.next()?;
        // A file directly in root has no directory of its own below it.
        Some(if components.next().is_some() {
            root.join(first)
        } else {
            root.to_path_buf()
        })
    });
    top.or_else(|| path.parent().map(Path::to_path_buf))
        .map(|directory| directory.display().to_string())
        .unwrap_or_default()
}

/// Parse sources in parallel into one [`Loaded`], in the order given.
pub fn parse_all(sources: Vec<Arc<SourceFile>>) -> Loaded {
    let parsed: Vec<Loaded> = sources.into_par_iter().map(parse_source).collect();
    let mut loaded = Loaded::default();
    for part in parsed {
        loaded.files.extend(part.files);
        loaded.objects.extend(part.objects);
        loaded.documents.extend(part.documents);
        loaded.problems.extend(part.problems);
    }
    loaded
}

fn read_input(input: &Input, scope: &str) -> Result<Arc<SourceFile>, LoadError> {
    let unread = |name: String, reason: String| SourceFile::unread(name, scope.to_string(), reason);
    let (name, bytes) = match input {
        Input::Skipped(path, reason) => {
            return Ok(unread(
                path.display().to_string(),
                format!("not read: {reason}"),
            ));
        }
        Input::Stdin | Input::StdinAs(_) => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .take(MAX_FILE_BYTES + 1)
                .read_to_end(&mut bytes)
                .map_err(LoadError::Stdin)?;
            let name = match input {
                Input::StdinAs(path) => path.display().to_string(),
                _ => "<stdin>".to_string(),
            };
            (name, bytes)
        }
        Input::File(path) => {
            let unreadable = |source| LoadError::Unreadable {
                path: path.display().to_string(),
                source,
            };
            let mut bytes = Vec::new();
            std::fs::File::open(path)
                .and_then(|file| file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
                .map_err(unreadable)?;
            (path.display().to_string(), bytes)
        }
    };
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Ok(unread(
            name,
            format!(
                "not read: larger than {} MiB, the most infergate reads (the apiserver takes 3 MiB per request)",
                MAX_FILE_BYTES / (1024 * 1024)
            ),
        ));
    }
    if bytes.starts_with(&[0xff, 0xfe]) || bytes.starts_with(&[0xfe, 0xff]) {
        return Ok(unread(
            name,
            "the file is UTF-16; Kubernetes reads YAML as UTF-8: convert it (iconv -f UTF-16 -t UTF-8)".to_string(),
        ));
    }
    let mut text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) => {
            let offset = error.utf8_error().valid_up_to();
            return Ok(unread(
                name,
                format!("the file is not UTF-8: the byte at offset {offset} is not valid; save it as UTF-8"),
            ));
        }
    };
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    let patch = matches!(input, Input::File(path) if is_kustomize_patch(path));
    Ok(SourceFile::in_scope_as(
        name,
        text,
        scope.to_string(),
        patch,
    ))
}

/// Whether the nearest kustomization at or above `path` names it as a
/// patch: under `patches:` (an entry's `path`) or `patchesStrategicMerge:`.
/// Such a file is a fragment kustomize merges into an object of the base.
fn is_kustomize_patch(path: &Path) -> bool {
    let Ok(target) = std::fs::canonicalize(path) else {
        return false;
    };
    let mut directory = target.parent();
    while let Some(current) = directory {
        if let Some(file) = KUSTOMIZATION_FILES
            .iter()
            .map(|name| current.join(name))
            .find(|candidate| candidate.is_file())
        {
            return kustomization_patches(&file).contains(&target);
        }
        directory = current.parent();
    }
    false
}

/// The patch files a kustomization names, resolved and canonical. Read
/// once per kustomization (a directory of many files asks often).
fn kustomization_patches(file: &Path) -> Vec<PathBuf> {
    static CACHE: LazyLock<std::sync::Mutex<std::collections::HashMap<PathBuf, Vec<PathBuf>>>> =
        LazyLock::new(Default::default);
    if let Some(found) = CACHE.lock().ok().and_then(|cache| cache.get(file).cloned()) {
        return found;
    }
    let base = file.parent().unwrap_or(Path::new("."));
    let text = std::fs::File::open(file)
        .and_then(|handle| {
            let mut text = String::new();
            handle.take(MAX_FILE_BYTES).read_to_string(&mut text)?;
            Ok(text)
        })
        .unwrap_or_default();
    let loaded = parse_source(SourceFile::new(file.display().to_string(), text));
    let mut found = Vec::new();
    for value in loaded
        .objects
        .iter()
        .map(|object| &object.value)
        .chain(loaded.documents.iter().map(|document| &document.value))
    {
        let listed = |key: &str| {
            value
                .get(key)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        for entry in listed("patches").iter().chain(&listed("patchesJson6902")) {
            if let Some(relative) = entry.get("path").and_then(Value::as_str) {
                found.extend(std::fs::canonicalize(base.join(relative)));
            }
        }
        for entry in listed("patchesStrategicMerge") {
            if let Some(relative) = entry.as_str() {
                found.extend(std::fs::canonicalize(base.join(relative)));
            }
        }
    }
    if let Ok(mut cache) = CACHE.lock() {
        cache.insert(file.to_path_buf(), found.clone());
    }
    found
}

static HELM_MARKER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"\{\{-?\s*(\.Values|\.Release|\.Chart|\.Capabilities|\.Files|include\b|template\b|if\b|else\b|end\b|range\b|with\b|define\b|toYaml\b|tpl\b|\$)",
    )
    .unwrap_or_else(|error| unreachable!("static pattern: {error}"))
});

/// Where a text holds Helm template markers in YAML structure: at the
/// start of a line or as a whole value (`key: {{ .Values.x }}`, `- {{`).
/// Markers inside a string (`url: http://{{ .Release.Name }}-svc`, a
/// quoted value) are data, as in values files that feed `tpl`.
pub fn helm_marker(text: &str) -> Option<usize> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if !line.trim_start().starts_with('#') {
            for found in HELM_MARKER.find_iter(line) {
                let before = line[..found.start()].trim_end();
                if before.is_empty() || before.ends_with(':') || before.ends_with('-') {
                    return Some(offset + found.start());
                }
            }
        }
        offset += line.len();
    }
    None
}

/// Parse one file into objects, other documents and problems, its aliases
/// bounded by [`nesting::MAX_ALIAS_NODES`] for the whole file.
pub fn parse_source(source: Arc<SourceFile>) -> Loaded {
    let budget = Cell::new(nesting::MAX_ALIAS_NODES);
    let loaded = parse_source_within(source.clone(), &budget);
    source.set_aliased_nodes(nesting::MAX_ALIAS_NODES - budget.get());
    loaded
}

/// Parse one text of an input whose aliases draw on `alias_budget`, shared
/// with the input's other texts (the YAML documents embedded in an object
/// draw on what the object's file left).
pub fn parse_source_within(source: Arc<SourceFile>, alias_budget: &Cell<usize>) -> Loaded {
    let mut loaded = Loaded {
        files: vec![source.clone()],
        ..Loaded::default()
    };
    if let Some(reason) = &source.unread {
        loaded.problems.push(LoadProblem {
            source: source.clone(),
            location: source.location((1, 0), (1, 0)),
            kind: ProblemKind::Unread(reason.clone()),
        });
        return loaded;
    }
    if let Some(offset) = helm_marker(&source.text) {
        let (line, column) = source.line_column_of(offset);
        loaded.problems.push(LoadProblem {
            location: source.location((line, column - 1), (line, column + 1)),
            source: source.clone(),
            kind: ProblemKind::HelmTemplate,
        });
        return loaded;
    }
    let parsed_text = if is_terraform_template(&source.name) {
        without_directives(&source.text)
    } else {
        std::borrow::Cow::Borrowed(source.text.as_str())
    };
    // Each document is converted as soon as it is parsed, so that only one
    // document's YAML tree is in memory at a time.
    let mut streamed = Loaded::default();
    let budget_at_start = alias_budget.get();
    let outcome = stream_documents(&parsed_text, alias_budget, |index, document| {
        add_document(&mut streamed, &source, index, document, 0);
    });
    match outcome {
        Ok(duplicates) => {
            add_duplicates(&mut loaded, &source, duplicates, 0);
            loaded.objects.append(&mut streamed.objects);
            loaded.documents.append(&mut streamed.documents);
            loaded.problems.append(&mut streamed.problems);
        }
        Err(_) => {
            drop(streamed);
            // The documents are read again: what they expand is taken again.
            alias_budget.set(budget_at_start);
            // One broken document should not hide the others: parse each
            // document alone, its positions shifted by the lines before it.
            let mut aliases_refused = false;
            for (index, (first_line, chunk)) in split_documents(&parsed_text).iter().enumerate() {
                let line_offset = first_line - 1;
                let outcome = stream_documents(chunk, alias_budget, |_, document| {
                    add_document(&mut loaded, &source, index, document, line_offset);
                });
                match outcome {
                    Ok(duplicates) => add_duplicates(&mut loaded, &source, duplicates, line_offset),
                    Err(error) => {
                        let marker = error.marker();
                        let line = marker.line() + line_offset;
                        let location =
                            source.location((line, marker.col()), (line, marker.col() + 1));
                        let kind = if error.info() == nesting::too_deep_message() {
                            ProblemKind::TooDeep
                        } else if error.info() == nesting::alias_budget_message() {
                            // Once the budget is spent every later alias is
                            // refused too: one finding says it.
                            if aliases_refused {
                                continue;
                            }
                            aliases_refused = true;
                            ProblemKind::TooManyAliases
                        } else {
                            ProblemKind::InvalidYaml(error.info().to_string())
                        };
                        loaded.problems.push(LoadProblem {
                            source: source.clone(),
                            location,
                            kind,
                        });
                    }
                }
            }
        }
    }
    loaded
}

/// A key written twice is a finding at its second place; the document is
/// still read, with the later value (as JSON decoders keep it).
fn add_duplicates(
    loaded: &mut Loaded,
    source: &Arc<SourceFile>,
    duplicates: Vec<nesting::DuplicateKey>,
    line_offset: usize,
) {
    for duplicate in duplicates {
        let (line, column) = (
            duplicate.second.line() + line_offset,
            duplicate.second.col(),
        );
        if duplicate.is_complex() {
            loaded.problems.push(LoadProblem {
                location: source.location((line, column), (line, column + 1)),
                source: source.clone(),
                kind: ProblemKind::InvalidYaml(
                    "a mapping key here is a mapping or a sequence; Kubernetes reads only string keys".to_string(),
                ),
            });
            continue;
        }
        loaded.problems.push(LoadProblem {
            location: source.location(
                (line, column),
                (line, column + duplicate.key.chars().count()),
            ),
            source: source.clone(),
            kind: ProblemKind::DuplicateKey {
                dropped: inline_value(
                    source.line_text(duplicate.first.line() + line_offset),
                    duplicate.first.col(),
                    &duplicate.key,
                ),
                key: duplicate.key,
                first_line: duplicate.first.line() + line_offset,
                second_line: line,
            },
        });
    }
}

/// The scalar written after `key:` on a line (its comment dropped), if
/// the value is on that line: `replicas: 3  # old` gives `3`.
fn inline_value(line: &str, key_column: usize, key: &str) -> Option<String> {
    let rest: String = line.chars().skip(key_column).collect();
    let rest = rest.trim_start_matches(['"', '\'']);
    let after_key = rest.strip_prefix(key)?.trim_start_matches(['"', '\'']);
    let value = after_key.trim_start().strip_prefix(':')?;
    let value = match value.find(" #") {
        Some(comment) => &value[..comment],
        None => value,
    };
    let value = value.trim();
    (!value.is_empty() && !matches!(value, "|" | ">" | "|-" | ">-" | "|+" | ">+"))
        .then(|| value.to_string())
}

fn fresh_loader<'input>() -> YamlLoader<'input, MarkedYaml<'input>> {
    let mut loader: YamlLoader<'input, MarkedYaml<'input>> = YamlLoader::default();
    loader.early_parse(false);
    // Duplicate keys are reported by the conversion, which keeps reading.
    loader.allow_duplicate_keys(true);
    loader
}

/// Hands each document to `each` (with its index) when the parser has
/// finished it, then forgets its tree.
struct Streamed<'input, F> {
    loader: YamlLoader<'input, MarkedYaml<'input>>,
    index: usize,
    each: F,
    error: Option<saphyr::ScanError>,
}

impl<'input, F: FnMut(usize, &MarkedYaml<'input>)> saphyr_parser::SpannedEventReceiver<'input>
    for Streamed<'input, F>
{
    fn on_event(&mut self, event: saphyr_parser::Event<'input>, span: saphyr_parser::Span) {
        if self.error.is_some() {
            return;
        }
        let ends_document = matches!(event, saphyr_parser::Event::DocumentEnd);
        self.loader.on_event(event, span);
        if let Some(error) = self.loader.error() {
            self.error = Some(error.clone());
            return;
        }
        if ends_document {
            // Anchors do not cross documents, so a new loader per document
            // reads the same.
            let done = std::mem::replace(&mut self.loader, fresh_loader()).into_documents();
            for document in &done {
                (self.each)(self.index, document);
                self.index += 1;
            }
        }
    }
}

/// Parse a text's documents one at a time. On a syntax error, the
/// documents before it have been handed out already.
fn stream_documents<'input>(
    text: &'input str,
    alias_budget: &Cell<usize>,
    each: impl FnMut(usize, &MarkedYaml<'input>),
) -> Result<Vec<nesting::DuplicateKey>, saphyr::ScanError> {
    let receiver = Streamed {
        loader: fresh_loader(),
        index: 0,
        each,
        error: None,
    };
    let (receiver, duplicates) = nesting::load(text, receiver, alias_budget)?;
    match receiver.error {
        Some(error) => Err(error),
        None => Ok(duplicates),
    }
}

/// Split a multi-document text at `---` lines. Returns (1-based first line,
/// text) for each document.
fn split_documents(text: &str) -> Vec<(usize, String)> {
    let mut chunks = vec![(1, String::new())];
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let is_separator =
            line.starts_with("---") && line[3..].chars().next().is_none_or(char::is_whitespace);
        if is_separator {
            chunks.push((index + 1, String::new()));
        }
        if let Some((_, chunk)) = chunks.last_mut() {
            chunk.push_str(line);
        }
    }
    chunks.retain(|(_, chunk)| {
        chunk.lines().any(|line| {
            !line.trim().is_empty() && !line.trim_start().starts_with('#') && line.trim() != "---"
        })
    });
    chunks
}

fn add_document(
    loaded: &mut Loaded,
    source: &Arc<SourceFile>,
    index: usize,
    node: &MarkedYaml<'_>,
    line_offset: usize,
) {
    let place = Place {
        source,
        line_offset,
    };
    let mut positions = PositionMap::default();
    let value = to_json(node, String::new(), None, place, &mut positions);
    if value.is_null() {
        return;
    }
    let stated = |key: &str| value.get(key).is_some_and(|found| !found.is_null());
    let object_like = stated("metadata") || stated("spec");
    if object_like && stated("kind") != stated("apiVersion") {
        let missing = if stated("kind") { "apiVersion" } else { "kind" };
        loaded.problems.push(LoadProblem {
            source: source.clone(),
            location: positions.locate("").unwrap_or_default(),
            kind: ProblemKind::IncompleteObject { missing },
        });
    }
    let is_list = value.get("kind").and_then(Value::as_str) == Some("List")
        && value.get("items").is_some_and(Value::is_array);
    if is_list {
        let YamlData::Mapping(mapping) = &node.data else {
            return;
        };
        let items = mapping
            .iter()
            .find(|(key, _)| scalar_text(key) == Some("items"))
            .map(|(_, items)| items);
        if let Some(MarkedYaml {
            data: YamlData::Sequence(items),
            ..
        }) = items
        {
            for (item_index, item) in items.iter().enumerate() {
                let mut item_positions = PositionMap::default();
                let item_value = to_json(item, String::new(), None, place, &mut item_positions);
                push_value(
                    loaded,
                    source,
                    index,
                    format!("/items/{item_index}"),
                    item_value,
                    item_positions,
                );
            }
        }
        return;
    }
    push_value(loaded, source, index, String::new(), value, positions);
}

fn push_value(
    loaded: &mut Loaded,
    source: &Arc<SourceFile>,
    index: usize,
    base_pointer: String,
    value: Value,
    mut positions: PositionMap,
) {
    positions.seal();
    if crate::input::object::object_id(&value).is_some() {
        if let Some(object) =
            Object::from_value(value, source.clone(), index, base_pointer, positions)
        {
            loaded.objects.push(object);
        }
    } else if value.is_object() {
        loaded.documents.push(Document {
            value,
            source: source.clone(),
            document: index,
            positions,
        });
    }
}

fn scalar_text<'a>(node: &'a MarkedYaml<'_>) -> Option<&'a str> {
    match &node.data {
        YamlData::Representation(text, _, _) => Some(text),
        _ => None,
    }
}

/// Where a parsed text sits in its file: a document parsed on its own
/// starts `line_offset` lines into it.
#[derive(Clone, Copy)]
struct Place<'s> {
    source: &'s SourceFile,
    line_offset: usize,
}

fn span_location(node: &MarkedYaml<'_>, place: Place<'_>) -> Location {
    let span = node.span;
    place.source.location(
        (span.start.line() + place.line_offset, span.start.col()),
        (span.end.line() + place.line_offset, span.end.col()),
    )
}

fn to_json(
    node: &MarkedYaml<'_>,
    pointer: String,
    key: Option<Location>,
    place: Place<'_>,
    positions: &mut PositionMap,
) -> Value {
    let value_location = span_location(node, place);
    let (value, is_collection) = match &node.data {
        YamlData::Representation(text, style, tag) => {
            let tag_suffix = tag.as_ref().map(|tag| tag.suffix.as_str());
            (resolve_scalar(text, *style, tag_suffix), false)
        }
        YamlData::Value(scalar) => (scalar_value(scalar), false),
        YamlData::Sequence(items) => {
            let values = items
                .iter()
                .enumerate()
                .map(|(index, item)| {
                    to_json(item, pointer::join(&pointer, index), None, place, positions)
                })
                .collect();
            (Value::Array(values), true)
        }
        YamlData::Mapping(mapping) => {
            // Exact capacity: one map per mapping of every object is held
            // in memory, and growth by doubling wastes up to half of it.
            let mut object = Map::with_capacity(mapping.len());
            let mut merges = Vec::new();
            for (key_node, value_node) in mapping {
                let key_text = key_string(key_node);
                if is_merge_key(key_node) {
                    merges.push(value_node);
                    continue;
                }
                let key_location = span_location(key_node, place);
                let child = to_json(
                    value_node,
                    pointer::join(&pointer, &key_text),
                    Some(key_location),
                    place,
                    positions,
                );
                object.insert(key_text, child);
            }
            // YAML 1.1 merge keys, as kubectl's reader resolves them: the
            // mapping's own keys win, then the merged mappings in order.
            // Merged values keep the positions of the text they come from
            // (the anchor).
            for merged in merges {
                let sources: Vec<&MarkedYaml<'_>> = match &merged.data {
                    YamlData::Sequence(items) => items.iter().collect(),
                    _ => vec![merged],
                };
                for merged_node in sources {
                    let YamlData::Mapping(entries) = &merged_node.data else {
                        continue;
                    };
                    for (key_node, value_node) in entries {
                        let key_text = key_string(key_node);
                        if is_merge_key(key_node) || object.contains_key(&key_text) {
                            continue;
                        }
                        let child = to_json(
                            value_node,
                            pointer::join(&pointer, &key_text),
                            Some(span_location(key_node, place)),
                            place,
                            positions,
                        );
                        object.insert(key_text, child);
                    }
                }
            }
            (Value::Object(object), true)
        }
        YamlData::Tagged(_, inner) => {
            return to_json(inner, pointer, key, place, positions);
        }
        YamlData::Alias(_) | YamlData::BadValue => (Value::Null, false),
    };
    positions.insert(
        &pointer,
        NodeSpan {
            key,
            value: value_location,
            is_collection,
            end: place
                .source
                .offset_of(
                    node.span.end.line() + place.line_offset,
                    node.span.end.col(),
                )
                .max(value_location.offset),
        },
    );
    value
}

/// `<<` written as a plain key: YAML 1.1's merge key (quoted, it is data).
fn is_merge_key(node: &MarkedYaml<'_>) -> bool {
    matches!(&node.data, YamlData::Representation(text, ScalarStyle::Plain, None) if text == "<<")
}

fn key_string(node: &MarkedYaml<'_>) -> String {
    match &node.data {
        YamlData::Representation(text, _, _) => text.to_string(),
        YamlData::Value(scalar) => match scalar_value(scalar) {
            Value::String(text) => text,
            other => other.to_string(),
        },
        YamlData::Tagged(_, inner) => key_string(inner),
        _ => String::new(),
    }
}

fn scalar_value(scalar: &saphyr::Scalar<'_>) -> Value {
    match scalar {
        saphyr::Scalar::Null => Value::Null,
        saphyr::Scalar::Boolean(flag) => Value::Bool(*flag),
        saphyr::Scalar::Integer(number) => Value::from(*number),
        saphyr::Scalar::FloatingPoint(number) => float_value(number.into_inner()),
        saphyr::Scalar::String(text) => Value::String(text.to_string()),
    }
}

fn float_value(number: f64) -> Value {
    Number::from_f64(number).map_or(Value::Null, Value::Number)
}

/// Resolve a scalar as Kubernetes' YAML reader would.
pub fn resolve_scalar(text: &str, style: ScalarStyle, tag: Option<&str>) -> Value {
    match tag {
        Some("str") => return Value::String(text.to_string()),
        Some("int") => {
            return resolve_int(text).unwrap_or_else(|| Value::String(text.to_string()));
        }
        Some("float") => {
            return resolve_float(text).unwrap_or_else(|| Value::String(text.to_string()));
        }
        Some("bool") => {
            return resolve_bool(text).map_or_else(|| Value::String(text.to_string()), Value::Bool);
        }
        Some("null") => return Value::Null,
        _ => {}
    }
    if style != ScalarStyle::Plain {
        return Value::String(text.to_string());
    }
    if matches!(text, "" | "~" | "null" | "Null" | "NULL") {
        return Value::Null;
    }
    if let Some(flag) = resolve_bool(text) {
        return Value::Bool(flag);
    }
    resolve_int(text)
        .or_else(|| resolve_float(text))
        .unwrap_or_else(|| Value::String(text.to_string()))
}

fn resolve_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "y" | "Y" => {
            Some(true)
        }
        "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "n" | "N" => {
            Some(false)
        }
        _ => None,
    }
}

fn resolve_int(text: &str) -> Option<Value> {
    let cleaned = text.replace('_', "");
    let (negative, digits) = match cleaned.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, cleaned.strip_prefix('+').unwrap_or(&cleaned)),
    };
    let (digits, radix) = if let Some(hex) = digits.strip_prefix("0x") {
        (hex, 16)
    } else if let Some(binary) = digits.strip_prefix("0b") {
        (binary, 2)
    } else if let Some(octal) = digits.strip_prefix("0o") {
        (octal, 8)
    } else if digits.len() > 1 && digits.starts_with('0') {
        (&digits[1..], 8)
    } else {
        (digits, 10)
    };
    if digits.is_empty() || !digits.chars().all(|ch| ch.is_digit(radix)) {
        return None;
    }
    match i64::from_str_radix(digits, radix) {
        Ok(parsed) => Some(Value::from(if negative { -parsed } else { parsed })),
        // Larger than i64: keep the magnitude as a float, as JSON would.
        Err(_) => digits
            .parse::<f64>()
            .ok()
            .map(|number| float_value(if negative { -number } else { number })),
    }
}

static FLOAT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?$")
        .unwrap_or_else(|error| unreachable!("static pattern: {error}"))
});

fn resolve_float(text: &str) -> Option<Value> {
    match text {
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF"
        | ".nan" | ".NaN" | ".NAN" => Some(Value::String(text.to_string())),
        _ if FLOAT.is_match(text) => text.replace('_', "").parse::<f64>().ok().map(float_value),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::pointer::Lookup;

    fn parse(text: &str) -> Loaded {
        parse_source(SourceFile::new("t.yaml", text.to_string()))
    }

    #[test]
    fn listed_files_are_read_in_their_turn_and_a_vanished_one_is_not_read() {
        let directory = tempfile::tempdir().expect("tempdir");
        let kept = directory.path().join("app/a.yaml");
        let vanished = directory.path().join("app/b.yaml");
        std::fs::create_dir_all(directory.path().join("app")).expect("mkdir");
        std::fs::write(&kept, "kind: ConfigMap\n").expect("write");
        std::fs::write(&vanished, "kind: Secret\n").expect("write");
        let inputs = [Input::File(directory.path().to_path_buf())];
        let (pending, left_out) = list_sources_where(&inputs, &|_| true).expect("listed");
        assert!(left_out.is_empty());
        let sizes: Vec<(bool, usize)> = pending
            .iter()
            .map(|pending| (pending.name().ends_with("a.yaml"), pending.bytes()))
            .collect();
        assert_eq!(sizes, vec![(true, 16), (false, 13)]);
        assert!(pending
            .iter()
            .all(|pending| pending.scope() == pending_scope(pending)));
        std::fs::remove_file(&vanished).expect("remove");
        let sources = read_pending(pending);
        assert_eq!(sources.len(), 2);
        assert_eq!(sources[0].text, "kind: ConfigMap\n");
        assert!(sources[0].unread.is_none());
        let reason = sources[1].unread.as_deref().unwrap_or_default();
        assert!(reason.starts_with("not read: cannot read"), "{reason}");
        assert_eq!(sources[1].name, vanished.display().to_string());
    }

    /// The scope a read source of the same input gets.
    fn pending_scope(pending: &Pending) -> String {
        match read_pending(vec![pending.clone()]).first() {
            Some(source) => source.scope.clone(),
            None => String::new(),
        }
    }

    #[test]
    fn scalars_follow_kubernetes_yaml_rules() {
        let plain = ScalarStyle::Plain;
        assert_eq!(resolve_scalar("yes", plain, None), Value::Bool(true));
        assert_eq!(resolve_scalar("off", plain, None), Value::Bool(false));
        assert_eq!(
            resolve_scalar("yes", ScalarStyle::DoubleQuoted, None),
            Value::String("yes".into())
        );
        assert_eq!(resolve_scalar("0755", plain, None), Value::from(493));
        assert_eq!(resolve_scalar("1.5", plain, None), serde_json::json!(1.5));
        assert_eq!(
            resolve_scalar("100m", plain, None),
            Value::String("100m".into())
        );
        assert_eq!(
            resolve_scalar("8080", plain, Some("str")),
            Value::String("8080".into())
        );
        assert_eq!(resolve_scalar("~", plain, None), Value::Null);
    }

    #[test]
    fn positions_cover_multi_document_and_flow_style() {
        let loaded = parse(
            "apiVersion: v1\nkind: A\nmetadata: {name: a}\n---\napiVersion: v1\nkind: B\nspec: {x: [1, {y: two}]}\n",
        );
        assert_eq!(loaded.objects.len(), 2);
        let second = &loaded.objects[1];
        let location = second.locate("/spec/x/1/y").expect("y is located");
        assert_eq!((location.line, location.column), (7, 19));
        let name = loaded.objects[0].locate("/metadata/name").expect("name");
        assert_eq!((name.line, name.column), (3, 18));
    }

    #[test]
    fn a_broken_document_does_not_hide_the_others() {
        let loaded =
            parse("apiVersion: v1\nkind: A\n---\nkey: [unclosed\n---\napiVersion: v1\nkind: C\n");
        let kinds: Vec<_> = loaded
            .objects
            .iter()
            .map(|o| o.kind().to_string())
            .collect();
        assert_eq!(kinds, ["A", "C"]);
        assert_eq!(loaded.problems.len(), 1);
        assert!(matches!(
            loaded.problems[0].kind,
            ProblemKind::InvalidYaml(_)
        ));
        assert!(loaded.problems[0].location.line >= 4);
    }

    #[test]
    fn list_items_become_objects() {
        let loaded = parse("apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: A\n  metadata:\n    name: x\n");
        assert_eq!(loaded.objects.len(), 1);
        assert_eq!(loaded.objects[0].base_pointer, "/items/0");
        let name = loaded.objects[0].locate("/metadata/name").expect("name");
        assert_eq!(name.line, 7);
    }

    #[test]
    fn markers_inside_strings_are_data() {
        let loaded = parse("prometheus:\n  url: http://{{ .Release.Name }}-prometheus\n  name: \"{{ include \\\"x\\\" . }}\"\n");
        assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
        assert_eq!(loaded.documents.len(), 1);
    }

    #[test]
    fn helm_templates_are_not_parsed() {
        let loaded = parse("# {{ not a marker }}\nreplicas: {{ .Values.replicas }}\n");
        assert_eq!(loaded.problems.len(), 1);
        assert_eq!(loaded.problems[0].kind, ProblemKind::HelmTemplate);
        assert_eq!(loaded.problems[0].location.line, 2);
    }

    #[test]
    fn duplicate_keys_are_problems_and_the_later_value_is_read() {
        let loaded = parse("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  name: b\n");
        assert_eq!(loaded.objects.len(), 1);
        assert_eq!(loaded.objects[0].name(), Some("b"));
        let [problem] = loaded.problems.as_slice() else {
            panic!("{:?}", loaded.problems)
        };
        assert_eq!(
            problem.kind,
            ProblemKind::DuplicateKey {
                key: "name".into(),
                first_line: 4,
                second_line: 5,
                dropped: Some("a".into()),
            }
        );
        assert_eq!((problem.location.line, problem.location.column), (5, 3));
    }

    #[test]
    fn collection_keys_are_problems() {
        let loaded = parse("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata:\n  ? [a, b]\n  : c\n  ok: d\n");
        let lines: Vec<usize> = loaded
            .problems
            .iter()
            .map(|problem| problem.location.line)
            .collect();
        assert_eq!(lines, [5]);
        assert!(
            matches!(&loaded.problems[0].kind, ProblemKind::InvalidYaml(message) if message.contains("string keys"))
        );
        // An alias to a scalar is an ordinary key.
        assert!(parse("a: &k name\nb: {*k : 1}\n").problems.is_empty());
    }

    #[test]
    fn a_kind_without_api_version_is_a_problem_not_a_skip() {
        let loaded = parse("kind: Deployment\nmetadata: {name: x}\nspec: {}\n");
        assert!(loaded.objects.is_empty());
        assert_eq!(
            loaded.problems[0].kind,
            ProblemKind::IncompleteObject {
                missing: "apiVersion"
            }
        );
        // Helm values with a `kind` setting are no object.
        assert!(parse("kind: small\nreplicas: 2\n").problems.is_empty());
    }

    #[test]
    fn terraform_directives_are_blanked_in_templates() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata:\n%{ if debug ~}\n  level: debug\n%{ endif ~}\n";
        let loaded = parse_source(SourceFile::new("cm.yaml.tftpl", text.to_string()));
        assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
        let level = loaded.objects[0].locate("/data/level").expect("level");
        assert_eq!(level.line, 6);
        // Outside a template the same text is invalid YAML.
        assert!(!parse(text).problems.is_empty());
        assert!(is_yaml_file(Path::new("a/app.yaml.tftpl")));
        assert!(is_yaml_file(Path::new("a/app.yaml.tpl")));
        assert!(!is_yaml_file(Path::new("chart/templates/_helpers.tpl")));
    }

    #[test]
    fn merge_keys_are_resolved_with_the_anchor_positions() {
        let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  template:\n    spec:\n      containers:\n      - &c\n        name: a\n        image: nginx:1.27\n      - <<: *c\n        name: b\n";
        let loaded = parse(text);
        assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
        let object = &loaded.objects[0];
        let second = object
            .value
            .at("/spec/template/spec/containers/1")
            .expect("second container");
        assert_eq!(
            second,
            &serde_json::json!({"name": "b", "image": "nginx:1.27"})
        );
        let image = object
            .locate("/spec/template/spec/containers/1/image")
            .expect("merged image located");
        assert_eq!(image.line, 10, "at the anchor's text");
        // List form; the first merged mapping wins.
        let listed = parse("a: &a {x: 1}\nb: &b {x: 2, y: 3}\nc:\n  <<: [*a, *b]\n  z: 4\n");
        assert_eq!(
            listed.documents[0].value["c"],
            serde_json::json!({"z": 4, "x": 1, "y": 3})
        );
    }

    #[test]
    fn non_objects_are_kept_as_documents() {
        let loaded = parse("rules:\n  default: false\n");
        assert!(loaded.objects.is_empty());
        assert_eq!(loaded.documents.len(), 1);
    }
}
