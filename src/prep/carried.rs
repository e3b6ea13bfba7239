//! The columns prep carries from an input row to its URL's batch: what the image's licence and
//! attribution are. A URL referenced by several rows takes them from the row of its lowest
//! source id, so the choice does not depend on the input's order.

/// One carried column: its name in the batch files (and the manifest), the GBIF multimedia
/// column it is read from (matched without regard to case), and the flag that names it in other
/// inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Carried {
    pub name: &'static str,
    pub gbif: &'static str,
    pub flag: &'static str,
}

/// How many columns are carried.
pub const N: usize = 7;

/// The carried columns, in the order of batch files.
pub const CARRIED: [Carried; N] = [
    Carried { name: "license", gbif: "license", flag: "--license-col" },
    Carried { name: "source", gbif: "source", flag: "--source-col" },
    Carried { name: "title", gbif: "title", flag: "--title-col" },
    Carried { name: "rights_holder", gbif: "rightsHolder", flag: "--rights-holder-col" },
    Carried { name: "creator", gbif: "creator", flag: "--creator-col" },
    Carried { name: "publisher", gbif: "publisher", flag: "--publisher-col" },
    Carried { name: "references", gbif: "references", flag: "--references-col" },
];

/// One row's carried values, in `CARRIED` order; `None` when empty or not in the input.
pub type Values = [Option<String>; N];
