//! Ids derived from unique names: every API accepts a resource's name where
//! an id is expected, and "create twice" is caught by the stream already
//! existing. An id is UUIDv5(kind namespace, name).

use uuid::Uuid;

const ROOT: Uuid = Uuid::from_u128(0x6f70_7370_696c_6f74_0000_0000_0000_0000);

/// The id of the resource of `kind` named `name`.
pub fn id_for(kind: &str, name: &str) -> Uuid {
    Uuid::new_v5(&Uuid::new_v5(&ROOT, kind.as_bytes()), name.as_bytes())
}

/// Resolves "id or name" for `kind`: a UUID is taken as is, anything else is a name.
pub fn resolve(kind: &str, id_or_name: &str) -> Uuid {
    Uuid::parse_str(id_or_name.trim()).unwrap_or_else(|_| id_for(kind, id_or_name.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids_resolve_to_the_same_resource() {
        let id = id_for("project", "proj-alpha");
        assert_eq!(resolve("project", "proj-alpha"), id);
        assert_eq!(resolve("project", &id.to_string()), id);
        assert_ne!(id_for("team", "proj-alpha"), id);
    }
}
