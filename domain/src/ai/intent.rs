//! The built-in intent engine: a sentence in Chinese, English or both becomes
//! an intent with the API's own parameter names. Deterministic, no model, no
//! catalog: names stay as the user wrote them (the session resolves them
//! against what the user may see), environment aliases are normalised
//! (生产 / prod → `production`), and what is still needed is listed in
//! `missing` so the session asks instead of guessing.

use std::collections::BTreeMap;

use serde::Serialize;
use unicode_normalization::UnicodeNormalization;

/// What the user wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    Release,
    Rollback,
    Status,
    MyApprovals,
    Approve,
    Reject,
    InstallPreview,
    Explain,
    Cancel,
    Help,
    Unknown,
}

impl Intent {
    pub fn as_str(self) -> &'static str {
        match self {
            Intent::Release => "release",
            Intent::Rollback => "rollback",
            Intent::Status => "status",
            Intent::MyApprovals => "my_approvals",
            Intent::Approve => "approve",
            Intent::Reject => "reject",
            Intent::InstallPreview => "install_preview",
            Intent::Explain => "explain",
            Intent::Cancel => "cancel",
            Intent::Help => "help",
            Intent::Unknown => "unknown",
        }
    }
}

/// The parameters a sentence states, named as the API names them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Params {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<u32>,
}

/// A parsed sentence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Parsed {
    pub intent: Intent,
    pub params: Params,
    /// API names still needed before the intent can run.
    pub missing: Vec<&'static str>,
    /// 0..1: how sure the engine is (keyword found, fuzzy keyword, guessed).
    pub confidence: f32,
    /// Set when the sentence asks for secret material, which is never shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guard: Option<&'static str>,
    /// Every parameter the sentence states, whatever the intent takes.
    #[serde(skip)]
    pub stated: Params,
    /// A bare version token, if any.
    #[serde(skip)]
    pub version: Option<String>,
}

/// The release parameters of a sentence without an intent of its own ("生产",
/// "svc-a", "镜像改成 v2", "灰度"): an answer to a question, or a change to a draft.
pub fn parse_fragment(parsed: &Parsed) -> Option<Params> {
    let s = &parsed.stated;
    let mut k = Params { service_id: s.service_id.clone(), target_id: s.target_id.clone(), env: s.env.clone(), strategy: s.strategy.clone(), variables: s.variables.clone(), release_id: s.release_id.clone(), ..Params::default() };
    if k.variables.is_empty() {
        if let Some(tag) = parsed.version.clone() {
            k.variables.insert("image_tag".into(), tag);
        }
    }
    (k != Params::default()).then_some(k)
}

/// Normalises environment words: the catalog's canonical values.
pub fn env_alias(word: &str) -> Option<&'static str> {
    match word {
        "prod" | "prd" | "production" | "生产" | "线上" | "正式" => Some("production"),
        "staging" | "stage" | "pre-prod" | "preprod" | "预发" | "预发布" => Some("staging"),
        "test" | "testing" | "qa" | "测试" => Some("test"),
        "dev" | "development" | "开发" => Some("dev"),
        _ => None,
    }
}

const ZH_ENVS: &[&str] = &["预发布", "预发", "生产", "线上", "正式", "测试", "开发"];

