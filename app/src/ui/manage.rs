//! Run management in the Runs view: the filter and sort order, tags and
//! notes, archiving and deleting finished runs, and starting a run again
//! from its experiment file as saved now. The questions these ask (and the
//! stop question) are answered here too.

use super::app::{App, Effects, Pick};
use super::keys::{Action, View};
use super::state::move_cursor;
use super::workspace::{DisplayState, RunView};
use crate::run::control::Command as Ctl;
use crate::run::dir::{EventKind, RunDir, State};
use crate::run::notes::{self, Notes};

/// What a line typed in the dashboard is for.
#[derive(Clone, Debug)]
pub enum Purpose {
    /// The Runs filter (applied as it is typed; Esc puts the old one back).
    Filter {
        before: String,
    },
    Tags(RunDir),
    Note(RunDir),
}

/// A line being typed (it takes every key until Enter or Esc).
#[derive(Clone, Debug)]
pub struct Entry {
    pub purpose: Purpose,
    pub text: String,
}

impl Entry {
    /// What the box around the line is called.
    pub fn title(&self) -> &'static str {
        match self.purpose {
            Purpose::Filter { .. } => {
                "Filter runs: words of strategy, experiment, state, s<seed>, #tag"
            }
            Purpose::Tags(_) => "Tags (words, separated by spaces or commas)",
            Purpose::Note(_) => "Note",
        }
    }
}

/// A key while a line is typed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextKey {
    Char(char),
    Backspace,
    Enter,
    Esc,
}

impl TextKey {
    pub fn of(key: crossterm::event::KeyEvent) -> Option<TextKey> {
        use crossterm::event::KeyCode as K;
        Some(match key.code {
            K::Char(c) => TextKey::Char(c),
            K::Backspace => TextKey::Backspace,
            K::Enter => TextKey::Enter,
            K::Esc => TextKey::Esc,
            _ => return None,
        })
    }
}

/// What a yes/no question about a run asks to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ask {
    Stop,
    Archive,
    Delete,
    /// Stop it (if running) and start its strategy and seed again from the
    /// experiment file as saved now, in a new run directory.
    Rerun,
}

/// An open yes/no question about one run.
#[derive(Clone, Debug)]
pub struct Confirm {
    pub ask: Ask,
    pub run: RunDir,
    /// The run directory's name, its id.
    pub name: String,
    /// What the run trains: strategy, experiment, seed.
    pub question: String,
}

impl Confirm {
    pub fn title(&self) -> &'static str {
        match self.ask {
            Ask::Stop => "Stop the run",
            Ask::Archive => "Archive the run",
            Ask::Delete => "Delete the run",
            Ask::Rerun => "Start the run again",
        }
    }

    /// The question and what follows from the answer, a line each.
    pub fn lines(&self) -> [String; 3] {
        let q = &self.question;
        let (ask, then, keys) = match self.ask {
            Ask::Stop => (
                format!("Stop {q}?"),
                "It keeps its checkpoint; R continues it later.",
                "y/Enter stop   n/Esc keep it running",
            ),
            Ask::Archive => (
                format!("Archive {q}?"),
                "It moves to runs/archive/, whole; it leaves this list.",
                "y/Enter archive   n/Esc keep it here",
            ),
            Ask::Delete => (
                format!("Delete {q} for good?"),
                "Its metrics, checkpoints and logs are removed.",
                "y/Enter delete   n/Esc keep it",
            ),
            Ask::Rerun => (
                format!("Start {q} again from its file as saved now?"),
                "A new run from step 0; a running one is stopped first.",
                "y/Enter start   n/Esc cancel",
            ),
        };
        [ask, then.to_string(), keys.to_string()]
    }
}

impl App {
    /// Indices into `runs` of the runs the Runs view lists, in its order.
    pub fn shown_runs(&self) -> Vec<usize> {
        self.run_list.order(&self.runs)
    }

    /// Moves the run cursor through the runs as listed (filtered, sorted).
    pub(super) fn move_in_runs(&mut self, action: Action) {
        let order = self.shown_runs();
        let mut at = order
            .iter()
            .position(|&i| i == self.selected.run)
            .unwrap_or(0);
        move_cursor(&mut at, action, order.len());
        if let Some(&i) = order.get(at) {
            self.selected.run = i;
        }
    }

