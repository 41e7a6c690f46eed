//! Ansible inventories read natively: INI and YAML host files, `group_vars/` and
//! `host_vars/`, `ansible-inventory --list` JSON, host patterns (`--limit`), and each
//! host's merged variables in Ansible's order of precedence.
//!
//! Variables are kept as JSON values. Jinja is not evaluated except for plain references
//! (`"{{ other_var }}"`, also inside a longer string), which covers the common
//! `drover_x: "{{ drover_y }}"` chains; anything else stays a template and is an error
//! only where `drover fleet` needs that variable ([`HostVars::string`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Variables by name.
pub type Vars = BTreeMap<String, Value>;

/// Why an inventory could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// A file or folder could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A YAML (or JSON) file does not parse or has the wrong shape.
    #[error("{path}: {message}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An INI line does not parse.
    #[error("{path}:{line}: {message}")]
    Ini {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A host pattern names a range that does not expand.
    #[error("bad host range {pattern:?}: {message}")]
    Range {
        /// The pattern.
        pattern: String,
        /// What is wrong.
        message: String,
    },
}

/// A group: its own hosts, its child groups, its variables.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Group {
    /// Hosts listed directly under the group, in inventory order.
    pub hosts: Vec<String>,
    /// Child groups.
    pub children: BTreeSet<String>,
    /// Variables set in the inventory file.
    pub vars: Vars,
    /// Variables from `group_vars/` (they win over the inventory file's).
    pub file_vars: Vars,
}

/// A parsed inventory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inventory {
    /// Every host in the order first seen, with its inventory-file variables.
    pub hosts: Vec<(String, Vars)>,
    /// Variables from `host_vars/` by host.
    pub host_file_vars: BTreeMap<String, Vars>,
    /// Groups by name (`all` and `ungrouped` always exist).
    pub groups: BTreeMap<String, Group>,
}