/// Parses one sentence; Chinese, English and mixed sentences alike.
pub fn parse(sentence: &str) -> Parsed {
    let text: String = sentence.nfkc().collect::<String>().replace(['\u{3000}', '\u{a0}'], " ");
    let lower = text.to_ascii_lowercase().replace("roll back", "rollback").replace("rolling back", "rollback").replace("blue green", "blue-green");
    let tokens = tokens(&lower);
    let has = |words: &[&str]| words.iter().any(|w| lower.contains(w));
    let word = |words: &[&str]| keyword(&tokens, words);

    let mut p = Params::default();
    for t in &tokens {
        if is_uuid(t) {
            continue;
        }
        if is_ticket(t) {
            p.ticket.get_or_insert_with(|| t.to_string());
        } else if let Some(env) = t.strip_prefix("env-").filter(|r| !r.is_empty()).map(|_| t.to_string()) {
            p.environment_id.get_or_insert(env);
        } else if t.starts_with("target-") && t.len() > 7 {
            p.target_id.get_or_insert_with(|| t.to_string());
        } else if t.len() == 5 && t.bytes().all(|b| b.is_ascii_digit()) {
            p.error_code.get_or_insert(t.parse().expect("digits"));
        } else if is_error_key(t) {
            p.error_key.get_or_insert_with(|| t.to_string());
        } else if let Some(env) = env_alias(t) {
            p.env.get_or_insert_with(|| env.to_string());
        } else if let Some((svc, tag)) = t.split_once(':').filter(|(s, tag)| is_service(s) && is_tag(tag)) {
            p.service_id.get_or_insert_with(|| svc.to_string());
            p.variables.entry("image_tag".into()).or_insert_with(|| tag.to_string());
        } else if is_service(t) {
            p.service_id.get_or_insert_with(|| t.to_string());
        }
    }
    if p.env.is_none() {
        p.env = ZH_ENVS.iter().find(|w| lower.contains(**w)).and_then(|w| env_alias(w)).map(String::from);
    }
    if let Some(target) = after_marker(&lower, &["目标", "target"]).filter(|t| is_name(t) && !t.starts_with("env-")) {
        p.target_id.get_or_insert(target);
    }
    let uuids: Vec<(usize, &str)> = tokens.iter().enumerate().filter(|(_, t)| is_uuid(t)).map(|(i, t)| (i, t.as_str())).collect();
    for (i, id) in uuids {
        let task = tokens[..i].iter().rev().take(2).any(|t| t == "task" || t.ends_with("任务")) || before(&lower, id).ends_with("任务");
        if task {
            p.task_id.get_or_insert_with(|| id.to_string());
        } else {
            p.release_id.get_or_insert_with(|| id.to_string());
        }
    }
    p.strategy = strategy(&lower, &tokens);
    if let Some(tag) = after_marker(&lower, &["镜像版本", "镜像", "版本", "标签", "image tag", "image", "tag", "version"]).filter(|t| is_tag(t)) {
        let tag = tag.rsplit_once(':').map(|(_, t)| t.to_string()).unwrap_or(tag);
        p.variables.entry("image_tag".into()).or_insert(tag);
    }

    let guard = asks_for_secret(&lower, &tokens);
    let (intent, sure) = if guard.is_some() {
        (Intent::Unknown, true)
    } else if word(&["help", "usage", "commands"]).is_some_and(|s| s)
        || has(&["帮助", "你能做什么", "能做什么", "怎么用", "what can you do", "what you can do", "how do i use", "你会什么", "支持哪些", "支持什么", "什么命令", "哪些命令", "能帮我干", "能干啥", "能干什么", "list of commands"])
    {
        (Intent::Help, true)
    } else if has(&["待审批", "待我审批", "等我审批", "我的审批", "审批列表", "等我处理的审批", "需要我审批", "要我审批", "我要审批的", "待处理的审批", "等我批", "要我批", "my approval", "my pending approval", "for my approval", "pending approvals", "awaiting my", "waiting on me", "need my approval", "needs my approval", "my review", "to approve?", "do i need to approve", "should i approve", "waiting for me"])
        || (has(&["审批", "批", "approve"]) && has(&["等我", "我的", "待我", "需要我", "要我"]) && p.ticket.is_none())
        || word(&["approvals"]).is_some() && p.ticket.is_none()
    {
        (Intent::MyApprovals, true)
    } else if known_error(&p)
        || (p.error_key.is_some() || p.error_code.is_some())
            && (word(&["explain", "mean", "meaning", "error", "code"]).is_some() || has(&["什么意思", "是什么", "是啥", "含义", "解释", "怎么回事", "怎么处理", "怎么办", "what does", "what is", "what's", "错误", "报错"]))
    {
        (Intent::Explain, word(&["explain"]).is_none_or(|s| s))
    } else if let Some(s) = word(&["reject", "deny", "decline", "refuse"]).or(has(&["驳回", "拒绝", "打回", "否决", "不批准", "不同意", "不通过"]).then_some(true)) {
        (Intent::Reject, s)
    } else if let Some(s) = word(&["approve", "approved", "lgtm", "accept"]).or(has(&["批准", "同意", "审批通过", "通过审批", "通过", "准了"]).then_some(true)) {
        (Intent::Approve, s)
    } else if let Some(s) = word(&["cancel", "abort", "nevermind"]).or(has(&["取消", "算了", "不发了", "不用发了", "停止发布", "终止", "never mind", "forget it"]).then_some(true)) {
        (Intent::Cancel, s)
    } else if let Some(s) = word(&["rollback", "revert", "undo"]).or(has(&["回滚", "回退", "撤回"]).then_some(true)) {
        if p.environment_id.is_some() && p.service_id.is_none() {
            p.action = Some("rollback".into());
            (Intent::InstallPreview, s)
        } else {
            (Intent::Rollback, s)
        }
    } else if p.environment_id.is_some() && p.service_id.is_none() {
        p.action = Some(install_action(&lower, &tokens).into());
        (Intent::InstallPreview, true)
    } else if let Some(s) = word(&["status", "state", "progress", "health"]).or(has(&["状态", "怎么样", "进度", "进展", "情况", "如何了", "好了没", "成功了吗", "到哪了", "进行到哪", "跑得", "how is", "how's", "what's up with", "is it done", "done yet", "finished yet"]).then_some(true))
        .or((p.task_id.is_some() || p.release_id.is_some()).then_some(false)) {
        (Intent::Status, s)
    } else if let Some(s) = word(&["deploy", "release", "publish", "ship", "rollout", "upgrade", "update", "launch", "push"])
        .or(has(&["发布", "上线", "部署", "发版", "升级", "更新", "发到", "推到", "roll out"]).then_some(true))
    {
        (Intent::Release, s)
    } else if p.service_id.is_some() && (!p.variables.is_empty() || p.env.is_some()) {
        (Intent::Release, false)
    } else {
        (Intent::Unknown, true)
    };

    // A soft status word with nothing named is small talk ("今天天气怎么样").
    let named = p.service_id.is_some() || p.release_id.is_some() || p.task_id.is_some();
    let (intent, sure) = if intent == Intent::Status && !named && word(&["status"]).is_none() && !has(&["状态"]) { (Intent::Unknown, true) } else { (intent, sure) };
    // A bare version token counts as the image tag of a release.
    if intent == Intent::Release && p.variables.is_empty() {
        if let Some(tag) = tokens.iter().find(|t| is_version(t)) {
            p.variables.insert("image_tag".into(), tag.clone());
        }
    }
    if matches!(intent, Intent::Approve | Intent::Reject) {
        p.comment = comment(&text);
    }
    let stated = p.clone();
    let version = tokens.iter().find(|t| is_version(t)).cloned();
    let p = keep_for(intent, p);
    let missing = missing(intent, &p);
    let confidence = match (intent, sure) {
        (Intent::Unknown, _) => 0.0,
        (_, true) if missing.is_empty() => 0.95,
        (_, true) => 0.75,
        (_, false) => 0.55,
    };
    Parsed { intent, params: p, missing, confidence, guard, stated, version }
}

