//! Parsing a sweep file and expanding it into jobs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::{Job, Sweep, SweepError, one_line};
use crate::activation::ActivationSpec;
use crate::experiments::RunConfig;
use crate::experiments::cifar::CifarConfig;
use crate::experiments::common::ExperimentError;
use crate::experiments::mnist::MnistConfig;
use crate::experiments::xor::XorConfig;
use crate::experiments::xor_neuron::XorNeuronConfig;
use crate::meta::MetaConfig;

/// The experiments a sweep can run, as `name` spells them.
pub const EXPERIMENTS: [&str; 5] = ["xor", "xor-neuron", "mnist", "cifar10", "meta"];

/// The variant recorded for a `meta` job (`sweep.json`, estimates): a meta run has no
/// variants of its own; it learns one AFU and compares it with fixed baselines.
pub const META_VARIANT: &str = "meta";

const BLOCK_KEYS: &str = "name, variants, seeds, first_seed, quick, settings, grid";

/// Longest job id (it is a folder name).
const MAX_ID_LEN: usize = 200;

/// An experiment a sweep can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Xor,
    XorNeuron,
    Mnist,
    Cifar10,
    Meta,
}

impl Kind {
    fn parse(name: &str) -> Option<Kind> {
        match name {
            "xor" => Some(Kind::Xor),
            "xor-neuron" => Some(Kind::XorNeuron),
            "mnist" => Some(Kind::Mnist),
            "cifar10" => Some(Kind::Cifar10),
            "meta" => Some(Kind::Meta),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Xor => "xor",
            Kind::XorNeuron => "xor-neuron",
            Kind::Mnist => "mnist",
            Kind::Cifar10 => "cifar10",
            Kind::Meta => "meta",
        }
    }

    fn default_first_seed(self) -> u64 {
        match self {
            // afu meta's default seed is 0.
            Kind::Xor | Kind::XorNeuron | Kind::Meta => 0,
            Kind::Mnist | Kind::Cifar10 => 1,
        }
    }

