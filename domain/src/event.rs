//! The vocabulary every event shares: who acted, from where, with what outcome,
//! and the decide/evolve shape each aggregate follows.

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::Value;

use crate::error::DomainError;

/// The entry point a command came through (SPEC §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    DeploymentUi,
    AiCommandCenter,
    ApprovalInbox,
    SystemScheduler,
    ApiDirect,
}

/// Outcome recorded on an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    Success,
    Failed,
    Warning,
    Running,
}

/// How much an event matters to an auditor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

/// Who acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorType {
    User,
    ApiToken,
    System,
}

macro_rules! str_enum {
    ($t:ty { $($v:ident => $s:literal),* $(,)? }) => {
        impl $t {
            /// The wire name.
            pub fn as_str(self) -> &'static str { match self { $(Self::$v => $s),* } }
            /// Parses the wire name.
            pub fn parse(s: &str) -> Option<Self> { match s { $($s => Some(Self::$v),)* _ => None } }
        }
    };
}
str_enum!(Source { DeploymentUi => "deployment_ui", AiCommandCenter => "ai_command_center", ApprovalInbox => "approval_inbox", SystemScheduler => "system_scheduler", ApiDirect => "api_direct" });
str_enum!(EventStatus { Success => "success", Failed => "failed", Warning => "warning", Running => "running" });
str_enum!(Severity { Info => "info", Low => "low", Medium => "medium", High => "high", Critical => "critical" });
str_enum!(ActorType { User => "user", ApiToken => "api_token", System => "system" });

/// Where an event belongs: the resource it is about and that resource's scope.
/// Filled by the command handler; copied into every event's envelope.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventScope {
    pub resource_type: String,
    pub resource_id: String,
    pub environment_id: Option<String>,
    pub project_id: Option<String>,
    pub team_id: Option<String>,
}

impl EventScope {
    /// A scope for a resource with no project/team/environment.
    pub fn resource(resource_type: &str, resource_id: impl ToString) -> Self {
        EventScope { resource_type: resource_type.into(), resource_id: resource_id.to_string(), ..Default::default() }
    }
    /// Adds the project.
    pub fn in_project(mut self, project_id: impl ToString) -> Self {
        self.project_id = Some(project_id.to_string());
        self
    }
    /// Adds the team.
    pub fn in_team(mut self, team_id: impl ToString) -> Self {
        self.team_id = Some(team_id.to_string());
        self
    }
}

/// A domain event: serialized as `{"action": "...", "detail": {...}}`, where the
/// action is the contract name (`release.previewed`) and the detail its fields.
pub trait DomainEvent: Serialize + DeserializeOwned + Clone {
    /// The schema version this code writes.
    const SCHEMA_VERSION: i32 = 1;
    /// Outcome recorded on the envelope.
    fn status(&self) -> EventStatus {
        EventStatus::Success
    }
    /// Severity recorded on the envelope.
    fn severity(&self) -> Severity {
        Severity::Info
    }
    /// Splits the event into its action name and detail object.
    fn to_parts(&self) -> (String, Value) {
        let v = serde_json::to_value(self).expect("events serialize");
        let action = v["action"].as_str().expect("events are tagged with an action").to_string();
        let detail = v.get("detail").cloned().unwrap_or(Value::Object(Default::default()));
        (action, detail)
    }
    /// Rebuilds an event from its action name and (already upcast) detail.
    fn from_parts(action: &str, detail: &Value) -> Result<Self, serde_json::Error> {
        serde_json::from_value(serde_json::json!({ "action": action, "detail": detail }))
    }
}

/// The decider shape: pure `decide` and `evolve`, one per aggregate.
pub trait Aggregate: Default + Clone {
    /// What the aggregate is asked to do.
    type Command;
    /// What it records.
    type Event: DomainEvent;
    /// The stream name prefix, e.g. `user`.
    const KIND: &'static str;
    /// Turns a command into events, or refuses it with a dictionary error.
    fn decide(&self, command: Self::Command) -> Result<Vec<Self::Event>, DomainError>;
    /// Folds one event into the state.
    fn evolve(self, event: &Self::Event) -> Self;
    /// Folds many events.
    fn fold<'a>(events: impl IntoIterator<Item = &'a Self::Event>) -> Self
    where
        Self::Event: 'a,
    {
        events.into_iter().fold(Self::default(), |s, e| s.evolve(e))
    }
}

/// The stream id of an aggregate instance: `<kind>-<id>`.
pub fn stream_id_of<A: Aggregate>(id: impl std::fmt::Display) -> String {
    format!("{}-{}", A::KIND, id)
}

/// Test support in the cqrs-es shape: `given(events).when(command)`.
#[cfg(test)]
pub mod testing {
    use super::*;

    /// Starts a scenario from past events.
    pub fn given<A: Aggregate>(events: Vec<A::Event>) -> Scenario<A> {
        Scenario { state: A::fold(events.iter()) }
    }

    /// A state waiting for a command.
    pub struct Scenario<A: Aggregate> {
        state: A,
    }

    impl<A: Aggregate> Scenario<A>
    where
        A::Event: std::fmt::Debug + PartialEq,
    {
        /// Decides a command against the given history.
        pub fn when(self, command: A::Command) -> Outcome<A> {
            Outcome { result: self.state.decide(command) }
        }
    }

    /// The result of a decision.
    pub struct Outcome<A: Aggregate> {
        result: Result<Vec<A::Event>, DomainError>,
    }

    impl<A: Aggregate> Outcome<A>
    where
        A::Event: std::fmt::Debug + PartialEq,
    {
        /// Asserts the exact events.
        pub fn then_expect_events(self, expected: Vec<A::Event>) {
            assert_eq!(self.result.expect("command was refused"), expected);
        }
        /// The events, asserting the command was accepted.
        pub fn then_events(self) -> Vec<A::Event> {
            self.result.expect("command was refused")
        }
        /// The refusal's code, if the command was refused.
        pub fn then_error_code(self) -> Option<crate::error::ErrorCode> {
            self.result.err().map(|e| e.code)
        }
        /// Asserts a refusal with this dictionary code.
        pub fn then_expect_error(self, code: crate::error::ErrorCode) {
            match self.result {
                Err(e) => assert_eq!(e.code, code, "wrong error: {e}"),
                Ok(events) => panic!("expected {code:?}, got events {events:?}"),
            }
        }
    }
}
