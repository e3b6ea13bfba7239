//! The GBIF variants of the issue, and the forms seen in GBIF's verbatim media licences.

use super::*;

fn id(raw: &str) -> String {
    normalise(raw).id
}

#[test]
fn the_same_licence_in_every_form_gbif_passes_on_reads_as_one_spdx_id() {
    for raw in [
        "http://creativecommons.org/licenses/by/4.0/",
        "https://creativecommons.org/licenses/by/4.0/",
        "http://creativecommons.org/licenses/by/4.0",
        "https://creativecommons.org/licenses/by/4.0/legalcode",
        "https://creativecommons.org/licenses/by/4.0/deed.en",
        "https://creativecommons.org/licenses/by/4.0/deed.de/",
        "http://www.creativecommons.org/licenses/by/4.0/",
        "HTTP://CREATIVECOMMONS.ORG/LICENSES/BY/4.0/",
        "CC BY 4.0",
        "CC-BY 4.0",
        "cc-by-4.0",
        "CC BY 4.0 International",
        "Creative Commons Attribution 4.0 International",
        "Attribution 4.0 International (CC BY 4.0)",
        " CC BY 4.0 ",
    ] {
        assert_eq!(normalise(raw), Licence { id: "CC-BY-4.0".into(), assumed_version: false }, "{raw:?}");
    }
}

#[test]
fn each_creative_commons_family_and_version_has_its_id() {
    let cases = [
        ("http://creativecommons.org/licenses/by-nc/4.0/", "CC-BY-NC-4.0"),
        ("https://creativecommons.org/licenses/by-sa/4.0/legalcode", "CC-BY-SA-4.0"),
        ("http://creativecommons.org/licenses/by-nc-sa/4.0/", "CC-BY-NC-SA-4.0"),
        ("http://creativecommons.org/licenses/by-nd/4.0/", "CC-BY-ND-4.0"),
        ("http://creativecommons.org/licenses/by-nc-nd/3.0/", "CC-BY-NC-ND-3.0"),
        ("http://creativecommons.org/licenses/by-nc/2.0/", "CC-BY-NC-2.0"),
        ("http://creativecommons.org/licenses/by/2.5/", "CC-BY-2.5"),
        ("http://creativecommons.org/licenses/by/3.0/us/", "CC-BY-3.0"),
        ("CC BY-NC-SA 3.0 IGO", "CC-BY-NC-SA-3.0"),
        ("Creative Commons Attribution-NonCommercial 4.0 International License", "CC-BY-NC-4.0"),
        ("Attribution-NonCommercial-ShareAlike 4.0 International", "CC-BY-NC-SA-4.0"),
        ("Creative Commons Attribution Non Commercial (CC-BY-NC) 4.0 License", "CC-BY-NC-4.0"),
        ("CC BY-NC-ND 4.0", "CC-BY-NC-ND-4.0"),
        ("Creative Commons Attribution-NoDerivatives 4.0", "CC-BY-ND-4.0"),
        ("http://creativecommons.org/publicdomain/zero/1.0/", "CC0-1.0"),
        ("https://creativecommons.org/publicdomain/zero/1.0/legalcode", "CC0-1.0"),
        ("CC0", "CC0-1.0"),
        ("CC0 1.0", "CC0-1.0"),
        ("cc0-1.0", "CC0-1.0"),
        ("Public Domain Dedication (CC0 1.0)", "CC0-1.0"),
    ];
    for (raw, want) in cases {
        assert_eq!(id(raw), want, "{raw:?}");
    }
}

#[test]
fn unversioned_forms_read_as_4_0_and_say_so() {
    for (raw, want) in [
        ("cc-by", "CC-BY-4.0"),
        ("CC BY", "CC-BY-4.0"),
        ("CC-BY-NC", "CC-BY-NC-4.0"),
        ("http://creativecommons.org/licenses/by-nc/", "CC-BY-NC-4.0"),
        ("Creative Commons Attribution Share Alike", "CC-BY-SA-4.0"),
    ] {
        assert_eq!(normalise(raw), Licence { id: want.into(), assumed_version: true }, "{raw:?}");
    }
}

#[test]
fn reserved_public_domain_empty_and_unmappable_strings_have_their_own_values() {
    for (raw, want) in [
        ("All rights reserved", "all-rights-reserved"),
        ("© Naturalis Biodiversity Center. All rights reserved.", "all-rights-reserved"),
        ("(c) the photographer", "all-rights-reserved"),
        ("Copyright", "all-rights-reserved"),
        ("Public Domain", "public-domain"),
        ("http://creativecommons.org/publicdomain/mark/1.0/", "public-domain-mark"),
        ("No known copyright restrictions", "public-domain"),
        ("", "unknown"),
        ("   ", "unknown"),
        ("null", "unknown"),
        ("Under licence from the museum", "unknown"),
        ("CC BY-ND-SA 4.0", "unknown"),
    ] {
        assert_eq!(id(raw), want, "{raw:?}");
    }
}

#[test]
fn every_row_of_the_table_is_read_as_its_own_id() {
    assert!(table().len() >= 20, "config/licenses.csv read: {} rows", table().len());
    for (canonical, want) in table() {
        assert_eq!(canonicalise(canonical), *canonical, "a listed string is already canonical");
        assert_eq!(id(canonical), *want);
    }
}
