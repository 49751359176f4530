//! Parameter schemas and validated parameter sets.
//!
//! The same [`validate`] runs in the host (to reject an experiment file early, with
//! the key named) and in the plugin (so a strategy never sees an unchecked value).

use std::collections::BTreeMap;
use std::fmt;

use abi_stable::std_types::{ROption, RString, RVec};

use crate::abi::{RParam, RParamSpec, RValue};

/// A parameter value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Float(f64),
    Int(i64),
    Bool(bool),
    Str(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Float(v) => write!(f, "{v}"),
            Value::Int(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::Str(v) => write!(f, "{v:?}"),
        }
    }
}

impl Value {
    /// Parses a command-line `k=v` value according to the expected kind.
    pub fn parse_for(kind: ParamKind, text: &str) -> Option<Value> {
        match kind {
            ParamKind::Float => text.parse().ok().map(Value::Float),
            ParamKind::Int => text.parse().ok().map(Value::Int),
            ParamKind::Bool => text.parse().ok().map(Value::Bool),
            ParamKind::Choice => Some(Value::Str(text.to_string())),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Value::Float(_) => "a float",
            Value::Int(_) => "an integer",
            Value::Bool(_) => "a boolean",
            Value::Str(_) => "a string",
        }
    }

    pub(crate) fn to_r(&self) -> RValue {
        match self {
            Value::Float(v) => RValue::Float(*v),
            Value::Int(v) => RValue::Int(*v),
            Value::Bool(v) => RValue::Bool(*v),
            Value::Str(v) => RValue::Str(RString::from(v.as_str())),
        }
    }

    /// Copies a value received over the ABI.
    pub fn from_r(value: &RValue) -> Value {
        match value {
            RValue::Float(v) => Value::Float(*v),
            RValue::Int(v) => Value::Int(*v),
            RValue::Bool(v) => Value::Bool(*v),
            RValue::Str(v) => Value::Str(v.as_str().to_string()),
        }
    }
}

/// The type of a parameter.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ParamKind {
    Float = 0,
    Int = 1,
    Bool = 2,
    /// A string out of a fixed list of choices.
    Choice = 3,
}

impl ParamKind {
    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => ParamKind::Float,
            1 => ParamKind::Int,
            2 => ParamKind::Bool,
            3 => ParamKind::Choice,
            _ => return None,
        })
    }

    /// How the kind reads in messages and listings.
    pub fn name(self) -> &'static str {
        match self {
            ParamKind::Float => "float",
            ParamKind::Int => "int",
            ParamKind::Bool => "bool",
            ParamKind::Choice => "choice",
        }
    }
}

/// One entry of a strategy's parameter schema.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    pub name: String,
    pub kind: ParamKind,
    pub default: Value,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub choices: Vec<String>,
    pub help: String,
}

impl ParamSpec {
    pub fn float(name: &str, default: f64) -> Self {
        Self::new(name, ParamKind::Float, Value::Float(default))
    }

    pub fn int(name: &str, default: i64) -> Self {
        Self::new(name, ParamKind::Int, Value::Int(default))
    }

    pub fn bool(name: &str, default: bool) -> Self {
        Self::new(name, ParamKind::Bool, Value::Bool(default))
    }

    /// A string parameter limited to `choices`; the first is the default.
    pub fn choice(name: &str, choices: &[&str]) -> Self {
        let mut spec = Self::new(name, ParamKind::Choice, Value::Str(choices[0].to_string()));
        spec.choices = choices.iter().map(|c| c.to_string()).collect();
        spec
    }

    fn new(name: &str, kind: ParamKind, default: Value) -> Self {
        Self {
            name: name.to_string(),
            kind,
            default,
            min: None,
            max: None,
            choices: Vec::new(),
            help: String::new(),
        }
    }

    /// Inclusive range.
    pub fn range(mut self, min: f64, max: f64) -> Self {
        self.min = Some(min);
        self.max = Some(max);
        self
    }

    pub fn help(mut self, help: &str) -> Self {
        self.help = help.to_string();
        self
    }

    pub(crate) fn to_r(&self) -> RParamSpec {
        RParamSpec {
            name: self.name.as_str().into(),
            kind: self.kind as u8,
            default: self.default.to_r(),
            min: self.min.into(),
            max: self.max.into(),
            choices: self
                .choices
                .iter()
                .map(|c| RString::from(c.as_str()))
                .collect(),
            help: self.help.as_str().into(),
        }
    }

