//! Experiment files: schema, validation with positioned errors, expansion into runs.

pub mod changes;
pub mod device;
pub mod diagnostic;
pub mod machine;
mod partial;
pub mod schema;
pub mod slots;
pub mod sweep;

pub use changes::live_diff;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use plugin_api::{ParamSpec, Value};

pub use device::{
    DeviceError, DeviceName, LIBTORCH_BUILT, LIBTORCH_MISSING, backend_for, parse_device,
};
pub use diagnostic::{Diagnostic, Seg};
use diagnostic::{Locator, did_you_mean, expected_words, first_quoted, key};
pub use machine::{Machine, MemoryFloor};
pub use schema::*;
pub use slots::{DepthRule, Placed, model_slots, placement};

/// Name of the strategy that applies no extra dropout.
pub const NONE: &str = "none";

/// What the validator knows about strategies: name → parameter schema, and
/// for loaded plugins their own rules over the parameters.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    pub strategies: BTreeMap<String, Vec<ParamSpec>>,
    /// name → the strategy's rules beyond its schema (`d_min <= d_max`), run
    /// by building it with the file's parameters.
    pub rules: BTreeMap<String, Rules>,
    /// Libraries found but refused (file name → why): an unknown strategy
    /// may be one of them, and the user needs to know why.
    pub refused: BTreeMap<String, String>,
}

/// A strategy's own check of parameters that passed its schema: the
/// plugin's message when it refuses them.
#[derive(Clone)]
pub struct Rules(pub std::sync::Arc<RuleFn>);

/// A rule check: `Err` carries the plugin's message.
pub type RuleFn =
    dyn Fn(&[(String, Value)]) -> Result<(), String> + Send + Sync + std::panic::RefUnwindSafe;

impl std::fmt::Debug for Rules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rules")
    }
}

impl Catalog {
    /// The catalog of these strategies (as each plugin describes itself).
    pub fn from_infos<'a>(infos: impl IntoIterator<Item = &'a plugin_api::Info>) -> Self {
        let strategies = infos
            .into_iter()
            .map(|i| (i.name.clone(), i.params.clone()))
            .collect();
        Self {
            strategies,
            ..Self::default()
        }
    }
}

/// "; refused: libx.so (why), …" for an unknown strategy's message.
fn refused_libraries(catalog: &Catalog) -> String {
    let refused: Vec<String> = catalog
        .refused
        .iter()
        .map(|(id, why)| format!("{id} ({why})"))
        .collect();
    if refused.is_empty() {
        String::new()
    } else {
        format!("; refused: {}", refused.join(", "))
    }
}

/// The parameters a strategy is built with in one slot: its `params`, with
/// the slot's own `params` over them.
pub fn strategy_params(
    spec: &StrategySpec,
    slot_params: Option<&toml::Table>,
) -> Vec<(String, Value)> {
    let mut table = spec.params.clone();
    if let Some(extra) = slot_params {
        table.extend(extra.clone());
    }
    params_of(&table)
}

/// A validated experiment file.
#[derive(Clone, Debug)]
pub struct Experiment {
    /// Where it was read from.
    pub path: PathBuf,
    pub file: ExperimentFile,
    /// The data directory or file actually used (absolute where possible).
    pub data_path: PathBuf,
    /// Non-fatal remarks (e.g. the data fallback was taken).
    pub warnings: Vec<String>,
    /// The data is not on this machine: the file is valid, but no run can start
    /// from it here (a GPU experiment shipped for users who have the data).
    pub data_missing: Option<Diagnostic>,
}

/// One strategy × seed of an experiment.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSpec {
    pub label: String,
    pub strategy_index: usize,
    pub seed: u64,
}

impl Experiment {
    /// Every strategy × seed, strategies outermost. An experiment without
    /// `[[strategy]]` tables has one arm, "none".
    pub fn runs(&self) -> Vec<RunSpec> {
        let mut runs = Vec::new();
        for (index, strategy) in self.strategies().iter().enumerate() {
            for &seed in &self.file.seeds {
                runs.push(RunSpec {
                    label: strategy_label(strategy),
                    strategy_index: index,
                    seed,
                });
            }
        }
        runs
    }

    pub fn strategies(&self) -> Vec<StrategySpec> {
        self.arms().into_iter().map(|(s, _)| s).collect()
    }

    /// Every arm, a sweeping `[[strategy]]` expanded into one per cell (with
    /// its cell; `None` for an arm that sweeps nothing).
    pub fn arms(&self) -> Vec<(StrategySpec, Option<sweep::Cell>)> {
        if self.file.strategy.is_empty() {
            return vec![(none_strategy(), None)];
        }
        let seed = sweep_seed(&self.file);
        self.file
            .strategy
            .iter()
            // A loaded experiment's sweeps expand: `check_sweep` made sure.
            .flat_map(|s| sweep::expand(s, seed).unwrap_or_else(|_| vec![(s.clone(), None)]))
            .collect()
    }

    /// The experiment as one run sees it: one strategy, one seed, the data path
    /// absolute. Written into the run directory.
    pub fn resolved(&self, run: &RunSpec) -> ExperimentFile {
        let mut file = self.file.clone();
        file.strategy = vec![self.strategies()[run.strategy_index].clone()];
        file.seeds = vec![run.seed];
        file.data.path = self.data_path.clone();
        file.data.fallback = None;
        file
    }
}

/// Whether `x` is a fraction strictly between 0 and 1 (a halving rung, a
/// share kept).
pub fn in_open_unit(x: f64) -> bool {
    x > 0.0 && x < 1.0
}

/// What a file's random sweeps are drawn from: its first seed.
pub fn sweep_seed(f: &ExperimentFile) -> u64 {
    f.seeds.first().copied().unwrap_or(0)
}

pub fn none_strategy() -> StrategySpec {
    StrategySpec {
        plugin: NONE.into(),
        label: None,
        params: toml::Table::new(),
        schedule: DropSchedule::default(),
        slots: None,
        depth_rule: DepthRule::Constant,
        sweep: None,
    }
}

pub fn strategy_label(s: &StrategySpec) -> String {
    s.label.clone().unwrap_or_else(|| s.plugin.clone())
}

/// The experiment files (`*.toml`) of a directory, sorted; none if it cannot be read.
pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Reads and validates `path`.
pub fn load(
    path: &Path,
    catalog: &Catalog,
    machine: &dyn Machine,
) -> Result<Experiment, Vec<Diagnostic>> {
    let max = crate::run::files::MAX_EXPERIMENT_BYTES;
    let text = crate::run::files::read_named_text(path, max).map_err(|e| {
        vec![Diagnostic {
            file: path.to_path_buf(),
            line: 1,
            column: 1,
            key: String::new(),
            message: format!("cannot read the file: {e}"),
            help: None,
            source_line: String::new(),
        }]
    })?;
    validate(path, &text, catalog, machine)
}

/// Parses `text` (the content of `path`) into the schema, without checks that need
/// plugins or the file system.
pub fn parse(path: &Path, text: &str) -> Result<ExperimentFile, Vec<Diagnostic>> {
    let locator = Locator::new(path, text);
    let deserializer = match toml::Deserializer::parse(text) {
        Ok(d) => d,
        Err(e) => return Err(syntax_errors(&locator, text, e)),
    };
    serde_path_to_error::deserialize::<_, ExperimentFile>(deserializer)
        .map_err(|e| vec![schema_error(&locator, &[], e)])
}

