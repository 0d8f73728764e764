//! What a GraphQL request must pass before anything recursive runs: a
//! bounded nesting of the JSON body and of the document, one operation (no
//! batches), text without NUL or control characters, a cost that counts
//! every field, alias and fragment spread without expanding them, and a
//! token for anything but `login` (introspection included, unless the schema
//! is public for GraphiQL in development).

use std::collections::HashMap;

use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet};
use opspilot_domain::ErrorCode;
use serde_json::Value;

use crate::error::ApiError;

/// The deepest nesting of brackets a body or document may have.
pub const MAX_NESTING: usize = 64;

/// Limits of the GraphQL door.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_complexity: usize,
    pub public_schema: bool,
}

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::ValidationError, detail)
}

/// Refuses text whose `[`, `{` and `(` nest deeper than `max`, outside
/// strings and comments. Linear, no recursion: it runs before any parser.
pub fn check_nesting(what: &str, text: &str, max: usize) -> Result<(), ApiError> {
    let (mut depth, mut in_string, mut escaped, mut in_comment) = (0usize, false, false, false);
    for c in text.chars() {
        if in_comment {
            in_comment = c != '\n' && c != '\r';
        } else if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
        } else {
            match c {
                '"' => in_string = true,
                '#' if what == "query" => in_comment = true,
                '[' | '{' | '(' => {
                    depth += 1;
                    if depth > max {
                        return Err(invalid(format!("{what}: nested deeper than {max} levels")));
                    }
                }
                ']' | '}' | ')' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
    }
    Ok(())
}

/// Refuses NUL and control characters (tab, newline and carriage return
/// aside) in any string of a JSON value, naming where.
pub fn check_text(v: &Value, at: &str) -> Result<(), ApiError> {
    let mut stack = vec![(v, at.to_string())];
    while let Some((v, at)) = stack.pop() {
        match v {
            Value::String(s) => check_str(&at, s)?,
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, at.clone()))),
            Value::Object(m) => {
                for (k, v) in m {
                    check_str(&at, k)?;
                    let field = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
                    stack.push((v, field));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Refuses NUL and control characters (tab, newline and carriage return aside).
pub fn check_str(field: &str, s: &str) -> Result<(), ApiError> {
    opspilot_domain::text::check(if field.is_empty() { "body" } else { field }, s, usize::MAX).map_err(ApiError::from)
}

/// Reads a `POST /graphql` body into one request.
pub fn parse_body(body: &[u8]) -> Result<async_graphql::Request, ApiError> {
    let text = std::str::from_utf8(body).map_err(|_| invalid("body: not UTF-8"))?;
    check_nesting("body", text, MAX_NESTING)?;
    let value: Value = serde_json::from_str(text).map_err(|e| invalid(format!("body: not JSON: {e}")))?;
    if value.is_array() {
        return Err(invalid("body: batched requests are not supported; send one operation per request"));
    }
    check_text(&value, "")?;
    let req: async_graphql::Request = serde_json::from_value(value).map_err(|e| invalid(format!("body: not a GraphQL request: {e}")))?;
    check_nesting("query", &req.query, MAX_NESTING)?;
    Ok(req)
}

/// Checks the document of `req` for a caller (`signed_in`) under `limits`.
/// The document is parsed once, into `req`, and the executor reuses it.
pub fn check_document(req: &mut async_graphql::Request, signed_in: bool, limits: Limits) -> Result<(), ApiError> {
    let operation_name = req.operation_name.clone();
    let doc = req.parsed_query().map_err(|e| invalid(format!("query: {}", e.message)))?;
    // String literals of the document, as the executor would read them.
    check_text(&serde_json::to_value(doc).unwrap_or_default(), "query")?;
    let ops: Vec<_> = doc.operations.iter().collect();
    let op = match (&operation_name, ops.as_slice()) {
        (None, [(_, op)]) => *op,
        (None, _) => return Err(invalid("operationName: the document has several operations; name one")),
        (Some(name), _) => ops.iter().find(|(n, _)| n.map(|n| n.as_str()) == Some(name.as_str())).map(|(_, op)| *op).ok_or_else(|| invalid(format!("operationName: no operation {name:?}")))?,
    };
    check_cost(doc, &op.node.selection_set.node, limits.max_complexity)?;
    if !signed_in {
        let only_login = op.node.ty == OperationType::Mutation
            && op.node.selection_set.node.items.iter().all(|s| matches!(&s.node, Selection::Field(f) if f.node.name.node == "login"));
        let introspection_only = limits.public_schema && op.node.ty == OperationType::Query && introspects_only(doc, &op.node.selection_set.node);
        if !(only_login || introspection_only) {
            return Err(ApiError::new(ErrorCode::Unauthenticated, "sign in first: without a token only the login mutation is answered"));
        }
    }
    Ok(())
}

/// True when every top-level field is `__schema`, `__type` or `__typename`.
fn introspects_only(doc: &ExecutableDocument, set: &SelectionSet) -> bool {
    set.items.iter().all(|s| match &s.node {
        Selection::Field(f) => f.node.name.node.starts_with("__"),
        Selection::InlineFragment(i) => introspects_only(doc, &i.node.selection_set.node),
        Selection::FragmentSpread(sp) => doc.fragments.get(&sp.node.fragment_name.node).is_some_and(|f| introspects_only(doc, &f.node.selection_set.node)),
    })
}

/// Refuses a selection set that would resolve more than `max` fields.
fn check_cost(doc: &ExecutableDocument, set: &SelectionSet, max: usize) -> Result<(), ApiError> {
    let total = Cost { doc, memo: HashMap::new(), visiting: Vec::new() }.of(set)?;
    if total > max as u64 {
        return Err(invalid(format!("query: costs {total} fields with fragments spread, the limit is {max}")));
    }
    Ok(())
}

/// Fields a selection set would resolve, fragments counted once each and
/// reused (so spreading a fragment twice costs twice without expanding it).
struct Cost<'a> {
    doc: &'a ExecutableDocument,
    memo: HashMap<&'a str, u64>,
    visiting: Vec<&'a str>,
}

impl<'a> Cost<'a> {
    fn of(&mut self, set: &'a SelectionSet) -> Result<u64, ApiError> {
        let mut total: u64 = 0;
        for s in &set.items {
            let c = match &s.node {
                Selection::Field(f) => 1u64.saturating_add(self.of(&f.node.selection_set.node)?),
                Selection::InlineFragment(i) => self.of(&i.node.selection_set.node)?,
                Selection::FragmentSpread(sp) => self.fragment(sp.node.fragment_name.node.as_str())?,
            };
            total = total.saturating_add(c);
        }
        Ok(total)
    }

    fn fragment(&mut self, name: &'a str) -> Result<u64, ApiError> {
        if let Some(c) = self.memo.get(name) {
            return Ok(*c);
        }
        if self.visiting.contains(&name) {
            return Err(invalid(format!("query: fragment {name} spreads itself")));
        }
        let def = self.doc.fragments.iter().find(|(n, _)| n.as_str() == name).map(|(_, d)| d).ok_or_else(|| invalid(format!("query: unknown fragment {name}")))?;
        self.visiting.push(name);
        let c = self.of(&def.node.selection_set.node)?;
        self.visiting.pop();
        self.memo.insert(name, c);
        Ok(c)
    }
}

/// The nesting bound and the cost as a schema extension, so documents that
/// arrive over the WebSocket pass them before the parser and the validator too.
#[derive(Clone, Copy)]
pub struct NestingGuard {
    pub max_complexity: usize,
}

impl async_graphql::extensions::ExtensionFactory for NestingGuard {
    fn create(&self) -> std::sync::Arc<dyn async_graphql::extensions::Extension> {
        std::sync::Arc::new(*self)
    }
}

#[async_graphql::async_trait::async_trait]
impl async_graphql::extensions::Extension for NestingGuard {
    async fn parse_query(
        &self,
        ctx: &async_graphql::extensions::ExtensionContext<'_>,
        query: &str,
        variables: &async_graphql::Variables,
        next: async_graphql::extensions::NextParseQuery<'_>,
    ) -> async_graphql::ServerResult<ExecutableDocument> {
        let refuse = |e: ApiError| e.into_graphql().into_server_error(Default::default());
        check_nesting("query", query, MAX_NESTING).map_err(refuse)?;
        let doc = next.run(ctx, query, variables).await?;
        for (_, op) in doc.operations.iter() {
            check_cost(&doc, &op.node.selection_set.node, self.max_complexity).map_err(refuse)?;
        }
        Ok(doc)
    }
}

/// GraphQL errors that carry no dictionary code (syntax, validation, depth,
/// argument parsing) get `validation_error`'s.
pub fn with_dictionary_codes(mut resp: async_graphql::Response, lang: opspilot_domain::Lang) -> async_graphql::Response {
    for e in &mut resp.errors {
        if e.extensions.as_ref().is_some_and(|x| x.get("code").is_some()) {
            continue;
        }
        let mut ext = e.extensions.take().unwrap_or_default();
        let code = ErrorCode::ValidationError;
        ext.set("code", code.code());
        ext.set("error_key", code.key());
        ext.set("hint", code.hint(lang));
        ext.set("detail", e.message.clone());
        e.extensions = Some(ext);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_counted_outside_strings_and_comments() {
        let deep = format!("{{ me(x: {}1{}) {{ id }} }}", "[".repeat(3000), "]".repeat(3000));
        assert!(check_nesting("query", &deep, MAX_NESTING).is_err());
        let quoted = format!("{{ me(x: \"{}\") {{ id }} }} # {}", "[".repeat(3000), "{".repeat(3000));
        assert!(check_nesting("query", &quoted, MAX_NESTING).is_ok());
    }

    #[test]
    fn a_fragment_bomb_is_costed_without_expanding_it() {
        let mut q = String::from("query { ...f0 }\n");
        for i in 0..40 {
            q.push_str(&format!("fragment f{i} on Query {{ ...f{} ...f{} }}\n", i + 1, i + 1));
        }
        q.push_str("fragment f40 on Query { __typename }\n");
        let mut req = async_graphql::Request::new(q);
        let e = check_document(&mut req, true, Limits { max_complexity: 1000, public_schema: false }).unwrap_err();
        assert!(e.detail.contains("costs"), "{}", e.detail);
    }
}
