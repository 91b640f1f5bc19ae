//! A repository's `.infergate.yaml`: the policy it lints with and the
//! files it lints.
//!
//! Found like kube-linter's config: `.infergate.yaml` (or `.yml`) in the
//! current directory, else in a parent, up to the repository root (the
//! directory holding `.git`). It has the shape of a `--policy` file plus two
//! path filters, `include` and `exclude`, so a team keeps its fixtures of
//! deliberate mistakes (`testdata/**`) out of every run, the pre-commit
//! hook's included.
//!
//! Path globs are matched against a file's path relative to the config
//! file's directory with globset: `*`, `?` and `[…]` match within a
//! segment, `{a,b}` either, `**` any number of segments, and a pattern
//! without `/` matches a file or
//! directory name at any depth (as in `.gitignore`). A pattern that matches
//! a directory matches everything under it.

use std::path::{Component, Path, PathBuf};

use crate::input::source::SourceFile;
use crate::policy::{Layer, PolicyError};

/// The names a config file may have, in the order they are looked for.
pub const FILE_NAMES: &[&str] = &[".infergate.yaml", ".infergate.yml"];

/// A config file as read: its text (a policy layer) and its path filters.
#[derive(Debug)]
pub struct Config {
    pub path: PathBuf,
    /// The directory the path globs are relative to (the file's own).
    pub base: PathBuf,
    pub text: String,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    include_globs: Vec<PathGlob>,
    exclude_globs: Vec<PathGlob>,
    /// `ignore` entries: rules suppressed in the files their globs match.
    ignores: Vec<PathIgnore>,
}

/// One `ignore` entry.
#[derive(Debug)]
struct PathIgnore {
    globs: Vec<PathGlob>,
    rules: Vec<String>,
    reason: Option<String>,
}

/// A compiled `include`/`exclude`/`ignore` pattern.
#[derive(Debug)]
struct PathGlob {
    /// As written, with where it was written (`exclude[2]`), for the
    /// warning about a pattern that matches nothing.
    text: String,
    place: String,
    /// Set when the pattern matched a path of this run.
    hit: std::sync::atomic::AtomicBool,
    /// A pattern with a `/` is matched against whole relative paths; one
    /// without, against single names at any depth (as in `.gitignore`).
    anchored: bool,
    matcher: globset::GlobMatcher,
}

impl PathGlob {
    /// `*`, `?` and `[…]` stay within a segment, `**` spans segments,
    /// `{a,b}` is either: globset's syntax with a literal separator.
    fn compile(pattern: &str, place: String) -> Result<Option<Self>, globset::Error> {
        if pattern.is_empty() {
            return Ok(None);
        }
        let anchored = pattern.contains('/');
        let glob = globset::GlobBuilder::new(pattern.trim_start_matches('/'))
            .literal_separator(true)
            .backslash_escape(true)
            .build()?;
        Ok(Some(Self {
            text: pattern.to_string(),
            place,
            hit: std::sync::atomic::AtomicBool::new(false),
            anchored,
            matcher: glob.compile_matcher(),
        }))
    }

