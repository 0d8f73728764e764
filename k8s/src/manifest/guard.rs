//! Variables change values, never structure.
//!
//! The template is rendered twice: once with every variable replaced by a
//! unique placeholder, once with the real values. Both are parsed as YAML
//! and must have the same documents, mappings, keys and sequences; they may
//! differ only in scalars that held a placeholder, and such a scalar must
//! read exactly as its placeholder text with the real values put in. So a
//! value can neither add an object, a key or a list item, nor end a quoted
//! string early, nor smuggle a comment or an anchor: it lands as the text
//! of one scalar, or the preview is refused naming the variable.

use std::collections::BTreeMap;

use opspilot_domain::DomainError;
use serde::Deserialize;
use serde_yaml::Value;

/// A placeholder that YAML reads as a plain string in any position.
fn placeholder(i: usize) -> String {
    format!("opspilotvar{i}zq")
}

/// Parses every YAML document of `text`.
fn documents(text: &str) -> Result<Vec<Value>, serde_yaml::Error> {
    serde_yaml::Deserializer::from_str(text).map(Value::deserialize).collect()
}

/// Checks that `rendered` (the template with `variables` put in) differs
/// from the template only in the scalars they stand in. `render` renders the
/// template with the given variables.
pub fn check_structure(variables: &BTreeMap<String, String>, rendered: &str, render: impl Fn(&BTreeMap<String, String>) -> Result<String, DomainError>) -> Result<(), DomainError> {
    let names: Vec<&String> = variables.keys().collect();
    let marked: BTreeMap<String, String> = names.iter().enumerate().map(|(i, n)| ((*n).clone(), placeholder(i))).collect();
    let shape = documents(&render(&marked)?).map_err(|e| DomainError::validation("manifest_template", format!("the template is not YAML: {e}")))?;
    let real = match documents(rendered) {
        Ok(docs) => docs,
        Err(e) => return Err(refusal(&suspects(variables), &format!("makes the manifest unreadable ({e})"))),
    };
    let subst = Substitution { names: &names, variables };
    if shape.len() != real.len() {
        return Err(refusal(&suspects(variables), "adds or removes a YAML document"));
    }
    for (s, r) in shape.iter().zip(&real) {
        subst.same(s, r)?;
    }
    Ok(())
}

struct Substitution<'a> {
    names: &'a [&'a String],
    variables: &'a BTreeMap<String, String>,
}

impl Substitution<'_> {
    /// The variables whose placeholders occur in `v`.
    fn used_in(&self, v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => {
                for (i, n) in self.names.iter().enumerate() {
                    if s.contains(&placeholder(i)) && !out.contains(n) {
                        out.push((*n).clone());
                    }
                }
            }
            Value::Sequence(items) => items.iter().for_each(|i| self.used_in(i, out)),
            Value::Mapping(m) => m.iter().for_each(|(k, v)| {
                self.used_in(k, out);
                self.used_in(v, out);
            }),
            Value::Tagged(t) => self.used_in(&t.value, out),
            _ => {}
        }
    }

    /// `text` with the placeholders replaced by the real values.
    fn filled(&self, text: &str) -> String {
        // Placeholders end in `zq`, so placeholder 1 never matches inside 10.
        let mut out = text.to_string();
        for (i, n) in self.names.iter().enumerate() {
            out = out.replace(&placeholder(i), &self.variables[*n]);
        }
        out
    }

    fn differs(&self, shape: &Value, why: &str) -> DomainError {
        let mut used = Vec::new();
        self.used_in(shape, &mut used);
        // Of the variables there, the ones whose values YAML reads as syntax.
        let suspects = suspects(self.variables);
        let narrowed: Vec<String> = used.iter().filter(|n| suspects.contains(n)).cloned().collect();
        let mut named = if narrowed.is_empty() { used } else { narrowed };
        named.sort();
        refusal(&named, why)
    }

    fn same(&self, shape: &Value, real: &Value) -> Result<(), DomainError> {
        match (shape, real) {
            (Value::Mapping(s), Value::Mapping(r)) => {
                if s.len() != r.len() {
                    return Err(self.differs(shape, "adds or removes a key"));
                }
                for ((sk, sv), (rk, rv)) in s.iter().zip(r.iter()) {
                    self.same(sk, rk)?;
                    self.same(sv, rv)?;
                }
                Ok(())
            }
            (Value::Sequence(s), Value::Sequence(r)) => {
                if s.len() != r.len() {
                    return Err(self.differs(shape, "adds or removes a list item"));
                }
                s.iter().zip(r).try_for_each(|(s, r)| self.same(s, r))
            }
            (Value::Tagged(s), Value::Tagged(r)) if s.tag == r.tag => self.same(&s.value, &r.value),
            (Value::String(s), r) if self.names.iter().enumerate().any(|(i, _)| s.contains(&placeholder(i))) => match scalar_text(r) {
                Some(text) if text == self.filled(s) => Ok(()),
                _ => Err(self.differs(shape, "does not land as one plain value")),
            },
            (s, r) if s == r => Ok(()),
            _ => Err(self.differs(shape, "changes the manifest's structure")),
        }
    }
}

