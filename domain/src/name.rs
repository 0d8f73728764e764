//! The unique, human-friendly name every resource carries. APIs accept it
//! wherever an id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::error::DomainError;

/// A validated resource name: 2–63 characters of ASCII letters, digits, `-`,
/// `_` and `.`, starting with a letter or digit. Parsed once, trusted after.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ResourceName(String);

impl ResourceName {
    /// Validates `raw` as the value of `field`.
    pub fn parse(field: &str, raw: &str) -> Result<ResourceName, DomainError> {
        let ok_len = (2..=63).contains(&raw.len());
        let ok_first = raw.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        let ok_chars = raw.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if ok_len && ok_first && ok_chars {
            Ok(ResourceName(raw.to_string()))
        } else {
            Err(DomainError::validation(
                field,
                "use 2-63 letters, digits, '-', '_' or '.', starting with a letter or digit",
            ))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ResourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_seed_names_and_refuses_shell_and_paths() {
        for ok in ["proj-alpha", "team-app", "dev_user", "svc-a", "env-k8s-prod", "v2.0.1"] {
            ResourceName::parse("name", ok).unwrap();
        }
        for bad in ["", "a", "-x", "a b", "$(id)", "../etc", "x;rm", &"a".repeat(64)] {
            assert!(ResourceName::parse("name", bad).is_err(), "{bad:?} accepted");
        }
    }
}
