//! The rules of a filter, and the verdict on one row: kept, or dropped for the first rule it
//! breaks (in the order below, so a row's reason does not depend on which rules were given).

use std::collections::HashSet;

use serde::Serialize;

/// What a row is kept for. Sizes are the stored image's (what the dataset holds).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Rules {
    /// `stored` (the default), `failed` or `any`.
    pub status: String,
    pub min_side: Option<u32>,
    pub min_area: Option<u64>,
    /// The longer side over the shorter one, at most.
    pub max_aspect: Option<f64>,
    /// Only rows whose uuid or URL is listed (`--keep FILE`).
    #[serde(skip)]
    pub keep: Option<HashSet<String>>,
    /// Never rows whose uuid or URL is listed (`--drop FILE`).
    #[serde(skip)]
    pub drop: Option<HashSet<String>>,
    /// Only rows under one of these licence ids (SPDX, as `licenses` lists them).
    pub licenses: Option<Vec<String>>,
    /// Only rows whose attribution is complete (a licence, a rights holder or creator, a source).
    pub attribution_complete: bool,
}

/// What the rules need of a row.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    pub uuid: &'a str,
    pub url: &'a str,
    pub stored: bool,
    /// Taken down by `remove`: never kept, whatever the rules.
    pub removed: bool,
    pub width: u32,
    pub height: u32,
    /// The licence as an SPDX id (the manifest's `license_id`).
    pub license_id: &'a str,
    pub attribution_complete: bool,
}

impl Rules {
    /// `None` when `row` is kept, else the reason it is dropped.
    pub fn verdict(&self, row: Row<'_>) -> Option<&'static str> {
        let status_ok = match self.status.as_str() {
            "failed" => !row.stored,
            "any" => true,
            _ => row.stored,
        };
        let listed = |set: &HashSet<String>| set.contains(row.uuid) || set.contains(row.url);
        let (short, long) = (row.width.min(row.height), row.width.max(row.height));
        if row.removed {
            Some("removed")
        } else if !status_ok {
            Some("status")
        } else if self.keep.as_ref().is_some_and(|k| !listed(k)) {
            Some("not_in_keep_list")
        } else if self.drop.as_ref().is_some_and(listed) {
            Some("in_drop_list")
        } else if self.licenses.as_ref().is_some_and(|l| !l.iter().any(|id| id == row.license_id)) {
            Some("license")
        } else if self.attribution_complete && !row.attribution_complete {
            Some("attribution_incomplete")
        } else if row.stored && self.min_side.is_some_and(|m| short < m) {
            Some("min_side")
        } else if row.stored && self.min_area.is_some_and(|m| u64::from(row.width) * u64::from(row.height) < m) {
            Some("min_area")
        } else if row.stored && self.max_aspect.is_some_and(|m| f64::from(long) > m * f64::from(short.max(1))) {
            Some("max_aspect")
        } else {
            None
        }
    }
}

/// The entries of a keep- or drop-list: one uuid or URL per line, blank lines and `#` comments
/// skipped.
pub fn read_list(text: &str) -> HashSet<String> {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(w: u32, h: u32) -> Row<'static> {
        Row {
            uuid: "u1",
            url: "http://a.org/1.jpg",
            stored: true,
            removed: false,
            width: w,
            height: h,
            license_id: "CC-BY-4.0",
            attribution_complete: true,
        }
    }

    #[test]
    fn each_rule_drops_for_its_own_reason_and_the_first_broken_rule_is_named() {
        let rules = Rules {
            status: "stored".into(),
            min_side: Some(100),
            min_area: Some(20_000),
            max_aspect: Some(3.0),
            ..Rules::default()
        };
        assert_eq!(rules.verdict(row(200, 150)), None);
        assert_eq!(rules.verdict(row(99, 400)), Some("min_side"));
        assert_eq!(rules.verdict(row(120, 120)), Some("min_area"));
        assert_eq!(rules.verdict(row(600, 150)), Some("max_aspect"));
        assert_eq!(rules.verdict(Row { stored: false, ..row(0, 0) }), Some("status"));
        let any = Rules { status: "any".into(), ..Rules::default() };
        assert_eq!(any.verdict(Row { stored: false, removed: true, ..row(0, 0) }), Some("removed"), "never kept");
        let listed = Rules { drop: Some(read_list("# takedowns\nhttp://a.org/1.jpg\n")), ..rules.clone() };
        assert_eq!(listed.verdict(row(50, 50)), Some("in_drop_list"), "the list is named before the sizes");
        let keep = Rules { keep: Some(read_list("u2\n")), ..rules.clone() };
        assert_eq!(keep.verdict(row(200, 150)), Some("not_in_keep_list"));
        let open = Rules { licenses: Some(vec!["CC0-1.0".into(), "CC-BY-4.0".into()]), ..rules.clone() };
        assert_eq!(open.verdict(row(200, 150)), None);
        let nc = Row { license_id: "CC-BY-NC-4.0", ..row(200, 150) };
        assert_eq!(open.verdict(nc), Some("license"), "a licence not asked for");
        let credited = Rules { attribution_complete: true, ..rules };
        assert_eq!(
            credited.verdict(Row { attribution_complete: false, ..row(200, 150) }),
            Some("attribution_incomplete")
        );
    }
}
