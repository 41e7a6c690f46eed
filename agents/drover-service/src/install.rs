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
//!
//! Each server binary installs the same two files, a config file and a systemd unit: it
//! names them by implementing [`Service`], and gives its flags' values to the templates
//! by implementing [`DaemonFlags`].

use std::marker::PhantomData;
use std::net::SocketAddr;
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

/// A server binary: its names and what `install` writes for it. Each implements this on
/// a marker type, which the shared flags take as a parameter so that their defaults are
/// the binary's own.
pub trait Service: std::fmt::Debug + Clone {
    /// The binary's name (`drover-master`); templates see it as `name`.
    const NAME: &'static str;
    /// The daemon as messages name it (`master`).
    const ROLE: &'static str;
    /// What it is, as `--help` says.
    const ABOUT: &'static str;
    /// The config file's template.
    const CONFIG_TEMPLATE: Builtin;
    /// The systemd unit's template.
    const UNIT_TEMPLATE: Builtin;
    /// The binary the unit starts unless `--bin` says otherwise.
    const DEFAULT_BIN: &'static str;
    /// Where the config file goes unless `--config` says otherwise.
    const DEFAULT_CONFIG: &'static str;
    /// Where the unit goes unless `--unit` says otherwise.
    const DEFAULT_UNIT: &'static str;
}

/// A template compiled into a binary.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    /// Its file name, looked up in `--templates DIR` before the built-in text.
    pub name: &'static str,
    /// The built-in text.
    pub text: &'static str,
}

/// A daemon's own flags, which `install` takes too and writes into the config file, so
/// that the file holds exactly what the daemon will run with.
pub trait DaemonFlags: clap::Args + std::fmt::Debug + Clone {
    /// The binary they belong to.
    type Service: Service;
    /// `--config`: where the config file goes.
    fn config(&self) -> Option<&Path>;
    /// All the values the templates see ([`service_values`] and the daemon's own).
    /// Refuses what the daemon would refuse at start, so that a bad value fails the
    /// install rather than the next restart.
    fn values(&self, config: &Path, bin: &Path) -> Result<serde_json::Value, InstallError>;
    /// Changes a flag for `install` (e.g. a default that suits a service better); by
    /// default, none.
    fn install_arg(arg: clap::Arg) -> clap::Arg {
        arg
    }
}

/// `install`: the daemon's flags (written into the config file) plus where things go.
/// Environment variables do not apply here: what is installed depends on the command
/// line alone, so running it twice from different shells gives the same files.
#[derive(Debug, Clone, clap::Args)]
#[command(mut_args(|a: clap::Arg| F::install_arg(a.env(None::<&str>))))]
#[command(mut_arg("config", |a: clap::Arg| a
    .default_value(F::Service::DEFAULT_CONFIG)
    .help(format!(
        "Where to write the config file (the unit starts the {} with --config FILE)",
        F::Service::ROLE,
    ))))]
pub struct InstallCmd<F: DaemonFlags> {
    /// The daemon's flags, as it will get them.
    #[command(flatten)]
    pub daemon: F,
    /// Where the unit goes and what it starts.
    #[command(flatten)]
    pub paths: UnitPaths<F::Service>,
    /// `--root`, `--templates`, `--check`.
    #[command(flatten)]
    pub install: InstallArgs,
}

impl<F: DaemonFlags> InstallCmd<F> {
    /// The config file and the unit, with their values.
    pub fn plan(&self) -> Result<InstallPlan, InstallError> {
        let config = self
            .daemon
            .config()
            .unwrap_or(Path::new(F::Service::DEFAULT_CONFIG));
        let values = self.daemon.values(config, &self.paths.bin)?;
        Ok(service_plan::<F::Service>(values, config, &self.paths.unit))
    }

    /// Renders and writes (or with `--check`, diffs) the config file and the unit.
    pub fn install(&self) -> Result<InstallReport, InstallError> {
        install(&self.plan()?, &self.install)
    }
}

