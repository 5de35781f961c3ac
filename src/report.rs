//! `ballast report RUN_DIR [--format md,html] [--out DIR]`: the post-mortem draft of a
//! recorded run (`ballast-report`). A missing, truncated or malformed run folder is invalid
//! input: its error names the file and the command exits 78, like a bad config; a report that
//! cannot be written exits 1.

use std::path::PathBuf;

use ballast_report::{Format, ReportError};
use clap::ValueEnum;

#[derive(clap::Args)]
pub struct ReportArgs {
    /// The run folder, e.g. runs/checkout-20260101T000000Z.
    pub run: PathBuf,
    /// Formats to write, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "md,html")]
    pub format: Vec<FormatArg>,
    /// Where to write report.md / report.html (default: the run folder).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum FormatArg {
    Md,
    Html,
}

pub fn run(args: ReportArgs) -> Result<(), ReportError> {
    let mut formats: Vec<Format> = Vec::new();
    for f in args.format {
        let f = match f {
            FormatArg::Md => Format::Markdown,
            FormatArg::Html => Format::Html,
        };
        if !formats.contains(&f) {
            formats.push(f);
        }
    }
    let written = ballast_report::write(&args.run, &formats, args.out.as_deref())?;
    println!("{}.", written.headline);
    for f in &written.files {
        println!("wrote {}", f.display());
    }
    Ok(())
}
