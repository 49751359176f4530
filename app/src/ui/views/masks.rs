//! The Masks view: salience and keep-mask snapshots as heatmaps.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};

use super::ColorDepth;
use crate::run::dir::SnapshotLine;
use crate::ui::app::App;

/// A value in [0, 1] as a colour of a dark-to-bright ramp.
fn heat(v: f32, depth: ColorDepth) -> Color {
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

/// Rows of half-block cells: each cell shows two pixels (upper as foreground);
/// each pixel is repeated `scale` times in both directions (two columns per
/// scale step, since cells are about twice as tall as wide).
fn heatmap_lines(
    values: &[f32],
    h: usize,
    w: usize,
    scale: usize,
    depth: ColorDepth,
) -> Vec<Line<'static>> {
    let max = values.iter().copied().fold(0f32, f32::max).max(1e-12);
    let scale = scale.max(1);
    let (sh, sw) = (h * scale, w * scale * 2);
    let at = |y: usize, x: usize| {
        values
            .get((y / scale) * w + x / (2 * scale))
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

pub(super) fn draw(frame: &mut Frame, app: &App, area: Rect, depth: ColorDepth) {
    let block = Block::new().borders(Borders::ALL);
    let Some(run) = app.selected_run() else {
        frame.render_widget(
            Paragraph::new("no run selected").block(block.title("Masks")),
            area,
        );
        return;
    };
    let mut slots: Vec<&String> = run.snapshots.keys().map(|(slot, _)| slot).collect();
    slots.dedup();
    if slots.is_empty() {
        let text = format!(
            "{}: no mask snapshots yet (train.snapshot_every)",
            run.name()
        );
        frame.render_widget(Paragraph::new(text).block(block.title("Masks")), area);
        return;
    }
    let slot = slots[app.masks.slot % slots.len()];
    let samples: Vec<&SnapshotLine> = run
        .snapshots
        .range((slot.clone(), 0)..=(slot.clone(), usize::MAX))
        .map(|(_, s)| s)
        .collect();
    let snap = samples[app.masks.sample % samples.len()];
    let channels = snap.channels.len().max(1);
    let ci = app.masks.channel % channels;
    let plane = snap.height * snap.width;
    let sal = snap
        .salience
        .get(ci * plane..(ci + 1) * plane)
        .unwrap_or(&[]);
    let mask = snap.mask.get(ci * plane..(ci + 1) * plane).unwrap_or(&[]);
    let dropped = mask.iter().filter(|v| **v == 0.0).count() as f64 / mask.len().max(1) as f64;
    let info = format!(
        "slot {} ({}/{})  sample {} ({}/{})  channel {} ({}/{})  step {}  p {:.3}  dropped {:.1} %",
        slot,
        app.masks.slot % slots.len() + 1,
        slots.len(),
        snap.sample,
        app.masks.sample % samples.len() + 1,
        samples.len(),
        snap.channels.get(ci).copied().unwrap_or(0),
        ci + 1,
        channels,
        snap.step,
        snap.p,
        100.0 * dropped
    );
    let outer = block.title(format!("Masks: {} s{}", run.info.label, run.info.seed));
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    // The selectors and the fraction dropped, wrapped onto two lines when narrow.
    let info_lines = if info.chars().count() <= inner.width as usize {
        1
    } else {
        2
    };
    let [info_area, inner] =
        Layout::vertical([Constraint::Length(info_lines), Constraint::Min(1)]).areas(inner);
    frame.render_widget(Paragraph::new(info).wrap(Wrap { trim: true }), info_area);
    if !snap.tokens.is_empty() {
        draw_token_maps(frame, snap, sal, mask, inner, depth);
        return;
    }
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(inner);
    let sal_block = Block::new().title("salience |x|");
    let mask_block = Block::new().title("keep-mask (black: dropped)");
    // The largest whole-number scale that fits both maps under their titles.
    let scale = (left.width as usize / (2 * snap.width).max(1))
        .min(2 * left.height.saturating_sub(1) as usize / snap.height.max(1))
        .max(1);
    frame.render_widget(
        Paragraph::new(heatmap_lines(sal, snap.height, snap.width, scale, depth)).block(sal_block),
        left,
    );
    frame.render_widget(
        Paragraph::new(heatmap_lines(mask, snap.height, snap.width, scale, depth))
            .block(mask_block),
        right,
    );
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
    sal: &[f32],
    mask: &[f32],
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
    let rows_shown = (area.height as usize).saturating_sub(2).min(h);
    let units = if cols < w {
        format!("{w} hidden units in {cols} columns (means)")
    } else {
        format!("{w} hidden units")
    };
    let max_sal = sal.iter().copied().fold(0f32, f32::max).max(1e-12);
    let max_mask = mask.iter().copied().fold(0f32, f32::max).max(1e-12);
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
    frame.render_widget(Paragraph::new(lines), area);
}

#[cfg(test)]
mod tests {
    use super::*;

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
