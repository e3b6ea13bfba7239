//! The rule: which class an image of either snapshot falls in, from its old final record (if
//! any) and its new row (if any). Plain logic, no files.

use serde::{Deserialize, Serialize};

use super::fields::Meta;
use super::record::Status;

/// What the refresh does with an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// In the new snapshot and not stored in the old one: to be fetched.
    New,
    /// Stored in the old snapshot with the same metadata: its bytes and record carried over.
    Unchanged,
    /// Stored in the old snapshot, but a compared field differs: its bytes carried over, its
    /// metadata taken from the new snapshot.
    MetadataChanged,
    /// In the old snapshot (any status), not in the new one.
    Gone,
    /// Taken down in the old snapshot and listed again in the new one: never fetched again.
    Removed,
}

impl Class {
    pub const ALL: [Class; 5] = [Class::New, Class::Unchanged, Class::MetadataChanged, Class::Gone, Class::Removed];

    /// The plan's `class` values.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::New => "new",
            Class::Unchanged => "unchanged",
            Class::MetadataChanged => "metadata_changed",
            Class::Gone => "gone",
            Class::Removed => "removed",
        }
    }
}

/// Why an image is new, gone or removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    NotInOld,
    FailedInOld,
    NotInSnapshot,
    RemovedInOld,
}

impl Reason {
    /// The plan's `reason` values.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NotInOld => "not_in_old",
            Reason::FailedInOld => "failed_in_old",
            Reason::NotInSnapshot => "not_in_snapshot",
            Reason::RemovedInOld => "removed_in_old",
        }
    }
}

/// An image's class, why, and the compared fields that changed (a `fields::NAMES` mask).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub class: Class,
    pub reason: Option<Reason>,
    pub changed: u32,
}

/// The class of an image in the new snapshot, with metadata `new`, whose old final record is
/// `old` (status and metadata) if it has one. Occurrence fields are compared only when
/// `occurrence` is set (both snapshots have them).
pub fn of_new(old: Option<(Status, &Meta)>, new: &Meta, occurrence: bool) -> Verdict {
    let verdict = |class, reason| Verdict { class, reason, changed: 0 };
    match old {
        None => verdict(Class::New, Some(Reason::NotInOld)),
        Some((Status::Failed, _)) => verdict(Class::New, Some(Reason::FailedInOld)),
        Some((Status::Removed, _)) => verdict(Class::Removed, Some(Reason::RemovedInOld)),
        Some((Status::Stored, old)) => match old.changed(new, occurrence) {
            0 => verdict(Class::Unchanged, None),
            changed => Verdict { class: Class::MetadataChanged, reason: None, changed },
        },
    }
}

/// The class of an image of the old snapshot that the new one does not list.
pub fn of_gone() -> Verdict {
    Verdict { class: Class::Gone, reason: Some(Reason::NotInSnapshot), changed: 0 }
}

/// Images per class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassCounts {
    pub new: u64,
    pub unchanged: u64,
    pub metadata_changed: u64,
    pub gone: u64,
    pub removed: u64,
}

impl ClassCounts {
    pub fn add(&mut self, class: Class, n: u64) {
        *self.get_mut(class) += n;
    }

    pub fn get(&self, class: Class) -> u64 {
        match class {
            Class::New => self.new,
            Class::Unchanged => self.unchanged,
            Class::MetadataChanged => self.metadata_changed,
            Class::Gone => self.gone,
            Class::Removed => self.removed,
        }
    }

    fn get_mut(&mut self, class: Class) -> &mut u64 {
        match class {
            Class::New => &mut self.new,
            Class::Unchanged => &mut self.unchanged,
            Class::MetadataChanged => &mut self.metadata_changed,
            Class::Gone => &mut self.gone,
            Class::Removed => &mut self.removed,
        }
    }

    pub fn total(&self) -> u64 {
        Class::ALL.iter().map(|c| self.get(*c)).sum()
    }

    pub fn merge(&mut self, other: &ClassCounts) {
        for c in Class::ALL {
            self.add(c, other.get(c));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::refresh::fields::{names, Fingerprinter, OCCURRENCE_FIRST};

    #[test]
    fn a_taken_down_image_listed_again_is_removed_never_new() {
        let m = Meta::default();
        let v = of_new(Some((Status::Removed, &m)), &m, true);
        assert_eq!((v.class, v.reason), (Class::Removed, Some(Reason::RemovedInOld)));
    }

    #[test]
    fn each_old_status_gives_its_class() {
        let f = Fingerprinter::default();
        let old = Meta::default();
        let mut new = Meta::default();
        assert_eq!(of_new(None, &new, true).reason, Some(Reason::NotInOld));
        assert_eq!(of_new(Some((Status::Failed, &old)), &new, true).reason, Some(Reason::FailedInOld));
        assert_eq!(of_new(Some((Status::Stored, &old)), &new, true).class, Class::Unchanged);
        new.set(&f, 0, Some("CC0-1.0"));
        new.set(&f, OCCURRENCE_FIRST, Some("dataset"));
        let v = of_new(Some((Status::Stored, &old)), &new, true);
        assert_eq!((v.class, names(v.changed).as_str()), (Class::MetadataChanged, "license,dataset_key"));
        let v = of_new(Some((Status::Stored, &old)), &new, false);
        assert_eq!(names(v.changed), "license", "occurrence fields not compared unless both sides have them");
        assert_eq!(of_gone().class, Class::Gone);
    }
}
