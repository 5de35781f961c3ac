//! CSV data files: rows of values that templates pick from (`{{data.users.email}}`), read once
//! when the profile loads. All placeholders of one data set in one request read the same row,
//! so an email and its password stay together.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rand::Rng;

pub use crate::profile::spec::RowOrder;

#[derive(Debug)]
pub struct DataSet {
    pub name: String,
    pub columns: Vec<String>,
    rows: Vec<Vec<String>>,
    order: RowOrder,
    next: AtomicU64,
}

impl DataSet {
    /// Read a CSV file with a header row; at least one data row.
    pub fn load(name: &str, path: &Path, order: RowOrder) -> Result<DataSet, String> {
        let mut reader = csv::Reader::from_path(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let columns: Vec<String> = reader
            .headers()
            .map_err(|e| format!("cannot read the header row of {}: {e}", path.display()))?
            .iter()
            .map(str::to_owned)
            .collect();
        let mut rows = Vec::new();
        for (i, record) in reader.records().enumerate() {
            let record = record.map_err(|e| format!("{}: row {}: {e}", path.display(), i + 2))?;
            rows.push(record.iter().map(str::to_owned).collect());
        }
        if rows.is_empty() {
            return Err(format!("{} has a header row but no data rows", path.display()));
        }
        Ok(DataSet {
            name: name.to_owned(),
            columns,
            rows,
            order,
            next: AtomicU64::new(0),
        })
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The row for the next request of user `user`.
    pub fn pick(&self, user: usize, rng: &mut impl Rng) -> usize {
        match self.order {
            RowOrder::Sequential => (self.next.fetch_add(1, Ordering::Relaxed) % self.rows.len() as u64) as usize,
            RowOrder::Random => rng.random_range(0..self.rows.len()),
            RowOrder::PerUser => user % self.rows.len(),
        }
    }

    pub fn value(&self, row: usize, column: usize) -> &str {
        self.rows[row].get(column).map_or("", String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_come_in_the_order_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("u.csv");
        std::fs::write(&path, "email,password\na@x,1\nb@x,2\nc@x,3\n").unwrap();
        let mut rng = rand::rng();
        let seq = DataSet::load("u", &path, RowOrder::Sequential).unwrap();
        assert_eq!(seq.columns, ["email", "password"]);
        let picks: Vec<usize> = (0..4).map(|_| seq.pick(9, &mut rng)).collect();
        assert_eq!(picks, [0, 1, 2, 0]);
        assert_eq!(seq.value(1, 0), "b@x");
        let per_user = DataSet::load("u", &path, RowOrder::PerUser).unwrap();
        assert_eq!((per_user.pick(4, &mut rng), per_user.pick(4, &mut rng)), (1, 1));
        let random = DataSet::load("u", &path, RowOrder::Random).unwrap();
        assert!((0..50).all(|_| random.pick(0, &mut rng) < 3));
        std::fs::write(&path, "email\n").unwrap();
        assert!(
            DataSet::load("u", &path, RowOrder::Sequential)
                .unwrap_err()
                .contains("no data rows")
        );
    }
}
