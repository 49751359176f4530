//! What the dashboard remembers between sessions: the view, the selected run,
//! the runs marked for the charts, the chart options, the Events filter and
//! the Runs view's filter and order.
//! Kept beside the runs in `dashboard-state.json`, written when the dashboard
//! closes and read when it opens; runs are named by their directory, so a run
//! deleted since is simply not marked.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::app::App;
use super::keys::View;
use super::runlist::RunList;
use super::state::ChartOptions;
use crate::run::dir;

pub const FILE: &str = "dashboard-state.json";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Saved {
    /// The view's title ("Charts").
    pub view: String,
    /// Run directories' names.
    pub selected_run: Option<String>,
    pub marked: Vec<String>,
    pub charts: ChartOptions,
    pub events_of: Option<String>,
    /// The Runs view's filter and order.
    pub run_list: RunList,
}

fn name_of(path: &Path) -> Option<String> {
    path.file_name().map(|n| n.to_string_lossy().into_owned())
}

impl Saved {
    pub fn of(app: &App) -> Saved {
        Saved {
            view: app.view.title().to_string(),
            selected_run: app.selected_run().and_then(|r| name_of(&r.dir.path)),
            marked: app.marked.iter().filter_map(|p| name_of(p)).collect(),
            charts: app.charts,
            run_list: app.run_list.clone(),
            events_of: app.events_of.as_deref().and_then(name_of),
        }
    }

    /// Puts the dashboard back as it was, as far as its runs are still there.
    pub fn restore(self, app: &mut App) {
        if let Some(v) = View::ALL.iter().find(|v| v.title() == self.view) {
            app.view = *v;
        }
        let path_of = |name: &str| {
            app.runs
                .iter()
                .map(|r| r.dir.path.clone())
                .find(|p| name_of(p).as_deref() == Some(name))
        };
        app.marked = self.marked.iter().filter_map(|n| path_of(n)).collect();
        app.events_of = self.events_of.as_deref().and_then(path_of);
        if let Some(i) = self.selected_run.and_then(|n| {
            app.runs
                .iter()
                .position(|r| name_of(&r.dir.path) == Some(n.clone()))
        }) {
            app.selected.run = i;
        }
        app.charts = self.charts;
        app.run_list = self.run_list;
        app.select_a_listed_run();
    }

    /// The state kept beside `runs`; `None` when there is none or it cannot be
    /// read (a damaged file is ignored, never fatal).
    pub fn load(runs: &Path) -> Option<Saved> {
        dir::read_json(&runs.join(FILE)).ok()
    }

    pub fn save(&self, runs: &Path) -> std::io::Result<()> {
        dir::write_json(&runs.join(FILE), self)
    }
}
