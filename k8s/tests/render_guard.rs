//! Property: whatever a variable holds, the rendered manifest has the
//! template's structure with the value as the text of its one scalar, or
//! the render is refused as a `validation_error` naming a variable.

use std::collections::BTreeMap;

use opspilot_domain::ErrorCode;
use opspilot_k8s::manifest::render;
use proptest::prelude::*;
use serde_yaml::Value;

/// A variable in positions YAML treats differently: a flow mapping, plain,
/// double-quoted, single-quoted, and a list item.
const TEMPLATE: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n  labels: { app: {{ v }} }\ndata:\n  plain: {{ v }}\n  double: \"{{ v }}\"\n  single: '{{ v }}'\n  list:\n  - {{ v }}\n";

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Strings rich in what YAML gives meaning to.
fn hostile() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("\n".to_string()), Just(": ".to_string()), Just("- ".to_string()), Just("---\n".to_string()), Just("#".to_string()),
        Just("\"".to_string()), Just("'".to_string()), Just("{".to_string()), Just("}".to_string()), Just("[".to_string()), Just("]".to_string()),
        Just(",".to_string()), Just("&a ".to_string()), Just("*a".to_string()), Just("!!str ".to_string()), Just("|".to_string()), Just(">".to_string()),
        Just("  ".to_string()), Just("\t".to_string()), Just("\\".to_string()), Just("$(id)".to_string()), Just("{{ v }}".to_string()),
        "[a-z0-9]{1,6}",
    ];
    prop::collection::vec(piece, 0..8).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn a_variable_lands_as_one_scalar_or_is_refused(value in prop_oneof![hostile(), any::<String>()]) {
        let vars: BTreeMap<String, String> = [("v".to_string(), value.clone())].into();
        match render(TEMPLATE, &vars) {
            Err(e) => {
                prop_assert_eq!(e.code, ErrorCode::ValidationError);
                prop_assert!(e.detail.starts_with("variables"), "{}", e.detail);
            }
            Ok(out) => {
                let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&out).map(|d| serde::Deserialize::deserialize(d).unwrap()).collect();
                prop_assert_eq!(docs.len(), 1);
                let doc = &docs[0];
                let keys: Vec<String> = doc.as_mapping().unwrap().keys().filter_map(text).collect();
                prop_assert_eq!(keys, vec!["apiVersion", "kind", "metadata", "data"]);
                let labels = doc["metadata"]["labels"].as_mapping().unwrap();
                prop_assert_eq!(labels.len(), 1);
                prop_assert_eq!(text(&labels[&Value::from("app")]), Some(value.clone()));
                let data = doc["data"].as_mapping().unwrap();
                prop_assert_eq!(data.len(), 4);
                for k in ["plain", "double", "single"] {
                    prop_assert_eq!(text(&data[&Value::from(k)]), Some(value.clone()));
                }
                let list = data[&Value::from("list")].as_sequence().unwrap();
                prop_assert_eq!(list.len(), 1);
                prop_assert_eq!(text(&list[0]), Some(value.clone()));
            }
        }
    }
}