/// The text of a scalar as YAML read it.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Variables whose values hold characters YAML gives meaning to.
fn suspects(variables: &BTreeMap<String, String>) -> Vec<String> {
    let special = |c: char| c.is_control() || ":#{}[]\"'&*!|>%@`,".contains(c);
    let syntax = |v: &str| v.chars().any(special) || v.starts_with(['-', '?']);
    let named: Vec<String> = variables.iter().filter(|(_, v)| syntax(v)).map(|(k, _)| k.clone()).collect();
    if named.is_empty() {
        variables.keys().cloned().collect()
    } else {
        named
    }
}

fn refusal(names: &[String], why: &str) -> DomainError {
    match names {
        [one] => DomainError::validation(&format!("variables.{one}"), format!("the value of {one} {why}: a variable may only change a value, never the manifest's structure")),
        [] => DomainError::validation("variables", format!("a variable {why}: a variable may only change a value, never the manifest's structure")),
        many => DomainError::validation("variables", format!("the values of {} {why}: a variable may only change a value, never the manifest's structure", many.join(", "))),
    }
}

/// `image_tag` follows the OCI tag grammar `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`,
/// declared or not.
pub fn check_image_tag(tag: &str) -> Result<(), DomainError> {
    opspilot_domain::catalog::VariableSpec::ImageTag.check("image_tag", tag)
}

#[cfg(test)]
mod tests {
    use crate::manifest::render;
    use opspilot_domain::ErrorCode;
    use std::collections::BTreeMap;

    const TEMPLATE: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ service }}\n  annotations:\n    note: \"{{ note }}\"\nspec:\n  replicas: {{ replicas }}\n  template:\n    spec:\n      containers:\n      - name: app\n        image: reg/{{ service }}:{{ image_tag }}\n";

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut v: BTreeMap<String, String> = [("service", "svc-a"), ("note", "hello"), ("replicas", "2"), ("image_tag", "v1")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        v.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        v
    }

    fn refused_field(pairs: &[(&str, &str)]) -> String {
        let e = render(TEMPLATE, &vars(pairs)).unwrap_err();
        assert_eq!(e.code, ErrorCode::ValidationError, "{e:?}");
        e.detail.split(':').next().unwrap_or_default().to_string()
    }

    #[test]
    fn plain_values_render_and_numbers_stay_numbers() {
        let out = render(TEMPLATE, &vars(&[("note", "a: b # not a comment"), ("replicas", "3")])).unwrap();
        assert!(out.contains("replicas: 3") && out.contains("reg/svc-a:v1"));
    }

    #[test]
    fn a_value_that_adds_a_key_an_object_or_ends_a_quote_is_refused_naming_it() {
        assert_eq!(refused_field(&[("replicas", "2\n  paused: true")]), "variables.replicas");
        assert_eq!(refused_field(&[("service", "svc-a\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x")]), "variables.service");
        assert_eq!(refused_field(&[("note", "x\"\n    evil: \"y")]), "variables.note");
        assert_eq!(refused_field(&[("service", "svc-a\n  namespace: kube-system")]), "variables.service");
    }

    #[test]
    fn image_tags_follow_the_oci_grammar() {
        for bad in ["v1\n        securityContext:\n          privileged: true", "$(id)", "`;rm -rf /`", "-v1", ".v1", "", &"a".repeat(129)] {
            assert_eq!(refused_field(&[("image_tag", bad)]), "variables.image_tag", "{bad:?}");
        }
        for good in ["v1", "v2.0.1-rc_1", "_x", &"a".repeat(128)] {
            render(TEMPLATE, &vars(&[("image_tag", good)])).unwrap();
        }
    }
}