/// Only the parameters an intent takes.
fn keep_for(intent: Intent, p: Params) -> Params {
    let mut k = Params::default();
    match intent {
        Intent::Release => {
            k.service_id = p.service_id;
            k.target_id = p.target_id;
            k.env = p.env;
            k.strategy = p.strategy;
            k.variables = p.variables;
        }
        Intent::Rollback => {
            k.service_id = p.service_id;
            k.env = p.env;
            k.release_id = p.release_id;
        }
        Intent::Status => {
            if p.task_id.is_some() {
                k.task_id = p.task_id;
            } else if p.release_id.is_some() {
                k.release_id = p.release_id;
            } else {
                k.service_id = p.service_id;
                k.env = p.env;
            }
        }
        Intent::Approve | Intent::Reject => {
            k.ticket = p.ticket;
            k.comment = p.comment;
        }
        Intent::InstallPreview => {
            k.environment_id = p.environment_id;
            k.action = p.action;
        }
        Intent::Explain => {
            if p.error_code.is_some() {
                k.error_code = p.error_code;
            } else {
                k.error_key = p.error_key;
            }
        }
        Intent::Cancel => {
            k.release_id = p.release_id;
            k.task_id = p.task_id;
        }
        Intent::MyApprovals | Intent::Help | Intent::Unknown => {}
    }
    k
}