/// Every syntax error of `text`, in the file's order: toml's parser keeps
/// only its last, but its recovering parse finds them all. `first` stands
/// where that finds none. One per line: the rest of a line after its first
/// error is the recovery's guesswork, not another mistake.
fn syntax_errors(locator: &Locator, text: &str, first: toml::de::Error) -> Vec<Diagnostic> {
    let (_, mut errors) = toml::de::DeTable::parse_recoverable(text);
    if errors.is_empty() {
        errors.push(first);
    }
    errors.sort_by_key(|e| e.span().map_or(0, |s| s.start));
    let mut diagnostics: Vec<Diagnostic> =
        errors.iter().map(|e| syntax_error(locator, e)).collect();
    diagnostics.dedup_by_key(|d| d.line);
    diagnostics
}

fn syntax_error(locator: &Locator, e: &toml::de::Error) -> Diagnostic {
    let offset = e.span().map_or(0, |s| s.start);
    let raw = e.message().trim();
    if raw == "duplicate key"
        && let Some((key, message)) =
            duplicate_key(locator.text, offset).or_else(|| duplicate_table(locator.text, offset))
    {
        return locator.at(offset, key, format!("invalid TOML: {message}"), None);
    }
    let message = format!("invalid TOML: {}", plain_syntax(raw));
    locator.at(offset, place_at(locator.text, offset), message, None)
}

/// toml's words where they confuse: "expected nothing" (it has no
/// suggestion) and the tokens it wanted after a value.
fn plain_syntax(raw: &str) -> String {
    let raw = raw.strip_suffix(", expected nothing").unwrap_or(raw);
    match raw {
        "unexpected key or value, expected newline, `#`" => {
            "unexpected text; expected the end of the line or a `#` comment".to_string()
        }
        _ => raw.to_string(),
    }
}

/// The key of a `key = value` line, unquoted.
fn line_key(line: &str) -> Option<String> {
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    (!key.is_empty() && !key.starts_with('[')).then(|| key.to_string())
}

/// The table a header line opens, `strategy[2]` for the third
/// `[[strategy]]`, given the lines above it.
fn header_path(header: &str, above: &[&str]) -> String {
    let name = header.trim().trim_matches(['[', ']']).trim().to_string();
    if !header.trim_start().starts_with("[[") {
        return name;
    }
    let earlier = above
        .iter()
        .filter(|l| {
            l.trim_start().starts_with("[[") && l.trim().trim_matches(['[', ']']).trim() == name
        })
        .count();
    format!("{name}[{earlier}]")
}

/// Where a syntax error at `offset` is, as far as the lines tell: the key of
/// its line inside the table above (`model.kind`), or the table a header
/// line opens.
fn place_at(text: &str, offset: usize) -> String {
    let before = text.get(..offset).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let above: Vec<&str> = text[..line_start].lines().collect();
    if line.trim_start().starts_with('[') {
        return header_path(line, &above);
    }
    let table = above
        .iter()
        .rposition(|l| l.trim_start().starts_with('['))
        .map(|i| header_path(above[i], &above[..i]));
    match (table, line_key(line)) {
        (Some(t), Some(k)) => format!("{t}.{k}"),
        (Some(t), None) => t,
        (None, Some(k)) => k,
        (None, None) => String::new(),
    }
}

/// A `[table]` header opened twice, the second at `offset`: its name and the
/// line of the first.
fn duplicate_table(text: &str, offset: usize) -> Option<(String, String)> {
    let before = text.get(..offset).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let header = text[line_start..].lines().next()?.trim();
    if !header.starts_with('[') || header.starts_with("[[") {
        return None;
    }
    let first = text[..line_start]
        .lines()
        .position(|l| l.trim() == header)?;
    let name = header.trim_matches(['[', ']']).trim().to_string();
    let message = format!("table [{name}] opened twice: first on line {}", first + 1);
    Some((name, message))
}

/// A key set twice at `offset` (a line `key = ...`): its path and where it
/// was first set in the same table, as far as the lines above tell.
fn duplicate_key(text: &str, offset: usize) -> Option<(String, String)> {
    let before = &text[..offset.min(text.len())];
    let line_no = before.matches('\n').count() + 1;
    let key = line_key(
        text[before.rfind('\n').map_or(0, |i| i + 1)..]
            .lines()
            .next()?,
    )?;
    let above: Vec<&str> = before.lines().collect();
    let header = above
        .iter()
        .rposition(|l| l.trim_start().starts_with('['))
        .map(|i| (i, above[i].trim().trim_matches(['[', ']']).to_string()));
    let from = header.as_ref().map_or(0, |h| h.0 + 1);
    let first = (from..above.len().min(line_no - 1))
        .find(|&i| line_key(above[i]).as_deref() == Some(key.as_str()));
    let table = header.map(|h| h.1);
    let path = match &table {
        Some(t) => format!("{t}.{key}"),
        None => key.clone(),
    };
    let place = match &table {
        Some(t) => format!(" in [{t}]"),
        None => String::new(),
    };
    let message = match first {
        Some(i) => format!("duplicate key `{key}`{place}: first set on line {}", i + 1),
        None => format!("duplicate key `{key}`{place}"),
    };
    Some((path, message))
}

/// The error of reading the value at `prefix` (the whole file when empty).
fn schema_error(
    locator: &Locator,
    prefix: &[Seg],
    e: serde_path_to_error::Error<toml::de::Error>,
) -> Diagnostic {
    let mut path = prefix.to_vec();
    path.extend(parse_path(&e.path().to_string()));
    let inner = e.inner();
    let raw = inner.message().trim().to_string();
    let offset = inner.span().map(|s| s.start);
    let (message, help) = if raw.starts_with("unknown field") {
        let word = first_quoted(&raw).unwrap_or_default();
        let known = expected_words(&raw);
        if path.last() != Some(&Seg::Key(word.clone())) {
            path.push(Seg::Key(word.clone()));
        }
        let message = if known.is_empty() {
            format!("unknown key `{word}`; this table takes no keys")
        } else {
            format!(
                "unknown key `{word}`; expected one of: {}",
                known.join(", ")
            )
        };
        (message, did_you_mean(&word, &known))
    } else if raw.starts_with("unknown variant") {
        let word = first_quoted(&raw).unwrap_or_default();
        let known = expected_words(&raw);
        let message = format!(
            "unknown value \"{word}\"; expected one of: {}",
            known.join(", ")
        );
        (message, did_you_mean(&word, &known))
    } else if raw.starts_with("missing field") {
        let word = first_quoted(&raw).unwrap_or_default();
        path.push(Seg::Key(word.clone()));
        (format!("missing required key `{word}`"), None)
    } else if let Some(rest) = raw.strip_prefix("invalid type: ") {
        match rest.split_once(", expected ") {
            Some((found, expected)) => (format!("expected {expected}, found {found}"), None),
            None => (raw.clone(), None),
        }
    } else if let Some(rest) = raw.strip_prefix("invalid value: ") {
        match rest.split_once(", expected ") {
            Some((found, expected)) => (format!("expected {expected}, found {found}"), None),
            None => (raw.clone(), None),
        }
    } else if let Some(rest) = raw.strip_prefix("invalid length ") {
        (format!("wrong number of items: {rest}"), None)
    } else if raw == "wanted string or table" {
        // toml's words for a `kind` that is not a string (a table would name
        // the variant some other way; no table is allowed here).
        let found = offset.map_or("", |o| value_at(locator.text, o));
        (format!("expected a string, found {found}"), None)
    } else {
        (raw.clone(), None)
    };
    let message = plain_types(&message);
    match offset {
        Some(offset) => locator.at(offset, diagnostic::path_string(&path), message, help),
        // Read from a value (no span): an unknown or missing key is shown at
        // its key, any other problem at the value.
        None => {
            let at_key = raw.starts_with("unknown field") || raw.starts_with("missing field");
            locator.at_path(&path, at_key, message, help)
        }
    }
}

/// The value written at `offset`: the rest of its line, up to a comment.
fn value_at(text: &str, offset: usize) -> &str {
    let rest = text.get(offset..).unwrap_or("");
    let line = rest.lines().next().unwrap_or("");
    line.split(" #").next().unwrap_or(line).trim()
}

