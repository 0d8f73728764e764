//! Upcasting: events are never rewritten in the store, so older schema
//! versions are brought to the current shape when they are read.

use serde_json::{json, Value};

/// Brings the detail of `action` stored at `version` to the current schema.
/// Returns the new version and detail; unknown actions pass through.
pub fn upcast(action: &str, version: i32, detail: Value) -> (i32, Value) {
    match (action, version) {
        // v1 → v2: a single `role` became a set of `roles`; `display_name` appeared.
        ("user.created", 1) => {
            let mut d = detail;
            let role = d.get("role").cloned();
            if let Some(obj) = d.as_object_mut() {
                obj.remove("role");
                obj.insert("roles".into(), json!(role.into_iter().collect::<Vec<_>>()));
                let name = obj.get("username").cloned().unwrap_or(json!(""));
                obj.entry("display_name").or_insert(name);
            }
            (2, d)
        }
        (_, v) if action.starts_with("user.") && v == 1 => (2, detail),
        (_, v) => (v, detail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::DomainEvent;
    use crate::identity::user::UserEvent;
    use crate::rbac::Role;

    #[test]
    fn a_v1_user_created_reads_as_v2() {
        let v1 = json!({ "user_id": "00000000-0000-0000-0000-00000000000c", "username": "old_user", "role": "approver" });
        let (v, d) = upcast("user.created", 1, v1);
        assert_eq!(v, 2);
        match UserEvent::from_parts("user.created", &d).unwrap() {
            UserEvent::Created { roles, display_name, .. } => {
                assert_eq!(roles, [Role::Approver].into());
                assert_eq!(display_name, "old_user");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
