//! The release catalog: services (what is shipped, with the manifest template
//! it renders from) and deploy targets (where it lands: a cluster namespace,
//! or later a compose host, for one environment name).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

use crate::approval::RiskLevel;
use crate::error::{DomainError, ErrorCode};
use crate::event::{Aggregate, DomainEvent};
use crate::name::ResourceName;

/// The runtimes a service can ship to.
pub const RUNTIMES: &[&str] = &["k8s", "compose"];

fn runtime(r: &str) -> Result<(), DomainError> {
    if RUNTIMES.contains(&r) {
        Ok(())
    } else {
        Err(DomainError::validation("runtime_type", "use k8s or compose"))
    }
}

/// The declared type of a variable a service accepts: part of the catalog,
/// shown in the preview, checked before anything is rendered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum VariableSpec {
    /// Free text of at most `max_len` characters (default 1024).
    String {
        #[serde(default)]
        max_len: Option<usize>,
    },
    /// A whole number, optionally within `min..=max`.
    Integer {
        #[serde(default)]
        min: Option<i64>,
        #[serde(default)]
        max: Option<i64>,
    },
    /// One of `values`.
    Enum { values: Vec<String> },
    /// An OCI image tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
    ImageTag,
}

impl VariableSpec {
    /// Checks a value of the variable `name`.
    pub fn check(&self, name: &str, value: &str) -> Result<(), DomainError> {
        let field = format!("variables.{name}");
        match self {
            VariableSpec::String { max_len } => {
                let max = max_len.unwrap_or(1024);
                if value.chars().count() > max {
                    return Err(DomainError::validation(&field, format!("at most {max} characters")));
                }
            }
            VariableSpec::Integer { min, max } => {
                let n: i64 = value.trim().parse().map_err(|_| DomainError::validation(&field, "a whole number"))?;
                if min.is_some_and(|m| n < m) || max.is_some_and(|m| n > m) {
                    return Err(DomainError::validation(&field, format!("between {} and {}", min.map_or("-inf".into(), |m| m.to_string()), max.map_or("inf".into(), |m| m.to_string()))));
                }
            }
            VariableSpec::Enum { values } => {
                if !values.iter().any(|v| v == value) {
                    return Err(DomainError::validation(&field, format!("one of {}", values.join(", "))));
                }
            }
            VariableSpec::ImageTag => {
                let mut chars = value.chars();
                let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
                if !(first_ok && value.len() <= 128 && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))) {
                    return Err(DomainError::validation(&field, "an image tag is 1 to 128 of A-Z a-z 0-9 _ . - and does not start with . or -"));
                }
            }
        }
        Ok(())
    }
}

/// Checks `variables` against a service's declared schema: when the service
/// declares one, a variable it does not declare is refused too.
pub fn check_variables(schema: &BTreeMap<String, VariableSpec>, variables: &BTreeMap<String, String>) -> Result<(), DomainError> {
    for (name, value) in variables {
        match schema.get(name) {
            Some(spec) => spec.check(name, value)?,
            None if !schema.is_empty() => {
                let known: Vec<&str> = schema.keys().map(String::as_str).collect();
                return Err(DomainError::validation(&format!("variables.{name}"), format!("the service declares no such variable (it has {})", known.join(", "))));
            }
            None => {}
        }
    }
    Ok(())
}

/// What a service can be asked to do.
#[derive(Debug, Clone)]
pub enum ServiceCommand {
    Create {
        service_id: Uuid,
        name: ResourceName,
        project_id: Uuid,
        team_id: Uuid,
        runtime_type: String,
        manifest_template: String,
        default_variables: BTreeMap<String, String>,
        variables_schema: BTreeMap<String, VariableSpec>,
        risk_level: RiskLevel,
    },
}

/// What a service records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", content = "detail")]
pub enum ServiceEvent {
    #[serde(rename = "service.created")]
    Created {
        service_id: Uuid,
        name: ResourceName,
        project_id: Uuid,
        team_id: Uuid,
        runtime_type: String,
        manifest_template: String,
        default_variables: BTreeMap<String, String>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        variables_schema: BTreeMap<String, VariableSpec>,
        risk_level: RiskLevel,
    },
}

impl DomainEvent for ServiceEvent {}

/// A service as releases need it.
#[derive(Debug, Clone, Default)]
pub struct Service {
    pub id: Option<Uuid>,
    pub name: Option<ResourceName>,
    pub project_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    pub runtime_type: String,
    pub manifest_template: String,
    pub default_variables: BTreeMap<String, String>,
    pub variables_schema: BTreeMap<String, VariableSpec>,
    pub risk_level: Option<RiskLevel>,
}

impl Aggregate for Service {
    type Command = ServiceCommand;
    type Event = ServiceEvent;
    const KIND: &'static str = "service";