/// Serde names Rust types ("expected usize"); users read TOML.
fn plain_types(message: &str) -> String {
    let mut out = message.to_string();
    for (rust, plain) in [
        ("expected usize", "expected a non-negative integer"),
        ("expected u64", "expected a non-negative integer"),
        ("expected u32", "expected a non-negative integer"),
        ("expected f64", "expected a number"),
        ("expected a sequence", "expected an array"),
        ("expected a map", "expected a table"),
    ] {
        out = out.replace(rust, plain);
    }
    out
}

/// Parses serde_path_to_error's `a.b[0].c` into segments.
fn parse_path(text: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    if text == "." {
        return out;
    }
    for part in text.split('.') {
        let mut rest = part;
        if let Some(i) = rest.find('[') {
            if i > 0 {
                out.push(Seg::Key(rest[..i].to_string()));
            }
            rest = &rest[i..];
            while let Some(stripped) = rest.strip_prefix('[') {
                let end = stripped.find(']').unwrap_or(stripped.len());
                if let Ok(n) = stripped[..end].parse() {
                    out.push(Seg::Index(n));
                }
                rest = stripped.get(end + 1..).unwrap_or("");
            }
        } else if !rest.is_empty() {
            out.push(Seg::Key(rest.to_string()));
        }
    }
    out
}

/// Parses and checks `text` fully: plugins and their parameters, ranges, data paths.
pub fn validate(
    path: &Path,
    text: &str,
    catalog: &Catalog,
    machine: &dyn Machine,
) -> Result<Experiment, Vec<Diagnostic>> {
    let locator = Locator::new(path, text);
    let mut checker = Checker {
        locator: &locator,
        machine,
        errors: Vec::new(),
        more: 0,
    };
    let file = match parse(path, text) {
        Ok(file) => file,
        Err(first) => {
            checker.errors = first;
            partial::check_parts(&mut checker, catalog);
            return Err(checker.errors);
        }
    };
    checker.check(&file, catalog);
    let mut warnings = Vec::new();
    let (data_path, data_missing) = match checker.check_data(path, &file.data, &mut warnings) {
        Ok(p) => (p.unwrap_or_default(), None),
        Err(missing) => (missing.0, Some(missing.1)),
    };
    if checker.errors.is_empty() {
        Ok(Experiment {
            path: path.to_path_buf(),
            file,
            data_path,
            warnings,
            data_missing,
        })
    } else {
        if checker.more > 0 {
            let message = format!("… and {} more errors", checker.more);
            checker
                .errors
                .push(locator.at(text.len(), String::new(), message, None));
        }
        Err(checker.errors)
    }
}

/// More epochs than any run could finish; a bound so that the step count never
/// overflows.
pub const MAX_EPOCHS: usize = 1_000_000;

/// Errors reported for one file; the rest are counted ("… and N more").
pub const MAX_ERRORS: usize = 50;

struct Checker<'a> {
    locator: &'a Locator<'a>,
    machine: &'a dyn Machine,
    errors: Vec<Diagnostic>,
    /// Errors past [`MAX_ERRORS`], counted but not positioned.
    more: usize,
}

fn p(segs: &[&str]) -> Vec<Seg> {
    segs.iter().map(|s| key(s)).collect()
}

/// The `sweep` key of the `i`th `[[strategy]]`.
fn at_sweep(i: usize) -> Vec<Seg> {
    strategy_key(i, &["sweep"])
}

/// The path of `keys` inside the `i`th `[[strategy]]`.
fn strategy_key(i: usize, keys: &[&str]) -> Vec<Seg> {
    let mut v = vec![key("strategy"), Seg::Index(i)];
    v.extend(keys.iter().map(|s| key(s)));
    v
}

