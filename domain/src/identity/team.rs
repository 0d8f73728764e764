//! Team aggregate: users belong to teams, teams to one project.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use uuid::Uuid;

use crate::error::{DomainError, ErrorCode};
use crate::event::{Aggregate, DomainEvent};
use crate::name::ResourceName;

/// What a team can be asked to do.
#[derive(Debug, Clone)]
pub enum TeamCommand {
    Create { team_id: Uuid, name: ResourceName, project_id: Uuid },
    AddMember { user_id: Uuid },
    RemoveMember { user_id: Uuid },
}

/// What a team records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", content = "detail")]
pub enum TeamEvent {
    #[serde(rename = "team.created")]
    Created { team_id: Uuid, name: ResourceName, project_id: Uuid },
    #[serde(rename = "team.member_added")]
    MemberAdded { team_id: Uuid, user_id: Uuid },
    #[serde(rename = "team.member_removed")]
    MemberRemoved { team_id: Uuid, user_id: Uuid },
}

impl DomainEvent for TeamEvent {}

/// A team's state as far as decisions need it.
#[derive(Debug, Clone, Default)]
pub struct Team {
    pub id: Option<Uuid>,
    pub project_id: Option<Uuid>,
    pub members: BTreeSet<Uuid>,
}

impl Aggregate for Team {
    type Command = TeamCommand;
    type Event = TeamEvent;
    const KIND: &'static str = "team";

    fn decide(&self, command: TeamCommand) -> Result<Vec<TeamEvent>, DomainError> {
        let existing = |id: Option<Uuid>| id.ok_or_else(|| DomainError::new(ErrorCode::NotFound, "team does not exist"));
        match command {
            TeamCommand::Create { team_id, name, project_id } => {
                if self.id.is_some() {
                    return Err(DomainError::new(ErrorCode::ResourceConflict, format!("team {name} already exists")));
                }
                Ok(vec![TeamEvent::Created { team_id, name, project_id }])
            }
            // Adding a member twice changes nothing and records nothing.
            TeamCommand::AddMember { user_id } => {
                let team_id = existing(self.id)?;
                Ok(if self.members.contains(&user_id) { vec![] } else { vec![TeamEvent::MemberAdded { team_id, user_id }] })
            }
            TeamCommand::RemoveMember { user_id } => {
                let team_id = existing(self.id)?;
                Ok(if self.members.contains(&user_id) { vec![TeamEvent::MemberRemoved { team_id, user_id }] } else { vec![] })
            }
        }
    }

    fn evolve(mut self, event: &TeamEvent) -> Self {
        match event {
            TeamEvent::Created { team_id, project_id, .. } => {
                self.id = Some(*team_id);
                self.project_id = Some(*project_id);
            }
            TeamEvent::MemberAdded { user_id, .. } => {
                self.members.insert(*user_id);
            }
            TeamEvent::MemberRemoved { user_id, .. } => {
                self.members.remove(user_id);
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::testing::given;

    const TEAM: Uuid = Uuid::from_u128(7);
    const USER: Uuid = Uuid::from_u128(12);

    fn created() -> TeamEvent {
        TeamEvent::Created { team_id: TEAM, name: ResourceName::parse("n", "team-app").unwrap(), project_id: Uuid::from_u128(11) }
    }

    #[test]
    fn a_member_is_added_once() {
        given::<Team>(vec![created()])
            .when(TeamCommand::AddMember { user_id: USER })
            .then_expect_events(vec![TeamEvent::MemberAdded { team_id: TEAM, user_id: USER }]);
        given::<Team>(vec![created(), TeamEvent::MemberAdded { team_id: TEAM, user_id: USER }])
            .when(TeamCommand::AddMember { user_id: USER })
            .then_expect_events(vec![]);
    }

    #[test]
    fn members_cannot_join_a_team_that_does_not_exist() {
        given::<Team>(vec![]).when(TeamCommand::AddMember { user_id: USER }).then_expect_error(ErrorCode::NotFound);
    }
}
