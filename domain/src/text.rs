//! Free text (descriptions, comments, reasons): bounded and printable.

use crate::error::DomainError;

/// Refuses `s` when it holds NUL or a control character other than tab,
/// newline and carriage return, or is longer than `max` characters.
pub fn check(field: &str, s: &str, max: usize) -> Result<(), DomainError> {
    if let Some(c) = s.chars().find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')) {
        return Err(DomainError::validation(field, format!("control character U+{:04X} is not allowed", c as u32)));
    }
    if s.chars().count() > max {
        return Err(DomainError::validation(field, format!("at most {max} characters")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_bounded_and_printable() {
        assert!(check("d", "two\nlines\tand tabs", 100).is_ok());
        assert!(check("d", "a\u{0}b", 100).unwrap_err().detail.starts_with("d: control"));
        assert!(check("d", "\u{1b}[31m", 100).is_err());
        assert!(check("d", &"é".repeat(101), 100).is_err());
    }
}
