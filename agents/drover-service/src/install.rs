//! Self-install: a server binary renders its config file and systemd unit from Handlebars
//! templates compiled into it (a directory of overrides can replace them), writes them
//! only when their content changes, and prints one JSON line saying whether anything
//! changed. Ansible and `drover fleet` both call this, so there is one source of truth
//! for what a host's config looks like.
//!
//! Templates see the plan's values and two helpers: `{{toml value}}` writes a value as a
//! TOML literal (quoted and escaped), so a config template never hand-quotes strings;
//! `{{#if value}}` leaves out what was not set. [`unit_path`] and [`state_directory`]
//! help binaries put paths into systemd units safely.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// One file `install` writes.
#[derive(Debug, Clone)]
pub struct Template {
    /// The template's file name, looked up in `--templates DIR` before the built-in one.
    pub name: &'static str,
    /// The built-in template text.
    pub builtin: &'static str,
    /// Where the rendered file goes (absolute; `--root` is prefixed).
    pub dest: PathBuf,
    /// Its permission bits.
    pub mode: u32,
}

/// What to install: the files and the values their templates see.
#[derive(Debug, Clone)]
pub struct InstallPlan {
    /// The files.
    pub templates: Vec<Template>,
    /// Host-specific values (node name, bind address, master URL, ...).
    pub values: serde_json::Value,
}

/// The flags every binary's `install` and `uninstall` share.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct InstallArgs {
    /// Install under this root instead of `/` (for packaging and tests).
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// A directory whose templates replace the built-in ones (same file names).
    #[arg(long)]
    pub templates: Option<PathBuf>,
    /// Show what would change, as a diff, and write nothing.
    #[arg(long)]
    pub check: bool,
}

/// Why installing failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// A template does not parse or render (e.g. it names a value that does not exist).
    #[error("template {name}: {message}")]
    Template {
        /// The template's name.
        name: String,
        /// What Handlebars said.
        message: String,
    },
    /// A value cannot go into the rendered files (e.g. a relative path, or a path a
    /// systemd unit would misread).
    #[error("--{flag}: {message}")]
    Value {
        /// The flag the value came from.
        flag: String,
        /// What is wrong with it.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// What `install` did (or, with `--check`, would do).
#[derive(Debug, Clone, Serialize)]
pub struct InstallReport {
    /// Whether any file changed (or would change).
    pub changed: bool,
    /// Whether this was a dry run.
    pub check: bool,
    /// Each file.
    pub files: Vec<FileReport>,
}

/// One file's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    /// The file's path (with the root).
    pub path: PathBuf,
    /// Whether it changed (or would).
    pub changed: bool,
    /// A unified diff of the change; printed by `--check`, not part of the JSON line.
    #[serde(skip)]
    pub diff: String,
}

impl InstallReport {
    /// The one machine-readable line: `{"changed":true,"check":false,"files":[...]}`.
    pub fn json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| format!("{{\"changed\":{}}}", self.changed))
    }
}

fn rooted(root: Option<&Path>, dest: &Path) -> PathBuf {
    match root {
        Some(r) => r.join(dest.strip_prefix("/").unwrap_or(dest)),
        None => dest.to_path_buf(),
    }
}

/// Renders every template of `plan` (overrides from `templates_dir` first).
pub fn render(
    plan: &InstallPlan,
    templates_dir: Option<&Path>,
) -> Result<Vec<(Template, String)>, InstallError> {
    let mut hb = handlebars::Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(handlebars::no_escape);
    hb.register_helper("toml", Box::new(toml_helper));
    let mut out = Vec::new();
    for t in &plan.templates {
        let text = match templates_dir.map(|d| d.join(t.name)) {
            Some(p) if p.exists() => std::fs::read_to_string(&p)
                .map_err(|source| InstallError::Io { path: p, source })?,
            _ => t.builtin.to_string(),
        };
        let rendered =
            hb.render_template(&text, &plan.values)
                .map_err(|e| InstallError::Template {
                    name: t.name.to_string(),
                    message: e.to_string(),
                })?;
        out.push((t.clone(), rendered));
    }
    Ok(out)
}

/// `{{toml value}}`: the value as a TOML literal (`"a \"b\""`, `1.5`, `true`, `["x"]`).
fn toml_helper(
    h: &handlebars::Helper<'_>,
    _: &handlebars::Handlebars<'_>,
    _: &handlebars::Context,
    _: &mut handlebars::RenderContext<'_, '_>,
    out: &mut dyn handlebars::Output,
) -> handlebars::HelperResult {
    let param = h
        .param(0)
        .ok_or(handlebars::RenderErrorReason::ParamNotFoundForIndex(
            "toml", 0,
        ))?;
    let literal = toml_literal(param.value()).ok_or_else(|| {
        handlebars::RenderErrorReason::Other(format!(
            "{{{{toml}}}}: {} has no TOML form (null or mixed)",
            param.relative_path().map_or("the value", String::as_str)
        ))
    })?;
    out.write(&literal)?;
    Ok(())
}