impl Inventory {
    /// Reads an inventory: a folder (every host file in it, plus its `group_vars/` and
    /// `host_vars/`) or one file (plus the folders beside it).
    pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
        let mut inv = Inventory::empty();
        let dir = if path.is_dir() {
            let mut files: Vec<PathBuf> = read_dir(path)?
                .into_iter()
                .filter(|p| p.is_file() && is_host_file(p))
                .collect();
            files.sort();
            for f in files {
                inv.add_file(&f)?;
            }
            path.to_path_buf()
        } else {
            inv.add_file(path)?;
            path.parent().map(Path::to_path_buf).unwrap_or_default()
        };
        inv.add_vars_dirs(&dir)?;
        inv.finish();
        Ok(inv)
    }

    fn empty() -> Inventory {
        let mut inv = Inventory::default();
        inv.groups.insert("all".into(), Group::default());
        inv.groups.insert("ungrouped".into(), Group::default());
        inv
    }

    /// Reads the JSON `ansible-inventory -i SRC --list` prints (Jinja already rendered
    /// where Ansible could).
    pub fn from_ansible_json(text: &str) -> Result<Inventory, InventoryError> {
        let bad = |message: String| InventoryError::Yaml {
            path: PathBuf::from("<ansible-inventory --list>"),
            message,
        };
        let root: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let obj = root
            .as_object()
            .ok_or_else(|| bad("not an object".into()))?;
        let mut inv = Inventory::empty();
        let hostvars = obj
            .get("_meta")
            .and_then(|m| m.get("hostvars"))
            .and_then(Value::as_object);
        for (name, g) in obj {
            if name == "_meta" {
                continue;
            }
            let mut group = Group::default();
            for h in g
                .get("hosts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(h) = h.as_str() {
                    group.hosts.push(h.to_string());
                    inv.touch_host(h);
                }
            }
            for c in g
                .get("children")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(c) = c.as_str() {
                    group.children.insert(c.to_string());
                }
            }
            if let Some(v) = g.get("vars").and_then(Value::as_object) {
                group.vars = v.clone().into_iter().collect();
            }
            inv.groups.insert(name.clone(), group);
        }
        // Host variables come already merged: keep them as the host's own.
        if let Some(hv) = hostvars {
            for (name, vars) in hv {
                inv.touch_host(name);
                if let Some(v) = vars.as_object() {
                    inv.host_file_vars
                        .insert(name.clone(), v.clone().into_iter().collect());
                }
            }
        }
        inv.finish();
        Ok(inv)
    }

    fn touch_host(&mut self, name: &str) -> usize {
        match self.hosts.iter().position(|(h, _)| h == name) {
            Some(i) => i,
            None => {
                self.hosts.push((name.to_string(), Vars::new()));
                self.hosts.len() - 1
            }
        }
    }

    fn add_host(&mut self, group: &str, name: &str, vars: Vars) {
        let i = self.touch_host(name);
        self.hosts[i].1.extend(vars);
        let g = self.groups.entry(group.to_string()).or_default();
        if !g.hosts.iter().any(|h| h == name) {
            g.hosts.push(name.to_string());
        }
    }

    fn add_file(&mut self, path: &Path) -> Result<(), InventoryError> {
        let text = std::fs::read_to_string(path).map_err(|source| InventoryError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if matches!(ext, "yml" | "yaml" | "json") {
            self.add_yaml(path, &text)
        } else {
            self.add_ini(path, &text)
        }
    }

    /// YAML inventory: `GROUP: {hosts: {H: vars}, vars: {...}, children: {G: ...}}`.
    fn add_yaml(&mut self, path: &Path, text: &str) -> Result<(), InventoryError> {
        let root = parse_yaml(path, text)?;
        let Some(top) = root.as_object() else {
            if root.is_null() {
                return Ok(());
            }
            return Err(InventoryError::Yaml {
                path: path.to_path_buf(),
                message: "an inventory must be a mapping of groups".into(),
            });
        };
        for (name, body) in top {
            self.add_yaml_group(path, name, body)?;
        }
        Ok(())
    }

    fn add_yaml_group(
        &mut self,
        path: &Path,
        name: &str,
        body: &Value,
    ) -> Result<(), InventoryError> {
        self.groups.entry(name.to_string()).or_default();
        let Some(body) = body.as_object() else {
            return Ok(()); // `group:` with nothing under it
        };
        let bad = |message: String| InventoryError::Yaml {
            path: path.to_path_buf(),
            message,
        };
        for key in body.keys() {
            if !matches!(key.as_str(), "hosts" | "vars" | "children") {
                return Err(bad(format!(
                    "group {name}: unknown key {key:?} (expected hosts, vars or children)"
                )));
            }
        }
        if let Some(hosts) = body.get("hosts") {
            match hosts {
                Value::Object(hosts) => {
                    for (pattern, vars) in hosts {
                        let vars =
                            vars_of(vars).map_err(|m| bad(format!("host {pattern}: {m}")))?;
                        for h in expand_range(pattern)? {
                            self.add_host(name, &h, vars.clone());
                        }
                    }
                }
                Value::Null => {}
                _ => return Err(bad(format!("group {name}: hosts must be a mapping"))),
            }
        }
        if let Some(vars) = body.get("vars") {
            let vars = vars_of(vars).map_err(|m| bad(format!("group {name}: {m}")))?;
            self.groups
                .entry(name.to_string())
                .or_default()
                .vars
                .extend(vars);
        }
        if let Some(children) = body.get("children") {
            match children {
                Value::Object(children) => {
                    for (child, cbody) in children {
                        self.groups
                            .entry(name.to_string())
                            .or_default()
                            .children
                            .insert(child.clone());
                        self.add_yaml_group(path, child, cbody)?;
                    }
                }
                Value::Null => {}
                _ => return Err(bad(format!("group {name}: children must be a mapping"))),
            }
        }
        Ok(())
    }

    /// INI inventory: `[group]` host lines with `key=value` pairs, `[group:vars]`,
    /// `[group:children]`; hosts before any section are ungrouped.
    fn add_ini(&mut self, path: &Path, text: &str) -> Result<(), InventoryError> {
        enum Section {
            Hosts(String),
            Vars(String),
            Children(String),
        }
        let mut section = Section::Hosts("ungrouped".into());
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let bad = |message: String| InventoryError::Ini {
                path: path.to_path_buf(),
                line: i + 1,
                message,
            };
            if let Some(rest) = line.strip_prefix('[') {
                let name = rest
                    .strip_suffix(']')
                    .ok_or_else(|| bad("a section header must end with ]".into()))?;
                section = match name.split_once(':') {
                    None => Section::Hosts(name.to_string()),
                    Some((g, "vars")) => Section::Vars(g.to_string()),
                    Some((g, "children")) => Section::Children(g.to_string()),
                    Some((_, other)) => {
                        return Err(bad(format!("unknown section kind :{other}")));
                    }
                };
                let g = match &section {
                    Section::Hosts(g) | Section::Vars(g) | Section::Children(g) => g.clone(),
                };
                self.groups.entry(g).or_default();
                continue;
            }
            match &section {
                Section::Hosts(g) => {
                    let words = split_words(line).map_err(bad)?;
                    let Some((pattern, pairs)) = words.split_first() else {
                        continue;
                    };
                    let mut vars = Vars::new();
                    for pair in pairs {
                        let (k, v) = pair
                            .split_once('=')
                            .ok_or_else(|| bad(format!("{pair:?} is not key=value")))?;
                        vars.insert(k.to_string(), ini_value(v));
                    }
                    for h in expand_range(pattern)? {
                        self.add_host(g, &h, vars.clone());
                    }
                }
                Section::Vars(g) => {
                    let (k, v) = line
                        .split_once('=')
                        .ok_or_else(|| bad(format!("{line:?} is not key=value")))?;
                    let words = split_words(v.trim()).map_err(bad)?;
                    let v = words.join(" ");
                    self.groups
                        .entry(g.clone())
                        .or_default()
                        .vars
                        .insert(k.trim().to_string(), ini_value(&v));
                }
                Section::Children(g) => {
                    let child = line.to_string();
                    self.groups.entry(child.clone()).or_default();
                    self.groups
                        .entry(g.clone())
                        .or_default()
                        .children
                        .insert(child);
                }
            }
        }
        Ok(())
    }

    /// `group_vars/NAME(.yml|.yaml|.json|/)` and `host_vars/NAME...` beside the inventory.
    fn add_vars_dirs(&mut self, dir: &Path) -> Result<(), InventoryError> {
        for (kind, is_group) in [("group_vars", true), ("host_vars", false)] {
            let base = dir.join(kind);
            if !base.is_dir() {
                continue;
            }
            let mut entries = read_dir(&base)?;
            entries.sort();
            for entry in entries {
                let Some(file_name) = entry.file_name().and_then(|n| n.to_str()) else {
                    continue;
                };
                if file_name.starts_with('.') {
                    continue;
                }
                let (name, files) = if entry.is_dir() {
                    let mut files: Vec<PathBuf> = read_dir(&entry)?
                        .into_iter()
                        .filter(|p| p.is_file() && is_vars_file(p))
                        .collect();
                    files.sort();
                    (file_name.to_string(), files)
                } else if is_vars_file(&entry) {
                    let stem = entry
                        .file_stem()
                        .and_then(|s| s.to_str())
                        .unwrap_or(file_name);
                    let name = if entry.extension().is_some() {
                        stem
                    } else {
                        file_name
                    };
                    (name.to_string(), vec![entry.clone()])
                } else {
                    continue;
                };
                let mut vars = Vars::new();
                for f in files {
                    let text =
                        std::fs::read_to_string(&f).map_err(|source| InventoryError::Read {
                            path: f.clone(),
                            source,
                        })?;
                    let v = parse_yaml(&f, &text)?;
                    vars.extend(vars_of(&v).map_err(|message| InventoryError::Yaml {
                        path: f.clone(),
                        message,
                    })?);
                }
                if is_group {
                    self.groups.entry(name).or_default().file_vars.extend(vars);
                } else {
                    self.host_file_vars.entry(name).or_default().extend(vars);
                }
            }
        }
        Ok(())
    }

    /// Every group is a child of `all`; hosts in no group but `all` are `ungrouped`.
    fn finish(&mut self) {
        let names: Vec<String> = self
            .groups
            .keys()
            .filter(|g| *g != "all")
            .cloned()
            .collect();
        let children: BTreeSet<String> = self
            .groups
            .values()
            .flat_map(|g| g.children.iter().cloned())
            .collect();
        if let Some(all) = self.groups.get_mut("all") {
            for n in names {
                if !children.contains(&n) {
                    all.children.insert(n);
                }
            }
        }
        let grouped: BTreeSet<String> = self
            .groups
            .iter()
            .filter(|(n, _)| *n != "all" && *n != "ungrouped")
            .flat_map(|(_, g)| g.hosts.iter().cloned())
            .collect();
        let hosts: Vec<String> = self.hosts.iter().map(|(h, _)| h.clone()).collect();
        if let Some(u) = self.groups.get_mut("ungrouped") {
            u.hosts.retain(|h| !grouped.contains(h));
            for h in hosts {
                if !grouped.contains(&h) && !u.hosts.contains(&h) {
                    u.hosts.push(h);
                }
            }
        }
    }

    /// The hosts of a group (its own and its children's, recursively), in inventory
    /// order; empty for an unknown group.
    pub fn group_hosts(&self, group: &str) -> Vec<String> {
        let mut set = BTreeSet::new();
        let mut seen = BTreeSet::new();
        self.collect(group, &mut set, &mut seen);
        if group == "all" {
            return self.hosts.iter().map(|(h, _)| h.clone()).collect();
        }
        self.hosts
            .iter()
            .map(|(h, _)| h.clone())
            .filter(|h| set.contains(h))
            .collect()
    }

    fn collect(&self, group: &str, out: &mut BTreeSet<String>, seen: &mut BTreeSet<String>) {
        if !seen.insert(group.to_string()) {
            return; // a cycle of children
        }
        if let Some(g) = self.groups.get(group) {
            out.extend(g.hosts.iter().cloned());
            for c in &g.children {
                self.collect(c, out, seen);
            }
        }
    }

    /// The groups a host belongs to, directly or through children, ordered as Ansible
    /// applies their variables: `all` first, then by depth, then by name.
    pub fn host_groups(&self, host: &str) -> Vec<String> {
        let mut depth: BTreeMap<String, usize> = BTreeMap::new();
        self.depths("all", 0, &mut depth, &mut Vec::new());
        let mut groups: Vec<(usize, String)> = self
            .groups
            .keys()
            .filter(|g| self.group_hosts(g).iter().any(|h| h == host))
            .map(|g| (depth.get(g).copied().unwrap_or(1), g.clone()))
            .collect();
        groups.sort();
        groups.into_iter().map(|(_, g)| g).collect()
    }

    fn depths(&self, g: &str, d: usize, out: &mut BTreeMap<String, usize>, path: &mut Vec<String>) {
        if path.iter().any(|p| p == g) {
            return;
        }
        let e = out.entry(g.to_string()).or_insert(d);
        *e = (*e).max(d);
        path.push(g.to_string());
        if let Some(group) = self.groups.get(g) {
            for c in &group.children {
                self.depths(c, d + 1, out, path);
            }
        }
        path.pop();
    }

    /// A host's variables, merged as Ansible does (inventory-file group vars by depth,
    /// then `group_vars/` by depth, then the host's inventory vars, then `host_vars/`),
    /// with `inventory_hostname` and `group_names` and plain references resolved.
    pub fn host_vars(&self, host: &str) -> Option<HostVars> {
        let own = self.hosts.iter().find(|(h, _)| h == host)?;
        let groups = self.host_groups(host);
        let mut vars = Vars::new();
        for g in &groups {
            if let Some(g) = self.groups.get(g) {
                vars.extend(g.vars.clone());
            }
        }
        for g in &groups {
            if let Some(g) = self.groups.get(g) {
                vars.extend(g.file_vars.clone());
            }
        }
        vars.extend(own.1.clone());
        if let Some(hv) = self.host_file_vars.get(host) {
            vars.extend(hv.clone());
        }
        vars.insert("inventory_hostname".into(), Value::String(host.to_string()));
        let names: Vec<Value> = groups
            .iter()
            .filter(|g| *g != "all" && *g != "ungrouped")
            .map(|g| Value::String(g.clone()))
            .collect();
        vars.insert("group_names".into(), Value::Array(names));
        Some(HostVars {
            host: host.to_string(),
            vars: resolve_refs(&vars),
        })
    }

    /// The hosts a pattern selects (Ansible's `--limit` syntax: names, groups, `*`
    /// globs, `,` or `:` for union, `&` for intersection, `!` for exclusion), in
    /// inventory order.
    pub fn select(&self, pattern: &str) -> Vec<String> {
        let parts: Vec<&str> = pattern
            .split([',', ':'])
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        let mut chosen: BTreeSet<String> = BTreeSet::new();
        let mut any_positive = false;
        for p in &parts {
            if !p.starts_with('!') && !p.starts_with('&') {
                any_positive = true;
                chosen.extend(self.match_one(p));
            }
        }
        if !any_positive {
            chosen.extend(self.hosts.iter().map(|(h, _)| h.clone()));
        }
        for p in &parts {
            if let Some(p) = p.strip_prefix('&') {
                let keep: BTreeSet<String> = self.match_one(p).into_iter().collect();
                chosen.retain(|h| keep.contains(h));
            } else if let Some(p) = p.strip_prefix('!') {
                for h in self.match_one(p) {
                    chosen.remove(&h);
                }
            }
        }
        self.hosts
            .iter()
            .map(|(h, _)| h.clone())
            .filter(|h| chosen.contains(h))
            .collect()
    }

    fn match_one(&self, p: &str) -> Vec<String> {
        if self.groups.contains_key(p) {
            return self.group_hosts(p);
        }
        let mut out: Vec<String> = self
            .hosts
            .iter()
            .filter(|(h, _)| glob(p, h))
            .map(|(h, _)| h.clone())
            .collect();
        for g in self
            .groups
            .keys()
            .filter(|g| p.contains(['*', '?']) && glob(p, g))
        {
            out.extend(self.group_hosts(g));
        }
        out
    }
}

