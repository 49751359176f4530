//! Which runs the Runs view lists, and in what order: a filter typed after
//! `/` and a sort column chosen with `S`. The runs themselves stay in
//! directory order in `App::runs`; this gives the indices to show.

use super::workspace::{DisplayState, RunView};

/// The columns the Runs table sorts by, in the order `S` goes through them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SortBy {
    /// Oldest first (the directory order).
    #[default]
    Started,
    /// Strategy, then seed.
    Strategy,
    /// Live runs first (training, paused, queued), then failed, then finished.
    State,
    /// Best validation accuracy, highest first; runs without one last.
    Best,
}

impl SortBy {
    const ALL: [SortBy; 4] = [
        SortBy::Started,
        SortBy::Strategy,
        SortBy::State,
        SortBy::Best,
    ];

    pub fn next(self) -> SortBy {
        let i = SortBy::ALL.iter().position(|s| *s == self).unwrap_or(0);
        SortBy::ALL[(i + 1) % SortBy::ALL.len()]
    }

    pub fn label(self) -> &'static str {
        match self {
            SortBy::Started => "started",
            SortBy::Strategy => "strategy",
            SortBy::State => "state",
            SortBy::Best => "best accuracy",
        }
    }
}

/// The filter and the order of the Runs view (kept between sessions).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct RunList {
    /// Words that a listed run matches every one of (case-insensitive).
    pub filter: String,
    pub sort: SortBy,
}

impl RunList {
    /// Indices into `runs` of the runs listed, in the order listed.
    pub fn order(&self, runs: &[RunView]) -> Vec<usize> {
        let words: Vec<String> = self
            .filter
            .split_whitespace()
            .map(str::to_lowercase)
            .collect();
        let mut shown: Vec<usize> = (0..runs.len())
            .filter(|&i| {
                // Drawn every frame: no text is made when nothing is filtered.
                words.is_empty() || {
                    let text = searchable(&runs[i]);
                    words.iter().all(|w| text.contains(w.as_str()))
                }
            })
            .collect();
        match self.sort {
            SortBy::Started => {}
            SortBy::Strategy => shown.sort_by(|&a, &b| {
                let key = |r: &RunView| (r.info.label.clone(), r.info.seed);
                key(&runs[a]).cmp(&key(&runs[b]))
            }),
            SortBy::State => shown.sort_by_key(|&i| state_rank(runs[i].state())),
            SortBy::Best => shown.sort_by(|&a, &b| {
                let best = |i: usize| runs[i].best_val_acc().unwrap_or(f64::NEG_INFINITY);
                best(b).total_cmp(&best(a))
            }),
        }
        shown
    }

    /// What the table's title says about the list: how many of how many, the
    /// filter and the order.
    pub fn title(&self, shown: usize, total: usize) -> String {
        let mut title = if shown == total {
            format!("Runs ({total})")
        } else {
            format!("Runs ({shown} of {total})")
        };
        if !self.filter.is_empty() {
            title.push_str(&format!(" /{}", self.filter));
        }
        if self.sort != SortBy::Started {
            title.push_str(&format!(" by {}", self.sort.label()));
        }
        title
    }
}

/// Everything a filter word may match: the directory's name, strategy,
/// experiment, seed (`s7`), state, tags (also as `#tag`) and the note.
fn searchable(r: &RunView) -> String {
    let tags: Vec<String> = r.notes.tags.iter().map(|t| format!("#{t}")).collect();
    format!(
        "{} {} {} s{} {} {} {}",
        r.name(),
        r.info.label,
        r.info.experiment,
        r.info.seed,
        r.state().label(),
        tags.join(" "),
        r.notes.note
    )
    .to_lowercase()
}

fn state_rank(state: DisplayState) -> u8 {
    use crate::run::dir::State as S;
    match state {
        DisplayState::Is(S::Training) => 0,
        DisplayState::Is(S::Paused) => 1,
        DisplayState::Is(S::Queued) => 2,
        DisplayState::Lost
        | DisplayState::Unheard
        | DisplayState::Is(S::Failed)
        | DisplayState::Is(S::Diverged) => 3,
        DisplayState::Is(S::Stopped) => 4,
        DisplayState::Is(S::Done) => 5,
        DisplayState::Unknown => 6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorting_goes_through_every_column_and_back() {
        let mut s = SortBy::default();
        let mut seen = vec![s];
        for _ in 0..SortBy::ALL.len() {
            s = s.next();
            seen.push(s);
        }
        assert_eq!(seen.first(), seen.last());
        assert_eq!(seen.len() - 1, SortBy::ALL.len());
    }

    #[test]
    fn the_title_says_what_is_hidden_and_how_it_is_ordered() {
        let mut list = RunList::default();
        assert_eq!(list.title(3, 3), "Runs (3)");
        list.filter = "dropblock #wide".into();
        list.sort = SortBy::Best;
        assert_eq!(
            list.title(1, 3),
            "Runs (1 of 3) /dropblock #wide by best accuracy"
        );
    }
}