    /// The fields the sweep sets itself.
    fn reserved(self) -> &'static [&'static str] {
        match self {
            Kind::Xor | Kind::XorNeuron => &["variants", "seeds", "first_seed", "experiment"],
            Kind::Mnist | Kind::Cifar10 => &["variants", "seed", "seeds", "experiment"],
            Kind::Meta => &["seed", "experiment"],
        }
    }

    /// What the sweep sets instead of the reserved fields.
    fn reserved_hint(self) -> &'static str {
        match self {
            Kind::Meta => "set by the sweep (use the block's seeds and first_seed)",
            _ => "set by the sweep (use the block's variants, seeds and first_seed)",
        }
    }

    /// The base configuration as a TOML table.
    fn base(self, quick: bool) -> Result<Table, String> {
        let table = match (self, quick) {
            (Kind::Xor, false) => Table::try_from(XorConfig::default()),
            (Kind::Xor, true) => Table::try_from(XorConfig::quick()),
            (Kind::XorNeuron, false) => Table::try_from(XorNeuronConfig::default()),
            (Kind::XorNeuron, true) => Table::try_from(XorNeuronConfig::quick()),
            (Kind::Mnist, false) => Table::try_from(MnistConfig::paper("data/mnist".into())),
            (Kind::Mnist, true) => Table::try_from(MnistConfig::quick("data/mnist".into())),
            (Kind::Cifar10, false) => Table::try_from(CifarConfig::paper("data/cifar10".into())),
            (Kind::Cifar10, true) => Table::try_from(CifarConfig::quick("data/cifar10".into())),
            (Kind::Meta, false) => Table::try_from(MetaConfig::default()),
            (Kind::Meta, true) => Table::try_from(MetaConfig::quick()),
        };
        table.map_err(|e| one_line(&e.to_string()))
    }

    /// Sets the job's variant and seed (a meta job: its seed only).
    fn set_job(self, t: &mut Table, variant: &str, seed: u64) {
        if self == Kind::Meta {
            t.insert(
                "seed".into(),
                Value::Integer(i64::try_from(seed).unwrap_or(i64::MAX)),
            );
            return;
        }
        t.insert(
            "variants".into(),
            Value::Array(vec![Value::String(variant.into())]),
        );
        let seed = Value::Integer(i64::try_from(seed).unwrap_or(i64::MAX));
        match self {
            Kind::Xor | Kind::XorNeuron => {
                t.insert("first_seed".into(), seed);
                t.insert("seeds".into(), Value::Integer(1));
            }
            Kind::Mnist | Kind::Cifar10 => {
                t.insert("seed".into(), seed);
                if t.contains_key("seeds") {
                    t.insert("seeds".into(), Value::Integer(1));
                }
            }
            Kind::Meta => {}
        }
    }

    /// Deserialises and validates a job table.
    fn build(self, t: &Table) -> Result<RunConfig, BuildError> {
        fn de<T: serde::de::DeserializeOwned>(t: &Table) -> Result<T, BuildError> {
            Value::Table(t.clone())
                .try_into::<T>()
                .map_err(|e| BuildError::Type(one_line(e.message())))
        }
        let check = |r: Result<Vec<ActivationSpec>, ExperimentError>| match r {
            Ok(_) => Ok(()),
            Err(ExperimentError::Config { field, message }) => {
                Err(BuildError::Invalid(field.to_string(), one_line(&message)))
            }
            Err(e) => Err(BuildError::Type(one_line(&e.to_string()))),
        };
        Ok(match self {
            Kind::Xor => {
                let c: XorConfig = de(t)?;
                check(c.validate())?;
                RunConfig::Xor(c)
            }
            Kind::XorNeuron => {
                let c: XorNeuronConfig = de(t)?;
                check(c.validate())?;
                RunConfig::XorNeuron(c)
            }
            Kind::Mnist => {
                let c: MnistConfig = de(t)?;
                check(c.validate())?;
                RunConfig::Mnist(c)
            }
            Kind::Cifar10 => {
                let c: CifarConfig = de(t)?;
                check(c.validate())?;
                RunConfig::Cifar10(c)
            }
            Kind::Meta => {
                let c: MetaConfig = de(t)?;
                check(c.validate().map(|()| Vec::new()))?;
                RunConfig::Meta(c)
            }
        })
    }
}

/// Why a job table is not a valid config.
enum BuildError {
    /// Deserialisation failed (unknown field, wrong type).
    Type(String),
    /// `validate()` failed on this field.
    Invalid(String, String),
}

impl BuildError {
    fn message(&self) -> String {
        match self {
            BuildError::Type(m) => m.clone(),
            BuildError::Invalid(f, m) => format!("{f}: {m}"),
        }
    }
}

/// A dotted field path and its value.
type Leaf = (Vec<String>, Value);

/// A grid key (dotted), its path and its values.
type GridAxis = (String, Vec<String>, Vec<Value>);

/// Builds a job's table from field overrides (path, value), a variant and a seed.
type JobTable<'a> = dyn Fn(&[(&[String], &Value)], &str, u64) -> Table + 'a;

/// Reads, parses, expands and validates a sweep file.
pub fn load(path: &Path) -> Result<Sweep, SweepError> {
    let text = std::fs::read_to_string(path).map_err(|e| SweepError::Read {
        file: path.to_path_buf(),
        message: one_line(&e.to_string()),
    })?;
    let source = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "sweep".into());
    load_str(&text, path, &name, &source)
}

