//! A run's settings as TensorBoard HParams: every key of the resolved
//! experiment it started with (the strategy's parameters and schedule among
//! them), its seed, and whether and how its configuration or strategy code
//! changed while it trained, with the final and best validation accuracy as
//! the metrics.
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

use super::tfevents::proto::{Field, Fields, bytes_field, double_field, text, varint_field};
use super::tfevents::{Event, PluginValue};
use crate::experiment::ExperimentFile;
use crate::run::dir::RunInfo;
use crate::run::provenance::Provenance;

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

/// Flags a run whose configuration or strategy code changed while it trained.
pub const CHANGED_MID_RUN: &str = "changed_mid_run";
/// The changes themselves ([`Provenance::describe_changes`]), empty if none.
pub const CHANGES: &str = "changes";

/// The run's hyperparameters: `seed`, `strategy` (its label), every key of
/// the resolved experiment it started with, dotted
/// (`strategy.params.block_size`, `optimizer.lr`; arrays as their TOML
/// text), and [`CHANGED_MID_RUN`] and [`CHANGES`]. Starting values, not
/// `now`'s (the end's): a run edited live did not train with its end values
/// from step 0, and the flag keeps it from passing for one that did.
pub fn of_run(
    info: &RunInfo,
    record: &Provenance,
    now: &ExperimentFile,
) -> BTreeMap<String, HValue> {
    let mut out = BTreeMap::new();
    out.insert("seed".into(), HValue::Number(info.seed as f64));
    out.insert("strategy".into(), HValue::Text(info.label.clone()));
    if let Ok(toml::Value::Table(table)) = toml::Value::try_from(record.starting_config(now)) {
        flatten("", &table, &mut out);
    }
    out.remove("description");
    let changed = HValue::Flag(record.changed_mid_run());
    out.insert(CHANGED_MID_RUN.into(), changed);
    out.insert(CHANGES.into(), HValue::Text(record.describe_changes()));
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

/// The hyperparameters of the first session start among `events`, as
/// TensorBoard's HParams dashboard reads them (for the tests).
pub fn read_session_start(events: &[Event]) -> Result<BTreeMap<String, HValue>, String> {
    let start = events
        .iter()
        .flat_map(|e| &e.plugin_values)
        .find(|v| v.tag == SESSION_START_TAG)
        .ok_or("no HParams session start")?;
    let mut out = BTreeMap::new();
    let mut data = Fields {
        bytes: &start.content,
    };
    while let Some((n, f)) = data.next()? {
        let (3, Field::Bytes(info)) = (n, f) else {
            continue;
        };
        let mut entries = Fields { bytes: info };
        while let Some((n, f)) = entries.next()? {
            if let (1, Field::Bytes(entry)) = (n, f) {
                let (name, value) = decode_entry(entry)?;
                out.insert(name, value);
            }
        }
    }
    Ok(out)
}

/// One entry of `SessionStartInfo.hparams`: its name and value.
fn decode_entry(entry: &[u8]) -> Result<(String, HValue), String> {
    let (mut name, mut value) = (String::new(), None);
    let mut fields = Fields { bytes: entry };
    while let Some((n, f)) = fields.next()? {
        match (n, f) {
            (1, Field::Bytes(b)) => name = text(b)?,
            (2, Field::Bytes(b)) => value = decode_value(b)?,
            _ => {}
        }
    }
    Ok((
        name.clone(),
        value.ok_or(format!("hparam {name} has no value"))?,
    ))
}

fn decode_value(bytes: &[u8]) -> Result<Option<HValue>, String> {
    let mut value = None;
    let mut fields = Fields { bytes };
    while let Some((n, f)) = fields.next()? {
        value = match (n, f) {
            (2, Field::Bytes(b)) => Some(HValue::Number(f64::from_le_bytes(
                b.try_into().map_err(|_| "a double of other than 8 bytes")?,
            ))),
            (3, Field::Bytes(b)) => Some(HValue::Text(text(b)?)),
            (4, Field::Varint(v)) => Some(HValue::Flag(v != 0)),
            _ => value,
        };
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::tfevents;
    use crate::run::provenance::ConfigChange;

    const NOW: &str = "name = \"t\"\nseeds = [1]\n[data]\nformat = \"idx\"\npath = \"d\"\n\
                       [model]\nkind = \"small-cnn\"\n[train]\nepochs = 1\nbatch_size = 8\n\
                       log_every = 10\n[[strategy]]\nplugin = \"dropblock\"\n\
                       params = { block_size = 5 }\n";

    fn info() -> RunInfo {
        RunInfo {
            experiment: "t".into(),
            source: "t.toml".into(),
            label: "dropblock".into(),
            strategy_index: 0,
            seed: 1,
            created: String::new(),
            slurm_job: None,
        }
    }

    fn block_size_changed() -> Provenance {
        Provenance {
            config_changes: vec![ConfigChange {
                after_step: 190,
                key: "strategy.params.block_size".into(),
                from: Some(toml::Value::Integer(3)),
                to: Some(toml::Value::Integer(5)),
            }],
            ..Provenance::default()
        }
    }

    /// Issue 33: a run edited live is exported with the values it started
    /// with, flagged, and the change said; an unchanged one with its own.
    #[test]
    fn hparams_hold_the_starting_values_and_the_changes() {
        let now = crate::experiment::parse(std::path::Path::new("t.toml"), NOW).unwrap();
        let changed = of_run(&info(), &block_size_changed(), &now);
        assert_eq!(changed["strategy.params.block_size"], HValue::Number(3.0));
        assert_eq!(changed[CHANGED_MID_RUN], HValue::Flag(true));
        let said = "strategy.params.block_size 3→5 @ step 190";
        assert_eq!(changed[CHANGES], HValue::Text(said.into()));
        assert_eq!(changed["train.batch_size"], HValue::Number(8.0));
        let unchanged = of_run(&info(), &Provenance::default(), &now);
        assert_eq!(unchanged["strategy.params.block_size"], HValue::Number(5.0));
        assert_eq!(unchanged[CHANGED_MID_RUN], HValue::Flag(false));
        assert_eq!(unchanged[CHANGES], HValue::Text(String::new()));
    }

    #[test]
    fn the_session_start_reads_back_as_written() {
        let now = crate::experiment::parse(std::path::Path::new("t.toml"), NOW).unwrap();
        let params = of_run(&info(), &block_size_changed(), &now);
        let mut file = Vec::new();
        for event in start_events(&params, "t/dropblock", 1.5) {
            tfevents::write_record(&mut file, &tfevents::encode(&event)).unwrap();
        }
        let events = tfevents::read(&file).unwrap();
        assert_eq!(read_session_start(&events).unwrap(), params);
        assert!(read_session_start(&[]).is_err());
    }
}