/// The API names an intent still needs.
pub fn missing(intent: Intent, p: &Params) -> Vec<&'static str> {
    let mut m = Vec::new();
    match intent {
        Intent::Release => {
            if p.service_id.is_none() {
                m.push("service_id");
            }
            if p.env.is_none() && p.target_id.is_none() {
                m.push("env");
            }
        }
        Intent::Rollback if p.release_id.is_none() => {
            if p.service_id.is_none() {
                m.push("service_id");
            }
            if p.env.is_none() {
                m.push("env");
            }
        }
        Intent::Status if p.release_id.is_none() && p.task_id.is_none() && p.service_id.is_none() => m.push("service_id"),
        Intent::Approve | Intent::Reject if p.ticket.is_none() => m.push("ticket"),
        Intent::InstallPreview if p.environment_id.is_none() => m.push("environment_id"),
        Intent::Explain if p.error_key.is_none() && p.error_code.is_none() => m.push("error_key"),
        _ => {}
    }
    m
}

/// ASCII words (names, ids, versions) and single CJK runs, in order.
fn tokens(lower: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in lower.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':') {
            cur.push(c);
        } else {
            push_token(&mut out, &mut cur);
            if !c.is_whitespace() && !c.is_ascii_punctuation() {
                out.push(c.to_string());
            }
        }
    }
    push_token(&mut out, &mut cur);
    out
}

fn push_token(out: &mut Vec<String>, cur: &mut String) {
    let t = cur.trim_matches(|c| matches!(c, '-' | '.' | ':' | '_'));
    if !t.is_empty() {
        out.push(t.to_string());
    }
    cur.clear();
}

/// Whether one of `words` is a token, exactly (`Some(true)`) or within one
/// typo for words of five letters or more (`Some(false)`).
fn keyword(tokens: &[String], words: &[&str]) -> Option<bool> {
    if tokens.iter().any(|t| words.contains(&t.as_str())) {
        return Some(true);
    }
    let fuzzy = tokens.iter().any(|t| {
        t.len() >= 5 && t.bytes().all(|b| b.is_ascii_alphabetic()) && env_alias(t).is_none() && !FUZZY.contains(&t.as_str())
            && words.iter().any(|w| FUZZY.contains(w) && typo_distance(t, w) <= 1)
    });
    fuzzy.then_some(false)
}

/// The keywords a typo of is still understood (others must be spelt right).
const FUZZY: &[&str] = &["deploy", "release", "rollback", "status", "approve", "reject", "cancel", "preview", "install", "explain", "approvals", "publish", "revert", "upgrade", "repair", "preflight"];