impl Checker<'_> {
    fn err(&mut self, path: Vec<Seg>, message: impl Into<String>) {
        self.err_help(path, false, message.into(), None);
    }

    fn err_help(&mut self, path: Vec<Seg>, at_key: bool, message: String, help: Option<String>) {
        if self.errors.len() >= MAX_ERRORS {
            self.more += 1;
            return;
        }
        self.errors
            .push(self.locator.at_path(&path, at_key, message, help));
    }

    fn forbid<T>(&mut self, value: &Option<T>, path: &[&str], why: &str) {
        if value.is_some() {
            self.err_help(
                p(path),
                true,
                format!("not used {why}"),
                Some("remove this key".into()),
            );
        }
    }

    fn rate(&mut self, path: Vec<Seg>, v: f64) {
        if !(0.0..=1.0).contains(&v) {
            self.err(path, format!("expected a drop rate in [0, 1], found {v}"));
        }
    }

    fn check(&mut self, f: &ExperimentFile, catalog: &Catalog) {
        self.check_top(f);
        self.check_halving(f);
        self.check_model(&f.model);
        self.check_modality(&f.data, &f.model);
        self.check_optimizer(&f.optimizer);
        self.check_lr(&f.lr_schedule, &f.train);
        self.check_train(&f.train);
        self.check_limits(&f.data);
        if !DeviceName::is_gpu(&f.device) {
            self.check_memory(f);
        }
        let slots = model_slots(&f.model);
        let mut labels: Vec<String> = Vec::new();
        for (i, s) in f.strategy.iter().enumerate() {
            let arms = sweep::expand(s, sweep_seed(f)).unwrap_or_default();
            for label in arms.iter().map(|(arm, _)| strategy_label(arm)) {
                if labels.contains(&label) {
                    self.err(
                        strategy_key(i, &["label"]),
                        format!(
                            "two strategies are labelled \"{label}\"; give each a distinct `label`"
                        ),
                    );
                }
                labels.push(label);
            }
            self.check_strategy(f, i, &slots, catalog);
        }
    }

    /// The top-level keys: name, seeds, device, and the cuDNN switches.
    fn check_top(&mut self, f: &ExperimentFile) {
        let name_ok = !f.name.is_empty()
            && f.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !name_ok {
            self.err(
                p(&["name"]),
                format!(
                    "expected a name of letters, digits, '-', '_' or '.' (it names run directories), found {:?}",
                    f.name
                ),
            );
        }
        if f.seeds.is_empty() {
            self.err(
                p(&["seeds"]),
                "expected at least one seed, found an empty list",
            );
        }
        if let Err(e) = parse_device(&f.device) {
            self.err(p(&["device"]), e.to_string());
        }
        if f.deterministic && f.cudnn_benchmark == Some(true) {
            self.err(
                p(&["cudnn_benchmark"]),
                "cudnn_benchmark = true contradicts deterministic = true (the search picks algorithms by timing); remove one",
            );
        }
    }

    /// `[sweep.halving]`: rungs increasing within (0, 1), `keep` in (0, 1),
    /// and a sweep to halve.
    fn check_halving(&mut self, f: &ExperimentFile) {
        let Some(h) = f.sweep.as_ref().and_then(|s| s.halving.as_ref()) else {
            return;
        };
        let at = |k: &str| p(&["sweep", "halving", k]);
        let inside = h.rungs.iter().all(|r| in_open_unit(*r));
        let increasing = h.rungs.windows(2).all(|w| w[0] < w[1]);
        if h.rungs.is_empty() || !inside || !increasing {
            self.err(
                at("rungs"),
                format!(
                    "expected increasing fractions of training in (0, 1), found {:?}",
                    h.rungs
                ),
            );
        }
        if !in_open_unit(h.keep) {
            self.err(
                at("keep"),
                format!("expected a fraction in (0, 1), found {}", h.keep),
            );
        }
        if f.strategy.iter().all(|s| s.sweep.is_none()) {
            self.err(
                p(&["sweep", "halving"]),
                "halving needs a [[strategy]] with a `sweep` to halve",
            );
        }
    }

    /// Strategy `i`: its slots, its plugin, its parameters (its own and its
    /// slots' overrides) and its schedule.
    fn check_strategy(
        &mut self,
        f: &ExperimentFile,
        i: usize,
        slots: &[String],
        catalog: &Catalog,
    ) {
        let s = &f.strategy[i];
        let at = |k: &[&str]| strategy_key(i, k);
        let placed = match placement(&f.model, s) {
            Ok(placed) => placed,
            Err(unmatched) => {
                for u in unmatched {
                    let mut path = at(&["slots"]);
                    path.push(Seg::Index(u.index));
                    self.err_help(
                        path,
                        false,
                        format!(
                            "unknown slot \"{}\" (no slot has this name or matches it as a pattern); this model's slots are: {}",
                            u.pattern,
                            slots.join(", ")
                        ),
                        did_you_mean(&u.pattern, slots),
                    );
                }
                Vec::new()
            }
        };
        let checked = self.check_plugin(i, s, catalog);
        self.check_sweep(f, i, checked.map(|(schema, _)| schema), catalog);
        let Some((schema, schema_ok)) = checked else {
            return;
        };
        for (slot, spec) in &f.model.slots {
            let here = slots::canonical(&f.model, slot);
            let applies = placed.iter().any(|p| Some(&p.name) == here.as_ref());
            if applies && !spec.params.is_empty() {
                // Errors point at the slot's own table.
                let path = vec![key("model"), key("slots"), key(slot), key("params")];
                let before = self.errors.len() + self.more;
                self.check_params(path.clone(), &spec.params, schema);
                let slot_ok = schema_ok && self.errors.len() + self.more == before;
                if slot_ok && let Some(rules) = catalog.rules.get(&s.plugin) {
                    self.check_rules(path, rules, &strategy_params(s, Some(&spec.params)));
                }
            }
        }
        self.check_schedule(&s.schedule, &at(&["schedule"]), f.train.epochs);
    }

    /// Strategy `i`'s plugin and its own parameters (schema, then the
    /// plugin's rules): the schema, and whether the parameters passed it;
    /// `None` for `none` and unknown plugins.
    fn check_plugin<'c>(
        &mut self,
        i: usize,
        s: &StrategySpec,
        catalog: &'c Catalog,
    ) -> Option<(&'c [ParamSpec], bool)> {
        let at = |k: &[&str]| strategy_key(i, k);
        if s.plugin == NONE {
            if !s.params.is_empty() {
                self.err(at(&["params"]), "the \"none\" strategy takes no parameters");
            }
            return None;
        }
        let Some(schema) = catalog.strategies.get(&s.plugin) else {
            let mut known: Vec<String> = catalog.strategies.keys().cloned().collect();
            known.push(NONE.into());
            self.err_help(
                at(&["plugin"]),
                false,
                format!(
                    "unknown strategy \"{}\"; the plugins found are: {}{}",
                    s.plugin,
                    known.join(", "),
                    refused_libraries(catalog)
                ),
                did_you_mean(&s.plugin, &known),
            );
            return None;
        };
        let before = self.errors.len() + self.more;
        self.check_params(at(&["params"]), &s.params, schema);
        let schema_ok = self.errors.len() + self.more == before;
        if schema_ok && let Some(rules) = catalog.rules.get(&s.plugin) {
            self.check_rules(at(&["params"]), rules, &strategy_params(s, None));
        }
        Some((schema, schema_ok))
    }

    /// Strategy `i`'s sweep: its keys (the strategy's parameters, `p`,
    /// `schedule.<key>`), then every cell as an arm of its own (parameters,
    /// the strategy's rules, the schedule), each error at its key.
    fn check_sweep(
        &mut self,
        f: &ExperimentFile,
        i: usize,
        schema: Option<&[ParamSpec]>,
        catalog: &Catalog,
    ) {
        let s = &f.strategy[i];
        let Some(table) = &s.sweep else { return };
        let at = |k: &str| strategy_key(i, &["sweep", k]);
        let Some(schema) = schema else {
            if s.plugin == NONE {
                self.err(at_sweep(i), "the \"none\" strategy has nothing to sweep");
            }
            return;
        };
        let axes = match sweep::axes(table) {
            Ok(axes) => axes,
            Err(e) => return self.err(at(&e.key), e.message),
        };
        let mut known: Vec<String> = schema.iter().map(|p| p.name.clone()).collect();
        known.push(sweep::P_KEY.into());
        let unknown: Vec<&String> = axes
            .iter()
            .map(|(k, _)| k)
            .filter(|k| !k.starts_with(sweep::SCHEDULE_PREFIX) && !known.contains(k))
            .collect();
        for key in &unknown {
            self.err_help(
                at(key),
                true,
                format!(
                    "unknown sweep key; this strategy sweeps {}, and `schedule.<key>`",
                    known.join(", ")
                ),
                did_you_mean(key, &known),
            );
        }
        if !unknown.is_empty() {
            return;
        }
        if self.check_values(f, i, schema, catalog, &axes) {
            match sweep::cells(&axes, sweep_seed(f)) {
                Ok(cells) => self.check_cells(f, i, schema, catalog, &cells),
                Err(e) => self.err(at(&e.key), e.message),
            }
        }
    }

    /// Each listed value alone in strategy `i`'s arm, reported at the value;
    /// whether all passed.
    fn check_values(
        &mut self,
        f: &ExperimentFile,
        i: usize,
        schema: &[ParamSpec],
        catalog: &Catalog,
        axes: &[(String, sweep::Axis)],
    ) -> bool {
        let mut ok = true;
        for (key, axis) in axes {
            let sweep::Axis::Grid(values) = axis else {
                continue;
            };
            for (j, value) in values.iter().enumerate() {
                let alone = sweep::Cell {
                    values: vec![(key.clone(), value.clone())],
                };
                let problem = match sweep::apply(&f.strategy[i], &alone) {
                    Err(e) => Some(e.message),
                    Ok(arm) => self.cell_problem(f, &arm, schema, catalog),
                };
                if let Some(problem) = problem {
                    let mut path = strategy_key(i, &["sweep", key]);
                    path.push(Seg::Index(j));
                    self.err(path, format!("`{key} = {}`: {problem}", sweep::show(value)));
                    ok = false;
                }
            }
        }
        ok
    }

    /// Each cell of strategy `i`'s sweep checked as the arm it makes; the
    /// first cell that fails is reported at its first key, with its values.
    fn check_cells(
        &mut self,
        f: &ExperimentFile,
        i: usize,
        schema: &[ParamSpec],
        catalog: &Catalog,
        cells: &[sweep::Cell],
    ) {
        let s = &f.strategy[i];
        let failures: Vec<(&sweep::Cell, String)> = cells
            .iter()
            .filter_map(|cell| {
                let problem = match sweep::apply(s, cell) {
                    Err(e) => Some(e.message),
                    Ok(arm) => self.cell_problem(f, &arm, schema, catalog),
                };
                problem.map(|p| (cell, p))
            })
            .collect();
        let Some((cell, problem)) = failures.first() else {
            return;
        };
        let key = &cell.values[0].0;
        let more = match failures.len() - 1 {
            0 => String::new(),
            n => format!(" (and {n} more cells)"),
        };
        self.err(
            strategy_key(i, &["sweep", key]),
            format!("the cell `{}`: {problem}{more}", cell.suffix()),
        );
    }

    /// What is wrong with a sweep cell's arm, in the words an arm's own
    /// error would use.
    fn cell_problem(
        &self,
        f: &ExperimentFile,
        arm: &StrategySpec,
        schema: &[ParamSpec],
        catalog: &Catalog,
    ) -> Option<String> {
        let mut scratch = Checker {
            locator: self.locator,
            machine: self.machine,
            errors: Vec::new(),
            more: 0,
        };
        scratch.check_params(Vec::new(), &arm.params, schema);
        if scratch.errors.is_empty()
            && let Some(rules) = catalog.rules.get(&arm.plugin)
        {
            scratch.check_rules(Vec::new(), rules, &strategy_params(arm, None));
        }
        scratch.check_schedule(&arm.schedule, &[key("schedule")], f.train.epochs);
        scratch.errors.into_iter().next().map(|d| {
            let named = d.key.trim_start_matches('`');
            if named.is_empty() {
                d.message
            } else {
                format!("`{named}`: {}", d.message)
            }
        })
    }

    /// The strategy's own rules, reported at its parameters in its words.
    fn check_rules(&mut self, at: Vec<Seg>, rules: &Rules, params: &[(String, Value)]) {
        if let Err(message) = (rules.0)(params) {
            self.err(at, message);
        }
    }

    fn check_params(&mut self, base: Vec<Seg>, table: &toml::Table, schema: &[ParamSpec]) {
        for (name, value) in table {
            let mut path = base.clone();
            path.push(key(name));
            let value = match toml_to_value(value) {
                Ok(v) => v,
                Err(found) => {
                    self.err(
                        path,
                        format!("expected a number, boolean or string, found {found}"),
                    );
                    continue;
                }
            };
            if let Err(e) = plugin_api::validate(schema, &[(name.clone(), value)]) {
                let known: Vec<String> = schema.iter().map(|s| s.name.clone()).collect();
                let unknown = !known.contains(name);
                let help = if unknown {
                    did_you_mean(name, &known)
                } else {
                    None
                };
                let message = if unknown {
                    if known.is_empty() {
                        "unknown parameter: this strategy takes none".to_string()
                    } else {
                        format!(
                            "unknown parameter; this strategy takes: {}",
                            known.join(", ")
                        )
                    }
                } else {
                    e.message
                };
                self.err_help(path, unknown, message, help);
            }
        }
    }

    fn check_schedule(&mut self, s: &DropSchedule, base: &[Seg], epochs: usize) {
        let at = |k: &str| {
            let mut v = base.to_vec();
            v.push(key(k));
            v
        };
        let (kind, used): (&str, &[&str]) = match s.kind {
            DropKind::Constant => ("constant", &["p"]),
            DropKind::Linear => ("linear", &["start", "end", "ramp"]),
            DropKind::Step => ("step", &["values", "at_epochs"]),
            DropKind::Early => ("early", &["p", "until"]),
            DropKind::Late => ("late", &["p", "from"]),
        };
        let present = [
            ("p", s.p.is_some()),
            ("start", s.start.is_some()),
            ("end", s.end.is_some()),
            ("ramp", s.ramp.is_some()),
            ("values", !s.values.is_empty()),
            ("at_epochs", !s.at_epochs.is_empty()),
            ("until", s.until.is_some()),
            ("from", s.from.is_some()),
        ];
        match s.kind {
            DropKind::Constant => self.needed_rate(
                s.p,
                at("p"),
                at("kind"),
                "a constant schedule needs `p`, the drop rate",
            ),
            DropKind::Linear => self.check_linear(s, &at),
            DropKind::Step => self.check_step(s, &at, epochs),
            DropKind::Early | DropKind::Late => {
                let (name, fraction, a_kind) = match s.kind {
                    DropKind::Early => ("until", s.until, "an early"),
                    _ => ("from", s.from, "a late"),
                };
                self.needed_rate(
                    s.p,
                    at("p"),
                    at("kind"),
                    &format!("{a_kind} schedule needs `p`, the drop rate"),
                );
                match fraction {
                    None => self.err(
                        at("kind"),
                        format!("{a_kind} schedule needs `{name}`, a fraction of training"),
                    ),
                    Some(f) if !(f > 0.0 && f < 1.0) => self.err(
                        at(name),
                        format!("expected a fraction of training in (0, 1), found {f}"),
                    ),
                    Some(_) => {}
                }
            }
        }
        // After the kind's own needs, as the first line names what is missing.
        for (k, _) in present
            .iter()
            .filter(|(k, here)| *here && !used.contains(k))
        {
            self.err_help(
                at(k),
                true,
                format!("not used by a {kind} schedule"),
                Some("remove this key or change `kind`".into()),
            );
        }
    }

    /// A rate that must be there: `missing` at `kind_at` without it.
    fn needed_rate(
        &mut self,
        rate: Option<f64>,
        rate_at: Vec<Seg>,
        kind_at: Vec<Seg>,
        missing: &str,
    ) {
        match rate {
            None => self.err(kind_at, missing),
            Some(v) => self.rate(rate_at, v),
        }
    }

    fn check_linear(&mut self, s: &DropSchedule, at: &dyn Fn(&str) -> Vec<Seg>) {
        self.needed_rate(
            s.end,
            at("end"),
            at("kind"),
            "a linear schedule needs `end`, the final drop rate",
        );
        if let Some(v) = s.start {
            self.rate(at("start"), v);
        }
        if let Some(r) = s.ramp
            && !(r > 0.0 && r <= 1.0)
        {
            self.err(
                at("ramp"),
                format!("expected a fraction of training in (0, 1], found {r}"),
            );
        }
    }

    fn check_step(&mut self, s: &DropSchedule, at: &dyn Fn(&str) -> Vec<Seg>, epochs: usize) {
        if s.values.is_empty() {
            self.err(at("kind"), "a step schedule needs `values`, the drop rates");
        }
        for (i, &v) in s.values.iter().enumerate() {
            let mut path = at("values");
            path.push(Seg::Index(i));
            self.rate(path, v);
        }
        if !s.values.is_empty() && s.at_epochs.len() + 1 != s.values.len() {
            self.err(
                at("at_epochs"),
                format!(
                    "expected {} epoch(s), one fewer than `values`, found {}",
                    s.values.len() - 1,
                    s.at_epochs.len()
                ),
            );
        }
        if s.at_epochs.windows(2).any(|w| w[0] >= w[1])
            || s.at_epochs.iter().any(|&e| e == 0 || e >= epochs.max(1))
        {
            self.err(
                at("at_epochs"),
                format!(
                    "expected increasing epochs between 1 and {}, found {:?}",
                    epochs.saturating_sub(1),
                    s.at_epochs
                ),
            );
        }
    }

    /// Text goes with the transformer, images with the convolutional models.
    fn check_modality(&mut self, d: &DataSpec, m: &ModelSpec) {
        let text = d.format.is_text();
        if text && m.kind != ModelKind::Transformer {
            self.err_help(
                p(&["model", "kind"]),
                false,
                "this model reads images, and the data is text".into(),
                Some("use kind = \"transformer\" for text".into()),
            );
        }
        if !text && m.kind == ModelKind::Transformer {
            self.err_help(
                p(&["data", "format"]),
                false,
                "the transformer reads text, and this format is images".into(),
                Some("use format = \"text\", \"glue-single\" or \"glue-pair\"".into()),
            );
        }
        if text {
            if d.augment != Augment::None {
                self.err(
                    p(&["data", "augment"]),
                    "text has no augmentation; remove this key or set \"none\"",
                );
            }
            if let Some(n) = d.max_len
                && !(3..=4096).contains(&n)
            {
                self.err(
                    p(&["data", "max_len"]),
                    format!("expected between 3 and 4096 tokens, found {n}"),
                );
            }
            if let Some(n) = d.vocab_size
                && !(16..=1_000_000).contains(&n)
            {
                self.err(
                    p(&["data", "vocab_size"]),
                    format!("expected between 16 and 1000000 entries, found {n}"),
                );
            }
        } else {
            self.forbid(
                &d.max_len,
                &["data", "max_len"],
                "by image data (text only)",
            );
            self.forbid(
                &d.vocab_size,
                &["data", "vocab_size"],
                "by image data (text only)",
            );
        }
    }

    fn check_model(&mut self, m: &ModelSpec) {
        if m.kind != ModelKind::SmallCnn {
            self.forbid(
                &m.channels,
                &["model", "channels"],
                "by this model (small-cnn only)",
            );
        }
        if !matches!(m.kind, ModelKind::SmallCnn | ModelKind::Transformer) {
            self.forbid(
                &m.hidden,
                &["model", "hidden"],
                "by this model (small-cnn and transformer only)",
            );
        }
        if m.kind != ModelKind::Transformer {
            let why = "by this model (transformer only)";
            self.forbid(&m.heads, &["model", "heads"], why);
            self.forbid(&m.layers, &["model", "layers"], why);
            self.forbid(&m.ff, &["model", "ff"], why);
            self.forbid(&m.dropout, &["model", "dropout"], why);
        } else {
            for (name, value) in [("heads", m.heads), ("layers", m.layers), ("ff", m.ff)] {
                if value == Some(0) {
                    self.err(p(&["model", name]), "expected a positive integer, found 0");
                }
            }
            let (hidden, heads) = (m.hidden.unwrap_or(128), m.heads.unwrap_or(4));
            if heads > 0 && hidden > 0 && !hidden.is_multiple_of(heads) {
                let at = if m.heads.is_some() { "heads" } else { "hidden" };
                self.err(
                    p(&["model", at]),
                    format!("the width {hidden} must be a multiple of the {heads} heads"),
                );
            }
            if let Some(d) = m.dropout
                && !(0.0..1.0).contains(&d)
            {
                self.err(
                    p(&["model", "dropout"]),
                    format!("expected a rate in [0, 1), found {d}"),
                );
            }
        }
        if let Some(c) = &m.channels
            && (c.is_empty() || c.contains(&0))
        {
            self.err(
                p(&["model", "channels"]),
                format!("expected a non-empty list of positive channel counts, found {c:?}"),
            );
        }
        if m.hidden == Some(0) {
            self.err(
                p(&["model", "hidden"]),
                "expected a positive width, found 0",
            );
        }
        let slots = model_slots(m);
        for (name, spec) in &m.slots {
            if slots::canonical(m, name).is_none() {
                self.err_help(
                    vec![key("model"), key("slots"), key(name)],
                    true,
                    format!(
                        "unknown slot \"{name}\"; this model's slots are: {}",
                        slots.join(", ")
                    ),
                    did_you_mean(name, &slots),
                );
            }
            if !(spec.p_scale.is_finite() && spec.p_scale >= 0.0) {
                self.err(
                    vec![key("model"), key("slots"), key(name), key("p_scale")],
                    format!("expected a non-negative factor, found {}", spec.p_scale),
                );
            }
        }
    }

    fn check_optimizer(&mut self, o: &OptimizerSpec) {
        if !(o.lr.is_finite() && o.lr > 0.0) {
            self.err(
                p(&["optimizer", "lr"]),
                format!("expected a positive learning rate, found {}", o.lr),
            );
        }
        if !(o.weight_decay.is_finite() && o.weight_decay >= 0.0) {
            self.err(
                p(&["optimizer", "weight_decay"]),
                format!("expected a non-negative decay, found {}", o.weight_decay),
            );
        }
        match o.kind {
            OptimizerKind::Sgd => {
                self.forbid(&o.betas, &["optimizer", "betas"], "by SGD (AdamW only)");
                if let Some(m) = o.momentum
                    && !(0.0..1.0).contains(&m)
                {
                    self.err(
                        p(&["optimizer", "momentum"]),
                        format!("expected a momentum in [0, 1), found {m}"),
                    );
                }
                if o.nesterov == Some(true) && o.momentum.unwrap_or(0.0) == 0.0 {
                    self.err(
                        p(&["optimizer", "nesterov"]),
                        "Nesterov needs a positive `momentum`",
                    );
                }
            }
            OptimizerKind::Adamw => {
                self.forbid(
                    &o.momentum,
                    &["optimizer", "momentum"],
                    "by AdamW (SGD only; see `betas`)",
                );
                self.forbid(
                    &o.nesterov,
                    &["optimizer", "nesterov"],
                    "by AdamW (SGD only)",
                );
                if let Some(b) = o.betas
                    && !b.iter().all(|b| (0.0..1.0).contains(b))
                {
                    self.err(
                        p(&["optimizer", "betas"]),
                        format!("expected two values in [0, 1), found {b:?}"),
                    );
                }
            }
        }
    }

    fn check_lr(&mut self, s: &LrScheduleSpec, t: &TrainSpec) {
        if !(s.warmup_epochs.is_finite()
            && s.warmup_epochs >= 0.0
            && s.warmup_epochs <= t.epochs as f64)
        {
            self.err(
                p(&["lr_schedule", "warmup_epochs"]),
                format!(
                    "expected between 0 and the {} training epochs, found {}",
                    t.epochs, s.warmup_epochs
                ),
            );
        }
        match s.kind {
            LrKind::Step => {
                if s.milestones.is_empty() {
                    self.err(
                        p(&["lr_schedule", "kind"]),
                        "a step schedule needs `milestones`, the epochs at which the rate drops",
                    );
                }
                if s.milestones.windows(2).any(|w| w[0] >= w[1]) {
                    self.err(
                        p(&["lr_schedule", "milestones"]),
                        format!("expected increasing epochs, found {:?}", s.milestones),
                    );
                }
                if let Some(g) = s.gamma
                    && !(g > 0.0 && g <= 1.0)
                {
                    self.err(
                        p(&["lr_schedule", "gamma"]),
                        format!("expected a factor in (0, 1], found {g}"),
                    );
                }
                self.forbid(
                    &s.min_lr,
                    &["lr_schedule", "min_lr"],
                    "by a step schedule (cosine only)",
                );
            }
            LrKind::Cosine => {
                if !s.milestones.is_empty() {
                    self.forbid(
                        &Some(()),
                        &["lr_schedule", "milestones"],
                        "by a cosine schedule (step only)",
                    );
                }
                self.forbid(
                    &s.gamma,
                    &["lr_schedule", "gamma"],
                    "by a cosine schedule (step only)",
                );
                if let Some(m) = s.min_lr
                    && !(m.is_finite() && m >= 0.0)
                {
                    self.err(
                        p(&["lr_schedule", "min_lr"]),
                        format!("expected a non-negative rate, found {m}"),
                    );
                }
            }
            LrKind::Constant => {
                if !s.milestones.is_empty() {
                    self.forbid(
                        &Some(()),
                        &["lr_schedule", "milestones"],
                        "by a constant schedule (step only)",
                    );
                }
                self.forbid(
                    &s.gamma,
                    &["lr_schedule", "gamma"],
                    "by a constant schedule (step only)",
                );
                self.forbid(
                    &s.min_lr,
                    &["lr_schedule", "min_lr"],
                    "by a constant schedule (cosine only)",
                );
            }
        }
    }

    /// Refuses a model whose training step cannot fit in this machine's memory
    /// (it would die on the allocation). The input is the size the data format
    /// implies; a GPU's memory is not known here, so CUDA runs are not checked.
    fn check_memory(&mut self, f: &ExperimentFile) {
        let d = &f.data;
        let input = match d.format {
            _ if d.format.is_text() => [d.vocab_size(), d.max_len(), 0],
            DataFormat::Idx => [1, 28, 28],
            DataFormat::Cifar10 | DataFormat::Cifar100 => [3, 32, 32],
            _ => {
                let side = d.image_size.unwrap_or(224);
                [3, side, side]
            }
        };
        let floor = self
            .machine
            .memory_floor(&f.model, input, f.train.batch_size);
        let (Some(floor), Some(total)) = (floor, self.machine.memory()) else {
            return;
        };
        if floor.bytes > total {
            const GIB: f64 = (1u64 << 30) as f64;
            self.err(
                p(&["model"]),
                format!(
                    "this model needs at least {:.1} GiB to train ({} parameters; weights, \
                     gradients, optimiser state and activations at batch size {}), more than \
                     the {:.1} GiB of memory this machine has",
                    floor.bytes as f64 / GIB,
                    floor.parameters,
                    f.train.batch_size,
                    total as f64 / GIB
                ),
            );
        }
    }

    fn check_limits(&mut self, d: &DataSpec) {
        for (name, value) in [("train_limit", d.train_limit), ("val_limit", d.val_limit)] {
            if value == Some(0) {
                self.err(
                    p(&["data", name]),
                    "expected a positive number of examples, found 0",
                );
            }
        }
    }

    fn check_train(&mut self, t: &TrainSpec) {
        let positive: [(&str, Option<usize>); 6] = [
            ("epochs", Some(t.epochs)),
            ("batch_size", Some(t.batch_size)),
            ("log_every", Some(t.log_every)),
            ("eval_every", t.eval_every),
            ("checkpoint_every", t.checkpoint_every),
            ("max_steps", t.max_steps),
        ];
        for (name, value) in positive {
            if value == Some(0) {
                self.err(p(&["train", name]), "expected a positive integer, found 0");
            }
        }
        if t.epochs > MAX_EPOCHS {
            self.err(
                p(&["train", "epochs"]),
                format!("expected at most {MAX_EPOCHS} epochs, found {}", t.epochs),
            );
        }
        let positive_reals = [
            ("step_timeout", t.step_timeout, "seconds"),
            ("memory_limit", t.memory_limit, "GiB"),
        ];
        for (name, value, unit) in positive_reals {
            if let Some(v) = value
                && !(v.is_finite() && v > 0.0)
            {
                self.err(
                    p(&["train", name]),
                    format!("expected a positive number of {unit}, found {v}"),
                );
            }
        }
        if t.thread_limit == Some(0) {
            self.err(
                p(&["train", "thread_limit"]),
                "expected a positive integer, found 0",
            );
        }
    }

    /// The data path to use; `Err` (with the path asked for) when the data is not
    /// there at all, which does not make the file invalid.
    fn check_data(
        &mut self,
        file: &Path,
        d: &DataSpec,
        warnings: &mut Vec<String>,
    ) -> Result<Option<PathBuf>, Box<(PathBuf, Diagnostic)>> {
        let base = file.parent().unwrap_or(Path::new("."));
        let resolve = |p: &Path| -> PathBuf {
            let joined = if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            };
            joined.canonicalize().unwrap_or(joined)
        };
        let primary = resolve(&d.path);
        let chosen = if primary.exists() {
            primary
        } else if let Some(fallback) = d.fallback.as_ref().map(|f| resolve(f)) {
            if fallback.exists() {
                warnings.push(format!(
                    "data path {} not found; using the fallback {}",
                    primary.display(),
                    fallback.display()
                ));
                fallback
            } else {
                let message = format!(
                    "data not found: neither {} nor the fallback {} exists",
                    primary.display(),
                    fallback.display()
                );
                let diag = self
                    .locator
                    .at_path(&p(&["data", "path"]), false, message, None);
                return Err(Box::new((primary, diag)));
            }
        } else {
            let message = format!(
                "data not found: {} does not exist (relative paths are read from the experiment file's directory)",
                primary.display()
            );
            let diag = self
                .locator
                .at_path(&p(&["data", "path"]), false, message, None);
            return Err(Box::new((primary, diag)));
        };
        if let Err(e) = self.machine.check_data(d.format, &chosen) {
            self.err(p(&["data", "path"]), e);
            return Ok(None);
        }
        if d.format != DataFormat::ImageFolder {
            self.forbid(
                &d.image_size,
                &["data", "image_size"],
                "by this format (image-folder only)",
            );
        }
        Ok(Some(chosen))
    }
}