    fn decide(&self, command: ServiceCommand) -> Result<Vec<ServiceEvent>, DomainError> {
        match command {
            ServiceCommand::Create { service_id, name, project_id, team_id, runtime_type, manifest_template, default_variables, variables_schema, risk_level } => {
                if self.id.is_some() {
                    return Err(DomainError::new(ErrorCode::ResourceConflict, format!("service {name} already exists")));
                }
                runtime(&runtime_type)?;
                if manifest_template.trim().is_empty() || manifest_template.len() > 256 * 1024 {
                    return Err(DomainError::validation("manifest_template", "give a template of 1 byte to 256 KiB"));
                }
                for (name, spec) in &variables_schema {
                    if matches!(spec, VariableSpec::Enum { values } if values.is_empty()) {
                        return Err(DomainError::validation(&format!("variables_schema.{name}"), "an enum needs at least one value"));
                    }
                }
                check_variables(&variables_schema, &default_variables)?;
                Ok(vec![ServiceEvent::Created { service_id, name, project_id, team_id, runtime_type, manifest_template, default_variables, variables_schema, risk_level }])
            }
        }
    }

    fn evolve(mut self, event: &ServiceEvent) -> Self {
        match event {
            ServiceEvent::Created { service_id, name, project_id, team_id, runtime_type, manifest_template, default_variables, variables_schema, risk_level } => {
                self.id = Some(*service_id);
                self.name = Some(name.clone());
                self.project_id = Some(*project_id);
                self.team_id = Some(*team_id);
                self.runtime_type = runtime_type.clone();
                self.manifest_template = manifest_template.clone();
                self.default_variables = default_variables.clone();
                self.variables_schema = variables_schema.clone();
                self.risk_level = Some(*risk_level);
            }
        }
        self
    }
}

/// What a deploy target can be asked to do.
#[derive(Debug, Clone)]
pub enum TargetCommand {
    Create {
        target_id: Uuid,
        name: ResourceName,
        project_id: Uuid,
        team_id: Uuid,
        runtime_type: String,
        env: String,
        cluster_id: Option<Uuid>,
        namespace: Option<String>,
        compose: Option<ComposePlacement>,
    },
}

/// Where a compose target's project lives: one host of an environment and a
/// project directory on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComposePlacement {
    pub environment_id: Uuid,
    pub host_id: Uuid,
    /// The compose project name (`docker compose -p`).
    pub project_name: String,
    /// Absolute directory on the host holding `docker-compose.yml`.
    pub project_dir: String,
}

impl ComposePlacement {
    fn check(&self) -> Result<(), DomainError> {
        let name_ok = (1..=63).contains(&self.project_name.len())
            && self.project_name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && self.project_name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !name_ok {
            return Err(DomainError::validation("project_name", "lowercase letters, digits, '-' and '_', starting with a letter or digit"));
        }
        let dir_ok = self.project_dir.starts_with('/')
            && self.project_dir.len() <= 255
            && self.project_dir.split('/').all(|seg| seg != ".." && seg != ".")
            && self.project_dir.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.'));
        if !dir_ok || self.project_dir == "/" {
            return Err(DomainError::validation("project_dir", "an absolute directory of letters, digits, '/', '-', '_' and '.', without '..'"));
        }
        Ok(())
    }
}

/// What a deploy target records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", content = "detail")]
pub enum TargetEvent {
    #[serde(rename = "deploy_target.created")]
    Created {
        target_id: Uuid,
        name: ResourceName,
        project_id: Uuid,
        team_id: Uuid,
        runtime_type: String,
        env: String,
        cluster_id: Option<Uuid>,
        namespace: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        compose: Option<ComposePlacement>,
    },
}

impl DomainEvent for TargetEvent {}

/// A deploy target as releases need it.
#[derive(Debug, Clone, Default)]
pub struct DeployTarget {
    pub id: Option<Uuid>,
    pub name: Option<ResourceName>,
    pub project_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    pub runtime_type: String,
    pub env: String,
    pub cluster_id: Option<Uuid>,
    pub namespace: Option<String>,
    pub compose: Option<ComposePlacement>,
}

/// A Kubernetes namespace name (RFC 1123 label).
pub fn valid_namespace(ns: &str) -> bool {
    (1..=63).contains(&ns.len())
        && ns.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !ns.starts_with('-')
        && !ns.ends_with('-')
}

impl Aggregate for DeployTarget {
    type Command = TargetCommand;
    type Event = TargetEvent;
    const KIND: &'static str = "deploy_target";

