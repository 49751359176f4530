//! The Sweep view (issue 37) over a real sweep trained by the binary's
//! `compare`: the heatmap and the hparams table at 80×24 and 160×48, the
//! cursor, spreads, the line of a one-key arm, sorting, and marking a
//! place's runs for the charts.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use crate::common::{Tiny, repo_root};
use crate::dashboard::{FakeEffects, app_over, press, render, snapshot};
use crossterm::event::KeyCode;
use probdrop_tui::run::comparison::Manifest;
use probdrop_tui::ui::app::App;
use probdrop_tui::ui::keys::{Action, View};

/// DropBlock over block_size × p × gamma_scale (2 × 2 × 2) and Dropout
/// over p (2 values), two seeds each, with the `none` baseline: 22 runs.
pub(crate) fn sweep_fixture() -> &'static PathBuf {
    static F: OnceLock<PathBuf> = OnceLock::new();
    F.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sweep-view-fixture");
        let _ = std::fs::remove_dir_all(&root);
        let experiments = root.join("experiments");
        std::fs::create_dir_all(&experiments).unwrap();
        let file = Tiny {
            name: "sweep",
            seeds: "[1, 2]",
            train_limit: 256,
            train: "epochs = 1\nlog_every = 1\neval_every = 4",
            strategies: "[[strategy]]\nplugin = \"dropblock\"\nparams = { block_size = 3 }\n\
                         schedule = { kind = \"constant\", p = 0.1 }\n\
                         sweep = { block_size = [3, 5], p = [0.05, 0.3], \
                         gamma_scale = [0.5, 1.0] }\n\n\
                         [[strategy]]\nplugin = \"dropout\"\n\
                         schedule = { kind = \"constant\", p = 0.1 }\n\
                         sweep = { p = [0.1, 0.5] }",
            ..Tiny::default()
        }
        .write(&experiments.join("sweep.toml"));
        let out = Command::new(env!("CARGO_BIN_EXE_probdrop-tui"))
            .arg("--plugins")
            .arg(repo_root().join("plugins"))
            .args(["compare", "--jobs", "2"])
            .arg(&file)
            .arg("--runs")
            .arg(root.join("runs"))
            .arg("--out")
            .arg(root.join("compare/sweep"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // A second comparison over the same runs, for the comparison keys.
        std::fs::create_dir_all(root.join("compare/sweep-again")).unwrap();
        std::fs::copy(
            root.join("compare/sweep/compare.json"),
            root.join("compare/sweep-again/compare.json"),
        )
        .unwrap();
        root
    })
}

/// The dashboard over the sweep fixture, in the Sweep view.
pub(crate) fn sweep_app() -> App {
    let root = sweep_fixture();
    let mut app = app_over(root.join("runs"), root.join("experiments"));
    app.apply(Action::Go(View::Sweep), &mut FakeEffects::default());
    app
}

