//! Which worker thread is running: each worker has its own event loop and connection pools.

use std::cell::Cell;

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// The current worker's index (0 outside workers, e.g. on the admin thread).
pub fn index() -> usize {
    INDEX.with(Cell::get)
}

pub(crate) fn set_index(i: usize) {
    INDEX.with(|c| c.set(i));
}
