//! The line the dashboard shows on its terminal while it builds and loads the
//! plugins, before its first frame: which crate of how many cargo is at.

use std::io::IsTerminal;
use std::path::Path;

use crate::plugins::{BuildObserver, Progress};

/// The loading line on a terminal `width` columns wide: the crate being built
/// (until cargo reports progress, where the plugins come from), then the
/// log's place when it fits whole.
pub fn loading_line(
    plugins: &Path,
    log: &Path,
    progress: Option<&Progress>,
    width: usize,
) -> String {
    let what = match progress {
        None => format!("loading plugins from {}", plugins.display()),
        Some(p) => {
            // Cargo counts the units done; the one under way is the next.
            let n = (p.done + 1).min(p.total);
            let name = match p.building.as_str() {
                "" => String::new(),
                name => format!(" ({name})"),
            };
            format!("building plugins: crate {n} of {}{name}", p.total)
        }
    };
    let head = format!("probdrop-tui: {what} …");
    let whole = format!("{head} (log: {})", log.display());
    // One column short of the edge: a full row would wrap, and `\r` then
    // redraws only its last part.
    if whole.chars().count() < width {
        whole
    } else {
        head.chars().take(width.saturating_sub(1)).collect()
    }
}

/// Observes the plugin build before the dashboard has a screen: its lines go
/// to the log (and the Plugins view), its progress redraws the loading line
/// in place when stderr is the terminal.
pub struct Loading<'a> {
    plugins: &'a Path,
    log: &'a Path,
    on_terminal: bool,
    build_log: Vec<String>,
}

impl<'a> Loading<'a> {
    pub fn start(plugins: &'a Path, log: &'a Path) -> Loading<'a> {
        let on_terminal = std::io::stderr().is_terminal();
        let loading = Loading {
            plugins,
            log,
            on_terminal,
            build_log: Vec::new(),
        };
        if on_terminal {
            loading.show(None);
        } else {
            eprintln!("{}", loading_line(plugins, log, None, usize::MAX));
        }
        loading
    }

    fn show(&self, progress: Option<&Progress>) {
        let width = crossterm::terminal::size().map_or(80, |(w, _)| usize::from(w));
        eprint!(
            "\r{}\x1b[K",
            loading_line(self.plugins, self.log, progress, width)
        );
    }

    /// Ends the loading line, so that what follows it starts on a line of
    /// its own; returns the build's lines.
    pub fn finish(self) -> Vec<String> {
        if self.on_terminal {
            eprintln!();
        }
        self.build_log
    }
}

impl BuildObserver for Loading<'_> {
    fn line(&mut self, line: &str) {
        super::log(line);
        self.build_log.push(line.to_string());
    }

    fn progress(&mut self, progress: &Progress) {
        if self.on_terminal {
            self.show(Some(progress));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn building(done: usize, building: &str) -> Progress {
        Progress {
            done,
            total: 23,
            building: building.into(),
        }
    }

    /// Issue 34, item 17: the crate under way, of how many, by name; on 80
    /// columns the log's place goes rather than a cut word.
    #[test]
    fn the_loading_line_names_the_crate_under_way() {
        let plugins = Path::new("plugins");
        let log = Path::new("runs/dashboard.log");
        assert_eq!(
            loading_line(plugins, log, Some(&building(4, "abi_stable")), 160),
            "probdrop-tui: building plugins: crate 5 of 23 (abi_stable) … (log: runs/dashboard.log)"
        );
        assert_eq!(
            loading_line(plugins, log, Some(&building(23, "")), 80),
            "probdrop-tui: building plugins: crate 23 of 23 … (log: runs/dashboard.log)"
        );
        let deep = Path::new("/home/researcher/projects/dropout-study/runs/dashboard.log");
        assert_eq!(
            loading_line(plugins, deep, Some(&building(4, "abi_stable")), 80),
            "probdrop-tui: building plugins: crate 5 of 23 (abi_stable) …"
        );
        assert_eq!(
            loading_line(plugins, log, None, 80),
            "probdrop-tui: loading plugins from plugins … (log: runs/dashboard.log)"
        );
    }
}
