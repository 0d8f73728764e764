//! User aggregate: a local account with global roles. Password hashes are not
//! events: they live beside the event store and events only say they changed.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use uuid::Uuid;

use crate::error::{DomainError, ErrorCode};
use crate::event::{Aggregate, DomainEvent};
use crate::name::ResourceName;
use crate::rbac::Role;

/// What a user account can be asked to do.
#[derive(Debug, Clone)]
pub enum UserCommand {
    Create { user_id: Uuid, username: ResourceName, display_name: String, roles: BTreeSet<Role> },
    GrantRole { role: Role },
    RevokeRole { role: Role },
    ChangePassword,
    Disable,
}

/// What a user account records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", content = "detail")]
pub enum UserEvent {
    #[serde(rename = "user.created")]
    Created { user_id: Uuid, username: ResourceName, display_name: String, roles: BTreeSet<Role> },
    #[serde(rename = "user.role_granted")]
    RoleGranted { user_id: Uuid, role: Role },
    #[serde(rename = "user.role_revoked")]
    RoleRevoked { user_id: Uuid, role: Role },
    #[serde(rename = "user.password_changed")]
    PasswordChanged { user_id: Uuid },
    #[serde(rename = "user.disabled")]
    Disabled { user_id: Uuid },
}

/// Version 1 of `user.created` carried a single `role`; version 2 carries
/// `roles` and `display_name`. See [`crate::upcast`].
impl DomainEvent for UserEvent {
    const SCHEMA_VERSION: i32 = 2;
}

/// A user's state as far as decisions need it.
#[derive(Debug, Clone, Default)]
pub struct User {
    pub id: Option<Uuid>,
    pub roles: BTreeSet<Role>,
    pub disabled: bool,
}

impl User {
    fn existing(&self) -> Result<Uuid, DomainError> {
        self.id.ok_or_else(|| DomainError::new(ErrorCode::NotFound, "user does not exist"))
    }
}

impl Aggregate for User {
    type Command = UserCommand;
    type Event = UserEvent;
    const KIND: &'static str = "user";

    fn decide(&self, command: UserCommand) -> Result<Vec<UserEvent>, DomainError> {
        match command {
            UserCommand::Create { user_id, username, display_name, roles } => {
                if self.id.is_some() {
                    return Err(DomainError::new(ErrorCode::ResourceConflict, format!("user {username} already exists")));
                }
                Ok(vec![UserEvent::Created { user_id, username, display_name, roles }])
            }
            UserCommand::GrantRole { role } => {
                let user_id = self.existing()?;
                Ok(if self.roles.contains(&role) { vec![] } else { vec![UserEvent::RoleGranted { user_id, role }] })
            }
            UserCommand::RevokeRole { role } => {
                let user_id = self.existing()?;
                Ok(if self.roles.contains(&role) { vec![UserEvent::RoleRevoked { user_id, role }] } else { vec![] })
            }
            UserCommand::ChangePassword => Ok(vec![UserEvent::PasswordChanged { user_id: self.existing()? }]),
            UserCommand::Disable => {
                let user_id = self.existing()?;
                Ok(if self.disabled { vec![] } else { vec![UserEvent::Disabled { user_id }] })
            }
        }
    }

    fn evolve(mut self, event: &UserEvent) -> Self {
        match event {
            UserEvent::Created { user_id, roles, .. } => {
                self.id = Some(*user_id);
                self.roles = roles.clone();
            }
            UserEvent::RoleGranted { role, .. } => {
                self.roles.insert(*role);
            }
            UserEvent::RoleRevoked { role, .. } => {
                self.roles.remove(role);
            }
            UserEvent::PasswordChanged { .. } => {}
            UserEvent::Disabled { .. } => self.disabled = true,
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::testing::given;

    const ID: Uuid = Uuid::from_u128(12);

    fn created() -> UserEvent {
        UserEvent::Created {
            user_id: ID,
            username: ResourceName::parse("username", "dev_user").unwrap(),
            display_name: "Dev".into(),
            roles: [Role::Operator].into(),
        }
    }

    #[test]
    fn granting_a_role_records_it_once() {
        given::<User>(vec![created()])
            .when(UserCommand::GrantRole { role: Role::Approver })
            .then_expect_events(vec![UserEvent::RoleGranted { user_id: ID, role: Role::Approver }]);
        given::<User>(vec![created()]).when(UserCommand::GrantRole { role: Role::Operator }).then_expect_events(vec![]);
    }

    #[test]
    fn a_username_is_taken_once() {
        given::<User>(vec![created()])
            .when(UserCommand::Create {
                user_id: ID,
                username: ResourceName::parse("username", "dev_user").unwrap(),
                display_name: String::new(),
                roles: Default::default(),
            })
            .then_expect_error(ErrorCode::ResourceConflict);
    }

    #[test]
    fn password_change_is_recorded_without_the_password() {
        let (action, detail) = UserEvent::PasswordChanged { user_id: ID }.to_parts();
        assert_eq!(action, "user.password_changed");
        assert_eq!(detail, serde_json::json!({ "user_id": ID }));
    }
}