#[test]
fn the_sweep_view_and_its_hparams_table_at_80x24_and_160x48() {
    let mut app = sweep_app();
    let mut fx = FakeEffects::default();
    for (w, h) in [(80, 24), (160, 48)] {
        snapshot(&format!("sweep_grid_{w}x{h}"), &render(&app, w, h));
    }
    let text = render(&app, 80, 24);
    assert!(text.contains("dropblock, averaged over p"), "{text}");
    assert!(
        text.contains("[") && text.contains("block_size=3 gamma_scale=0.5:"),
        "{text}"
    );
    assert!(text.contains("2 cells' (4 runs)"), "{text}");
    // block_size × p; the cursor to block_size 5, p 0.3; gamma_scale held
    // at 1; spread as sd; best accuracy.
    for key in ['x', 'h', 'h'] {
        press(&mut app, KeyCode::Char(key), &mut fx);
    }
    press(&mut app, KeyCode::Right, &mut fx);
    press(&mut app, KeyCode::Down, &mut fx);
    press(&mut app, KeyCode::Char('e'), &mut fx);
    let text = render(&app, 80, 24);
    snapshot("sweep_held_sd_80x24", &text);
    assert!(text.contains("dropblock, gamma_scale = 1.0"), "{text}");
    assert!(text.contains("block_size=5 p=0.3:"), "{text}");
    assert!(text.contains("Δ final vs"), "{text}");
    assert!(text.contains("±"), "{text}");
    press(&mut app, KeyCode::Char('b'), &mut fx);
    assert!(render(&app, 80, 24).contains("best acc %"));
    // The table sorted by final accuracy, highest first.
    for _ in 0..6 {
        press(&mut app, KeyCode::Char('S'), &mut fx);
    }
    press(&mut app, KeyCode::Char('r'), &mut fx);
    let wide = render(&app, 160, 48);
    snapshot("sweep_hparams_sorted_160x48", &wide);
    assert!(wide.contains("by final % ↓"), "{wide}");
    let header = wide.lines().find(|l| l.starts_with("│strategy")).unwrap();
    let at = header.find("final %").unwrap();
    let at = header[..at].chars().count();
    let finals: Vec<f64> = wide
        .lines()
        .skip_while(|l| !l.starts_with("│strategy"))
        .filter_map(|l| {
            let field: String = l.chars().skip(at).take(8).collect();
            field.trim().parse().ok()
        })
        .collect();
    assert_eq!(finals.len(), 22, "{wide}");
    assert!(finals.windows(2).all(|w| w[0] >= w[1]), "{finals:?}");
    // The one-key arm is a line.
    press(&mut app, KeyCode::Char('a'), &mut fx);
    let line = render(&app, 80, 24);
    snapshot("sweep_line_80x24", &line);
    assert!(
        line.contains("dropout") && line.contains("p=0.1:"),
        "{line}"
    );
}

#[test]
fn space_marks_the_runs_of_the_place_under_the_cursor() {
    let mut app = sweep_app();
    let mut fx = FakeEffects::default();
    // block_size 3, gamma_scale 1: two cells (p averaged), two seeds each.
    press(&mut app, KeyCode::Down, &mut fx);
    press(&mut app, KeyCode::Char(' '), &mut fx);
    let m = Manifest::load(&sweep_fixture().join("compare/sweep")).unwrap();
    let want: std::collections::BTreeSet<PathBuf> = m
        .current()
        .filter(|e| {
            m.cells.get(&e.label).is_some_and(|c| {
                let v = |k: &str| c.values.get(k).map(String::as_str);
                (v("block_size"), v("gamma_scale")) == (Some("3"), Some("1.0"))
            })
        })
        .map(|e| e.dir.clone())
        .collect();
    assert_eq!(want.len(), 4);
    assert_eq!(app.marked, want, "{}", app.message);
    press(&mut app, KeyCode::Char(' '), &mut fx);
    assert!(app.marked.is_empty(), "a second press unmarks");
}

/// In 16 and 256 colours the heatmap asks for no colour the terminal lacks,
/// shows more than one shade, and no text is in its own background colour.
#[test]
fn the_heatmap_is_legible_in_16_and_256_colours() {
    use probdrop_tui::ui::views::{ColorDepth, draw};
    use ratatui::style::Color;
    let app = sweep_app();
    for depth in [ColorDepth::Basic16, ColorDepth::Indexed256] {
        let mut terminal =
            ratatui::Terminal::new(ratatui::backend::TestBackend::new(120, 40)).unwrap();
        terminal.draw(|f| draw(f, &app, depth)).unwrap();
        let mut shades = std::collections::BTreeSet::new();
        for cell in terminal.backend().buffer().content() {
            for c in [cell.fg, cell.bg] {
                assert!(!matches!(c, Color::Rgb(..)), "{depth:?} asks for {c:?}");
                if depth == ColorDepth::Basic16 {
                    assert!(!matches!(c, Color::Indexed(_)), "{depth:?} asks for {c:?}");
                }
            }
            if cell.bg != Color::Reset {
                shades.insert(format!("{:?}", cell.bg));
                assert_ne!(
                    cell.fg,
                    cell.bg,
                    "{depth:?}: {:?} unreadable",
                    cell.symbol()
                );
            }
        }
        assert!(shades.len() >= 2, "{depth:?}: {shades:?}");
    }
}
