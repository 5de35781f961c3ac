//! The Markdown rendering (`report.md`): the document's blocks as GitHub-flavoured Markdown;
//! charts are in the HTML page, and the Markdown says so where they would be.

use crate::analysis::Analysis;
use crate::document::{self, Block};

pub use document::headline;

pub fn render(a: &Analysis) -> String {
    let mut out = String::new();
    for block in document::build(a) {
        match block {
            Block::Heading(level, text) => {
                out.push_str(&format!("{} {text}\n\n", "#".repeat(level as usize)));
            }
            Block::Para(text) => out.push_str(&format!("{text}\n\n")),
            Block::List(items) => {
                for i in items {
                    out.push_str(&format!("- {i}\n"));
                }
                out.push('\n');
            }
            Block::Table { header, rows } => {
                let line = |cells: &[String]| {
                    format!(
                        "| {} |\n",
                        cells
                            .iter()
                            .map(|c| c.replace('|', "\\|"))
                            .collect::<Vec<_>>()
                            .join(" | ")
                    )
                };
                out.push_str(&line(&header));
                out.push_str(&format!("|{}\n", "---|".repeat(header.len())));
                for r in rows {
                    out.push_str(&line(&r));
                }
                out.push('\n');
            }
            Block::Prompt { ask, seeds } => {
                out.push_str(&format!("> ✍ **To write:** {ask}\n"));
                if !seeds.is_empty() {
                    out.push_str(">\n> The data suggests:\n");
                    for s in seeds {
                        out.push_str(&format!("> - {s}\n"));
                    }
                }
                out.push('\n');
            }
            Block::Chart(c) => out.push_str(&format!("*Chart: {} (in report.html).*\n\n", c.title())),
        }
    }
    out
}
