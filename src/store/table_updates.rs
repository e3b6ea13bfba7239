//! Later runs' updates to `servers.parquet`: what a download learned about each host
//! (`update_learned`) and what `profile` found (`update_profiled`). Each rewrites the table
//! atomically and leaves prep's columns and the other servers' values as they were.
//!
//! Does not own: the table's first version and how it is read (`tables`).

use std::path::Path;

use polars::prelude::*;

use super::error::StoreError;
use super::parquet::{read_parquet, write_parquet};
use super::{atomic, paths};

/// `servers.parquet` of `out`, read for an update: its path, the table and its server names.
fn open_for_update(out: &Path) -> Result<(std::path::PathBuf, DataFrame, Vec<String>), StoreError> {
    let path = crate::store::paths::servers_table(out);
    let df = read_parquet(&path)?;
    let pe = |e: PolarsError| StoreError::Parquet { path: path.clone(), source: e };
    let names: Vec<String> = df
        .column("server_name")
        .map_err(pe)?
        .str()
        .map_err(pe)?
        .iter()
        .map(|v| v.unwrap_or_default().to_string())
        .collect();
    Ok((path, df, names))
}

/// Replaces `servers.parquet` of `out` with `df` (`store::atomic`: a temporary name of this
/// host and process, fsync, rename), so a reader sees the old table or the new one.
fn replace_table(out: &Path, df: &mut DataFrame) -> Result<(), StoreError> {
    atomic::write_with(&paths::servers_table(out), atomic::Mode::Replace, |tmp| write_parquet(tmp, df))
}

/// What a download learned about one host, to write back into `servers.parquet`.
#[derive(Debug, Clone, PartialEq)]
pub struct Learned {
    pub rate: f64,
    pub max_in_flight: u32,
    /// RFC 3339 UTC time of the run that learned it.
    pub at: String,
    pub state_json: String,
}

/// Writes learned rates into `servers.parquet` (temporary file, then rename), so the next run
/// starts from them. Hosts not in `learned` keep their row as it was.
pub fn update_learned(out: &Path, learned: &std::collections::HashMap<String, Learned>) -> Result<(), StoreError> {
    let (path, mut df, names) = open_for_update(out)?;
    let pe = |e: PolarsError| StoreError::Parquet { path: path.clone(), source: e };
    let old_rate = df.column("learned_rate_limit").map_err(pe)?.f64().map_err(pe)?.clone();
    let old_cap = df.column("learned_max_in_flight").map_err(pe)?.u32().map_err(pe)?.clone();
    let old_at = df.column("learned_at").map_err(pe)?.str().map_err(pe)?.clone();
    let old_state: Option<StringChunked> = df.column("learned_state").ok().and_then(|c| c.str().ok().cloned());
    let pick = |i: usize| learned.get(&names[i]);
    let rate: Vec<Option<f64>> = (0..names.len()).map(|i| pick(i).map(|l| l.rate).or(old_rate.get(i))).collect();
    let cap: Vec<Option<u32>> = (0..names.len()).map(|i| pick(i).map(|l| l.max_in_flight).or(old_cap.get(i))).collect();
    let at: Vec<Option<String>> =
        (0..names.len()).map(|i| pick(i).map(|l| l.at.clone()).or(old_at.get(i).map(str::to_string))).collect();
    let state: Vec<Option<String>> = (0..names.len())
        .map(|i| {
            pick(i).map(|l| l.state_json.clone()).or(old_state.as_ref().and_then(|s| s.get(i)).map(str::to_string))
        })
        .collect();
    df.with_column(Column::new("learned_rate_limit".into(), rate)).map_err(pe)?;
    df.with_column(Column::new("learned_max_in_flight".into(), cap)).map_err(pe)?;
    df.with_column(Column::new("learned_at".into(), at)).map_err(pe)?;
    df.with_column(Column::new("learned_state".into(), state)).map_err(pe)?;
    replace_table(out, &mut df)
}

/// What `profile` found about one host, to write into `servers.parquet`.
#[derive(Debug, Clone, PartialEq)]
pub struct Profiled {
    /// The rate the next download starts the host at (req/s): becomes `initial_rate_limit`.
    pub start_rate: f64,
    /// RFC 3339 UTC time of the profile.
    pub at: String,
    /// Median full response time of the answered samples, ms.
    pub latency_ms: Option<f64>,
    /// Each sample's status or error class, comma-joined ("200,200,404").
    pub statuses: String,
    pub robots_status: String,
    pub crawl_delay: Option<f64>,
    /// "; "-joined notes.
    pub notes: String,
}

