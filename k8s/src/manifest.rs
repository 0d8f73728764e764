//! Rendering a service's manifest template and previewing it against a
//! cluster: server-side dry-run apply (field manager `opspilot`) and a diff
//! against the live objects.

use std::collections::BTreeMap;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::Scope;
use opspilot_domain::{DomainError, ErrorCode};
use serde::Serialize;
use serde_json::Value;

pub mod guard;

/// The field manager of every apply.
pub const FIELD_MANAGER: &str = "opspilot";

/// Renders a template (a Kubernetes manifest or a compose file) with strict
/// variables: a variable the template uses but nobody gave is an error naming
/// it, `image_tag` must be an OCI tag, and a variable may change a value but
/// never the YAML's structure ([`guard`]).
pub fn render(template: &str, variables: &BTreeMap<String, String>) -> Result<String, DomainError> {
    if let Some(tag) = variables.get("image_tag") {
        guard::check_image_tag(tag)?;
    }
    let rendered = render_unchecked(template, variables)?;
    guard::check_structure(variables, &rendered, |vars| render_unchecked(template, vars))?;
    Ok(rendered)
}

fn render_unchecked(template: &str, variables: &BTreeMap<String, String>) -> Result<String, DomainError> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.add_template("manifest", template).map_err(|e| DomainError::validation("manifest_template", e.to_string()))?;
    let t = env.get_template("manifest").map_err(|e| DomainError::validation("manifest_template", e.to_string()))?;
    let missing: Vec<String> = t.undeclared_variables(false).into_iter().filter(|v| !variables.contains_key(v)).collect();
    if !missing.is_empty() {
        let mut missing = missing;
        missing.sort();
        return Err(DomainError::validation("variables", format!("the template needs {}", missing.join(", "))));
    }
    t.render(variables)
        .map_err(|e| DomainError::validation("variables", format!("template rendering failed: {e}")))
}

/// Parses rendered YAML documents into objects placed in `namespace`.
/// Secrets are refused: secret material never travels through releases.
pub fn parse_objects(rendered: &str, namespace: &str) -> Result<Vec<DynamicObject>, DomainError> {
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(rendered) {
        let value = Value::deserialize_from(doc)?;
        if value.is_null() {
            continue;
        }
        let mut obj: DynamicObject = serde_json::from_value(value).map_err(|e| DomainError::validation("manifest", format!("not a Kubernetes object: {e}")))?;
        let types = obj.types.clone().ok_or_else(|| DomainError::validation("manifest", "an object lacks apiVersion/kind"))?;
        if types.kind == "Secret" {
            return Err(DomainError::validation("manifest", "kind Secret is refused: keep secrets out of release manifests"));
        }
        if obj.metadata.name.as_deref().unwrap_or("").is_empty() {
            return Err(DomainError::validation("manifest", format!("a {} has no metadata.name", types.kind)));
        }
        match obj.metadata.namespace.as_deref() {
            Some(ns) if ns != namespace => {
                return Err(DomainError::validation("manifest", format!("{} {} names namespace {ns}, the target is {namespace}", types.kind, obj.metadata.name.unwrap_or_default())))
            }
            _ => obj.metadata.namespace = Some(namespace.to_string()),
        }
        out.push(obj);
    }
    if out.is_empty() {
        return Err(DomainError::validation("manifest", "the rendered manifest has no objects"));
    }
    Ok(out)
}

trait FromDoc: Sized {
    fn deserialize_from(doc: serde_yaml::Deserializer<'_>) -> Result<Self, DomainError>;
}

impl FromDoc for Value {
    fn deserialize_from(doc: serde_yaml::Deserializer<'_>) -> Result<Self, DomainError> {
        serde::Deserialize::deserialize(doc).map_err(|e| DomainError::validation("manifest", format!("rendered manifest is not YAML: {e}")))
    }
}

/// What a preview found for one object.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectPreview {
    pub kind: String,
    pub name: String,
    pub namespace: String,
    /// `create`, `update` or `unchanged`.
    pub change: String,
    /// Unified diff of the live object against the dry-run result.
    pub diff: String,
}

/// Fields that change on every write and say nothing about intent.
fn normalized(v: &Value) -> String {
    let mut v = v.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        for k in ["managedFields", "resourceVersion", "uid", "generation", "creationTimestamp"] {
            meta.remove(k);
        }
        if let Some(a) = meta.get_mut("annotations").and_then(|a| a.as_object_mut()) {
            a.remove("deployment.kubernetes.io/revision");
            if a.is_empty() {
                meta.remove("annotations");
            }
        }
    }
    if let Some(o) = v.as_object_mut() {
        o.remove("status");
    }
    serde_yaml::to_string(&v).unwrap_or_default()
}

