//! Which input rows become download candidates, and why the others are dropped.
//!
//! Pure functions over one [`RawRow`]: no I/O, no polars. Every dropped row gets exactly one
//! [`DropReason`], checked in the order the variants are listed, so the report's counts add up to
//! the rows read.

use std::collections::HashSet;

use super::input::RawRow;
use super::server_key::{check_url, UrlProblem};

/// Why a row was left out. A bounded set: these names are report keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// The line did not split into the header's number of fields.
    MalformedLine,
    /// No source id (GBIF `gbifID`, or the `--id-col` column).
    MissingId,
    /// No URL (GBIF `identifier`, or the `--url-col` column).
    MissingUrl,
    /// GBIF only: `type` is not `StillImage`, and not empty with an `image/*` format.
    NotImage,
    /// GBIF only: `basisOfRecord` contains `MATERIAL_CITATION` (scans of literature).
    MaterialCitation,
    /// Not an absolute http(s) URL with a host.
    InvalidUrl,
    /// The server is in the ignored-servers list.
    IgnoredServer,
}

impl DropReason {
    pub const ALL: [DropReason; 7] = [
        DropReason::MalformedLine,
        DropReason::MissingId,
        DropReason::MissingUrl,
        DropReason::NotImage,
        DropReason::MaterialCitation,
        DropReason::InvalidUrl,
        DropReason::IgnoredServer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::MalformedLine => "malformed_line",
            DropReason::MissingId => "missing_id",
            DropReason::MissingUrl => "missing_url",
            DropReason::NotImage => "not_image",
            DropReason::MaterialCitation => "material_citation",
            DropReason::InvalidUrl => "invalid_url",
            DropReason::IgnoredServer => "ignored_server",
        }
    }
}

/// The rules that apply to this input.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Apply the GBIF rules (type/format and basisOfRecord).
    pub gbif: bool,
    /// A source id is required (GBIF, or a generic input with `--id-col`).
    pub require_id: bool,
    /// Server keys to leave out.
    pub ignored: HashSet<String>,
}

/// A row that will be downloaded, in canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptRow {
    /// The source id, or empty when the input has no id column.
    pub source_id: String,
    pub url: String,
    pub server: String,
    /// The values of `carried::CARRIED`, in its order.
    pub carried: super::carried::Values,
}

/// Decides one row.
pub fn apply(rules: &Rules, row: RawRow) -> Result<KeptRow, DropReason> {
    if row.malformed.is_some() {
        return Err(DropReason::MalformedLine);
    }
    if rules.require_id && row.id.is_none() {
        return Err(DropReason::MissingId);
    }
    let url = match row.url {
        None => return Err(DropReason::MissingUrl),
        Some(Err(())) => return Err(DropReason::InvalidUrl),
        Some(Ok(u)) => u,
    };
    if rules.gbif {
        let is_still_image = row.kind.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("StillImage"));
        let untyped_image = row.kind.is_none()
            && row.format.as_deref().is_some_and(|f| f.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("image/")));
        if !is_still_image && !untyped_image {
            return Err(DropReason::NotImage);
        }
        if row.basis_of_record.as_deref().is_some_and(|b| b.to_ascii_uppercase().contains("MATERIAL_CITATION")) {
            return Err(DropReason::MaterialCitation);
        }
    }
    let checked = check_url(&url).map_err(|p| match p {
        UrlProblem::Unparseable | UrlProblem::NotHttp | UrlProblem::NoHost => DropReason::InvalidUrl,
    })?;
    if rules.ignored.contains(&checked.server) {
        return Err(DropReason::IgnoredServer);
    }
    Ok(KeptRow {
        source_id: row.id.unwrap_or_default(),
        url: checked.url,
        server: checked.server,
        carried: row.carried,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gbif_row(id: &str, kind: &str, format: &str, url: &str) -> RawRow {
        let s = |v: &str| if v.is_empty() { None } else { Some(v.to_string()) };
        RawRow { line: 2, id: s(id), kind: s(kind), format: s(format), url: s(url).map(Ok), ..Default::default() }
    }

    fn gbif() -> Rules {
        Rules { gbif: true, require_id: true, ignored: HashSet::new() }
    }

    #[test]
    fn gbif_type_and_format_rules() {
        let r = gbif();
        assert!(apply(&r, gbif_row("1", "StillImage", "", "http://a.org/1.jpg")).is_ok());
        assert!(apply(&r, gbif_row("1", "", "image/jpeg", "http://a.org/1.jpg")).is_ok());
        assert!(apply(&r, gbif_row("1", "", "IMAGE/png", "http://a.org/1.jpg")).is_ok());
        assert_eq!(apply(&r, gbif_row("1", "Sound", "audio/mp3", "http://a.org/1")), Err(DropReason::NotImage));
        assert_eq!(apply(&r, gbif_row("1", "", "text/html", "http://a.org/1")), Err(DropReason::NotImage));
        assert_eq!(apply(&r, gbif_row("1", "", "", "http://a.org/1")), Err(DropReason::NotImage));
        assert_eq!(apply(&r, gbif_row("", "StillImage", "", "http://a.org/1")), Err(DropReason::MissingId));
        assert_eq!(apply(&r, gbif_row("1", "StillImage", "", "")), Err(DropReason::MissingUrl));
        assert_eq!(apply(&r, gbif_row("1", "StillImage", "", "ftp://a.org/1")), Err(DropReason::InvalidUrl));
    }

    #[test]
    fn material_citations_and_ignored_servers_are_dropped() {
        let mut r = gbif();
        let mut row = gbif_row("1", "StillImage", "", "http://a.org/1.jpg");
        row.basis_of_record = Some("MATERIAL_CITATION".into());
        assert_eq!(apply(&r, row), Err(DropReason::MaterialCitation));
        r.ignored.insert("a.org".into());
        assert_eq!(apply(&r, gbif_row("1", "StillImage", "", "http://A.org:80/1.jpg")), Err(DropReason::IgnoredServer));
    }

    #[test]
    fn generic_rows_need_only_a_url() {
        let r = Rules::default();
        let kept = apply(&r, gbif_row("", "", "", "https://B.org/x.png")).unwrap();
        assert_eq!(kept.server, "b.org");
        assert_eq!(kept.source_id, "");
        let bad_utf8 = RawRow { url: Some(Err(())), ..Default::default() };
        assert_eq!(apply(&r, bad_utf8), Err(DropReason::InvalidUrl));
    }
}
