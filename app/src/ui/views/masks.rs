//! The Masks view: salience and keep-mask snapshots as heatmaps.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};

use super::ColorDepth;
use crate::run::dir::SnapshotLine;
use crate::ui::app::App;
use crate::ui::state::MaskCursor;
use crate::ui::workspace::RunView;

/// A value in [0, 1] as a colour of a dark-to-bright ramp.
pub(super) fn heat(v: f32, depth: ColorDepth) -> Color {
    let v = v.clamp(0.0, 1.0);
    match depth {
        ColorDepth::TrueColor => {
            let r = (255.0 * v.powf(0.8)) as u8;
            let g = (255.0 * v.powi(2)) as u8;
            // Blue only mid-ramp: 0 is black, as the titles say dropped is.
            let b = (160.0 * v * (1.0 - v)) as u8;
            Color::Rgb(r, g, b)
        }
        // The 24-step grey ramp of the 256-colour palette.
        ColorDepth::Indexed256 => Color::Indexed(232 + (v * 23.0).round() as u8),
        ColorDepth::Basic16 => match (v * 3.0).round() as u8 {
            0 => Color::Black,
            1 => Color::DarkGray,
            2 => Color::Gray,
            _ => Color::White,
        },
    }
}

/// Rows of half-block cells: each cell shows two pixels (upper as
/// foreground), each about square (a cell is about twice as tall as wide);
/// each value is a `scale` × `scale` block of pixels.
fn heatmap_lines(
    values: &[f32],
    [h, w]: [usize; 2],
    top: f32,
    scale: usize,
    depth: ColorDepth,
) -> Vec<Line<'static>> {
    let max = top.max(1e-12);
    let scale = scale.max(1);
    let (sh, sw) = (h * scale, w * scale);
    let at = |y: usize, x: usize| {
        values
            .get((y / scale) * w + x / scale)
            .copied()
            .unwrap_or(0.0)
            / max
    };
    (0..sh.div_ceil(2))
        .map(|row| {
            let spans: Vec<Span> = (0..sw)
                .map(|x| {
                    let top = heat(at(2 * row, x), depth);
                    let bottom = if 2 * row + 1 < sh {
                        heat(at(2 * row + 1, x), depth)
                    } else {
                        Color::Reset
                    };
                    Span::styled("▀", Style::new().fg(top).bg(bottom))
                })
                .collect();
            Line::from(spans)
        })
        .collect()
}

/// The largest whole number of pixels per value (the same across and down)
/// at which an `h` × `w` map fits `area` between its title and colour bar.
fn map_scale(area: Rect, [h, w]: [usize; 2]) -> usize {
    let across = area.width as usize / w.max(1);
    let down = 2 * area.height.saturating_sub(2) as usize / h.max(1);
    across.min(down).max(1)
}

/// The value drawn brightest: salience at its 98th percentile, so that a few
/// outliers do not leave every other cell near black (text activations have
/// them); above it, cells are as bright as it.
fn salience_top(values: &[f32]) -> f32 {
    let mut v: Vec<f32> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 1.0;
    }
    let k = ((v.len() - 1) as f64 * 0.98).round() as usize;
    let (_, top, _) = v.select_nth_unstable_by(k, f32::total_cmp);
    if *top > 0.0 {
        *top
    } else {
        v.iter().copied().fold(0f32, f32::max)
    }
}

fn max_of(values: &[f32]) -> f32 {
    values.iter().copied().fold(0f32, f32::max)
}

/// A colour bar: the ramp from 0 to `top` with its end values.
fn colour_bar(top: f32, clipped: bool, depth: ColorDepth) -> Line<'static> {
    const CELLS: usize = 10;
    let mut spans = vec![Span::raw("0 ")];
    for i in 0..CELLS {
        let c = heat(i as f32 / (CELLS - 1) as f32, depth);
        spans.push(Span::styled("█", Style::new().fg(c)));
    }
    let sign = if clipped { "≥" } else { "" };
    spans.push(Span::raw(format!(" {sign}{top:.3}")));
    Line::from(spans)
}