    /// Keeps the selection on a listed run after the list changed.
    pub(super) fn select_a_listed_run(&mut self) {
        let order = self.shown_runs();
        if !order.contains(&self.selected.run)
            && let Some(&first) = order.first()
        {
            self.selected.run = first;
        }
    }

    pub(super) fn cycle_sort(&mut self) {
        self.run_list.sort = self.run_list.sort.next();
        self.message = format!("runs by {}", self.run_list.sort.label());
    }

    /// Opens a line to type: the filter, or the selected run's tags or note.
    pub(super) fn open_entry(&mut self, action: Action) {
        let run = self
            .selected_run()
            .map(|r| (r.dir.clone(), r.notes.clone()));
        let entry = match (action, run) {
            (Action::FilterRuns, _) => Entry {
                purpose: Purpose::Filter {
                    before: self.run_list.filter.clone(),
                },
                text: self.run_list.filter.clone(),
            },
            (Action::TagRun, Some((dir, n))) => Entry {
                purpose: Purpose::Tags(dir),
                text: n.tags.join(" "),
            },
            (Action::NoteRun, Some((dir, n))) => Entry {
                purpose: Purpose::Note(dir),
                text: n.note,
            },
            _ => return,
        };
        self.entry = Some(entry);
    }

    /// A key typed into the open line.
    pub(super) fn type_key(&mut self, key: TextKey, fx: &mut dyn Effects) {
        let Some(entry) = &mut self.entry else { return };
        match key {
            TextKey::Char(c) if entry.text.chars().count() < notes::NOTE_MAX_CHARS => {
                entry.text.push(c)
            }
            TextKey::Char(_) => {}
            TextKey::Backspace => {
                entry.text.pop();
            }
            TextKey::Enter => return self.close_entry(true, fx),
            TextKey::Esc => return self.close_entry(false, fx),
        }
        if let Some(Entry {
            purpose: Purpose::Filter { .. },
            text,
        }) = &self.entry
        {
            self.run_list.filter = text.clone();
            self.select_a_listed_run();
        }
    }

    fn close_entry(&mut self, keep: bool, fx: &mut dyn Effects) {
        let Some(entry) = self.entry.take() else {
            return;
        };
        match (entry.purpose, keep) {
            (Purpose::Filter { before }, false) => self.run_list.filter = before,
            (Purpose::Filter { .. }, true) => {
                self.run_list.filter = entry.text.trim().to_string();
            }
            (Purpose::Tags(dir), true) => self.save_notes(&dir, fx, |n| {
                n.tags = Notes::parse_tags(&entry.text);
            }),
            (Purpose::Note(dir), true) => self.save_notes(&dir, fx, |n| {
                n.note = entry.text.trim().to_string();
            }),
            (_, false) => self.message = "nothing changed".into(),
        }
        self.select_a_listed_run();
    }

    fn save_notes(&mut self, dir: &RunDir, fx: &mut dyn Effects, change: impl FnOnce(&mut Notes)) {
        let mut notes = Notes::of(dir);
        change(&mut notes);
        self.message = match fx.save_notes(dir, &notes) {
            Ok(()) => format!("saved in {}", self.shown_path(&dir.file(notes::NOTES))),
            Err(e) => format!("could not save the notes: {e}"),
        };
        self.refresh();
    }

    /// Asks before archiving, deleting or starting the selected run again.
    pub(super) fn ask_about_run(&mut self, ask: Ask) {
        let Some(r) = self.selected_run() else { return };
        let refusal = match ask {
            Ask::Archive | Ask::Delete if r.alive || !is_finished(r.state()) => Some(format!(
                "{} is {}: stop it first (s)",
                r.name(),
                r.state().label()
            )),
            Ask::Rerun if !needs_restart(r) => Some(format!(
                "{}: no saved change of its file waits for a restart",
                r.name()
            )),
            _ => None,
        };
        if let Some(why) = refusal {
            self.message = why;
            return;
        }
        self.confirm = Some(confirm(ask, r));
    }

