//! The HTML rendering (`report.html`): one self-contained page (inline CSS and SVG, no
//! scripts, nothing fetched), the document's blocks with the charts in place.

use crate::analysis::Analysis;
use crate::charts;
use crate::document::{self, Block};
use crate::error::ReportError;

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}\
table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;font-size:.92em}\
th{background:#f3f3f3}code{background:#f3f3f3;padding:0 .2em}\
.prompt{border-left:4px solid #d9822b;background:#fff7ee;padding:.5em 1em;margin:1em 0}\
.prompt .ask{font-weight:600}.prompt textarea{width:100%;min-height:4em}\
figure{margin:1em 0}figcaption{font-size:.9em;color:#555}";

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Inline Markdown the document uses: `code` and **bold**.
fn inline(s: &str) -> String {
    let mut out = String::new();
    for (i, part) in escape(s).split('`').enumerate() {
        if i % 2 == 1 {
            out.push_str(&format!("<code>{part}</code>"));
        } else {
            for (j, p) in part.split("**").enumerate() {
                if j % 2 == 1 {
                    out.push_str(&format!("<strong>{p}</strong>"));
                } else {
                    out.push_str(p);
                }
            }
        }
    }
    out
}

pub fn render(a: &Analysis) -> Result<String, ReportError> {
    let blocks = document::build(a);
    let title = blocks
        .iter()
        .find_map(|b| match b {
            Block::Heading(1, t) => Some(t.clone()),
            _ => None,
        })
        .unwrap_or_default();
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(&title)
    );
    for block in blocks {
        match block {
            Block::Heading(level, text) => out.push_str(&format!("<h{level}>{}</h{level}>\n", inline(&text))),
            Block::Para(text) => out.push_str(&format!("<p>{}</p>\n", inline(&text))),
            Block::List(items) => {
                out.push_str("<ul>\n");
                for i in items {
                    out.push_str(&format!("<li>{}</li>\n", inline(&i)));
                }
                out.push_str("</ul>\n");
            }
            Block::Table { header, rows } => {
                out.push_str("<table>\n<tr>");
                for h in header {
                    out.push_str(&format!("<th>{}</th>", inline(&h)));
                }
                out.push_str("</tr>\n");
                for r in rows {
                    out.push_str("<tr>");
                    for c in r {
                        out.push_str(&format!("<td>{}</td>", inline(&c)));
                    }
                    out.push_str("</tr>\n");
                }
                out.push_str("</table>\n");
            }
            Block::Prompt { ask, seeds } => {
                out.push_str(&format!(
                    "<div class=\"prompt\">\n<p class=\"ask\">✍ To write: {}</p>\n",
                    inline(&ask)
                ));
                if !seeds.is_empty() {
                    out.push_str("<p>The data suggests:</p>\n<ul>\n");
                    for s in seeds {
                        out.push_str(&format!("<li>{}</li>\n", inline(&s)));
                    }
                    out.push_str("</ul>\n");
                }
                out.push_str("</div>\n");
            }
            Block::Chart(c) => {
                let svg = charts::draw(a, c)?;
                out.push_str(&format!(
                    "<figure class=\"chart\" id=\"chart-{}\">\n{svg}\n<figcaption>{}</figcaption>\n</figure>\n",
                    charts::slug(c),
                    escape(&charts::caption(a, c))
                ));
            }
        }
    }
    out.push_str("</body>\n</html>\n");
    Ok(out)
}