/// The selected snapshot of the selected run: its slot's, sample's history,
/// `back` steps from the newest; with where it is among them.
pub(crate) struct Shown<'a> {
    pub(crate) snap: &'a SnapshotLine,
    slot: (usize, usize),
    sample: (usize, usize),
    /// (position from the oldest, 1-based; how many)
    history: (usize, usize),
}

/// A slot's samples, each its history of snapshots.
type Samples<'a> = Vec<&'a Vec<SnapshotLine>>;

/// The selected slot's samples; with the slot's place and how many slots
/// there are.
fn samples_of<'a>(run: &'a RunView, cursor: &MaskCursor) -> Option<(Samples<'a>, (usize, usize))> {
    let mut slots: Vec<&String> = run.snapshots.keys().map(|(slot, _)| slot).collect();
    slots.dedup();
    let si = cursor.slot % slots.len().max(1);
    let slot = *slots.get(si)?;
    let samples = run
        .snapshots
        .range((slot.clone(), 0)..=(slot.clone(), usize::MAX))
        .map(|(_, s)| s)
        .collect();
    Some((samples, (si, slots.len())))
}

/// The snapshot `back` steps before the newest of `history` (the oldest,
/// if it has fewer), and its 0-based place.
fn at_back(history: &[SnapshotLine], back: usize) -> (usize, &SnapshotLine) {
    let i = history.len() - 1 - back.min(history.len() - 1);
    (i, &history[i])
}

pub(crate) fn shown<'a>(run: &'a RunView, cursor: &MaskCursor) -> Option<Shown<'a>> {
    let (samples, slot) = samples_of(run, cursor)?;
    let ni = cursor.sample % samples.len();
    let history = samples[ni];
    let (hi, snap) = at_back(history, cursor.back);
    Some(Shown {
        snap,
        slot,
        sample: (ni, samples.len()),
        history: (hi + 1, history.len()),
    })
}

/// The cursor on the next channel with a dropped position: the shown
/// sample's later channels, then the next samples' (as far back as the one
/// shown), round to the shown one's earlier channels; `None` where none has
/// one.
pub(crate) fn next_with_drops(run: &RunView, cursor: &MaskCursor) -> Option<MaskCursor> {
    let (samples, _) = samples_of(run, cursor)?;
    let n = samples.len();
    let ni = cursor.sample % n;
    let ci = cursor.channel % at_back(samples[ni], cursor.back).1.channels.len().max(1);
    (0..=n).find_map(|k| {
        let sample = (ni + k) % n;
        let snap = at_back(samples[sample], cursor.back).1;
        let from = if k == 0 { ci + 1 } else { 0 };
        let to = if k == n { ci + 1 } else { snap.channels.len() };
        (from..to)
            .find(|c| SnapshotLine::dropped_fraction(snap.mask_of(*c)) > 0.0)
            .map(|channel| MaskCursor {
                sample,
                channel,
                ..*cursor
            })
    })
}

pub(super) fn draw(frame: &mut Frame, app: &App, area: Rect, depth: ColorDepth) {
    let block = Block::new().borders(Borders::ALL);
    let Some(run) = app.selected_run() else {
        frame.render_widget(
            Paragraph::new("no run selected").block(block.title("Masks")),
            area,
        );
        return;
    };
    let Some(s) = shown(run, &app.masks) else {
        let text = format!(
            "{}: no mask snapshots yet (they are taken every train.snapshot_every steps)",
            run.name()
        );
        frame.render_widget(
            Paragraph::new(text)
                .wrap(Wrap { trim: true })
                .block(block.title("Masks")),
            area,
        );
        return;
    };
    let snap = s.snap;
    let ci = app.masks.channel % snap.channels.len().max(1);
    let (sal, mask) = (snap.salience_of(ci), snap.mask_of(ci));
    let outer = block.title(format!("Masks: {} s{}", run.info.label, run.info.seed));
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    let [info_area, inner] =
        Layout::vertical([Constraint::Length(2), Constraint::Min(1)]).areas(inner);
    frame.render_widget(Paragraph::new(header(&s, ci)), info_area);
    if !snap.tokens.is_empty() {
        draw_token_maps(frame, snap, [sal, mask], inner, depth);
        return;
    }
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(inner);
    let size = [snap.height, snap.width];
    let scale = map_scale(left, size);
    let sal_top = salience_top(sal);
    let mask_top = max_of(mask);
    for (area, title, values, top, clipped) in [
        (left, "salience |x|", sal, sal_top, sal_top < max_of(sal)),
        (right, "keep-mask (black: dropped)", mask, mask_top, false),
    ] {
        let mut lines = heatmap_lines(values, size, top, scale, depth);
        lines.push(colour_bar(top, clipped, depth));
        frame.render_widget(Paragraph::new(lines).block(Block::new().title(title)), area);
    }
}