    /// Copies a spec received over the ABI.
    pub fn from_r(spec: &RParamSpec) -> Result<ParamSpec, String> {
        let kind = ParamKind::from_code(spec.kind)
            .ok_or_else(|| format!("parameter `{}` has unknown kind {}", spec.name, spec.kind))?;
        let opt = |o: &ROption<f64>| o.into_option();
        Ok(ParamSpec {
            name: spec.name.as_str().to_string(),
            kind,
            default: Value::from_r(&spec.default),
            min: opt(&spec.min),
            max: opt(&spec.max),
            choices: spec
                .choices
                .iter()
                .map(|c| c.as_str().to_string())
                .collect(),
            help: spec.help.as_str().to_string(),
        })
    }

    /// Checks one value against this spec, converting an integer given for a float.
    pub fn check(&self, value: &Value) -> Result<Value, ParamError> {
        let bad = |expected: String| ParamError {
            param: self.name.clone(),
            message: format!("expected {expected}, found {}", describe(value)),
        };
        let value = match (self.kind, value) {
            (ParamKind::Float, Value::Float(v)) => Value::Float(*v),
            (ParamKind::Float, Value::Int(v)) => Value::Float(*v as f64),
            (ParamKind::Int, Value::Int(v)) => Value::Int(*v),
            (ParamKind::Int, Value::Float(v)) if v.fract() == 0.0 => Value::Int(*v as i64),
            (ParamKind::Bool, Value::Bool(v)) => Value::Bool(*v),
            (ParamKind::Choice, Value::Str(s)) => {
                if !self.choices.iter().any(|c| c == s) {
                    return Err(bad(format!("one of {}", quoted(&self.choices))));
                }
                Value::Str(s.clone())
            }
            (ParamKind::Choice, _) => return Err(bad(format!("one of {}", quoted(&self.choices)))),
            (kind, _) => return Err(bad(format!("a value of type {}", kind.name()))),
        };
        let number = match value {
            Value::Float(v) => Some(v),
            Value::Int(v) => Some(v as f64),
            _ => None,
        };
        if let Some(v) = number {
            if !v.is_finite() {
                return Err(bad("a finite number".into()));
            }
            let below = self.min.is_some_and(|m| v < m);
            let above = self.max.is_some_and(|m| v > m);
            if below || above {
                return Err(bad(format!(
                    "a value in [{}, {}]",
                    self.min.map_or("-inf".into(), |m| m.to_string()),
                    self.max.map_or("inf".into(), |m| m.to_string())
                )));
            }
        }
        Ok(value)
    }
}

fn describe(value: &Value) -> String {
    format!("{} ({value})", value.type_name())
}

fn quoted(list: &[String]) -> String {
    list.iter()
        .map(|c| format!("{c:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A parameter that was refused, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamError {
    pub param: String,
    pub message: String,
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "parameter `{}`: {}", self.param, self.message)
    }
}

impl std::error::Error for ParamError {}

/// A full, validated parameter set (defaults filled in).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Params {
    values: BTreeMap<String, Value>,
}

/// Validates `given` against `schema`: unknown names, wrong types and out-of-range
/// values are errors naming the parameter; missing ones take their default.
pub fn validate(schema: &[ParamSpec], given: &[(String, Value)]) -> Result<Params, ParamError> {
    let mut values = BTreeMap::new();
    for (name, value) in given {
        let Some(spec) = schema.iter().find(|s| &s.name == name) else {
            let known: Vec<String> = schema.iter().map(|s| s.name.clone()).collect();
            let message = if known.is_empty() {
                "unknown parameter: this strategy takes none".to_string()
            } else {
                let hint = closest(name, &known)
                    .map(|c| format!(" (did you mean `{c}`?)"))
                    .unwrap_or_default();
                format!("unknown parameter{hint}; known: {}", known.join(", "))
            };
            return Err(ParamError {
                param: name.clone(),
                message,
            });
        };
        values.insert(name.clone(), spec.check(value)?);
    }
    for spec in schema {
        values
            .entry(spec.name.clone())
            .or_insert_with(|| spec.default.clone());
    }
    Ok(Params { values })
}

/// The candidate closest to `word` by edit distance, if it is close enough.
pub fn closest<'c>(word: &str, candidates: &'c [String]) -> Option<&'c str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.as_str())
}

/// Edits between `a` and `b`: insertions, deletions, substitutions and
/// swaps of two neighbouring characters, one each (`ratoi` is one from
/// `ratio`, the typo people make most).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // d[i][j]: edits between the first i of a and the first j of b.
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let change = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + change);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

impl Params {
    fn get(&self, name: &str) -> Result<&Value, ParamError> {
        self.values.get(name).ok_or_else(|| ParamError {
            param: name.to_string(),
            message: "not in the strategy's schema".into(),
        })
    }

    pub fn f64(&self, name: &str) -> Result<f64, ParamError> {
        match self.get(name)? {
            Value::Float(v) => Ok(*v),
            Value::Int(v) => Ok(*v as f64),
            other => Err(wrong(name, "a number", other)),
        }
    }