/// One host's merged variables.
#[derive(Debug, Clone, PartialEq)]
pub struct HostVars {
    /// The inventory name.
    pub host: String,
    /// The variables.
    pub vars: Vars,
}

/// Why a variable `drover fleet` needs cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VarError {
    /// The value is a Jinja expression the native reader does not evaluate.
    #[error(
        "host {host}: {name} is the template {value:?}, which drover fleet does not evaluate (set it plainly, or pass --ansible-inventory to let Ansible render it)"
    )]
    Template {
        /// The host.
        host: String,
        /// The variable.
        name: String,
        /// Its text.
        value: String,
    },
    /// The value has the wrong type.
    #[error("host {host}: {name} must be {expected}, not {value}")]
    Type {
        /// The host.
        host: String,
        /// The variable.
        name: String,
        /// What was expected.
        expected: &'static str,
        /// What it was.
        value: String,
    },
}

impl HostVars {
    /// The raw value.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.vars.get(name).filter(|v| !v.is_null())
    }

    /// A scalar as a string (numbers and booleans as text); `None` when unset.
    pub fn string(&self, name: &str) -> Result<Option<String>, VarError> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        let s = match v {
            Value::String(s) => s.trim().to_string(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => {
                return Err(VarError::Type {
                    host: self.host.clone(),
                    name: name.into(),
                    expected: "a string",
                    value: other.to_string(),
                });
            }
        };
        if s.contains("{{") || s.contains("{%") {
            return Err(VarError::Template {
                host: self.host.clone(),
                name: name.into(),
                value: s,
            });
        }
        Ok(Some(s))
    }

    /// A boolean in Ansible's spellings (`true`, `yes`, `1`, `True`, ...).
    pub fn boolean(&self, name: &str) -> Result<Option<bool>, VarError> {
        let Some(s) = self.string(name)? else {
            return Ok(None);
        };
        match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" | "y" => Ok(Some(true)),
            "false" | "no" | "off" | "0" | "n" | "" => Ok(Some(false)),
            _ => Err(VarError::Type {
                host: self.host.clone(),
                name: name.into(),
                expected: "a boolean",
                value: s,
            }),
        }
    }

    /// A list of strings (a YAML list; a scalar counts as a one-element list).
    pub fn list(&self, name: &str) -> Result<Vec<String>, VarError> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| match i {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    Value::Bool(b) => Ok(b.to_string()),
                    other => Err(VarError::Type {
                        host: self.host.clone(),
                        name: name.into(),
                        expected: "a list of strings",
                        value: other.to_string(),
                    }),
                })
                .collect(),
            Some(_) => Ok(self.string(name)?.into_iter().collect()),
        }
    }

    /// A mapping of strings, sorted by key (e.g. `drover_agent_attributes`).
    pub fn map(&self, name: &str) -> Result<Vec<(String, String)>, VarError> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(Value::Object(m)) => Ok(m
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), v)
                })
                .collect::<BTreeMap<_, _>>()
                .into_iter()
                .collect()),
            Some(other) => Err(VarError::Type {
                host: self.host.clone(),
                name: name.into(),
                expected: "a mapping",
                value: other.to_string(),
            }),
        }
    }
}