/// Parses, expands and validates the text of a sweep file: `file` is the name used in error
/// messages, `name` the sweep's name (the default output is `runs/sweeps/<name>`), `source` the
/// file recorded in `sweep.json`.
pub fn load_str(text: &str, file: &Path, name: &str, source: &Path) -> Result<Sweep, SweepError> {
    let field_err = |field: &str, message: String| SweepError::Field {
        file: file.to_path_buf(),
        field: field.to_string(),
        message,
    };
    let root: Table = toml::from_str(text).map_err(|e| SweepError::Toml {
        file: file.to_path_buf(),
        message: toml_message(text, &e),
    })?;
    let mut out = None;
    let mut blocks = None;
    for (key, value) in &root {
        match key.as_str() {
            "out" => match value {
                Value::String(s) if !s.is_empty() => out = Some(PathBuf::from(s)),
                _ => return Err(field_err("out", "expected a folder path (a string)".into())),
            },
            "experiment" => match value {
                Value::Array(a) => blocks = Some(a),
                _ => {
                    return Err(field_err(
                        "experiment",
                        "expected [[experiment]] blocks (an array of tables)".into(),
                    ));
                }
            },
            other => {
                return Err(field_err(
                    other,
                    "unknown key (expected out, [[experiment]])".into(),
                ));
            }
        }
    }
    let blocks = match blocks {
        Some(b) if !b.is_empty() => b,
        _ => {
            return Err(field_err(
                "experiment",
                "no [[experiment]] blocks: a sweep needs at least one".into(),
            ));
        }
    };
    let mut jobs = Vec::new();
    let mut owner: BTreeMap<String, usize> = BTreeMap::new();
    for (i, block) in blocks.iter().enumerate() {
        let at = format!("experiment[{i}]");
        let Value::Table(block) = block else {
            return Err(field_err(&at, "expected a table".into()));
        };
        for job in expand_block(block, &at, file)? {
            if let Some(j) = owner.get(&job.id) {
                let same = if *j == i {
                    String::new()
                } else {
                    format!(" (also made by experiment[{j}])")
                };
                return Err(field_err(
                    &at,
                    format!(
                        "two jobs get the id '{}'{same}: make their variants, seeds or grid values differ",
                        job.id
                    ),
                ));
            }
            owner.insert(job.id.clone(), i);
            jobs.push(job);
        }
    }
    Ok(Sweep {
        name: name.to_string(),
        source: source.to_path_buf(),
        out: out.unwrap_or_else(|| PathBuf::from("runs/sweeps").join(name)),
        jobs,
    })
}

/// One line from a TOML parse error: position and reason.
fn toml_message(text: &str, e: &toml::de::Error) -> String {
    let reason = one_line(e.message());
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {reason}")
        }
        None => reason,
    }
}

