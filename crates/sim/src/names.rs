//! Word lists for names, titles and companies.

/// Word list `company_prefix`.
pub const COMPANY_PREFIX: &[&str] = &[
    "acme", "bright", "north", "blue", "silver", "quant", "nimbus", "vertex", "lumen", "orbit",
    "pioneer", "summit", "harbor", "cedar", "falcon", "granite", "helix", "iron", "juniper",
    "kinetic", "lattice", "maple", "nova", "onyx", "polar", "quartz", "river", "solar", "tidal",
    "union", "velvet", "willow", "zenith", "amber", "beacon", "cobalt", "delta", "ember", "fable",
    "glacier", "hollow", "indigo", "jade", "keystone", "lunar", "mosaic", "nectar", "oak", "prism",
    "quill", "redwood", "sierra", "thunder", "ultra", "vista", "wave", "xeno", "yonder", "zephyr",
    "atlas",
];
/// Word list `company_suffix`.
pub const COMPANY_SUFFIX: &[&str] = &[
    "forge", "labs", "works", "soft", "data", "cloud", "ly", "hub", "stack", "bit", "logic",
    "systems", "ware", "base", "flow", "grid", "path", "point", "scale", "sense", "shift",
    "signal", "spark", "sphere", "stream", "sync", "tech", "tide", "track", "verse", "vision",
    "wise", "metrics", "mind", "nest", "node", "pulse", "ray", "route", "loop",
];
/// Word list `company_label`.
pub const COMPANY_LABEL: &[&str] = &[
    "",
    " Inc",
    " Corp",
    " GmbH",
    " Ltd",
    " Group",
    " Technologies",
    " Labs",
];
/// Word list `tlds`.
pub const TLDS: &[&str] = &["com", "io", "co", "ai"];
/// Word list `free_mail`.
pub const FREE_MAIL: &[&str] = &[
    "gmail.com",
    "gmail.com",
    "gmail.com",
    "outlook.com",
    "yahoo.com",
    "icloud.com",
    "hotmail.com",
    "proton.me",
];
/// Word list `first`.
pub const FIRST: &[&str] = &[
    "ada", "ben", "chloe", "dev", "elena", "farah", "gus", "hana", "ivan", "jules", "kai", "lena",
    "milo", "nora", "omar", "priya", "quinn", "rosa", "sam", "tara", "umar", "vera", "wei", "xena",
    "yusuf", "zoe", "arjun", "bea", "carlos", "dana", "eli", "fern", "gina", "hugo", "iris", "jon",
    "kira", "leo", "maya", "nils",
];
/// Word list `last`.
pub const LAST: &[&str] = &[
    "adams", "baker", "chen", "diaz", "evans", "fischer", "garcia", "huang", "ito", "jones", "kim",
    "lopez", "muller", "nguyen", "okafor", "patel", "quinn", "rossi", "smith", "tanaka", "ueda",
    "varga", "wong", "xu", "young", "zhang", "berg", "costa", "dubois", "ek",
];
/// Word list `departments`.
pub const DEPARTMENTS: &[&str] = &[
    "Engineering",
    "Product",
    "Design",
    "Marketing",
    "Sales",
    "Operations",
    "Data",
    "IT",
    "Finance",
];
/// Seniority levels, from individual contributor up.
/// Word list `seniority`.
pub const SENIORITY: &[&str] = &[
    "Individual Contributor",
    "Manager",
    "Director",
    "VP",
    "C-Level",
];
/// Word list `seniority_weights`.
pub const SENIORITY_WEIGHTS: &[f64] = &[0.55, 0.25, 0.12, 0.06, 0.02];
/// Word list `use_cases`.
pub const USE_CASES: &[&str] = &[
    "Personal projects",
    "Team reporting",
    "Product analytics",
    "Customer insights",
    "Company-wide metrics",
];
/// Word list `size_bands`.
pub const SIZE_BANDS: &[&str] = &["1-10", "11-50", "51-200", "201-1000", "1001-5000", "5001+"];
/// Word list `size_weights`.
pub const SIZE_WEIGHTS: &[f64] = &[0.30, 0.28, 0.20, 0.13, 0.06, 0.03];
/// Word list `size_ranges`.
pub const SIZE_RANGES: &[(u64, u64)] = &[
    (1, 11),
    (11, 51),
    (51, 201),
    (201, 1001),
    (1001, 5001),
    (5001, 20001),
];
/// Word list `lead_sources`.
pub const LEAD_SOURCES: &[&str] = &[
    "webinar",
    "ebook",
    "paid_search",
    "event",
    "content",
    "partner",
];

/// A title for a seniority level and department.
pub fn title(seniority: usize, department: &str) -> String {
    match seniority {
        0 => match department {
            "Engineering" => "Software Engineer".into(),
            "Data" => "Data Analyst".into(),
            "Design" => "Product Designer".into(),
            "Sales" => "Account Executive".into(),
            other => format!("{other} Specialist"),
        },
        1 => format!("{department} Manager"),
        2 => format!("Director of {department}"),
        3 => format!("VP {department}"),
        _ => match department {
            "Engineering" | "IT" => "CTO".into(),
            "Finance" => "CFO".into(),
            "Marketing" => "CMO".into(),
            "Operations" => "COO".into(),
            _ => "CEO".into(),
        },
    }
}