/// A JSON value as a TOML literal; `None` for null, which TOML cannot express.
pub fn toml_literal(v: &serde_json::Value) -> Option<String> {
    fn convert(v: &serde_json::Value) -> Option<toml::Value> {
        Some(match v {
            serde_json::Value::Null => return None,
            serde_json::Value::Bool(b) => toml::Value::Boolean(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => toml::Value::Integer(i),
                None => toml::Value::Float(n.as_f64()?),
            },
            serde_json::Value::String(s) => toml::Value::String(s.clone()),
            serde_json::Value::Array(items) => {
                toml::Value::Array(items.iter().map(convert).collect::<Option<_>>()?)
            }
            serde_json::Value::Object(map) => toml::Value::Table(
                map.iter()
                    .map(|(k, v)| Some((k.clone(), convert(v)?)))
                    .collect::<Option<_>>()?,
            ),
        })
    }
    convert(v).map(|t| t.to_string())
}

/// Checks that `path` (from `--flag`) can stand as it is in a systemd unit line
/// (`ExecStart=`, `ReadWritePaths=`): absolute, and free of whitespace, quotes,
/// backslashes, `%` specifiers and `$` variables, which systemd would split or expand.
pub fn unit_path(flag: &str, path: &Path) -> Result<String, InstallError> {
    let bad = |message: String| InstallError::Value {
        flag: flag.to_string(),
        message,
    };
    let s = path
        .to_str()
        .ok_or_else(|| bad(format!("{} is not UTF-8", path.display())))?;
    if !path.is_absolute() {
        return Err(bad(format!("{s:?} must be an absolute path")));
    }
    if let Some(c) = s
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || "\"'\\%$;".contains(*c))
    {
        return Err(bad(format!(
            "{s:?} contains {c:?}, which a systemd unit would misread"
        )));
    }
    Ok(s.to_string())
}

/// The `StateDirectory=` name for `dir` when it lies under `/var/lib` (systemd then
/// creates it, owned by the service's user, even a dynamic one); `None` otherwise.
pub fn state_directory(dir: &Path) -> Option<String> {
    let rel = dir.strip_prefix("/var/lib").ok()?;
    let rel = rel.to_str()?.trim_end_matches('/');
    let plain = rel
        .split('/')
        .all(|c| !c.is_empty() && c != "." && c != "..");
    (!rel.is_empty() && plain).then(|| rel.to_string())
}

/// Renders and writes the files whose content differs; with `args.check`, writes nothing
/// and fills each file's diff.
pub fn install(plan: &InstallPlan, args: &InstallArgs) -> Result<InstallReport, InstallError> {
    let mut files = Vec::new();
    for (t, content) in render(plan, args.templates.as_deref())? {
        let path = rooted(args.root.as_deref(), &t.dest);
        let current = match std::fs::read_to_string(&path) {
            Ok(s) => Some(s),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => return Err(InstallError::Io { path, source }),
        };
        let mode_ok = std::fs::metadata(&path)
            .map(|m| m.permissions().mode() & 0o7777 == t.mode)
            .unwrap_or(false);
        let changed = current.as_deref() != Some(content.as_str()) || !mode_ok;
        let diff = if changed {
            let old = current.as_deref().unwrap_or("");
            let mut d = similar::TextDiff::from_lines(old, content.as_str())
                .unified_diff()
                .header(
                    &format!("{} (current)", path.display()),
                    &format!("{} (new)", path.display()),
                )
                .to_string();
            if d.is_empty() {
                d = format!("mode of {} becomes {:o}\n", path.display(), t.mode);
            }
            d
        } else {
            String::new()
        };
        if changed && !args.check {
            write_atomically(&path, &content, t.mode)?;
        }
        files.push(FileReport {
            path,
            changed,
            diff,
        });
    }
    Ok(InstallReport {
        changed: files.iter().any(|f| f.changed),
        check: args.check,
        files,
    })
}

/// Removes what `install` wrote.
pub fn uninstall(plan: &InstallPlan, args: &InstallArgs) -> Result<InstallReport, InstallError> {
    let mut files = Vec::new();
    for t in &plan.templates {
        let path = rooted(args.root.as_deref(), &t.dest);
        let exists = path.exists();
        if exists && !args.check {
            std::fs::remove_file(&path).map_err(|source| InstallError::Io {
                path: path.clone(),
                source,
            })?;
        }
        let diff = if exists {
            format!("remove {}\n", path.display())
        } else {
            String::new()
        };
        files.push(FileReport {
            path,
            changed: exists,
            diff,
        });
    }
    Ok(InstallReport {
        changed: files.iter().any(|f| f.changed),
        check: args.check,
        files,
    })
}