/// Optimal string alignment distance (one swap of neighbours counts one).
fn typo_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<u8>, Vec<u8>) = (a.bytes().collect(), b.bytes().collect());
    if a.len().abs_diff(b.len()) > 1 {
        return 2;
    }
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for j in 0..=b.len() {
        d[0][j] = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

/// A snake_case word that names an error (`preview_expired`), not a parameter.
fn is_error_key(t: &str) -> bool {
    const NOT: &[&str] = &["blue_green", "image_tag", "service_id", "target_id", "release_id", "task_id", "environment_id", "preview_ref", "my_approvals", "install_preview"];
    t.contains('_') && !NOT.contains(&t) && t.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') && !t.starts_with('_') && !t.ends_with('_')
}

/// Whether the error named is one of OpsPilot's own (then no question word is needed).
fn known_error(p: &Params) -> bool {
    p.error_code.is_some_and(|c| crate::DICTIONARY.iter().any(|e| e.code == c)) || p.error_key.as_deref().is_some_and(|k| crate::ErrorCode::from_key(k).is_some())
}

fn is_uuid(t: &str) -> bool {
    uuid::Uuid::parse_str(t).is_ok() && t.len() == 36
}

fn is_ticket(t: &str) -> bool {
    t.split_once("-appr-").is_some_and(|(kind, id)| !kind.is_empty() && kind.bytes().all(|b| b.is_ascii_lowercase()) && !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// A name as OpsPilot names things: lower-case letters, digits and hyphens.
fn is_name(t: &str) -> bool {
    t.len() >= 2 && t.bytes().next().is_some_and(|b| b.is_ascii_lowercase()) && t.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A service as written without a catalog: a hyphenated name that is no
/// other kind of word.
fn is_service(t: &str) -> bool {
    const NOT: &[&str] = &["pre-prod", "blue-green", "docker-compose", "roll-back", "pre-check", "re-deploy", "check-in", "e-mail"];
    is_name(t) && t.contains('-') && !t.starts_with("env-") && !t.starts_with("target-") && !is_ticket(t) && !NOT.contains(&t) && !t.ends_with("-appr")
}

/// The OCI tag grammar, `latest` included (a warning, not a refusal, at preview).
pub fn is_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty() && b.len() <= 128 && (b[0].is_ascii_alphanumeric() || b[0] == b'_') && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// A token that reads as a version: `v2`, `1.4`, `v2.0.1`, `1.2.3-rc1`, `2024.06.1`.
fn is_version(t: &str) -> bool {
    let core = t.strip_prefix('v').unwrap_or(t);
    let (num, _suffix) = core.split_once('-').unwrap_or((core, ""));
    let parts: Vec<&str> = num.split('.').collect();
    let numeric = !num.is_empty() && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    numeric && is_tag(t) && (t.starts_with('v') || parts.len() >= 2)
}

/// The word after the first marker found, skipping connecting words.
fn after_marker(lower: &str, markers: &[&str]) -> Option<String> {
    for m in markers {
        let mut from = 0;
        while let Some(i) = lower[from..].find(m) {
            let start = from + i + m.len();
            from = start;
            // An ASCII marker must be a whole word.
            if m.is_ascii() && (lower[..start - m.len()].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric()) || lower[start..].chars().next().is_some_and(|c| c.is_ascii_alphanumeric())) {
                continue;
            }
            let mut rest = lower[start..].trim_start();
            for filler in ["改成", "改为", "换成", "设为", "设置为", "用", "为", "是", "to", "=", ":", "：", "of"] {
                rest = rest.strip_prefix(filler).map(str::trim_start).unwrap_or(rest);
            }
            let word: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')).collect();
            let word = word.trim_end_matches(['.', ':', '-']).to_string();
            if !word.is_empty() {
                return Some(word);
            }
        }
    }
    None
}

/// The text before the first occurrence of `needle`.
fn before<'a>(lower: &'a str, needle: &str) -> &'a str {
    lower.find(needle).map(|i| lower[..i].trim_end()).unwrap_or("")
}

fn strategy(lower: &str, tokens: &[String]) -> Option<String> {
    let any = |ws: &[&str]| ws.iter().any(|w| lower.contains(w));
    let tok = |ws: &[&str]| tokens.iter().any(|t| ws.contains(&t.as_str()));
    if any(&["灰度", "金丝雀"]) || tok(&["canary"]) {
        Some("canary".into())
    } else if any(&["蓝绿"]) || tok(&["blue-green", "bluegreen", "blue_green"]) {
        Some("blue_green".into())
    } else if any(&["滚动"]) || tok(&["rolling"]) {
        Some("rolling".into())
    } else if any(&["重建"]) || tok(&["recreate"]) {
        Some("recreate".into())
    } else {
        None
    }
}

fn install_action(lower: &str, tokens: &[String]) -> &'static str {
    let any = |ws: &[&str]| ws.iter().any(|w| lower.contains(w));
    if any(&["预检", "pre-check", "precheck"]) || keyword(tokens, &["preflight"]).is_some() {
        "preflight"
    } else if any(&["升级"]) || keyword(tokens, &["upgrade"]).is_some() {
        "upgrade"
    } else if any(&["修复"]) || keyword(tokens, &["repair", "fix"]).is_some() {
        "repair"
    } else {
        "install"
    }
}

/// Requests for kubeconfigs, keys, tokens or passwords.
fn asks_for_secret(lower: &str, tokens: &[String]) -> Option<&'static str> {
    const WHAT: &[&str] = &["kubeconfig", "private key", "private-key", "privatekey", "私钥", "密钥", "密码", "password", "passwd", "token", "令牌", "证书私钥", "client key", "client-key", "secret", "凭据", "credential", "ca.key", "id_rsa"];
    let hit = WHAT.iter().any(|w| lower.contains(w)) || tokens.iter().any(|t| t == "key" && lower.contains("ssh"));
    hit.then_some("secret_material")
}