/// Two lines: which slot, sample and channel; which snapshot, its p and the
/// fraction dropped of the channel and of the whole snapshot.
fn header(s: &Shown, ci: usize) -> Vec<Line<'static>> {
    let snap = s.snap;
    let dropped = SnapshotLine::dropped_fraction(snap.mask_of(ci));
    let everywhere = SnapshotLine::dropped_fraction(&snap.mask);
    let channels = snap.channels.len().max(1);
    let (at, of) = s.history;
    let when = if at == of {
        "newest; < older".to_string()
    } else {
        format!("{at}/{of}; > newer")
    };
    vec![
        Line::from(format!(
            "slot {} ({}/{}) · sample {} ({}/{}) · channel {} ({}/{})",
            snap.slot,
            s.slot.0 + 1,
            s.slot.1,
            snap.sample,
            s.sample.0 + 1,
            s.sample.1,
            snap.channels.get(ci).copied().unwrap_or(0),
            ci + 1,
            channels,
        )),
        Line::from(format!(
            "step {} ({when}) · p {:.3} · dropped {:.1} % (snapshot {:.1} %)",
            snap.step,
            snap.p,
            100.0 * dropped,
            100.0 * everywhere
        )),
    ]
}

/// Columns of `w` values squeezed into `cols` buckets, each the mean of its
/// values: a row of `cols` shades.
fn bucket_row(row: &[f32], cols: usize) -> Vec<f32> {
    let w = row.len();
    (0..cols)
        .map(|c| {
            let (a, b) = (c * w / cols, ((c + 1) * w / cols).max(c * w / cols + 1));
            let part = &row[a.min(w)..b.min(w)];
            part.iter().sum::<f32>() / part.len().max(1) as f32
        })
        .collect()
}