    /// Whether the path of `segments`, or one of its parent directories,
    /// matches.
    /// A match is remembered (`hit`) for the warning about patterns that
    /// match nothing.
    fn matches_path_or_parent(&self, segments: &[String]) -> bool {
        let mut prefix = String::new();
        let matched = segments.iter().any(|segment| {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(segment);
            if self.anchored {
                self.matcher.is_match(&prefix)
            } else {
                self.matcher.is_match(segment)
            }
        });
        if matched {
            self.hit.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        matched
    }
}

/// The strings of the list at `key` of `value` (others in it skipped).
fn strings(value: Option<&serde_json::Value>, key: &str) -> Vec<String> {
    value
        .and_then(|value| value.get(key))
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(serde_json::Value::as_str)
        .map(str::to_string)
        .collect()
}

/// The config file for a run started in `start`, if there is one.
pub fn discover(start: &Path) -> Option<PathBuf> {
    let start = std::fs::canonicalize(start).ok()?;
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .and_then(|home| std::fs::canonicalize(home).ok());
    let device = device_of(&start);
    for directory in start.ancestors() {
        // Outside a repository: not past the user's home, nor onto another
        // filesystem (a config above them belongs to someone else, and `/`
        // may be anyone's).
        if device.is_some() && device_of(directory) != device {
            return None;
        }
        for name in FILE_NAMES {
            let candidate = directory.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
        // The repository root is as far as a config is looked for: a file
        // above it belongs to someone else.
        if directory.join(".git").exists() || home.as_deref() == Some(directory) {
            return None;
        }
    }
    None
}

/// The filesystem a directory is on (Unix), for stopping at its boundary.
fn device_of(directory: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::metadata(directory)
            .ok()
            .map(|metadata| metadata.dev())
    }
    #[cfg(not(unix))]
    {
        let _ = directory;
        None
    }
}

/// Read a config or policy file under the cap manifests get
/// ([`crate::input::loader::MAX_FILE_BYTES`]): `--config /dev/zero` is an
/// error, not a read until memory runs out.
pub fn read_capped(path: &Path) -> std::io::Result<String> {
    use std::io::Read as _;
    let cap = crate::input::loader::MAX_FILE_BYTES;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(cap + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(std::io::Error::other(format!(
            "larger than {} MiB, the most infergate reads",
            cap / (1024 * 1024)
        )));
    }
    String::from_utf8(bytes).map_err(|error| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "not UTF-8 (the byte at offset {} is not valid)",
                error.utf8_error().valid_up_to()
            ),
        )
    })
}

impl Config {
    /// Read a config file. Its policy part is checked when the policy is
    /// built ([`Config::layer`]); the path filters are checked here.
    pub fn read(path: &Path) -> Result<Self, PolicyError> {
        let text = read_capped(path).map_err(|source| PolicyError::Unreadable {
            path: path.display().to_string(),
            source,
        })?;
        let name = path.display().to_string();
        let loaded =
            crate::input::loader::parse_source(SourceFile::new(name.as_str(), text.clone()));
        let document = loaded.documents.first().map(|document| &document.value);
        let globs = |key: &str| -> Vec<String> {
            strings(document, key)
                .iter()
                .map(|pattern| normalise_pattern(pattern))
                .collect()
        };
        let include = globs("include");
        let exclude = globs("exclude");
        let invalid = |at: &str, key: &str, message: String| {
            let location = loaded
                .documents
                .first()
                .and_then(|document| document.positions.locate(at));
            PolicyError::Invalid {
                file: name.clone(),
                line: location.as_ref().map_or(1, |location| location.line),
                column: location.as_ref().map_or(1, |location| location.column),
                key: key.to_string(),
                message,
            }
        };
        // `pointer` is where the list sits (`/include`, `/ignore/0/paths`).
        let compile =
            |pointer: &str, key: &str, patterns: &[String]| -> Result<Vec<PathGlob>, PolicyError> {
                let mut compiled = Vec::new();
                for (index, pattern) in patterns.iter().enumerate() {
                    let place = format!(
                        "{}[{index}]",
                        pointer.trim_start_matches('/').replace('/', ".")
                    );
                    match PathGlob::compile(pattern, place) {
                        Ok(glob) => compiled.extend(glob),
                        Err(error) => {
                            return Err(invalid(
                                &format!("{pointer}/{index}"),
                                key,
                                format!("`{pattern}` is not a glob: {}", error.kind()),
                            ))
                        }
                    }
                }
                Ok(compiled)
            };
        let include_globs = compile("/include", "include", &include)?;
        let exclude_globs = compile("/exclude", "exclude", &exclude)?;
        let mut ignores = Vec::new();
        let entries = document
            .and_then(|value| value.get("ignore"))
            .and_then(serde_json::Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        for (index, entry) in entries.iter().enumerate() {
            let paths: Vec<String> = strings(Some(entry), "paths")
                .iter()
                .map(|pattern| normalise_pattern(pattern))
                .collect();
            let rules = strings(Some(entry), "rules");
            if paths.is_empty() || rules.is_empty() {
                return Err(invalid(
                    &format!("/ignore/{index}"),
                    "ignore",
                    "an ignore entry needs `paths` and `rules` (rule ids, or `*`)".to_string(),
                ));
            }
            ignores.push(PathIgnore {
                globs: compile(&format!("/ignore/{index}/paths"), "ignore", &paths)?,
                rules,
                reason: entry
                    .get("reason")
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_string),
            });
        }
        let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let base = absolute
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(Self {
            path: path.to_path_buf(),
            base,
            text,
            include,
            exclude,
            include_globs,
            exclude_globs,
            ignores,
        })
    }