/// Server-side dry-run apply of every object, with a diff against what runs.
pub async fn dry_run(client: &kube::Client, objects: &[DynamicObject]) -> Result<Vec<ObjectPreview>, DomainError> {
    let mut out = Vec::new();
    for obj in objects {
        let (api, name, kind, ns) = api_for(client, obj).await?;
        let live = api.get_opt(&name).await.map_err(|e| DomainError::new(ErrorCode::ClusterConnectFailed, e.to_string()))?;
        let params = PatchParams::apply(FIELD_MANAGER).dry_run().force();
        let result = api
            .patch(&name, &params, &Patch::Apply(obj))
            .await
            .map_err(|e| DomainError::new(ErrorCode::PreflightFailed, format!("dry-run of {kind} {name} refused: {e}")))?;
        let after = normalized(&serde_json::to_value(&result).unwrap_or_default());
        let before = live.as_ref().map(|l| normalized(&serde_json::to_value(l).unwrap_or_default())).unwrap_or_default();
        let change = match &live {
            None => "create",
            Some(_) if before == after => "unchanged",
            Some(_) => "update",
        };
        let diff = similar::TextDiff::from_lines(&before, &after).unified_diff().context_radius(3).header("live", "after apply").to_string();
        out.push(ObjectPreview { kind, name, namespace: ns, change: change.into(), diff });
    }
    Ok(out)
}

/// Applies every object for real (server-side apply, field manager `opspilot`).
pub async fn apply(client: &kube::Client, objects: &[DynamicObject]) -> Result<(), DomainError> {
    for obj in objects {
        let (api, name, kind, _) = api_for(client, obj).await?;
        api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(obj))
            .await
            .map_err(|e| DomainError::new(ErrorCode::ReleaseApplyFailed, format!("apply of {kind} {name} failed: {e}")))?;
    }
    Ok(())
}

/// Waits until every Deployment among `objects` has rolled out (observed,
/// updated and available at the desired replica count), or the deadline passes.
pub async fn wait_rollout(client: &kube::Client, objects: &[DynamicObject], deadline: std::time::Duration) -> Result<(), DomainError> {
    use k8s_openapi::api::apps::v1::Deployment;
    let until = tokio::time::Instant::now() + deadline;
    for obj in objects.iter().filter(|o| o.types.as_ref().is_some_and(|t| t.kind == "Deployment")) {
        let name = obj.metadata.name.clone().unwrap_or_default();
        let api: Api<Deployment> = Api::namespaced(client.clone(), obj.metadata.namespace.as_deref().unwrap_or("default"));
        loop {
            let d = api.get(&name).await.map_err(|e| DomainError::new(ErrorCode::ReleaseApplyFailed, format!("reading Deployment {name}: {e}")))?;
            let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let generation = d.metadata.generation.unwrap_or(0);
            let st = d.status.unwrap_or_default();
            if st.observed_generation.unwrap_or(0) >= generation && st.updated_replicas.unwrap_or(0) == want && st.available_replicas.unwrap_or(0) == want && st.replicas.unwrap_or(0) == want {
                break;
            }
            if tokio::time::Instant::now() >= until {
                return Err(DomainError::new(
                    ErrorCode::ReleaseApplyFailed,
                    format!("Deployment {name} did not roll out within {deadline:?}: {} of {want} updated, {} available", st.updated_replicas.unwrap_or(0), st.available_replicas.unwrap_or(0)),
                ));
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }
    Ok(())
}

async fn api_for(client: &kube::Client, obj: &DynamicObject) -> Result<(Api<DynamicObject>, String, String, String), DomainError> {
    let types = obj.types.clone().expect("parse_objects checked types");
    let gvk = kube::api::GroupVersionKind::try_from(&types).map_err(|e| DomainError::validation("manifest", e.to_string()))?;
    let (ar, caps) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .map_err(|e| DomainError::validation("manifest", format!("{}/{} is not served by the cluster: {e}", types.api_version, types.kind)))?;
    if caps.scope != Scope::Namespaced {
        return Err(DomainError::validation("manifest", format!("{} is cluster-scoped; releases only change namespaced objects", types.kind)));
    }
    let ns = obj.metadata.namespace.clone().unwrap_or_default();
    let name = obj.metadata.name.clone().unwrap_or_default();
    Ok((Api::namespaced_with(client.clone(), &ns, &ar), name, types.kind, ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering_is_strict_and_objects_are_confined_to_the_target_namespace() {
        let vars: BTreeMap<String, String> = [("image_tag".to_string(), "v2.0.1".to_string())].into();
        let t = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: svc-a\nspec:\n  template:\n    spec:\n      containers:\n      - image: reg/svc-a:{{ image_tag }}\n";
        let out = render(t, &vars).unwrap();
        assert!(out.contains("reg/svc-a:v2.0.1"));
        assert_eq!(render("{{ missing }}", &vars).unwrap_err().code, ErrorCode::ValidationError);
        let objs = parse_objects(&out, "prod").unwrap();
        assert_eq!(objs[0].metadata.namespace.as_deref(), Some("prod"));
        let other = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: kube-system\n";
        assert_eq!(parse_objects(other, "prod").unwrap_err().code, ErrorCode::ValidationError);
        let secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n";
        assert!(parse_objects(secret, "prod").unwrap_err().detail.contains("Secret"));
    }
}