/// Writes to a temporary file beside `path` and renames it over, so a reader never sees
/// half a file.
fn write_atomically(path: &Path, content: &str, mode: u32) -> Result<(), InstallError> {
    let io = |source| InstallError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let tmp = path.with_extension("drover-tmp");
    std::fs::write(&tmp, content).map_err(io)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Prints the report the way every binary's `install` does: with `--check`, each diff
/// on stderr; then the JSON line on stdout.
pub fn print_report(report: &InstallReport) {
    if report.check {
        for f in &report.files {
            eprint!("{}", f.diff);
        }
    }
    println!("{}", report.json_line());
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    fn plan(url: &str) -> InstallPlan {
        InstallPlan {
            templates: vec![
                Template {
                    name: "x.toml.hbs",
                    builtin: "master = \"{{master_url}}\"\n",
                    dest: "/etc/drover/x.toml".into(),
                    mode: 0o640,
                },
                Template {
                    name: "x.service.hbs",
                    builtin: "[Service]\nExecStart={{bin}}\n",
                    dest: "/etc/systemd/system/x.service".into(),
                    mode: 0o644,
                },
            ],
            values: serde_json::json!({"master_url": url, "bin": "/usr/local/bin/x"}),
        }
    }

    #[test]
    fn changed_then_unchanged_then_diff() {
        let root = tempfile::tempdir().unwrap();
        let args = InstallArgs {
            root: Some(root.path().into()),
            ..Default::default()
        };
        assert!(install(&plan("http://m:5050"), &args).unwrap().changed);
        assert!(!install(&plan("http://m:5050"), &args).unwrap().changed);
        let check = InstallArgs {
            check: true,
            ..args.clone()
        };
        let r = install(&plan("http://other:5050"), &check).unwrap();
        assert!(r.changed);
        assert!(
            r.files[0].diff.contains("+master = \"http://other:5050\""),
            "{}",
            r.files[0].diff
        );
        // --check wrote nothing.
        assert!(!install(&plan("http://m:5050"), &args).unwrap().changed);
        let written = std::fs::read_to_string(root.path().join("etc/drover/x.toml")).unwrap();
        assert_eq!(written, "master = \"http://m:5050\"\n");
        let mode = std::fs::metadata(root.path().join("etc/drover/x.toml"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640);
        assert!(uninstall(&plan("x"), &args).unwrap().changed);
        assert!(!root.path().join("etc/drover/x.toml").exists());
    }

    #[test]
    fn overrides_and_strict_values() {
        let root = tempfile::tempdir().unwrap();
        let tdir = tempfile::tempdir().unwrap();
        std::fs::write(tdir.path().join("x.toml.hbs"), "custom {{master_url}}\n").unwrap();
        let args = InstallArgs {
            root: Some(root.path().into()),
            templates: Some(tdir.path().into()),
            check: false,
        };
        install(&plan("u"), &args).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.path().join("etc/drover/x.toml")).unwrap(),
            "custom u\n"
        );
        std::fs::write(tdir.path().join("x.toml.hbs"), "{{no_such_value}}\n").unwrap();
        let err = install(&plan("u"), &args).unwrap_err();
        assert!(err.to_string().contains("x.toml.hbs"), "{err}");
    }

    #[test]
    fn toml_helper_quotes_and_if_skips_null() {
        let plan = InstallPlan {
            templates: vec![Template {
                name: "t.hbs",
                builtin: "a = {{toml s}}\nb = {{toml n}}\nc = {{toml f}}\n{{#if missing}}d = {{toml missing}}\n{{/if}}e = {{toml list}}\n",
                dest: "/t".into(),
                mode: 0o644,
            }],
            values: serde_json::json!({"s": "say \"hi\"\\", "n": 3, "f": 0.5, "missing": null, "list": ["x", 1]}),
        };
        let (_, text) = render(&plan, None).unwrap().remove(0);
        assert_eq!(text, "a = 'say \"hi\"\\'\nb = 3\nc = 0.5\ne = [\"x\", 1]\n");
        let parsed: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(parsed["a"].as_str(), Some("say \"hi\"\\"));
        let null = InstallPlan {
            values: serde_json::json!({"s": null, "n": 1, "f": 1, "missing": null, "list": []}),
            ..plan
        };
        assert!(render(&null, None).is_err());
    }

    #[test]
    fn unit_paths_and_state_directories() {
        assert_eq!(
            unit_path("bin", Path::new("/usr/local/bin/x")).unwrap(),
            "/usr/local/bin/x"
        );
        assert!(unit_path("bin", Path::new("bin/x")).is_err());
        assert!(unit_path("bin", Path::new("/opt/my app/x")).is_err());
        assert!(unit_path("bin", Path::new("/opt/100%/x")).is_err());
        assert_eq!(
            state_directory(Path::new("/var/lib/drover/master")).as_deref(),
            Some("drover/master")
        );
        assert_eq!(
            state_directory(Path::new("/var/lib/drover/")).as_deref(),
            Some("drover")
        );
        assert_eq!(state_directory(Path::new("/var/lib")), None);
        assert_eq!(state_directory(Path::new("/var/lib/../tmp")), None);
        assert_eq!(state_directory(Path::new("/srv/drover")), None);
    }
}
