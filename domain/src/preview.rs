//! Preview references: the handle a preview hands out and an apply presents.

use std::fmt;
use uuid::Uuid;

use crate::error::{DomainError, ErrorCode};

/// What a `preview_ref` names: the release whose preview it is
/// (`rel-prev-<release id>`), or one install preview of an environment
/// (`inst-prev-<preview id>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PreviewRef {
    Release(Uuid),
    Install(Uuid),
}

impl PreviewRef {
    /// Reads a reference as a client presents it; anything else is
    /// `preview_required`, since no preview of that name exists.
    pub fn parse(s: &str) -> Result<PreviewRef, DomainError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(DomainError::new(ErrorCode::PreviewRequired, "apply needs the preview_ref of a preview"));
        }
        let parsed = match (s.strip_prefix("rel-prev-"), s.strip_prefix("inst-prev-")) {
            (Some(id), _) => Uuid::parse_str(id).ok().map(PreviewRef::Release),
            (_, Some(id)) => Uuid::parse_str(id).ok().map(PreviewRef::Install),
            _ => None,
        };
        parsed.ok_or_else(|| DomainError::new(ErrorCode::PreviewRequired, format!("{s:?} is not a preview reference")))
    }

    /// The release this reference previews, or `preview_required` for an
    /// install preview presented where a release is expected.
    pub fn release(self) -> Result<Uuid, DomainError> {
        match self {
            PreviewRef::Release(id) => Ok(id),
            PreviewRef::Install(_) => Err(DomainError::new(ErrorCode::PreviewRequired, format!("{self} is an install preview; apply it on its environment"))),
        }
    }

    /// The install preview this reference names, or `preview_required` for a
    /// release's preview presented to an environment.
    pub fn install(self) -> Result<Uuid, DomainError> {
        match self {
            PreviewRef::Install(id) => Ok(id),
            PreviewRef::Release(_) => Err(DomainError::new(ErrorCode::PreviewRequired, format!("{self} is a release preview; apply it on its release"))),
        }
    }
}

impl serde::Serialize for PreviewRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for PreviewRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PreviewRef::Release(id) => write!(f, "rel-prev-{id}"),
            PreviewRef::Install(id) => write!(f, "inst-prev-{id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_reads_back_as_what_it_names() {
        let id = Uuid::from_u128(7);
        for r in [PreviewRef::Release(id), PreviewRef::Install(id)] {
            assert_eq!(PreviewRef::parse(&r.to_string()).unwrap(), r);
        }
        assert_eq!(PreviewRef::Release(id).release().unwrap(), id);
        assert_eq!(PreviewRef::Release(id).install().unwrap_err().code, ErrorCode::PreviewRequired);
    }

    #[test]
    fn anything_else_is_no_preview() {
        for s in ["", "  ", "rel-prev-", "rel-prev-not-a-uuid", "prev-1", "inst-prev-1\0"] {
            assert_eq!(PreviewRef::parse(s).unwrap_err().code, ErrorCode::PreviewRequired, "{s:?}");
        }
    }
}