/// `install`'s unit file and the binary it starts.
#[derive(Debug, Clone, clap::Args)]
pub struct UnitPaths<S: Service> {
    /// The binary the unit starts.
    #[arg(long, default_value = S::DEFAULT_BIN)]
    pub bin: PathBuf,
    /// Where to write the systemd unit.
    #[arg(long, default_value = S::DEFAULT_UNIT)]
    pub unit: PathBuf,
    #[arg(skip)]
    service: PhantomData<S>,
}

/// `uninstall`: removes the files `install` wrote (the data stays).
#[derive(Debug, Clone, clap::Args)]
pub struct UninstallCmd<S: Service> {
    /// The config file to remove.
    #[arg(long, default_value = S::DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// The systemd unit to remove.
    #[arg(long, default_value = S::DEFAULT_UNIT)]
    pub unit: PathBuf,
    /// `--root`, `--check` (`--templates` is accepted and unused).
    #[command(flatten)]
    pub install: InstallArgs,
    #[arg(skip)]
    service: PhantomData<S>,
}

impl<S: Service> UninstallCmd<S> {
    /// Removes the config file and the unit.
    pub fn uninstall(&self) -> Result<InstallReport, InstallError> {
        uninstall(
            &service_plan::<S>(serde_json::Value::Null, &self.config, &self.unit),
            &self.install,
        )
    }
}

/// The two files of `S`, with `values` for their templates. Both hold no secrets (the
/// token stays in its own file), so both are readable by all, a dynamic user included.
pub fn service_plan<S: Service>(
    values: serde_json::Value,
    config: &Path,
    unit: &Path,
) -> InstallPlan {
    let file = |t: Builtin, dest: &Path| Template {
        name: t.name,
        builtin: t.text,
        dest: dest.into(),
        mode: 0o644,
    };
    InstallPlan {
        templates: vec![
            file(S::CONFIG_TEMPLATE, config),
            file(S::UNIT_TEMPLATE, unit),
        ],
        values,
    }
}

/// The values every template of `S` sees: `name`, `version`, `bin` and `config`. The
/// binary adds its own (`values["listen"] = ...`).
pub fn service_values<S: Service>(
    config: &Path,
    bin: &Path,
) -> Result<serde_json::Value, InstallError> {
    Ok(serde_json::json!({
        "name": S::NAME,
        "version": drover_api::VERSION,
        "bin": unit_path("bin", bin)?,
        "config": unit_path("config", config)?,
    }))
}

/// Refuses `--token`: install writes no secrets into files.
pub fn refuse_token(token: Option<&str>) -> Result<(), InstallError> {
    match token {
        Some(_) => Err(InstallError::Value {
            flag: "token".into(),
            message: "install writes no secrets into files: put the token in a file and pass \
                      --token-file"
                .into(),
        }),
        None => Ok(()),
    }
}