    /// The open question's answer: yes.
    pub(super) fn answer_yes(&mut self, fx: &mut dyn Effects) {
        let Some(c) = self.confirm.take() else { return };
        self.message = match c.ask {
            Ask::Stop => match fx.control(&c.run, Ctl::Stop) {
                Ok(()) => format!("stop sent to {}", c.name),
                Err(e) => format!("stop failed: {e}"),
            },
            Ask::Archive | Ask::Delete => self.put_away(&c, fx),
            Ask::Rerun => self.rerun(&c, fx),
        };
    }

    /// Archives or deletes a run, then lists the runs left.
    fn put_away(&mut self, c: &Confirm, fx: &mut dyn Effects) -> String {
        let said = match c.ask {
            Ask::Archive => match fx.archive(&c.run) {
                Ok(to) => format!("{} archived in {}", c.name, self.shown_path(&to)),
                Err(e) => format!("not archived: {e}"),
            },
            _ => match fx.delete(&c.run) {
                Ok(()) => format!("{} deleted", c.name),
                Err(e) => format!("not deleted: {e}"),
            },
        };
        self.refresh();
        self.select_a_listed_run();
        said
    }

    /// Stops the run if it trains, then prepares and starts its strategy and
    /// seed from its experiment file as saved now, on the same device.
    fn rerun(&mut self, c: &Confirm, fx: &mut dyn Effects) -> String {
        let Some(r) = self.runs.iter().find(|r| r.dir.path == c.run.path) else {
            return format!("{} is gone", c.name);
        };
        let (alive, source) = (r.alive, r.info.source.clone());
        let pick = Pick {
            device: r.status.as_ref().map(|s| s.device.clone()),
            only: Some((r.info.label.clone(), r.info.seed)),
        };
        if alive && let Err(e) = fx.control(&c.run, Ctl::Stop) {
            return format!("could not stop {}: {e}", c.name);
        }
        let dirs = match fx.prepare(&source, &pick) {
            Ok(dirs) => dirs,
            Err(e) => return format!("{}: {e}", source.display()),
        };
        let started: Result<Vec<()>, String> = dirs.iter().map(|d| fx.start_trainer(d)).collect();
        self.refresh();
        if let Some(first) = dirs.first() {
            self.show_run(&first.path);
        }
        match started {
            Ok(_) => format!("{} started again from {}", c.name, self.shown_path(&source)),
            Err(e) => format!("could not start: {e}"),
        }
    }

    /// Selects the run in `dir` in the Runs view (a run just started), and
    /// clears a filter that would hide it.
    pub(super) fn show_run(&mut self, dir: &std::path::Path) {
        if let Some(i) = self.runs.iter().position(|r| r.dir.path == dir) {
            self.selected.run = i;
            self.view = View::Runs;
            if !self.shown_runs().contains(&i) {
                self.run_list.filter.clear();
            }
        }
    }

    /// Asks the stop question about the selected run.
    pub(super) fn ask_stop(&mut self) {
        if let Some(r) = self.selected_run() {
            self.confirm = Some(confirm(Ask::Stop, r));
        }
    }
}

fn confirm(ask: Ask, r: &RunView) -> Confirm {
    let (label, experiment, seed) = (&r.info.label, &r.info.experiment, r.info.seed);
    Confirm {
        ask,
        run: r.dir.clone(),
        name: r.name(),
        question: format!("{label} {experiment} s{seed}"),
    }
}

fn is_finished(state: DisplayState) -> bool {
    match state {
        DisplayState::Is(s) => s.is_final() || s == State::Queued,
        DisplayState::Lost | DisplayState::Unheard | DisplayState::Unknown => true,
    }
}

/// Whether the run's last saved change of its file left fields that only a
/// restart takes (the trainer said so in its events).
fn needs_restart(r: &RunView) -> bool {
    r.events
        .iter()
        .rev()
        .find(|e| e.kind.is_config())
        .is_some_and(|last| {
            r.events
                .iter()
                .any(|e| e.step == last.step && e.kind == EventKind::NeedsRestart)
        })
}
