//! A run's settings as TensorBoard HParams: every key of its resolved
//! experiment (the strategy's parameters and schedule among them) and its
//! seed, with the final and best validation accuracy as the metrics.
//!
//! Messages, from tensorboard/plugins/hparams (plugin_data.proto, api.proto):
//! HParamsPluginData { int32 version = 1; oneof { Experiment experiment = 2;
//! SessionStartInfo session_start_info = 3; SessionEndInfo session_end_info =
//! 4; } }; SessionStartInfo { map<string, google.protobuf.Value> hparams = 1;
//! string group_name = 4; double start_time_secs = 5; }; SessionEndInfo {
//! Status status = 1; double end_time_secs = 2; }; Experiment { repeated
//! HParamInfo hparam_infos = 4; repeated MetricInfo metric_infos = 5; };
//! HParamInfo { string name = 1; DataType type = 4; }; MetricInfo {
//! MetricName name = 1; DatasetType dataset_type = 5; }; MetricName { string
//! tag = 2; }; google.protobuf.Value { double number_value = 2; string
//! string_value = 3; bool bool_value = 4; }.

use std::collections::BTreeMap;

use super::tfevents::proto::{bytes_field, double_field, varint_field};
use super::tfevents::{Event, PluginValue};
use crate::experiment::ExperimentFile;
use crate::run::dir::RunInfo;

const PLUGIN: &str = "hparams";
pub const EXPERIMENT_TAG: &str = "_hparams_/experiment";
pub const SESSION_START_TAG: &str = "_hparams_/session_start_info";
pub const SESSION_END_TAG: &str = "_hparams_/session_end_info";
/// The scalars the HParams dashboard shows as the run's results.
pub const FINAL_TAG: &str = "hparams/final_val_acc";
pub const BEST_TAG: &str = "hparams/best_val_acc";

/// One hyperparameter's value.
#[derive(Clone, Debug, PartialEq)]
pub enum HValue {
    Number(f64),
    Text(String),
    Flag(bool),
}

/// The run's hyperparameters: `seed`, `strategy` (its label) and every key
/// of its resolved experiment file, dotted (`strategy.params.block_size`,
/// `optimizer.lr`); arrays as their TOML text.
pub fn of_run(info: &RunInfo, file: &ExperimentFile) -> BTreeMap<String, HValue> {
    let mut out = BTreeMap::new();
    out.insert("seed".into(), HValue::Number(info.seed as f64));
    out.insert("strategy".into(), HValue::Text(info.label.clone()));
    if let Ok(toml::Value::Table(table)) = toml::Value::try_from(file) {
        flatten("", &table, &mut out);
    }
    out.remove("description");
    out
}

fn flatten(prefix: &str, table: &toml::Table, out: &mut BTreeMap<String, HValue>) {
    for (k, v) in table {
        let name = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        let value = match v {
            toml::Value::Table(t) => {
                flatten(&name, t, out);
                continue;
            }
            // A resolved run has one strategy: its keys without an index.
            toml::Value::Array(items) if items.len() == 1 && items[0].is_table() => {
                if let Some(t) = items[0].as_table() {
                    flatten(&name, t, out);
                }
                continue;
            }
            toml::Value::Integer(i) => HValue::Number(*i as f64),
            toml::Value::Float(f) => HValue::Number(*f),
            toml::Value::Boolean(b) => HValue::Flag(*b),
            toml::Value::String(s) => HValue::Text(s.clone()),
            other => HValue::Text(other.to_string()),
        };
        out.insert(name, value);
    }
}

fn plugin_value(tag: &str, field: u64, message: &[u8]) -> PluginValue {
    let mut content = Vec::new();
    bytes_field(&mut content, field, message);
    PluginValue {
        tag: tag.into(),
        plugin: PLUGIN.into(),
        content,
    }
}

fn encode_value(value: &HValue) -> Vec<u8> {
    let mut out = Vec::new();
    match value {
        HValue::Number(n) => double_field(&mut out, 2, *n),
        HValue::Text(s) => bytes_field(&mut out, 3, s.as_bytes()),
        HValue::Flag(b) => varint_field(&mut out, 4, u64::from(*b)),
    }
    out
}

/// DataType: STRING 1, BOOL 2, FLOAT64 3.
fn data_type(value: &HValue) -> u64 {
    match value {
        HValue::Text(_) => 1,
        HValue::Flag(_) => 2,
        HValue::Number(_) => 3,
    }
}

fn experiment(hparams: &BTreeMap<String, HValue>) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in hparams {
        let mut info = Vec::new();
        bytes_field(&mut info, 1, name.as_bytes());
        varint_field(&mut info, 4, data_type(value));
        bytes_field(&mut out, 4, &info);
    }
    // DatasetType: TRAINING 1, VALIDATION 2.
    for (tag, dataset) in [
        (FINAL_TAG, 2),
        (BEST_TAG, 2),
        ("val/acc", 2),
        ("train/loss", 1),
    ] {
        let mut metric_name = Vec::new();
        bytes_field(&mut metric_name, 2, tag.as_bytes());
        let mut info = Vec::new();
        bytes_field(&mut info, 1, &metric_name);
        varint_field(&mut info, 5, dataset);
        bytes_field(&mut out, 5, &info);
    }
    out
}

fn session_start(hparams: &BTreeMap<String, HValue>, group: &str, start: f64) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in hparams {
        let mut entry = Vec::new();
        bytes_field(&mut entry, 1, name.as_bytes());
        bytes_field(&mut entry, 2, &encode_value(value));
        bytes_field(&mut out, 1, &entry);
    }
    bytes_field(&mut out, 4, group.as_bytes());
    double_field(&mut out, 5, start);
    out
}

/// The events that open a run's HParams entry: the experiment (which
/// hyperparameters and metrics there are) and the session's values, grouped
/// by the run's experiment and strategy (seeds of one arm side by side).
pub fn start_events(hparams: &BTreeMap<String, HValue>, group: &str, wall: f64) -> Vec<Event> {
    let values = vec![
        plugin_value(EXPERIMENT_TAG, 2, &experiment(hparams)),
        plugin_value(SESSION_START_TAG, 3, &session_start(hparams, group, wall)),
    ];
    vec![Event {
        wall_time: wall,
        step: 0,
        file_version: None,
        scalars: Vec::new(),
        images: Vec::new(),
        plugin_values: values,
    }]
}

/// The closing event: the final and best validation accuracy as scalars and
/// the session's end (Status: SUCCESS 1, FAILURE 2).
pub fn end_event(step: i64, wall: f64, final_acc: f64, best_acc: f64, success: bool) -> Event {
    let mut end = Vec::new();
    varint_field(&mut end, 1, if success { 1 } else { 2 });
    double_field(&mut end, 2, wall);
    Event {
        wall_time: wall,
        step,
        file_version: None,
        scalars: vec![
            (FINAL_TAG.into(), final_acc as f32),
            (BEST_TAG.into(), best_acc as f32),
        ],
        images: Vec::new(),
        plugin_values: vec![plugin_value(SESSION_END_TAG, 4, &end)],
    }
}
