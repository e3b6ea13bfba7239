//! The fields compared between an image's two snapshots, and their fingerprints.
//!
//! Compared: prep's carried columns (`prep::carried::CARRIED`: licence string, source, title,
//! rights holder, creator, publisher, references), the set of source ids, and the occurrence
//! columns `prep --occurrence` joins (`prep::occurrence::FIELDS`: dataset, publisher
//! organisation, basis of record, taxonomy). Each value is trimmed and an empty value is absent,
//! as the manifest stores them (`index::attribution`).
//!
//! A value is kept as a 64-bit fingerprint, not as text: both snapshots' values are hashed in one
//! process with one randomly seeded hasher, so two different values compare equal with a
//! chance of 2^-64 per compared pair (about 10^-9 over every field of 200M images), and the
//! scratch files hold 8 bytes per present field whatever the text's length.

use std::hash::{BuildHasher, Hasher};

use crate::prep::{carried, occurrence};

/// How many fields are compared.
pub const N: usize = carried::N + 1 + occurrence::FIELDS.len();

/// Where the occurrence fields start in [`NAMES`].
pub const OCCURRENCE_FIRST: usize = carried::N + 1;

/// The compared fields' names, as the plan's `changed` column lists them: the carried columns,
/// `source_ids`, then the occurrence columns.
pub const NAMES: [&str; N] = {
    let mut names = [""; N];
    let mut i = 0;
    while i < carried::N {
        names[i] = carried::CARRIED[i].name;
        i += 1;
    }
    names[carried::N] = "source_ids";
    let mut j = 0;
    while j < occurrence::FIELDS.len() {
        names[OCCURRENCE_FIRST + j] = occurrence::FIELDS[j].1;
        j += 1;
    }
    names
};

/// The index of `source_ids` in [`NAMES`].
pub const SOURCE_IDS: usize = carried::N;

/// The bits of the occurrence fields in a field mask.
pub const OCCURRENCE_MASK: u32 = ((1u32 << N) - 1) & !((1u32 << OCCURRENCE_FIRST) - 1);

/// The hasher of one diff: seeded at random, shared by both snapshots.
pub type Fingerprinter = foldhash::quality::RandomState;

/// One image's compared fields: which are present (bit i: field i of [`NAMES`]) and their
/// fingerprints (0 where absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Meta {
    pub present: u32,
    pub prints: [u64; N],
}

impl Meta {
    /// Sets field `i` from `value` (trimmed; empty is absent).
    pub fn set(&mut self, f: &Fingerprinter, i: usize, value: Option<&str>) {
        match value.map(str::trim).filter(|v| !v.is_empty()) {
            Some(v) => {
                self.present |= 1 << i;
                self.prints[i] = f.hash_one(v);
            }
            None => {
                self.present &= !(1 << i);
                self.prints[i] = 0;
            }
        }
    }

    /// Sets `source_ids` from the ids (compared as a set: order and repeats do not matter).
    pub fn set_ids<'a>(&mut self, f: &Fingerprinter, ids: impl Iterator<Item = &'a str>) {
        let mut ids: Vec<&str> = ids.map(str::trim).filter(|v| !v.is_empty()).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return self.set(f, SOURCE_IDS, None);
        }
        let mut h = f.build_hasher();
        for id in ids {
            h.write(id.as_bytes());
            h.write_u8(0xff);
        }
        self.present |= 1 << SOURCE_IDS;
        self.prints[SOURCE_IDS] = h.finish();
    }

    /// Takes the occurrence fields of `other`.
    pub fn take_occurrence(&mut self, other: &Meta) {
        self.present = (self.present & !OCCURRENCE_MASK) | (other.present & OCCURRENCE_MASK);
        for i in OCCURRENCE_FIRST..N {
            self.prints[i] = other.prints[i];
        }
    }

    /// Whether any occurrence field is present.
    pub fn has_occurrence(&self) -> bool {
        self.present & OCCURRENCE_MASK != 0
    }

    /// The fields that differ from `other` (a mask), the occurrence fields only when
    /// `occurrence` is set.
    pub fn changed(&self, other: &Meta, occurrence: bool) -> u32 {
        let mut changed = 0;
        let last = if occurrence { N } else { OCCURRENCE_FIRST };
        for i in 0..last {
            let bit = 1 << i;
            if self.present & bit != other.present & bit || self.prints[i] != other.prints[i] {
                changed |= bit;
            }
        }
        changed
    }

    /// Appends the mask and the present fingerprints to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.present.to_le_bytes());
        for i in 0..N {
            if self.present & (1 << i) != 0 {
                out.extend_from_slice(&self.prints[i].to_le_bytes());
            }
        }
    }

    /// Reads what [`Meta::encode`] wrote off the front of `rest`.
    pub fn decode(rest: &mut &[u8]) -> Meta {
        let mut m = Meta { present: take_u32(rest), prints: [0; N] };
        for i in 0..N {
            if m.present & (1 << i) != 0 {
                m.prints[i] = take_u64(rest);
            }
        }
        m
    }
}

/// The names of the fields in `mask`, comma-joined, in [`NAMES`] order.
pub fn names(mask: u32) -> String {
    let set = NAMES.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0);
    set.map(|(_, n)| *n).collect::<Vec<_>>().join(",")
}

pub fn take_u32(rest: &mut &[u8]) -> u32 {
    let (head, tail) = rest.split_at(4);
    *rest = tail;
    u32::from_le_bytes(head.try_into().expect("4 bytes"))
}

pub fn take_u64(rest: &mut &[u8]) -> u64 {
    let (head, tail) = rest.split_at(8);
    *rest = tail;
    u64::from_le_bytes(head.try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compared_fields_are_prep_s_carried_and_occurrence_columns() {
        assert_eq!(N, 20);
        assert_eq!(NAMES[0], "license");
        assert_eq!(NAMES[SOURCE_IDS], "source_ids");
        assert_eq!(NAMES[OCCURRENCE_FIRST], "dataset_key");
        assert_eq!(NAMES[N - 1], "taxon_key");
        assert_eq!(OCCURRENCE_MASK.count_ones() as usize, N - OCCURRENCE_FIRST);
    }

    #[test]
    fn values_compare_trimmed_ids_as_a_set_and_round_trip_through_bytes() {
        let f = Fingerprinter::default();
        let (mut a, mut b) = (Meta::default(), Meta::default());
        a.set(&f, 0, Some(" CC-BY 4.0 "));
        b.set(&f, 0, Some("CC-BY 4.0"));
        a.set(&f, 2, Some(""));
        a.set_ids(&f, ["2", "1", "1"].into_iter());
        b.set_ids(&f, ["1", "2"].into_iter());
        assert_eq!(a.changed(&b, true), 0);
        b.set(&f, 3, Some("Someone"));
        b.set(&f, OCCURRENCE_FIRST, Some("d1"));
        assert_eq!(names(a.changed(&b, true)), "rights_holder,dataset_key");
        assert_eq!(names(a.changed(&b, false)), "rights_holder");
        let mut bytes = Vec::new();
        b.encode(&mut bytes);
        let mut rest = bytes.as_slice();
        assert_eq!(Meta::decode(&mut rest), b);
        assert!(rest.is_empty());
    }
}