    /// The config's policy layer (the path filters allowed in it), named
    /// `name` in messages.
    pub fn layer<'a>(&'a self, name: &'a str) -> Layer<'a> {
        Layer::config(name, &self.text)
    }

    /// Whether `file` is linted: inside the config's directory, matched by
    /// an include pattern (when there are any) and by no exclude pattern.
    /// A file outside the directory is not the config's to filter.
    pub fn keeps(&self, file: &Path) -> bool {
        let Some(segments) = self.relative_segments(file) else {
            return true;
        };
        let matched = |globs: &[PathGlob]| {
            globs
                .iter()
                .any(|glob| glob.matches_path_or_parent(&segments))
        };
        // An ignore pattern is in use when it names a file of the run,
        // whether or not a finding there needs it.
        for glob in self.ignores.iter().flat_map(|entry| &entry.globs) {
            glob.matches_path_or_parent(&segments);
        }
        (self.include.is_empty() || matched(&self.include_globs)) && !matched(&self.exclude_globs)
    }

    /// Why `rule` is ignored in `file` by an `ignore` entry, if it is.
    /// Asked for every finding: the path (a canonicalisation) is resolved
    /// only when an entry lists the rule.
    pub fn ignores(&self, file: &Path, rule: &str) -> Option<String> {
        let mut listing = self
            .ignores
            .iter()
            .filter(|entry| {
                entry
                    .rules
                    .iter()
                    .any(|listed| listed == "*" || listed == rule)
            })
            .peekable();
        listing.peek()?;
        let segments = self.relative_segments(file)?;
        listing.find_map(|entry| {
            let matched = entry
                .globs
                .iter()
                .any(|glob| glob.matches_path_or_parent(&segments));
            matched.then(|| {
                let reason = entry.reason.as_deref().unwrap_or("");
                let source = self.path.display();
                if reason.is_empty() {
                    format!("ignored here by {source}")
                } else {
                    format!("ignored here by {source}: {reason}")
                }
            })
        })
    }

    /// The patterns of `include`, `exclude` and `ignore` that matched no
    /// path of this run, as (place, pattern): a misspelt path filters
    /// nothing and says nothing otherwise.
    pub fn unmatched(&self) -> Vec<(String, String)> {
        self.include_globs
            .iter()
            .chain(&self.exclude_globs)
            .chain(self.ignores.iter().flat_map(|entry| &entry.globs))
            .filter(|glob| !glob.hit.load(std::sync::atomic::Ordering::Relaxed))
            .map(|glob| (glob.place.clone(), glob.text.clone()))
            .collect()
    }

