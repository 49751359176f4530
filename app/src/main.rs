use clap::Parser;
use probdrop_tui::cli::{self, Cli, Command};

fn main() {
    let args = Cli::parse();
    let result = match &args.command {
        Some(Command::Plugins { json }) => cli::plugins(&args.plugins, *json),
        Some(Command::Mask(mask)) => cli::mask(&args.plugins, mask),
        None => cli::plugins(&args.plugins, false).map(|()| {
            eprintln!(
                "\nThe dashboard is not built yet (issue 4); `probdrop-tui --help` lists the commands."
            );
        }),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