/// `--listen` as the daemon (`role`: "master") would take it at start: IP:PORT, and
/// loopback unless there is a token file.
pub fn listen_addr(
    role: &str,
    listen: &str,
    token_file: Option<&Path>,
) -> Result<SocketAddr, InstallError> {
    let bad = |message: String| InstallError::Value {
        flag: "listen".into(),
        message,
    };
    let addr: SocketAddr = listen
        .parse()
        .map_err(|_| bad(format!("{listen:?} is not IP:PORT")))?;
    if !addr.ip().is_loopback() && token_file.is_none() {
        return Err(bad(format!(
            "the {role} refuses to listen on {addr} without a token: pass --token-file"
        )));
    }
    Ok(addr)
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

    #[derive(Debug, Clone)]
    struct Demo;

    impl Service for Demo {
        const NAME: &'static str = "drover-demo";
        const ROLE: &'static str = "demo";
        const ABOUT: &'static str = "A demo";
        const CONFIG_TEMPLATE: Builtin = Builtin {
            name: "demo.toml.hbs",
            text: "listen = {{toml listen}}\n",
        };
        const UNIT_TEMPLATE: Builtin = Builtin {
            name: "drover-demo.service.hbs",
            text: "[Service]\nExecStart={{bin}} --config {{config}}\n",
        };
        const DEFAULT_BIN: &'static str = "/usr/local/bin/drover-demo";
        const DEFAULT_CONFIG: &'static str = "/etc/drover/demo.toml";
        const DEFAULT_UNIT: &'static str = "/etc/systemd/system/drover-demo.service";
    }

    /// A daemon's flags, shaped like the master's.
    #[derive(Debug, Clone, clap::Args)]
    struct DemoFlags {
        #[arg(long, env = "DROVER_DEMO_LISTEN", default_value = "127.0.0.1:1")]
        listen: String,
        #[arg(long)]
        config: Option<PathBuf>,
    }

    impl DaemonFlags for DemoFlags {
        type Service = Demo;
        fn config(&self) -> Option<&Path> {
            self.config.as_deref()
        }
        fn values(&self, config: &Path, bin: &Path) -> Result<serde_json::Value, InstallError> {
            let mut values = service_values::<Demo>(config, bin)?;
            values["listen"] = self.listen.clone().into();
            Ok(values)
        }
    }

    #[derive(Debug, clap::Parser)]
    struct DemoCli {
        #[command(subcommand)]
        command: crate::server::Command<DemoFlags>,
    }

    #[test]
    fn a_service_installs_and_uninstalls_its_two_files() {
        use crate::server::Command;
        use clap::Parser;
        let root = tempfile::tempdir().unwrap();
        let r = root.path().to_str().unwrap();
        let parse = |sub: &str| DemoCli::try_parse_from(["demo", sub, "--root", r]).unwrap();
        let Command::Install(cmd) = parse("install").command else {
            panic!("not install")
        };
        assert_eq!(cmd.daemon.config(), Some(Path::new(Demo::DEFAULT_CONFIG)));
        assert_eq!(cmd.plan().unwrap().values["name"], "drover-demo");
        assert!(cmd.install().unwrap().changed);
        assert!(!cmd.install().unwrap().changed);
        let unit = root.path().join("etc/systemd/system/drover-demo.service");
        assert_eq!(
            std::fs::read_to_string(&unit).unwrap(),
            "[Service]\nExecStart=/usr/local/bin/drover-demo --config /etc/drover/demo.toml\n"
        );
        let Command::Uninstall(un) = parse("uninstall").command else {
            panic!("not uninstall")
        };
        let report = un.uninstall().unwrap();
        assert!(report.changed);
        assert_eq!(report.files.len(), 2);
        assert!(report.files.iter().all(|f| !f.path.exists()));
        assert!(!un.uninstall().unwrap().changed);
    }

    #[test]
    fn install_takes_no_flag_from_the_environment() {
        let cmd = <InstallCmd<DemoFlags> as clap::Args>::augment_args(clap::Command::new("x"));
        let with_env: Vec<_> = cmd
            .get_arguments()
            .filter(|a| a.get_env().is_some())
            .map(|a| a.get_id().to_string())
            .collect();
        assert!(with_env.is_empty(), "{with_env:?}");
    }

    #[test]
    fn refuses_what_every_daemon_would() {
        assert!(refuse_token(None).is_ok());
        let err = refuse_token(Some("s3cret")).unwrap_err().to_string();
        assert!(
            err.starts_with("--token: install writes no secrets"),
            "{err}"
        );
        assert_eq!(
            listen_addr("master", "127.0.0.1:5050", None)
                .unwrap()
                .port(),
            5050
        );
        assert_eq!(
            listen_addr("master", "0.0.0.0:5050", None)
                .unwrap_err()
                .to_string(),
            "--listen: the master refuses to listen on 0.0.0.0:5050 without a token: pass \
             --token-file"
        );
        assert!(listen_addr("agent", "0.0.0.0:5051", Some(Path::new("/t"))).is_ok());
        let err = listen_addr("agent", "nowhere", None)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "--listen: \"nowhere\" is not IP:PORT");
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