/// Text snapshots: one line per token, its label on the left, then the salience
/// and the keep-mask of its hidden units (averaged into the columns there are).
fn draw_token_maps(
    frame: &mut Frame,
    snap: &SnapshotLine,
    [sal, mask]: [&[f32]; 2],
    area: Rect,
    depth: ColorDepth,
) {
    const LABEL: usize = 12;
    let (h, w) = (snap.height, snap.width);
    let room = (area.width as usize).saturating_sub(LABEL + 3) / 2;
    let cols = room.min(w).max(1);
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let mut lines = vec![Line::from(vec![
        Span::styled(format!("{:<LABEL$} ", "token"), bold),
        Span::styled(format!("{:<cols$.cols$} ", "salience |x|"), bold),
        Span::styled(format!("{:.cols$}", "keep-mask (black: dropped)"), bold),
    ])];
    let rows_shown = (area.height as usize).saturating_sub(3).min(h);
    let units = if cols < w {
        format!("{w} hidden units in {cols} columns (means)")
    } else {
        format!("{w} hidden units")
    };
    let max_sal = salience_top(sal).max(1e-12);
    let max_mask = max_of(mask).max(1e-12);
    for (t, token) in snap.tokens.iter().enumerate().take(rows_shown) {
        let label: String = token.chars().take(LABEL).collect();
        let mut spans = vec![Span::raw(format!("{label:<LABEL$} "))];
        let row = |v: &[f32]| v.get(t * w..(t + 1) * w).unwrap_or(&[]).to_vec();
        for c in bucket_row(&row(sal), cols) {
            spans.push(Span::styled(" ", Style::new().bg(heat(c / max_sal, depth))));
        }
        spans.push(Span::raw(" "));
        for c in bucket_row(&row(mask), cols) {
            spans.push(Span::styled(
                " ",
                Style::new().bg(heat(c / max_mask, depth)),
            ));
        }
        lines.push(Line::from(spans));
    }
    lines.push(Line::from(if rows_shown < h {
        format!("… {} more tokens · {units}", h - rows_shown)
    } else {
        format!("{h} tokens · {units}")
    }));
    let mut bars = colour_bar(max_sal, max_sal < max_of(sal), depth);
    bars.spans.insert(0, Span::raw("salience "));
    bars.spans.push(Span::raw("   mask "));
    bars.spans.extend(colour_bar(max_mask, false, depth).spans);
    lines.push(bars);
    frame.render_widget(Paragraph::new(lines), area);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_outliers_do_not_darken_the_salience_map() {
        // Text activations: most units small, a few huge.
        let mut v: Vec<f32> = (0..1000).map(|i| 0.5 + (i % 10) as f32 * 0.05).collect();
        v[3] = 400.0;
        v[700] = 250.0;
        let top = salience_top(&v);
        assert!(top < 1.0, "{top}");
        let bright = v.iter().filter(|x| **x / top > 0.4).count();
        assert!(bright > 900, "{bright} of 1000 cells visible");
        assert_eq!(salience_top(&[0.0, 0.0, 3.0]), 3.0, "all-zero but one");
        assert_eq!(salience_top(&[]), 1.0);
    }

    /// Issue 34, item 10: a 7×7 map in 80×24's 39 × 16 cells takes
    /// four cells a value across and four pixels (two rows) down.
    #[test]
    fn maps_take_whole_square_pixels_to_fill_their_room() {
        assert_eq!(map_scale(Rect::new(0, 0, 39, 16), [7, 7]), 4);
        assert_eq!(map_scale(Rect::new(0, 0, 78, 40), [14, 14]), 5);
        assert_eq!(
            map_scale(Rect::new(0, 0, 10, 3), [14, 14]),
            1,
            "at least one"
        );
        let lines = heatmap_lines(&[0.0, 1.0], [1, 2], 1.0, 3, ColorDepth::Basic16);
        assert_eq!(lines.len(), 2, "three pixels down in two rows");
        assert_eq!(lines[0].spans.len(), 6, "three columns a value");
    }

    #[test]
    fn zero_is_black_in_every_palette() {
        assert_eq!(heat(0.0, ColorDepth::TrueColor), Color::Rgb(0, 0, 0));
        assert_eq!(heat(0.0, ColorDepth::Indexed256), Color::Indexed(232));
        assert_eq!(heat(0.0, ColorDepth::Basic16), Color::Black);
    }

    #[test]
    fn heat_ramps_stay_in_the_palette_and_rise() {
        let lum = |c: Color| match c {
            Color::Rgb(r, g, b) => r as u32 + g as u32 + b as u32,
            Color::Indexed(i) => i as u32,
            Color::Black => 0,
            Color::DarkGray => 1,
            Color::Gray => 2,
            Color::White => 3,
            other => panic!("{other:?} is not on a ramp"),
        };
        for depth in [
            ColorDepth::TrueColor,
            ColorDepth::Indexed256,
            ColorDepth::Basic16,
        ] {
            let ramp: Vec<Color> = (0..=20).map(|i| heat(i as f32 / 20.0, depth)).collect();
            for w in ramp.windows(2) {
                assert!(lum(w[0]) <= lum(w[1]), "{depth:?}: {w:?}");
            }
            assert_ne!(ramp[0], ramp[20], "{depth:?}: the ends differ");
            for c in &ramp {
                match depth {
                    ColorDepth::Basic16 => {
                        assert!(!matches!(c, Color::Rgb(..) | Color::Indexed(_)))
                    }
                    ColorDepth::Indexed256 => assert!(matches!(c, Color::Indexed(232..=255))),
                    ColorDepth::TrueColor => assert!(matches!(c, Color::Rgb(..))),
                }
            }
        }
    }
}