/// Writes profiles into `servers.parquet` (temporary file, then rename): each profiled host's
/// `initial_rate_limit` becomes its start rate, and the `profiled_at`, `profile_latency_ms`,
/// `profile_statuses`, `robots_status`, `crawl_delay` and `profile_notes` columns (created when
/// missing) hold what was seen. Hosts not in `profiled` keep their row as it was.
pub fn update_profiled(out: &Path, profiled: &std::collections::HashMap<String, Profiled>) -> Result<(), StoreError> {
    let (path, mut df, names) = open_for_update(out)?;
    let pe = |e: PolarsError| StoreError::Parquet { path: path.clone(), source: e };
    let n = names.len();
    let pick = |i: usize| profiled.get(&names[i]);
    // An existing column's values, or nulls when the table predates it.
    let old_text = |name: &str| -> Result<Vec<Option<String>>, StoreError> {
        match df.column(name) {
            Ok(c) => Ok(c.str().map_err(pe)?.iter().map(|v| v.map(str::to_string)).collect()),
            Err(_) => Ok(vec![None; n]),
        }
    };
    let old_number = |name: &str| -> Result<Vec<Option<f64>>, StoreError> {
        match df.column(name) {
            Ok(c) => Ok(c.f64().map_err(pe)?.iter().collect()),
            Err(_) => Ok(vec![None; n]),
        }
    };
    let text = |name: &str, new: &dyn Fn(&Profiled) -> String| -> Result<Column, StoreError> {
        let old = old_text(name)?;
        let v: Vec<Option<String>> = (0..n).map(|i| pick(i).map(new).or_else(|| old[i].clone())).collect();
        Ok(Column::new(name.into(), v))
    };
    let number = |name: &str, new: &dyn Fn(&Profiled) -> Option<f64>| -> Result<Column, StoreError> {
        let old = old_number(name)?;
        // A profiled host's value replaces the old one, even when it is now unknown.
        let v: Vec<Option<f64>> = (0..n).map(|i| pick(i).map_or(old[i], new)).collect();
        Ok(Column::new(name.into(), v))
    };
    let columns = [
        number("initial_rate_limit", &|p| Some(p.start_rate))?,
        text("profiled_at", &|p| p.at.clone())?,
        number("profile_latency_ms", &|p| p.latency_ms)?,
        text("profile_statuses", &|p| p.statuses.clone())?,
        text("robots_status", &|p| p.robots_status.clone())?,
        number("crawl_delay", &|p| p.crawl_delay)?,
        text("profile_notes", &|p| p.notes.clone())?,
    ];
    for c in columns {
        df.with_column(c).map_err(pe)?;
    }
    replace_table(out, &mut df)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tables::{read_servers_table, write_servers_table, ServerRow};

    #[test]
    fn a_profile_sets_the_start_rate_and_its_columns_and_leaves_other_servers_alone() {
        let out = tempfile::tempdir().unwrap();
        let row = |name: &str| ServerRow {
            server_name: name.into(),
            url_count: 3,
            batch_count: 1,
            batch_ids: vec!["x".into()],
            batch_rows: vec![3],
        };
        write_servers_table(&out.path().join("servers.parquet"), &[row("a.org"), row("b.org")], 1.0).unwrap();
        let before = read_servers_table(out.path()).unwrap();
        assert_eq!(
            (before[0].robots_status.as_deref(), before[0].profiled_at.as_deref()),
            (None, None),
            "no columns yet"
        );
        let profiled = |rate: f64, notes: &str| Profiled {
            start_rate: rate,
            at: "2026-01-02T03:04:05Z".into(),
            latency_ms: Some(42.0),
            statuses: "200,200,404".into(),
            robots_status: "200".into(),
            crawl_delay: Some(2.0),
            notes: notes.into(),
        };
        update_profiled(out.path(), &[("a.org".to_string(), profiled(0.5, "a; b"))].into()).unwrap();
        let after = read_servers_table(out.path()).unwrap();
        let a = &after[0];
        assert_eq!(a.initial_rate_limit, 0.5);
        assert_eq!(
            (a.robots_status.as_deref(), a.crawl_delay, a.profile_latency_ms),
            (Some("200"), Some(2.0), Some(42.0))
        );
        assert_eq!(
            (a.profile_notes.as_deref(), a.profiled_at.as_deref()),
            (Some("a; b"), Some("2026-01-02T03:04:05Z"))
        );
        assert_eq!(after[1], before[1], "b.org was not profiled");
        assert_eq!(a.batch_rows, Some(vec![3]), "prep's columns are kept");

        // A second merge of the other server keeps the first one's values.
        let mut b = profiled(4.0, "");
        b.crawl_delay = None;
        update_profiled(out.path(), &[("b.org".to_string(), b)].into()).unwrap();
        let again = read_servers_table(out.path()).unwrap();
        assert_eq!(again[0], after[0]);
        assert_eq!((again[1].initial_rate_limit, again[1].crawl_delay), (4.0, None));
    }
}