/// A TOML scalar as a strategy parameter value, or what was found instead.
pub fn toml_to_value(value: &toml::Value) -> Result<Value, String> {
    Ok(match value {
        toml::Value::Integer(i) => Value::Int(*i),
        toml::Value::Float(f) => Value::Float(*f),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::String(s) => Value::Str(s.clone()),
        other => return Err(format!("a {}", other.type_str())),
    })
}

/// Converts a parameter table; call only on validated tables.
pub fn params_of(table: &toml::Table) -> Vec<(String, Value)> {
    table
        .iter()
        .filter_map(|(k, v)| toml_to_value(v).ok().map(|v| (k.clone(), v)))
        .collect()
}

/// The drop rate in force at `step` of `total_steps` (`steps_per_epoch` for step
/// schedules).
pub fn drop_rate(s: &DropSchedule, step: u64, total_steps: u64, steps_per_epoch: u64) -> f64 {
    match s.kind {
        DropKind::Constant => s.p.unwrap_or(0.0),
        DropKind::Linear => {
            let start = s.start.unwrap_or(0.0);
            let end = s.end.unwrap_or(0.0);
            let ramp_steps = (s.ramp.unwrap_or(1.0) * total_steps as f64).max(1.0);
            let t = (step as f64 / ramp_steps).min(1.0);
            start + (end - start) * t
        }
        DropKind::Step => {
            let epoch = step / steps_per_epoch.max(1);
            let idx = s.at_epochs.iter().filter(|&&e| epoch >= e as u64).count();
            s.values.get(idx).copied().unwrap_or(0.0)
        }
        DropKind::Early | DropKind::Late => {
            let fraction = step as f64 / total_steps.max(1) as f64;
            let on = match s.kind {
                DropKind::Early => fraction < s.until.unwrap_or(0.0),
                _ => fraction >= s.from.unwrap_or(1.0),
            };
            if on { s.p.unwrap_or(0.0) } else { 0.0 }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_duplicate_key_is_named_with_its_first_place() {
        let text = "name = \"x\"\n[train]\nepochs = 1\nbatch_size = 2\nepochs = 3\n";
        let offset = text.rfind("epochs").unwrap();
        let (path, message) = super::duplicate_key(text, offset).unwrap();
        assert_eq!(path, "train.epochs");
        assert_eq!(
            message,
            "duplicate key `epochs` in [train]: first set on line 3"
        );
        let top = "name = \"x\"\nname = \"y\"\n";
        let (path, message) = super::duplicate_key(top, top.rfind("name").unwrap()).unwrap();
        assert_eq!(
            (path.as_str(), message.as_str()),
            ("name", "duplicate key `name`: first set on line 1")
        );
    }

    use super::*;

    const BASE: &str = r#"
name = "t"
seeds = [1, 2, 3]
[data]
format = "idx"
path = "."
[model]
kind = "small-cnn"
channels = [8, 16, 16]
[train]
epochs = 4
batch_size = 8
[[strategy]]
plugin = "none"
[[strategy]]
plugin = "dropout"
label = "dropout-0.1"
schedule = { kind = "constant", p = 0.1 }
"#;

    #[test]
    fn strategies_times_seeds_expand_into_runs_each_resolved_alone() {
        let file = parse(Path::new("t.toml"), BASE).unwrap();
        let exp = Experiment {
            path: "t.toml".into(),
            file,
            data_path: "/data".into(),
            warnings: vec![],
            data_missing: None,
        };
        let runs = exp.runs();
        assert_eq!(runs.len(), 6);
        assert_eq!(
            runs.iter()
                .map(|r| (r.label.as_str(), r.seed))
                .collect::<Vec<_>>(),
            [
                ("none", 1),
                ("none", 2),
                ("none", 3),
                ("dropout-0.1", 1),
                ("dropout-0.1", 2),
                ("dropout-0.1", 3)
            ]
        );
        let resolved = exp.resolved(&runs[4]);
        assert_eq!(resolved.seeds, [2]);
        assert_eq!(resolved.strategy.len(), 1);
        assert_eq!(resolved.strategy[0].plugin, "dropout");
        assert_eq!(resolved.data.path, Path::new("/data"));
        // The resolved file round-trips through TOML unchanged.
        let text = toml::to_string(&resolved).unwrap();
        assert_eq!(parse(Path::new("r.toml"), &text).unwrap(), resolved);
        assert_eq!(model_slots(&resolved.model), ["block2", "block3"]);
    }

    #[test]
    fn drop_rate_schedules() {
        let linear = DropSchedule {
            kind: DropKind::Linear,
            start: Some(0.0),
            end: Some(0.1),
            ramp: Some(0.5),
            ..Default::default()
        };
        assert_eq!(drop_rate(&linear, 0, 100, 10), 0.0);
        assert!((drop_rate(&linear, 25, 100, 10) - 0.05).abs() < 1e-12);
        assert_eq!(drop_rate(&linear, 50, 100, 10), 0.1);
        assert_eq!(drop_rate(&linear, 99, 100, 10), 0.1);
        let step = DropSchedule {
            kind: DropKind::Step,
            values: vec![0.0, 0.05, 0.1],
            at_epochs: vec![1, 3],
            ..Default::default()
        };
        let at = |s| drop_rate(&step, s, 100, 10);
        assert_eq!(
            [at(0), at(9), at(10), at(29), at(30)],
            [0.0, 0.0, 0.05, 0.05, 0.1]
        );
        let early = DropSchedule {
            kind: DropKind::Early,
            p: Some(0.1),
            until: Some(0.2),
            ..Default::default()
        };
        let at = |s| drop_rate(&early, s, 100, 10);
        assert_eq!([at(0), at(19), at(20), at(99)], [0.1, 0.1, 0.0, 0.0]);
        let late = DropSchedule {
            kind: DropKind::Late,
            p: Some(0.1),
            from: Some(0.8),
            ..Default::default()
        };
        let at = |s| drop_rate(&late, s, 100, 10);
        assert_eq!([at(0), at(79), at(80), at(99)], [0.0, 0.0, 0.1, 0.1]);
    }

    #[test]
    fn live_and_restart_fields_are_told_apart() {
        let a = parse(Path::new("t.toml"), BASE).unwrap();
        let mut b = a.clone();
        b.strategy[1].schedule.p = Some(0.2);
        b.train.eval_every = Some(5);
        b.train.batch_size = 16;
        let (live, restart) = live_diff(
            &ExperimentFile {
                strategy: vec![a.strategy[1].clone()],
                ..a.clone()
            },
            &ExperimentFile {
                strategy: vec![b.strategy[1].clone()],
                ..b
            },
        );
        assert_eq!(live, ["train.eval_every", "strategy.schedule"]);
        assert_eq!(restart, ["train.batch_size"]);
    }

    #[test]
    fn cudnn_benchmark_is_read_and_needs_a_restart() {
        let a = parse(Path::new("t.toml"), BASE).unwrap();
        assert_eq!(a.cudnn_benchmark, None, "on by default where it applies");
        let text = format!("cudnn_benchmark = false\n{BASE}");
        let b = parse(Path::new("t.toml"), &text).unwrap();
        assert_eq!(b.cudnn_benchmark, Some(false));
        let (_, restart) = live_diff(&a, &b);
        assert_eq!(restart, ["cudnn_benchmark"]);
        let text = format!("deterministic = true\n{BASE}");
        let c = parse(Path::new("t.toml"), &text).unwrap();
        assert!(c.deterministic);
        assert_eq!(live_diff(&a, &c).1, ["deterministic"]);
    }

    /// A machine where any data is laid out right and memory is not known.
    struct Anywhere;

    impl Machine for Anywhere {
        fn check_data(&self, _: DataFormat, _: &Path) -> Result<(), String> {
            Ok(())
        }
        fn memory_floor(&self, _: &ModelSpec, _: [usize; 3], _: usize) -> Option<MemoryFloor> {
            None
        }
        fn memory(&self) -> Option<u128> {
            None
        }
        fn devices(&self) -> Vec<String> {
            vec!["cpu".into()]
        }
    }

    /// The messages `validate` gives for `text`, one per line (empty if valid).
    fn check_text(text: &str) -> String {
        let catalog = Catalog {
            strategies: [("dropout".to_string(), Vec::new())].into(),
            ..Catalog::default()
        };
        match validate(Path::new("t.toml"), text, &catalog, &Anywhere) {
            Ok(_) => String::new(),
            Err(diagnostics) => diagnostics
                .iter()
                .map(|d| d.message.clone())
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    /// A strategy whose rule (`low <= high`) lies beyond its schema.
    fn catalog_with_rules() -> Catalog {
        let schema = vec![
            ParamSpec::int("low", 1).range(0.0, 10.0),
            ParamSpec::int("high", 2).range(0.0, 10.0),
        ];
        let rule = |params: &[(String, Value)]| {
            let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            match (get("low"), get("high")) {
                (Some(Value::Int(l)), Some(Value::Int(h))) if l > h => {
                    Err(format!("pair: low = {l} is above high = {h}"))
                }
                (Some(_), Some(_)) => Ok(()),
                _ => Err("pair: the rule saw no complete pair".into()),
            }
        };
        Catalog {
            strategies: [("pair".to_string(), schema)].into(),
            rules: [("pair".to_string(), Rules(std::sync::Arc::new(rule)))].into(),
            ..Catalog::default()
        }
    }

    #[test]
    fn a_strategys_own_rules_are_reported_at_its_parameters() {
        let catalog = catalog_with_rules();
        let file = |params: &str| {
            let text = BASE.replace("plugin = \"dropout\"", "plugin = \"pair\"");
            format!("{text}params = {{ {params} }}\n")
        };
        let errors = |text: &str| {
            validate(Path::new("t.toml"), text, &catalog, &Anywhere)
                .err()
                .unwrap_or_default()
        };
        assert!(errors(&file("low = 2, high = 3")).is_empty());
        let refused = errors(&file("low = 5, high = 3"));
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert_eq!(refused[0].key, "strategy[1].params");
        assert_eq!(refused[0].message, "pair: low = 5 is above high = 3");
        assert_eq!(refused[0].line, 19);
        // A schema error is the only one: the rules see checked values only.
        let out_of_range = errors(&file("low = 50, high = 3"));
        assert_eq!(out_of_range.len(), 1, "{out_of_range:?}");
        assert!(out_of_range[0].message.contains("50"), "{out_of_range:?}");
    }

    #[test]
    fn syntax_errors_name_their_place_and_never_expect_nothing() {
        let text = "name = 1\n[[strategy]]\na = 1\n[[strategy]]\nplugin = x y\n[model]\n";
        let at = |needle: &str| place_at(text, text.find(needle).unwrap());
        assert_eq!(at("x y"), "strategy[1].plugin");
        assert_eq!(at("a = 1"), "strategy[0].a");
        assert_eq!(at("model]"), "model");
        assert_eq!(at("name"), "name");
        assert_eq!(plain_syntax("extra `=`, expected nothing"), "extra `=`");
        let err = check_text(&BASE.replace("epochs = 4", "epochs = 04"));
        assert_eq!(err, "invalid TOML: unexpected leading zero");
    }

    #[test]
    fn deterministic_with_the_search_asked_for_is_refused() {
        let alone = check_text(&format!("deterministic = true\n{BASE}"));
        assert!(!alone.contains("contradicts"), "{alone}");
        let text = format!("deterministic = true\ncudnn_benchmark = true\n{BASE}");
        let err = check_text(&text);
        assert!(err.contains("contradicts deterministic"), "{err}");
    }
}
