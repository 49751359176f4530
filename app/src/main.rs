use clap::Parser;
use probdrop_tui::cli::{self, Cli, Command};
use probdrop_tui::commands;
use probdrop_tui::train::ThisMachine;

fn main() {
    let args = Cli::parse();
    if matches!(
        args.command,
        Some(
            Command::Run(_) | Command::Train { .. } | Command::BenchStep(_) | Command::Reproduce(_)
        )
    ) {
        probdrop_tui::train::allocator::tune_for_tensors();
    }
    if !matches!(args.command, Some(Command::Trial { .. })) {
        // Every first call into a library goes through a trial of this binary.
        probdrop_tui::plugins::trial::try_first_loads();
    }
    let result = match &args.command {
        Some(Command::Plugins { json }) => cli::plugins(&args.plugins, *json),
        Some(Command::Mask(mask)) => cli::mask(&args.plugins, mask),
        Some(Command::NewStrategy(new)) => cli::new_strategy(&args.plugins, new),
        Some(Command::Export(export)) => probdrop_tui::export::export(export),
        Some(Command::Check { files }) => commands::check(&args.plugins, files),
        Some(Command::Run(run)) => commands::run(&args.plugins, run),
        Some(Command::Compare(compare)) => {
            probdrop_tui::compare::compare(&args.plugins, &ThisMachine, compare)
        }
        Some(Command::Reproduce(reproduce)) => {
            probdrop_tui::reproduce::reproduce(&args.plugins, reproduce)
        }
        Some(Command::Train { run_dir, stop_at }) => {
            commands::train(&args.plugins, run_dir, *stop_at)
        }
        Some(Command::Trial {
            library,
            load_only,
            parent,
        }) => {
            let passed = probdrop_tui::plugins::trial::trial_command(library, *load_only, *parent);
            std::process::exit(i32::from(!passed));
        }
        Some(Command::BenchStep(bench)) => commands::bench_step(&args.plugins, bench),
        Some(Command::Doctor { experiments }) => commands::doctor(&args.plugins, experiments),
        Some(Command::Dashboard {
            runs,
            experiments,
            compare,
        }) => probdrop_tui::ui::run(probdrop_tui::ui::Options {
            plugins: args.plugins.clone(),
            machine: std::sync::Arc::new(ThisMachine),
            runs: runs.clone(),
            experiments: experiments.clone(),
            compare: compare.clone(),
        }),
        None => probdrop_tui::ui::run(probdrop_tui::ui::Options {
            plugins: args.plugins.clone(),
            machine: std::sync::Arc::new(ThisMachine),
            runs: "runs".into(),
            experiments: "experiments".into(),
            compare: "compare".into(),
        }),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