    fn decide(&self, command: TargetCommand) -> Result<Vec<TargetEvent>, DomainError> {
        match command {
            TargetCommand::Create { target_id, name, project_id, team_id, runtime_type, env, cluster_id, namespace, compose } => {
                if self.id.is_some() {
                    return Err(DomainError::new(ErrorCode::ResourceConflict, format!("target {name} already exists")));
                }
                runtime(&runtime_type)?;
                ResourceName::parse("env", &env)?;
                if runtime_type == "k8s" {
                    if cluster_id.is_none() {
                        return Err(DomainError::validation("cluster_id", "a k8s target needs a cluster"));
                    }
                    if !namespace.as_deref().is_some_and(valid_namespace) {
                        return Err(DomainError::validation("namespace", "a k8s target needs a namespace (lowercase letters, digits, '-')"));
                    }
                }
                if runtime_type == "compose" {
                    compose.as_ref().ok_or_else(|| DomainError::validation("environment_id", "a compose target needs an environment, a host and a project"))?.check()?;
                }
                Ok(vec![TargetEvent::Created { target_id, name, project_id, team_id, runtime_type, env, cluster_id, namespace, compose }])
            }
        }
    }

    fn evolve(mut self, event: &TargetEvent) -> Self {
        match event {
            TargetEvent::Created { target_id, name, project_id, team_id, runtime_type, env, cluster_id, namespace, compose } => {
                self.id = Some(*target_id);
                self.name = Some(name.clone());
                self.project_id = Some(*project_id);
                self.team_id = Some(*team_id);
                self.runtime_type = runtime_type.clone();
                self.env = env.clone();
                self.cluster_id = *cluster_id;
                self.namespace = namespace.clone();
                self.compose = compose.clone();
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::testing::given;

    fn target(runtime: &str, cluster: Option<Uuid>, ns: Option<&str>) -> TargetCommand {
        TargetCommand::Create {
            target_id: Uuid::from_u128(801),
            name: ResourceName::parse("name", "target-k8s-prod").unwrap(),
            project_id: Uuid::from_u128(11),
            team_id: Uuid::from_u128(7),
            runtime_type: runtime.into(),
            env: "production".into(),
            cluster_id: cluster,
            namespace: ns.map(String::from),
            compose: None,
        }
    }

    #[test]
    fn a_k8s_target_needs_a_cluster_and_a_valid_namespace() {
        given::<DeployTarget>(vec![]).when(target("k8s", None, Some("prod"))).then_expect_error(ErrorCode::ValidationError);
        given::<DeployTarget>(vec![]).when(target("k8s", Some(Uuid::nil()), Some("Prod_NS"))).then_expect_error(ErrorCode::ValidationError);
        given::<DeployTarget>(vec![]).when(target("vm", Some(Uuid::nil()), Some("prod"))).then_expect_error(ErrorCode::ValidationError);
        let created = DeployTarget::default().decide(target("k8s", Some(Uuid::nil()), Some("prod"))).unwrap();
        given::<DeployTarget>(created).when(target("k8s", Some(Uuid::nil()), Some("prod"))).then_expect_error(ErrorCode::ResourceConflict);
    }

    #[test]
    fn a_service_needs_a_template() {
        given::<Service>(vec![])
            .when(ServiceCommand::Create {
                service_id: Uuid::nil(),
                name: ResourceName::parse("name", "svc-a").unwrap(),
                project_id: Uuid::nil(),
                team_id: Uuid::nil(),
                runtime_type: "k8s".into(),
                manifest_template: " ".into(),
                default_variables: Default::default(),
                variables_schema: Default::default(),
                risk_level: RiskLevel::High,
            })
            .then_expect_error(ErrorCode::ValidationError);
    }

    #[test]
    fn declared_variables_are_typed() {
        let schema: BTreeMap<String, VariableSpec> = serde_json::from_value(serde_json::json!({
            "replicas": { "type": "integer", "min": 1, "max": 10 },
            "tier": { "type": "enum", "values": ["web", "worker"] },
            "image_tag": { "type": "image_tag" },
            "note": { "type": "string", "max_len": 5 },
        }))
        .unwrap();
        let vars = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>();
        check_variables(&schema, &vars(&[("replicas", "3"), ("tier", "web"), ("image_tag", "v1.2"), ("note", "hi")])).unwrap();
        for (bad, field) in [(("replicas", "3; rm"), "variables.replicas"), (("replicas", "11"), "variables.replicas"), (("tier", "db"), "variables.tier"), (("image_tag", "$(id)"), "variables.image_tag"), (("note", "toolong"), "variables.note"), (("other", "x"), "variables.other")] {
            let e = check_variables(&schema, &vars(&[bad])).unwrap_err();
            assert!(e.detail.starts_with(field), "{bad:?}: {}", e.detail);
        }
        assert!(serde_json::from_value::<VariableSpec>(serde_json::json!({ "type": "float" })).is_err());
    }
}
