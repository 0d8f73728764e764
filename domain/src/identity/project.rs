//! Project aggregate: the top-level scope releases, environments and tickets live in.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{DomainError, ErrorCode};
use crate::event::{Aggregate, DomainEvent};
use crate::name::ResourceName;

/// What a project can be asked to do.
#[derive(Debug, Clone)]
pub enum ProjectCommand {
    Create { project_id: Uuid, name: ResourceName, description: String },
}

/// What a project records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", content = "detail")]
pub enum ProjectEvent {
    #[serde(rename = "project.created")]
    Created { project_id: Uuid, name: ResourceName, description: String },
}

impl DomainEvent for ProjectEvent {}

/// A project's state as far as decisions need it.
#[derive(Debug, Clone, Default)]
pub struct Project {
    pub id: Option<Uuid>,
    pub name: Option<ResourceName>,
}

impl Aggregate for Project {
    type Command = ProjectCommand;
    type Event = ProjectEvent;
    const KIND: &'static str = "project";

    fn decide(&self, command: ProjectCommand) -> Result<Vec<ProjectEvent>, DomainError> {
        match command {
            ProjectCommand::Create { project_id, name, description } => {
                if self.id.is_some() {
                    return Err(DomainError::new(ErrorCode::ResourceConflict, format!("project {name} already exists")));
                }
                crate::text::check("description", &description, 4096)?;
                Ok(vec![ProjectEvent::Created { project_id, name, description }])
            }
        }
    }

    fn evolve(mut self, event: &ProjectEvent) -> Self {
        match event {
            ProjectEvent::Created { project_id, name, .. } => {
                self.id = Some(*project_id);
                self.name = Some(name.clone());
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::testing::given;

    fn created() -> ProjectEvent {
        ProjectEvent::Created {
            project_id: Uuid::from_u128(11),
            name: ResourceName::parse("name", "proj-alpha").unwrap(),
            description: String::new(),
        }
    }

    fn create() -> ProjectCommand {
        ProjectCommand::Create {
            project_id: Uuid::from_u128(11),
            name: ResourceName::parse("name", "proj-alpha").unwrap(),
            description: String::new(),
        }
    }

    #[test]
    fn a_new_project_is_created() {
        given::<Project>(vec![]).when(create()).then_expect_events(vec![created()]);
    }

    #[test]
    fn creating_it_twice_is_a_conflict() {
        given::<Project>(vec![created()]).when(create()).then_expect_error(ErrorCode::ResourceConflict);
    }
}