/// The comment of an approval or rejection: after a marker, or in quotes.
fn comment(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    const MARKERS: &[&str] = &["原因", "理由", "备注", "说明", "评论", "意见", "because", "reason", "comment", "since", "note", "due to"];
    let mut best: Option<usize> = None;
    for m in MARKERS {
        if let Some(i) = lower.find(m) {
            let whole = !m.is_ascii() || !lower[..i].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric()) && !lower[i + m.len()..].chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
            if whole && best.is_none_or(|b| i + m.len() < b) {
                best = Some(i + m.len());
            }
        }
    }
    let raw = match best {
        Some(start) => text[start..].trim_start_matches(|c: char| c.is_whitespace() || matches!(c, ':' | '：' | '是' | '为' | ',' | '，')).to_string(),
        None => {
            let open = text.find(['"', '“', '「', '\''])?;
            let rest = &text[open + text[open..].chars().next()?.len_utf8()..];
            let close = rest.find(['"', '”', '」', '\''])?;
            rest[..close].to_string()
        }
    };
    let c = raw.trim().trim_matches(|c: char| matches!(c, '"' | '“' | '”' | '「' | '」' | '\'')).trim_end_matches(|c: char| matches!(c, '。' | '.' | '!' | '！' | '?' | '？' | ',' | '，' | ';' | '；') || c.is_whitespace()).trim();
    (!c.is_empty()).then(|| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Parsed {
        parse(s)
    }

    #[test]
    fn the_seed_sentences_parse() {
        let r = p("把 svc-a 发布到生产，镜像 v2.0.1");
        assert_eq!(r.intent, Intent::Release);
        assert_eq!(r.params.service_id.as_deref(), Some("svc-a"));
        assert_eq!(r.params.env.as_deref(), Some("production"));
        assert_eq!(r.params.variables["image_tag"], "v2.0.1");
        assert!(r.missing.is_empty());
        let r = p("deploy svc-b to prod with tag 1.4");
        assert_eq!((r.intent, r.params.env.as_deref(), r.params.variables["image_tag"].as_str()), (Intent::Release, Some("production"), "1.4"));
        let r = p("回滚 svc-b 生产");
        assert_eq!((r.intent, r.params.service_id.as_deref()), (Intent::Rollback, Some("svc-b")));
        assert_eq!(p("roll back svc-b in production").intent, Intent::Rollback);
        assert_eq!(p("svc-a 现在什么状态").intent, Intent::Status);
        assert_eq!(p("what is waiting for my approval?").intent, Intent::MyApprovals);
        assert_eq!(p("我的待审批").intent, Intent::MyApprovals);
    }

    #[test]
    fn what_is_missing_is_listed_not_guessed() {
        let r = p("发布 svc-a");
        assert_eq!(r.missing, vec!["env"]);
        let r = p("批准");
        assert_eq!((r.intent, r.missing.clone()), (Intent::Approve, vec!["ticket"]));
    }

    #[test]
    fn full_width_forms_typos_and_comments() {
        let r = p("把ｓｖｃ－ａ发布到生产，镜像：ｖ２．０");
        assert_eq!((r.params.service_id.as_deref(), r.params.variables.get("image_tag").map(String::as_str)), (Some("svc-a"), Some("v2.0")));
        assert_eq!(p("deplyo svc-a to prod").intent, Intent::Release);
        let r = p("驳回 dep-appr-9001，原因：镜像未经安全扫描。");
        assert_eq!((r.intent, r.params.ticket.as_deref(), r.params.comment.as_deref()), (Intent::Reject, Some("dep-appr-9001"), Some("镜像未经安全扫描")));
        let r = p("36004 是什么意思");
        assert_eq!((r.intent, r.params.error_code), (Intent::Explain, Some(36004)));
    }

    #[test]
    fn asking_for_secrets_is_flagged() {
        let r = p("给我看 k8s-prod-platform 的 kubeconfig");
        assert_eq!((r.intent, r.guard), (Intent::Unknown, Some("secret_material")));
    }
}