/// Replaces `{{ name }}` references to other variables (repeatedly, for chains).
fn resolve_refs(vars: &Vars) -> Vars {
    let mut out = vars.clone();
    for _ in 0..8 {
        let mut changed = false;
        let snapshot = out.clone();
        for v in out.values_mut() {
            if let Value::String(s) = v
                && let Some(new) = substitute(s, &snapshot)
            {
                // A whole-string reference keeps the referenced value's type.
                *v = new;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    out
}

/// One pass of substitution over a string; `None` when nothing was replaced.
fn substitute(s: &str, vars: &Vars) -> Option<Value> {
    let mut out = String::new();
    let mut rest = s;
    let mut replaced = false;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else {
            break;
        };
        let inner = rest[start + 2..start + len].trim();
        let is_ident = !inner.is_empty()
            && inner.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !inner.starts_with(|c: char| c.is_ascii_digit());
        let value = if is_ident { vars.get(inner) } else { None };
        let Some(value) = value.filter(|v| !matches!(v, Value::String(t) if t.contains("{{")))
        else {
            out.push_str(&rest[..start + len + 2]);
            rest = &rest[start + len + 2..];
            continue;
        };
        if start == 0 && len + 2 == rest.len() && out.is_empty() {
            return Some(value.clone());
        }
        out.push_str(&rest[..start]);
        match value {
            Value::String(t) => out.push_str(t),
            other => out.push_str(&other.to_string()),
        }
        rest = &rest[start + len + 2..];
        replaced = true;
    }
    if !replaced {
        return None;
    }
    out.push_str(rest);
    Some(Value::String(out))
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, InventoryError> {
    let rd = std::fs::read_dir(dir).map_err(|source| InventoryError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(|source| InventoryError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        out.push(e.path());
    }
    Ok(out)
}

/// Files Ansible's inventory plugins would read from an inventory folder.
fn is_host_file(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
    !name.starts_with('.')
        && !name.ends_with('~')
        && !matches!(
            ext,
            "md" | "txt" | "retry" | "orig" | "bak" | "cfg" | "pyc" | "swp"
        )
}

fn is_vars_file(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let ext = p.extension().and_then(|e| e.to_str());
    !name.starts_with('.') && matches!(ext, None | Some("yml" | "yaml" | "json"))
}

fn parse_yaml(path: &Path, text: &str) -> Result<Value, InventoryError> {
    serde_yaml::from_str::<Value>(text).map_err(|e| InventoryError::Yaml {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn vars_of(v: &Value) -> Result<Vars, String> {
    match v {
        Value::Null => Ok(Vars::new()),
        Value::Object(m) => Ok(m.clone().into_iter().collect()),
        _ => Err("variables must be a mapping".into()),
    }
}

/// INI values: quotes stripped; everything else stays text (the getters interpret it).
fn ini_value(v: &str) -> Value {
    let v = v.trim();
    let unq = v
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .or_else(|| v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')));
    Value::String(unq.unwrap_or(v).to_string())
}

/// Splits an INI host line on blanks, honouring quotes and dropping a trailing comment.
fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut has = false;
    for c in line.chars() {
        match quote {
            Some(q) if c == q => {
                quote = None;
                cur.push(c);
            }
            Some(_) => cur.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                cur.push(c);
                has = true;
            }
            None if c == '#' && !has => break,
            None if c.is_whitespace() => {
                if has {
                    words.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            None => {
                cur.push(c);
                has = true;
            }
        }
    }
    if quote.is_some() {
        return Err("unterminated quote".into());
    }
    if has {
        words.push(cur);
    }
    // Quotes around a value (`k="a b"`) are removed by ini_value.
    Ok(words)
}

/// Expands Ansible host ranges: `web[01:03]`, `db-[a:c]`, `n[1:9:2]`.
pub fn expand_range(pattern: &str) -> Result<Vec<String>, InventoryError> {
    let Some(open) = pattern.find('[') else {
        return Ok(vec![pattern.to_string()]);
    };
    let bad = |message: &str| InventoryError::Range {
        pattern: pattern.to_string(),
        message: message.to_string(),
    };
    let close = pattern[open..]
        .find(']')
        .map(|c| open + c)
        .ok_or_else(|| bad("no closing ]"))?;
    let (head, body, tail) = (
        &pattern[..open],
        &pattern[open + 1..close],
        &pattern[close + 1..],
    );
    let parts: Vec<&str> = body.split(':').collect();
    if parts.len() < 2 || parts.len() > 3 {
        return Err(bad("a range is [start:end] or [start:end:step]"));
    }
    let step: usize = match parts.get(2) {
        Some(s) => s.parse().map_err(|_| bad("the step is not a number"))?,
        None => 1,
    };
    if step == 0 {
        return Err(bad("the step is 0"));
    }
    let mut items = Vec::new();
    if let (Ok(a), Ok(b)) = (parts[0].parse::<u64>(), parts[1].parse::<u64>()) {
        if a > b {
            return Err(bad("start is after end"));
        }
        let width = if parts[0].starts_with('0') && parts[0].len() > 1 {
            parts[0].len()
        } else {
            0
        };
        let mut i = a;
        while i <= b {
            items.push(format!("{i:0width$}"));
            i += step as u64;
        }
    } else {
        let (a, b) = (parts[0].chars().next(), parts[1].chars().next());
        match (a, b) {
            (Some(a), Some(b)) if parts[0].len() == 1 && parts[1].len() == 1 && a <= b => {
                for c in (a..=b).step_by(step) {
                    items.push(c.to_string());
                }
            }
            _ => return Err(bad("a range is numbers or single letters")),
        }
    }
    let mut out = Vec::new();
    for item in items {
        for rest in expand_range(tail)? {
            out.push(format!("{head}{item}{rest}"));
        }
    }
    Ok(out)
}

/// Shell-style glob with `*` and `?`.
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            pi += 1;
            mark = ti;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