/// Expands one `[[experiment]]` block.
fn expand_block(block: &Table, at: &str, file: &Path) -> Result<Vec<Job>, SweepError> {
    let err = |field: &str, message: String| SweepError::Field {
        file: file.to_path_buf(),
        field: if field.is_empty() {
            at.to_string()
        } else {
            format!("{at}.{field}")
        },
        message,
    };
    for key in block.keys() {
        if !BLOCK_KEYS.split(", ").any(|k| k == key) {
            return Err(err(key, format!("unknown key (expected {BLOCK_KEYS})")));
        }
    }
    let expected = EXPERIMENTS.join(", ");
    let kind = match block.get("name") {
        None => return Err(err("name", format!("missing (expected {expected})"))),
        Some(Value::String(s)) => Kind::parse(s).ok_or_else(|| {
            err(
                "name",
                format!("unknown experiment '{s}' (expected {expected})"),
            )
        })?,
        Some(_) => return Err(err("name", format!("expected a string ({expected})"))),
    };
    let quick = match block.get("quick") {
        None => false,
        Some(Value::Boolean(b)) => *b,
        Some(_) => return Err(err("quick", "expected true or false".into())),
    };
    let variants = if kind == Kind::Meta {
        if block.contains_key("variants") {
            return Err(err(
                "variants",
                "meta has no variants (each job learns one AFU and compares it with relu and trained AFUs); remove it".into(),
            ));
        }
        vec![META_VARIANT.to_string()]
    } else {
        parse_variants(block.get("variants"), &err)?
    };
    let seeds = parse_seeds(block, kind, &err)?;
    let settings = match block.get("settings") {
        None => Table::new(),
        Some(Value::Table(t)) => undot(t),
        Some(_) => return Err(err("settings", "expected a table".into())),
    };
    let grid_table = match block.get("grid") {
        None => Table::new(),
        Some(Value::Table(t)) => undot(t),
        Some(_) => return Err(err("grid", "expected a table".into())),
    };
    let setting_leaves = leaves(&settings);
    let mut grid: Vec<GridAxis> = Vec::new();
    for (path, value) in leaves(&grid_table) {
        let key = path.join(".");
        match value {
            Value::Array(values) if values.is_empty() => {
                return Err(err(&format!("grid.{key}"), "empty list".into()));
            }
            Value::Array(values) => grid.push((key, path, values)),
            _ => {
                return Err(err(
                    &format!("grid.{key}"),
                    "expected a list of values (use settings for one value)".into(),
                ));
            }
        }
    }
    grid.sort_by(|a, b| a.0.cmp(&b.0));
    for (section, list) in [
        (
            "settings",
            setting_leaves.iter().map(|l| &l.0).collect::<Vec<_>>(),
        ),
        ("grid", grid.iter().map(|g| &g.1).collect()),
    ] {
        for path in list {
            if kind.reserved().contains(&path[0].as_str()) {
                return Err(err(
                    &format!("{section}.{}", path.join(".")),
                    kind.reserved_hint().into(),
                ));
            }
        }
    }
    let mut base = kind
        .base(quick)
        .map_err(|m| err("", format!("cannot build the base config: {m}")))?;
    deep_merge(&mut base, &settings);
    let first = (variants[0].as_str(), seeds[0]);
    // afu meta's rule: a full run with another N but no population gets λ = 4 + ⌊3 ln(3N+1)⌋.
    let derive_population = kind == Kind::Meta
        && !quick
        && !settings.contains_key("population")
        && !grid.iter().any(|g| g.0 == "population");
    let job_table = |extra: &[(&[String], &Value)], variant: &str, seed: u64| {
        let mut t = base.clone();
        for (path, value) in extra {
            set_path(&mut t, path, (*value).clone());
        }
        if derive_population && let Some(Value::Integer(h)) = t.get("hidden") {
            let n = usize::try_from(*h).unwrap_or(0);
            let lambda = crate::meta::cmaes::default_population(3 * n + 1);
            t.insert(
                "population".into(),
                Value::Integer(i64::try_from(lambda).unwrap_or(i64::MAX)),
            );
        }
        kind.set_job(&mut t, variant, seed);
        absolutise(&mut t);
        t
    };
    // The settings alone: name the setting at fault.
    if let Err(e) = kind.build(&job_table(&[], first.0, first.1)) {
        let mut fault = None;
        let mut lone = kind
            .base(quick)
            .map_err(|m| err("", format!("cannot build the base config: {m}")))?;
        kind.set_job(&mut lone, first.0, first.1);
        for (path, value) in &setting_leaves {
            let mut t = lone.clone();
            set_path(&mut t, path, value.clone());
            absolutise(&mut t);
            if let Err(e) = kind.build(&t) {
                fault = Some((format!("settings.{}", path.join(".")), e));
                break;
            }
        }
        return Err(match (fault, e) {
            (Some((field, BuildError::Invalid(_, m))), _) => err(&field, m),
            (Some((field, e)), _) => err(&field, e.message()),
            (None, e) => err("settings", e.message()),
        });
    }
    check_grid(kind, &grid, &job_table, first, &err)?;
    // Every combination.
    let mut points: Vec<Vec<usize>> = vec![Vec::new()];
    for (_, _, values) in &grid {
        points = points
            .into_iter()
            .flat_map(|p| {
                (0..values.len()).map(move |j| {
                    let mut q = p.clone();
                    q.push(j);
                    q
                })
            })
            .collect();
    }
    let mut jobs = Vec::new();
    for &seed in &seeds {
        for point in &points {
            let extra: Vec<(&[String], &Value)> = grid
                .iter()
                .zip(point)
                .map(|((_, path, values), &j)| (path.as_slice(), &values[j]))
                .collect();
            let texts: BTreeMap<String, String> = grid
                .iter()
                .zip(point)
                .map(|((key, _, values), &j)| (key.clone(), value_text(&values[j])))
                .collect();
            for variant in &variants {
                let mut id = if kind == Kind::Meta {
                    format!("{}-s{seed}", kind.name())
                } else {
                    format!("{}-{variant}-s{seed}", kind.name())
                };
                for (k, v) in &texts {
                    id.push_str(&format!("-{k}-{v}"));
                }
                let id = sanitise(&id);
                if id.len() > MAX_ID_LEN {
                    return Err(err(
                        "grid",
                        format!(
                            "job id '{}…' is longer than {MAX_ID_LEN} characters: use shorter grid values",
                            &id[..40]
                        ),
                    ));
                }
                let config = kind
                    .build(&job_table(&extra, variant, seed))
                    .map_err(|e| err("", format!("job {id}: {}", e.message())))?;
                jobs.push(Job {
                    id,
                    experiment: kind.name().to_string(),
                    variant: variant.clone(),
                    seed,
                    grid: texts.clone(),
                    config,
                });
            }
        }
    }
    Ok(jobs)
}

