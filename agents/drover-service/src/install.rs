//! Self-install: a server binary renders its config file and systemd unit from Handlebars
//! templates compiled into it (a directory of overrides can replace them), writes them
//! only when their content changes, and prints one JSON line saying whether anything
//! changed. Ansible and `drover fleet` both call this, so there is one source of truth
//! for what a host's config looks like.

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
pub fn render(plan: &InstallPlan, templates_dir: Option<&Path>) -> Result<Vec<(Template, String)>, InstallError> {
    let mut hb = handlebars::Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(handlebars::no_escape);
    let mut out = Vec::new();
    for t in &plan.templates {
        let text = match templates_dir.map(|d| d.join(t.name)) {
            Some(p) if p.exists() => std::fs::read_to_string(&p).map_err(|source| InstallError::Io { path: p, source })?,
            _ => t.builtin.to_string(),
        };
        let rendered = hb
            .render_template(&text, &plan.values)
            .map_err(|e| InstallError::Template { name: t.name.to_string(), message: e.to_string() })?;
        out.push((t.clone(), rendered));
    }
    Ok(out)
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
        let mode_ok = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o7777 == t.mode).unwrap_or(false);
        let changed = current.as_deref() != Some(content.as_str()) || !mode_ok;
        let diff = if changed {
            let old = current.as_deref().unwrap_or("");
            let mut d = similar::TextDiff::from_lines(old, content.as_str())
                .unified_diff()
                .header(&format!("{} (current)", path.display()), &format!("{} (new)", path.display()))
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
        files.push(FileReport { path, changed, diff });
    }
    Ok(InstallReport { changed: files.iter().any(|f| f.changed), check: args.check, files })
}

/// Removes what `install` wrote.
pub fn uninstall(plan: &InstallPlan, args: &InstallArgs) -> Result<InstallReport, InstallError> {
    let mut files = Vec::new();
    for t in &plan.templates {
        let path = rooted(args.root.as_deref(), &t.dest);
        let exists = path.exists();
        if exists && !args.check {
            std::fs::remove_file(&path).map_err(|source| InstallError::Io { path: path.clone(), source })?;
        }
        let diff = if exists { format!("remove {}\n", path.display()) } else { String::new() };
        files.push(FileReport { path, changed: exists, diff });
    }
    Ok(InstallReport { changed: files.iter().any(|f| f.changed), check: args.check, files })
}

/// Writes to a temporary file beside `path` and renames it over, so a reader never sees
/// half a file.
fn write_atomically(path: &Path, content: &str, mode: u32) -> Result<(), InstallError> {
    let io = |source| InstallError::Io { path: path.to_path_buf(), source };
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
mod tests {
    use super::*;

    fn plan(url: &str) -> InstallPlan {
        InstallPlan {
            templates: vec![
                Template { name: "x.toml.hbs", builtin: "master = \"{{master_url}}\"\n", dest: "/etc/drover/x.toml".into(), mode: 0o640 },
                Template { name: "x.service.hbs", builtin: "[Service]\nExecStart={{bin}}\n", dest: "/etc/systemd/system/x.service".into(), mode: 0o644 },
            ],
            values: serde_json::json!({"master_url": url, "bin": "/usr/local/bin/x"}),
        }
    }

    #[test]
    fn changed_then_unchanged_then_diff() {
        let root = tempfile::tempdir().unwrap();
        let args = InstallArgs { root: Some(root.path().into()), ..Default::default() };
        assert!(install(&plan("http://m:5050"), &args).unwrap().changed);
        assert!(!install(&plan("http://m:5050"), &args).unwrap().changed);
        let check = InstallArgs { check: true, ..args.clone() };
        let r = install(&plan("http://other:5050"), &check).unwrap();
        assert!(r.changed);
        assert!(r.files[0].diff.contains("+master = \"http://other:5050\""), "{}", r.files[0].diff);
        // --check wrote nothing.
        assert!(!install(&plan("http://m:5050"), &args).unwrap().changed);
        let written = std::fs::read_to_string(root.path().join("etc/drover/x.toml")).unwrap();
        assert_eq!(written, "master = \"http://m:5050\"\n");
        let mode = std::fs::metadata(root.path().join("etc/drover/x.toml")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
        assert!(uninstall(&plan("x"), &args).unwrap().changed);
        assert!(!root.path().join("etc/drover/x.toml").exists());
    }

    #[test]
    fn overrides_and_strict_values() {
        let root = tempfile::tempdir().unwrap();
        let tdir = tempfile::tempdir().unwrap();
        std::fs::write(tdir.path().join("x.toml.hbs"), "custom {{master_url}}\n").unwrap();
        let args = InstallArgs { root: Some(root.path().into()), templates: Some(tdir.path().into()), check: false };
        install(&plan("u"), &args).unwrap();
        assert_eq!(std::fs::read_to_string(root.path().join("etc/drover/x.toml")).unwrap(), "custom u\n");
        std::fs::write(tdir.path().join("x.toml.hbs"), "{{no_such_value}}\n").unwrap();
        let err = install(&plan("u"), &args).unwrap_err();
        assert!(err.to_string().contains("x.toml.hbs"), "{err}");
    }
}
