//! Identity rules: which company an e-mail belongs to.
//!
//! A user belongs to a company through the domain of a work e-mail. Free-mail domains
//! (gmail.com, outlook.com...) never form a company: ten strangers on gmail.com are not an
//! account. The list is built in and can be replaced or extended by configuration.

use std::collections::HashSet;

/// Free-mail and consumer ISP domains that never form a company. Sources: the domains the big
/// consumer mail providers serve, plus common disposable-mail hosts.
pub const DEFAULT_FREE_MAIL_DOMAINS: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "outlook.com",
    "hotmail.com",
    "hotmail.co.uk",
    "hotmail.fr",
    "live.com",
    "msn.com",
    "yahoo.com",
    "yahoo.co.uk",
    "yahoo.fr",
    "yahoo.de",
    "yahoo.co.jp",
    "ymail.com",
    "rocketmail.com",
    "aol.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "proton.me",
    "protonmail.com",
    "pm.me",
    "gmx.com",
    "gmx.de",
    "gmx.net",
    "web.de",
    "mail.com",
    "mail.ru",
    "yandex.ru",
    "yandex.com",
    "zoho.com",
    "zohomail.com",
    "fastmail.com",
    "hey.com",
    "tutanota.com",
    "qq.com",
    "163.com",
    "126.com",
    "sina.com",
    "naver.com",
    "daum.net",
    "orange.fr",
    "free.fr",
    "laposte.net",
    "btinternet.com",
    "comcast.net",
    "verizon.net",
    "att.net",
    "sbcglobal.net",
    "libero.it",
    "t-online.de",
    "seznam.cz",
    "wp.pl",
    "o2.pl",
    "rediffmail.com",
    "mailinator.com",
    "guerrillamail.com",
    "10minutemail.com",
    "tempmail.com",
    "yopmail.com",
];

/// The set of domains that never form a company.
#[derive(Debug, Clone)]
pub struct FreeMailDomains {
    domains: HashSet<String>,
}

impl Default for FreeMailDomains {
    fn default() -> Self {
        FreeMailDomains::new(
            DEFAULT_FREE_MAIL_DOMAINS.iter().copied(),
            std::iter::empty::<&str>(),
        )
    }
}

impl FreeMailDomains {
    /// A list made of `base` plus `extra`, lowercased.
    pub fn new<'a>(
        base: impl IntoIterator<Item = &'a str>,
        extra: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let domains = base
            .into_iter()
            .chain(extra)
            .map(|d| d.trim().to_ascii_lowercase())
            .filter(|d| !d.is_empty())
            .collect();
        FreeMailDomains { domains }
    }

    /// Whether `domain` is a free-mail domain.
    pub fn contains(&self, domain: &str) -> bool {
        self.domains.contains(&domain.to_ascii_lowercase())
    }

    /// The domains, sorted (for storing and display).
    pub fn sorted(&self) -> Vec<String> {
        let mut v: Vec<String> = self.domains.iter().cloned().collect();
        v.sort();
        v
    }

    /// The company domain of an e-mail address, or `None` for free mail or a malformed address.
    pub fn company_domain(&self, email: &str) -> Option<String> {
        let domain = email_domain(email)?;
        (!self.contains(&domain)).then_some(domain)
    }
}

/// The lowercased domain of an e-mail address, or `None` when it is not an address.
pub fn email_domain(email: &str) -> Option<String> {
    let (local, domain) = email.trim().rsplit_once('@')?;
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let valid = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    valid.then_some(domain)
}

/// Normalizes a website or domain trait ("https://www.Acme.com/about") to a bare domain
/// ("acme.com"), or `None` when it does not look like one.
pub fn normalize_domain(website: &str) -> Option<String> {
    let s = website.trim().to_ascii_lowercase();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(&s);
    let s = s.split(['/', '?', '#']).next().unwrap_or_default();
    let s = s.split(':').next().unwrap_or_default();
    let s = s.strip_prefix("www.").unwrap_or(s);
    let valid = s.contains('.')
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    valid.then(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_mail_never_forms_a_company() {
        let f = FreeMailDomains::default();
        assert_eq!(f.company_domain("ann@gmail.com"), None);
        assert_eq!(f.company_domain("Ann@Outlook.COM"), None);
        assert_eq!(f.company_domain("bob@icloud.com"), None);
        assert_eq!(
            f.company_domain("ann@acme.com").as_deref(),
            Some("acme.com")
        );
        assert_eq!(
            f.company_domain("ann@ACME.com.").as_deref(),
            Some("acme.com")
        );
    }

    #[test]
    fn the_list_can_be_extended() {
        let f = FreeMailDomains::new(
            DEFAULT_FREE_MAIL_DOMAINS.iter().copied(),
            ["corp-mail.example"],
        );
        assert_eq!(f.company_domain("x@corp-mail.example"), None);
    }

    #[test]
    fn malformed_addresses_have_no_domain() {
        for bad in [
            "",
            "nobody",
            "@acme.com",
            "a@",
            "a@localhost",
            "a@ac me.com",
            "a@.com",
        ] {
            assert_eq!(email_domain(bad), None, "{bad}");
        }
    }

    #[test]
    fn websites_normalize_to_domains() {
        assert_eq!(
            normalize_domain("https://www.Acme.com/about").as_deref(),
            Some("acme.com")
        );
        assert_eq!(normalize_domain("acme.io").as_deref(), Some("acme.io"));
        assert_eq!(
            normalize_domain("http://app.acme.io:8080/x").as_deref(),
            Some("app.acme.io")
        );
        assert_eq!(normalize_domain("Acme Inc"), None);
    }
}