    pub fn usize(&self, name: &str) -> Result<usize, ParamError> {
        match self.get(name)? {
            Value::Int(v) if *v >= 0 => Ok(*v as usize),
            other => Err(wrong(name, "a non-negative integer", other)),
        }
    }

    pub fn bool(&self, name: &str) -> Result<bool, ParamError> {
        match self.get(name)? {
            Value::Bool(v) => Ok(*v),
            other => Err(wrong(name, "a boolean", other)),
        }
    }

    pub fn choice(&self, name: &str) -> Result<&str, ParamError> {
        match self.get(name)? {
            Value::Str(v) => Ok(v),
            other => Err(wrong(name, "a string", other)),
        }
    }

    /// Every (name, value), sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub(crate) fn to_r(&self) -> RVec<RParam> {
        self.values
            .iter()
            .map(|(k, v)| RParam {
                name: k.as_str().into(),
                value: v.to_r(),
            })
            .collect()
    }
}

fn wrong(name: &str, expected: &str, found: &Value) -> ParamError {
    ParamError {
        param: name.to_string(),
        message: format!("expected {expected}, found {}", describe(found)),
    }
}

/// Copies parameters received over the ABI.
pub fn from_r_params(params: &RVec<RParam>) -> Vec<(String, Value)> {
    params
        .iter()
        .map(|p| (p.name.as_str().to_string(), Value::from_r(&p.value)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Vec<ParamSpec> {
        vec![
            ParamSpec::int("block_size", 7).range(1.0, 64.0),
            ParamSpec::float("gamma_scale", 1.0).range(0.0, 10.0),
            ParamSpec::bool("batchwise", false),
            ParamSpec::choice("drop", &["high", "low"]),
        ]
    }

    #[test]
    fn defaults_fill_what_is_not_given() {
        let p = validate(&schema(), &[("block_size".into(), Value::Int(5))]).unwrap();
        assert_eq!(p.usize("block_size").unwrap(), 5);
        assert_eq!(p.f64("gamma_scale").unwrap(), 1.0);
        assert!(!p.bool("batchwise").unwrap());
        assert_eq!(p.choice("drop").unwrap(), "high");
    }

    #[test]
    fn errors_name_the_parameter_and_what_was_expected() {
        let err = validate(&schema(), &[("blok_size".into(), Value::Int(5))]).unwrap_err();
        assert_eq!(err.param, "blok_size");
        assert!(err.message.contains("did you mean `block_size`"), "{err}");

        let err = validate(&schema(), &[("block_size".into(), Value::Int(0))]).unwrap_err();
        assert!(
            err.to_string().contains("`block_size`") && err.message.contains("[1, 64]"),
            "{err}"
        );

        let err = validate(&schema(), &[("drop".into(), Value::Str("middle".into()))]).unwrap_err();
        assert!(
            err.message.contains("\"high\", \"low\"") && err.message.contains("middle"),
            "{err}"
        );

        let err = validate(&schema(), &[("batchwise".into(), Value::Float(1.0))]).unwrap_err();
        assert!(
            err.message.contains("bool") && err.message.contains("a float"),
            "{err}"
        );

        let err =
            validate(&schema(), &[("gamma_scale".into(), Value::Float(f64::NAN))]).unwrap_err();
        assert!(err.message.contains("finite"), "{err}");
    }

    #[test]
    fn integers_are_accepted_for_floats_and_whole_floats_for_integers() {
        let p = validate(
            &schema(),
            &[
                ("gamma_scale".into(), Value::Int(2)),
                ("block_size".into(), Value::Float(3.0)),
            ],
        )
        .unwrap();
        assert_eq!(p.f64("gamma_scale").unwrap(), 2.0);
        assert_eq!(p.usize("block_size").unwrap(), 3);
        assert!(validate(&schema(), &[("block_size".into(), Value::Float(3.5))]).is_err());
    }

    #[test]
    fn specs_survive_the_abi_round_trip() {
        for spec in schema() {
            assert_eq!(ParamSpec::from_r(&spec.to_r()).unwrap(), spec);
        }
    }

    #[test]
    fn closest_only_suggests_near_misses() {
        let names = vec!["block_size".to_string(), "gamma_scale".to_string()];
        assert_eq!(closest("blocksize", &names), Some("block_size"));
        assert_eq!(closest("temperature", &names), None);
        // Issue 18: a swap of two neighbours is one edit.
        let names = vec!["ratio".to_string(), "epochs".to_string()];
        assert_eq!(closest("ratoi", &names), Some("ratio"));
        assert_eq!(closest("ratoo", &names), Some("ratio"));
        assert_eq!(closest("epcohs", &names), Some("epochs"));
        assert_eq!(closest("rate", &names), None, "two edits in four letters");
        assert_eq!(edit_distance("ab", "ba"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