/// Checks every grid value on its own (on top of the settings), naming the value at fault.
fn check_grid(
    kind: Kind,
    grid: &[GridAxis],
    job_table: &JobTable,
    first: (&str, u64),
    err: &dyn Fn(&str, String) -> SweepError,
) -> Result<(), SweepError> {
    for (key, path, values) in grid {
        for (j, value) in values.iter().enumerate() {
            if let Err(e) = kind.build(&job_table(&[(path, value)], first.0, first.1)) {
                let m = match e {
                    BuildError::Invalid(f, m) if f == path[0] => m,
                    e => e.message(),
                };
                return Err(err(&format!("grid.{key}[{j}]"), m));
            }
        }
    }
    Ok(())
}

/// The block's variants: a non-empty list of distinct activation names.
fn parse_variants(
    value: Option<&Value>,
    err: &dyn Fn(&str, String) -> SweepError,
) -> Result<Vec<String>, SweepError> {
    let list = match value {
        None => {
            return Err(err(
                "variants",
                "missing (a list of activation names)".into(),
            ));
        }
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(err(
                "variants",
                "expected a list of activation names".into(),
            ));
        }
    };
    if list.is_empty() {
        return Err(err("variants", "empty list".into()));
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (j, v) in list.iter().enumerate() {
        let field = format!("variants[{j}]");
        let Value::String(s) = v else {
            return Err(err(&field, "expected a string".into()));
        };
        let (activation, _) =
            crate::train::curriculum::split_variant(s).map_err(|e| err(&field, e.to_string()))?;
        activation
            .parse::<ActivationSpec>()
            .map_err(|e| err(&field, e.to_string()))?;
        if !seen.insert(s.clone()) {
            return Err(err(&field, format!("'{s}' appears twice")));
        }
        out.push(s.clone());
    }
    Ok(out)
}

