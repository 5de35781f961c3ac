//! The UI's own state: which view, what is selected, the filter and sort, dialogs and the
//! last message. Data lives beside it in the [`crate::Model`]; a replay's reset keeps this.

use crate::source::FaultAction;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum View {
    #[default]
    Overview,
    Route,
    Upstreams,
    Faults,
    Timeline,
}

impl View {
    pub const ALL: [View; 5] = [
        View::Overview,
        View::Route,
        View::Upstreams,
        View::Faults,
        View::Timeline,
    ];

    pub fn title(self) -> &'static str {
        match self {
            View::Overview => "Overview",
            View::Route => "Route",
            View::Upstreams => "Upstreams",
            View::Faults => "Faults",
            View::Timeline => "Timeline",
        }
    }

    /// Its key: `1` to `5`.
    pub fn key(self) -> char {
        (b'1' + View::ALL.iter().position(|v| *v == self).unwrap_or(0) as u8) as char
    }
}

/// The overview's order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Sort {
    /// Most urgent first: pages, tickets, pending alerts, then the least budget left and the
    /// fastest burn.
    #[default]
    Burn,
    Errors,
    Latency,
    Rate,
    Name,
}

impl Sort {
    pub fn next(self) -> Sort {
        match self {
            Sort::Burn => Sort::Errors,
            Sort::Errors => Sort::Latency,
            Sort::Latency => Sort::Rate,
            Sort::Rate => Sort::Name,
            Sort::Name => Sort::Burn,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Sort::Burn => "budget burn",
            Sort::Errors => "error %",
            Sort::Latency => "p99",
            Sort::Rate => "req/s",
            Sort::Name => "name",
        }
    }
}

/// A route on a sidecar: one row of the overview.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RowKey {
    pub sidecar: String,
    pub route: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Dialog {
    /// Pick a fault preset and the route it goes on.
    Presets { selected: usize, target: RowKey },
    /// Ask before acting.
    Confirm { prompt: String, action: FaultAction },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub text: String,
    pub error: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Ui {
    pub view: View,
    /// The overview's selected row (kept by key, so it follows its route when rows re-sort).
    pub selected: Option<RowKey>,
    /// The route the detail view shows.
    pub detail: Option<RowKey>,
    /// Lower-case; matches routes and sidecars in the overview, any text in the timeline.
    pub filter: String,
    pub editing_filter: bool,
    pub sort: Sort,
    pub help: bool,
    pub dialog: Option<Dialog>,
    /// The faults view's selected row.
    pub fault: usize,
    /// First row shown in the timeline and the upstreams.
    pub timeline_top: usize,
    pub upstreams_top: usize,
    pub message: Option<Message>,
    /// Rows a page key moves (from the terminal's height).
    pub page: usize,
}

impl Ui {
    pub fn say(&mut self, text: impl Into<String>) {
        self.message = Some(Message {
            text: text.into(),
            error: false,
        });
    }

    pub fn warn(&mut self, text: impl Into<String>) {
        self.message = Some(Message {
            text: text.into(),
            error: true,
        });
    }
}
