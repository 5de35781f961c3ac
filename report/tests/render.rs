//! The two renderings of the game day: the Markdown as a snapshot (every figure in place),
//! the HTML parsed: the post-mortem's sections in order, four charts with their fault and
//! alert spans labelled, self-contained.

use ballast_report::load::Run;
use ballast_report::{Rules, analyze, html, markdown, synthetic};
use scraper::{Html, Selector};

fn analysis(incident: bool) -> ballast_report::Analysis {
    let dir = tempfile::tempdir().unwrap();
    synthetic::game_day(dir.path(), incident).unwrap();
    let mut a = analyze(&Run::open(dir.path()).unwrap(), &Rules::default()).unwrap();
    a.id = "game-day".into(); // the temp folder's name varies
    a
}

#[test]
fn the_markdown_of_the_game_day() {
    insta::assert_snapshot!(markdown::render(&analysis(true)));
}

#[test]
fn the_markdown_of_a_quiet_run_says_there_was_no_incident() {
    let md = markdown::render(&analysis(false));
    assert!(
        md.contains("\n## Summary\n\nNo incident: no route degraded and no alert fired in the 40 s run (1 of 800 requests failed, 0.1%).\n"),
        "{md}"
    );
    assert!(md.contains("No incident, so no impact to count"));
    assert!(md.contains("Nothing to detect: no incident."));
    // 800 requests: 5..9 ms ×40 (ranks 1-200), 10..13 ×80, 14 ×79, 15..19 ×40, one 1000:
    // rank 400 → 12, 720 → 18, 792 → 19.
    assert!(md.contains("| all | 12.0 / 18.0 / 19.0 / 1000.0 |"), "{md}");
}

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap()
}

#[test]
fn the_html_holds_the_sections_and_the_annotated_charts() {
    let page = html::render(&analysis(true)).unwrap();
    let doc = Html::parse_document(&page);
    let h2: Vec<String> = doc.select(&sel("h2")).map(|h| h.text().collect()).collect();
    assert_eq!(
        h2,
        [
            "Summary",
            "Impact",
            "Detection",
            "Timeline",
            "Root causes",
            "Trigger",
            "Resolution",
            "Action items",
            "Lessons learned",
            "How the figures were computed"
        ]
    );
    let h3: Vec<String> = doc.select(&sel("h3")).map(|h| h.text().collect()).collect();
    for lesson in ["What went well", "What went wrong", "Where we got lucky"] {
        assert!(h3.iter().any(|h| h == lesson), "{h3:?}");
    }
    // Prompts are marked and seeded.
    let prompts: Vec<String> = doc.select(&sel("div.prompt")).map(|p| p.text().collect()).collect();
    assert!(prompts.len() >= 8, "{prompts:?}");
    assert!(prompts.iter().all(|p| p.contains("✍ To write:")));
    assert!(prompts.iter().any(|p| p.contains(
        "fault f1 (abort 503, 10% of route checkout (upstream)) moved checkout error rate, checkout p50, checkout p99"
    )));

    let ids: Vec<&str> = doc
        .select(&sel("figure.chart"))
        .filter_map(|f| f.value().attr("id"))
        .collect();
    assert_eq!(
        ids,
        ["chart-latency", "chart-error-rate", "chart-budget", "chart-histogram"]
    );
    for id in ["chart-latency", "chart-error-rate", "chart-budget"] {
        let fig = doc.select(&sel(&format!("#{id}"))).next().unwrap();
        let svg = fig.select(&sel("svg")).next().unwrap_or_else(|| panic!("{id}: no svg"));
        let texts: Vec<String> = svg
            .select(&sel("text"))
            .map(|t| t.text().collect::<String>().trim().to_owned())
            .collect();
        assert!(texts.iter().any(|t| t == "fault f1"), "{id}: {texts:?}");
        assert!(
            texts.iter().any(|t| t == "alert page checkout-availability"),
            "{id}: {texts:?}"
        );
        assert!(svg.select(&sel("rect")).count() >= 2, "{id}: the spans are drawn");
        assert!(svg.select(&sel("polyline, path")).count() >= 1, "{id}: a line");
        let caption: String = fig.select(&sel("figcaption")).next().unwrap().text().collect();
        assert!(
            caption.contains("fault f1 (+10.0 s to +20.0 s); alert page checkout-availability (+14.5 s to +30.2 s)"),
            "{caption}"
        );
    }
    let hist = doc.select(&sel("#chart-histogram svg")).next().unwrap();
    let legend: Vec<String> = hist
        .select(&sel("text"))
        .map(|t| t.text().collect::<String>().trim().to_owned())
        .collect();
    assert!(
        legend.iter().any(|t| t == "before") && legend.iter().any(|t| t == "during"),
        "{legend:?}"
    );
    // Self-contained: nothing to fetch, no scripts.
    assert_eq!(doc.select(&sel("script, link, img, iframe")).count(), 0);
    assert!(!page.contains("http://") && !page.contains("https://") || page.contains("http://www.w3.org/2000/svg"));
}