/// The block's seeds.
fn parse_seeds(
    block: &Table,
    kind: Kind,
    err: &dyn Fn(&str, String) -> SweepError,
) -> Result<Vec<u64>, SweepError> {
    let first_seed = match block.get("first_seed") {
        None => None,
        Some(Value::Integer(i)) if *i >= 0 => Some(*i as u64),
        Some(_) => {
            return Err(err("first_seed", "expected a non-negative integer".into()));
        }
    };
    match block.get("seeds") {
        None | Some(Value::Integer(_)) => {
            let count = match block.get("seeds") {
                None => 1,
                Some(Value::Integer(k)) if *k >= 1 => *k as u64,
                Some(Value::Integer(0)) => return Err(err("seeds", "empty (0 seeds)".into())),
                Some(_) => {
                    return Err(err(
                        "seeds",
                        "expected a seed count ≥ 1 or a list of seeds".into(),
                    ));
                }
            };
            let first = first_seed.unwrap_or_else(|| kind.default_first_seed());
            (0..count)
                .map(|k| {
                    first
                        .checked_add(k)
                        .ok_or_else(|| err("first_seed", "too large".into()))
                })
                .collect()
        }
        Some(Value::Array(list)) => {
            if first_seed.is_some() {
                return Err(err(
                    "first_seed",
                    "only allowed with an integer seeds (a count); seeds is a list".into(),
                ));
            }
            if list.is_empty() {
                return Err(err("seeds", "empty".into()));
            }
            let mut out = Vec::new();
            for (j, v) in list.iter().enumerate() {
                let field = format!("seeds[{j}]");
                let seed = match v {
                    Value::Integer(i) if *i >= 0 => *i as u64,
                    _ => return Err(err(&field, "expected a non-negative integer".into())),
                };
                if out.contains(&seed) {
                    return Err(err(&field, format!("seed {seed} appears twice")));
                }
                out.push(seed);
            }
            Ok(out)
        }
        Some(_) => Err(err(
            "seeds",
            "expected a seed count ≥ 1 or a list of seeds".into(),
        )),
    }
}

/// Splits quoted dotted keys (`"afu_start.afu_init" = …`) into nested tables, recursively.
fn undot(t: &Table) -> Table {
    let mut out = Table::new();
    for (key, value) in t {
        let value = match value {
            Value::Table(inner) => Value::Table(undot(inner)),
            v => v.clone(),
        };
        let path: Vec<String> = key.split('.').map(str::to_string).collect();
        let mut single = Table::new();
        set_path(&mut single, &path, value);
        deep_merge(&mut out, &single);
    }
    out
}

/// Every non-table value of `t` with its path.
fn leaves(t: &Table) -> Vec<Leaf> {
    let mut out = Vec::new();
    for (key, value) in t {
        match value {
            Value::Table(inner) => {
                for (mut path, v) in leaves(inner) {
                    path.insert(0, key.clone());
                    out.push((path, v));
                }
            }
            v => out.push((vec![key.clone()], v.clone())),
        }
    }
    out
}

/// Merges `src` into `dst`: tables field by field, anything else replaced.
pub(crate) fn deep_merge(dst: &mut Table, src: &Table) {
    for (key, value) in src {
        match (dst.get_mut(key), value) {
            (Some(Value::Table(d)), Value::Table(s)) => deep_merge(d, s),
            _ => {
                dst.insert(key.clone(), value.clone());
            }
        }
    }
}

/// Sets `t[path[0]][path[1]]… = value`, making tables on the way.
fn set_path(t: &mut Table, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = t;
    for p in parents {
        let entry = cur
            .entry(p.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        if !entry.is_table() {
            *entry = Value::Table(Table::new());
        }
        let Value::Table(next) = entry else {
            return;
        };
        cur = next;
    }
    match (cur.get_mut(last), value) {
        (Some(Value::Table(d)), Value::Table(s)) => deep_merge(d, &s),
        (_, v) => {
            cur.insert(last.clone(), v);
        }
    }
}

/// Makes relative `data` and `afu_start.afu_from` paths absolute (against the current directory).
fn absolutise(t: &mut Table) {
    fn fix(v: Option<&mut Value>) {
        if let Some(Value::String(s)) = v {
            let p = Path::new(s.as_str());
            if !s.is_empty()
                && p.is_relative()
                && let Ok(abs) = std::path::absolute(p)
            {
                *s = abs.to_string_lossy().into_owned();
            }
        }
    }
    fix(t.get_mut("data"));
    if let Some(Value::Table(start)) = t.get_mut("afu_start") {
        fix(start.get_mut("afu_from"));
    }
}

/// A grid value as text (strings without quotes).
fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Replaces every character outside `[A-Za-z0-9._-]` by `_`.
pub(crate) fn sanitise(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}