    fn relative_segments(&self, file: &Path) -> Option<Vec<String>> {
        let absolute = if file.is_absolute() {
            file.to_path_buf()
        } else {
            std::env::current_dir().ok()?.join(file)
        };
        // Canonical where the file exists (symbolic links, `..`), lexical
        // otherwise.
        let absolute = std::fs::canonicalize(&absolute).unwrap_or(absolute);
        let relative = absolute.strip_prefix(&self.base).ok()?;
        let segments: Vec<String> = relative
            .components()
            .filter_map(|component| match component {
                Component::Normal(part) => Some(part.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect();
        (!segments.is_empty()).then_some(segments)
    }
}

/// `./a/b/` and `a/b` are the same pattern.
fn normalise_pattern(pattern: &str) -> String {
    pattern
        .trim()
        .trim_start_matches("./")
        .trim_end_matches('/')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segments(path: &str) -> Vec<String> {
        path.split('/').map(str::to_string).collect()
    }

    fn matches_path_or_parent(pattern: &str, segments: &[String]) -> bool {
        PathGlob::compile(pattern, String::new())
            .expect("a valid glob")
            .is_some_and(|glob| glob.matches_path_or_parent(segments))
    }

    /// k `**` segments used to backtrack through every split of the path:
    /// ten took 13 s on one file. The table is linear: this answers at once
    /// (a hang here is the regression; no time is asserted).
    #[test]
    fn many_double_stars_do_not_backtrack() {
        let pattern = ["**"; 10].join("/") + "/nothing.yaml";
        let path: Vec<String> = (0..40).map(|index| format!("d{index}")).collect();
        assert!(!matches_path_or_parent(&pattern, &path));
        let pattern = ["**"; 10].join("/") + "/d39";
        assert!(matches_path_or_parent(&pattern, &path));
    }

    #[test]
    fn globs_match_paths_and_their_directories() {
        let cases = [
            ("testdata/**", "testdata/rules/a.yaml", true),
            ("testdata", "testdata/rules/a.yaml", true),
            ("testdata", "deploy/testdata/a.yaml", true),
            ("testdata/*.yaml", "testdata/a.yaml", true),
            ("testdata/*.yaml", "testdata/rules/a.yaml", false),
            ("/testdata/*.yaml", "deploy/testdata/a.yaml", false),
            ("charts/*/templates", "charts/web/templates/hpa.yaml", true),
            ("charts/*/templates", "charts/web/values.yaml", false),
            ("**/fixtures/*.yaml", "a/b/fixtures/x.yaml", true),
            ("**/fixtures/*.yaml", "fixtures/x.yaml", true),
            ("*.generated.yaml", "deploy/app.generated.yaml", true),
            ("deploy/app.yaml", "deploy/app.yaml.bak", false),
            ("deploy", "deployments/app.yaml", false),
            ("app-?.yaml", "deploy/app-1.yaml", true),
            ("app-?.yaml", "deploy/app-10.yaml", false),
            ("{dev,prod}/*.yaml", "prod/a.yaml", true),
            ("{dev,prod}/*.yaml", "stage/a.yaml", false),
            ("app-[0-9].yaml", "app-7.yaml", true),
            ("app-[0-9].yaml", "app-x.yaml", false),
            ("testdata/*", "testdata/rules/a.yaml", true),
        ];
        for (pattern, path, expected) in cases {
            assert_eq!(
                matches_path_or_parent(&normalise_pattern(pattern), &segments(path)),
                expected,
                "{pattern} on {path}"
            );
        }
    }

    #[test]
    fn a_config_filters_files_under_its_directory_only() {
        let directory = tempfile::tempdir().expect("tempdir");
        let path = directory.path().join(".infergate.yaml");
        std::fs::write(
            &path,
            "include: [deploy, charts]\nexclude: ['**/testdata/**']\n",
        )
        .expect("write");
        let config = Config::read(&path).expect("config");
        let base = std::fs::canonicalize(directory.path()).expect("base");
        assert!(config.keeps(&base.join("deploy/app.yaml")));
        assert!(!config.keeps(&base.join("deploy/testdata/bad.yaml")));
        assert!(!config.keeps(&base.join("docs/example.yaml")));
        assert!(config.keeps(Path::new("/elsewhere/app.yaml")));
    }

    #[test]
    fn discovery_stops_at_the_repository_root() {
        let directory = tempfile::tempdir().expect("tempdir");
        let outer = directory.path();
        std::fs::write(outer.join(".infergate.yaml"), "{}\n").expect("write");
        let repository = outer.join("repo");
        std::fs::create_dir_all(repository.join(".git")).expect("git");
        std::fs::create_dir_all(repository.join("deploy/base")).expect("dirs");
        assert_eq!(discover(&repository.join("deploy/base")), None);
        std::fs::write(repository.join(".infergate.yml"), "{}\n").expect("write");
        let found = discover(&repository.join("deploy/base")).expect("found");
        assert!(
            found.ends_with("repo/.infergate.yml"),
            "{}",
            found.display()
        );
    }
}
