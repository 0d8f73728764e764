//! The one error dictionary of OpsPilot (SPEC §5).
//!
//! Every error a user can act on is an entry here: a stable numeric code, an
//! `error_key`, the HTTP status the REST layer answers with, and a hint in zh-CN
//! and en. GraphQL `extensions` and the REST envelope both read this table, so
//! the same mistake reads the same everywhere. Numbers never change meaning;
//! new entries go inside the existing ranges.

use serde::Serialize;

/// Which language a hint is wanted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    ZhCn,
}

impl Lang {
    /// Picks the language from an HTTP `Accept-Language` value (zh* → zh-CN, else en).
    pub fn from_accept_language(value: Option<&str>) -> Lang {
        match value {
            Some(v) if v.trim_start().to_ascii_lowercase().starts_with("zh") => Lang::ZhCn,
            _ => Lang::En,
        }
    }
}

/// One row of the dictionary.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ErrorEntry {
    pub code: u32,
    pub key: &'static str,
    pub http_status: u16,
    pub msg: &'static str,
    pub hint_en: &'static str,
    pub hint_zh: &'static str,
}

macro_rules! dictionary {
    ($( $variant:ident = $code:literal, $key:literal, $status:literal, $msg:literal, $en:literal, $zh:literal; )*) => {
        /// A dictionary entry, by name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode { $( $variant, )* }

        /// Every entry of the dictionary, in code order.
        pub const DICTIONARY: &[ErrorEntry] = &[
            $( ErrorEntry { code: $code, key: $key, http_status: $status, msg: $msg, hint_en: $en, hint_zh: $zh }, )*
        ];

        impl ErrorCode {
            /// The dictionary row of this code.
            pub fn entry(self) -> &'static ErrorEntry {
                match self { $( ErrorCode::$variant => &ErrorEntry { code: $code, key: $key, http_status: $status, msg: $msg, hint_en: $en, hint_zh: $zh }, )* }
            }
            /// Looks a code up by its `error_key`.
            pub fn from_key(key: &str) -> Option<ErrorCode> {
                match key { $( $key => Some(ErrorCode::$variant), )* _ => None }
            }
        }
    };
}

dictionary! {
    // 32xxx environments and install tasks
    PreviewRequired = 32001, "preview_required", 409, "preview required", "Run a preview and confirm it before applying.", "请先执行预览并确认后再发布";
    PreviewExpired = 32002, "preview_expired", 409, "preview expired", "The preview has expired; preview again, then apply.", "预览已过期，请重新预览";
    PreviewMismatch = 32003, "preview_mismatch", 409, "preview mismatch", "Parameters or target differ from the preview; preview the changed draft again.", "预览与执行参数不一致，请针对修改后的草稿重新预览";
    EnvironmentNotFound = 32004, "environment_not_found", 404, "environment not found", "Check the environment id or name.", "环境不存在，请检查环境 ID 或名称";
    EnvironmentStatusInvalid = 32005, "environment_status_invalid", 409, "environment status invalid", "The environment's status does not allow this action.", "环境当前状态不允许此操作";
    InstallTaskNotFound = 32006, "install_task_not_found", 404, "install task not found", "Check the task id.", "安装任务不存在，请检查任务 ID";
    InstallTaskStateInvalid = 32007, "install_task_state_invalid", 409, "install task state invalid", "The task's state does not allow this action.", "安装任务当前状态不允许此操作";
    ArtifactManifestMissing = 32008, "artifact_manifest_missing", 422, "artifact manifest missing", "script/manifests/index.yaml is missing, unreadable or not filled in; the detail names what. Once the files are dropped in (script/README.md), `opspilot bundle index <dir>` fills in every sha256 and sizeBytes.", "script/manifests/index.yaml 缺失、无法读取或未填写完整，详情指出缺什么；按 script/README.md 放入文件后，运行 `opspilot bundle index <目录>` 填写 sha256 与 sizeBytes";
    ArtifactMissing = 32009, "artifact_missing", 422, "artifact missing", "A binary or image archive listed in the index is missing; check the script directory.", "安装物料缺失，请检查 script 目录";
    ArtifactChecksumMismatch = 32010, "artifact_checksum_mismatch", 422, "artifact checksum mismatch", "A file's sha256 or size differs from the index; replace the file or re-index the bundle.", "物料校验和不一致，请替换文件或重新生成索引";
    ArtifactVersionUnsupported = 32011, "artifact_version_unsupported", 422, "artifact version unsupported", "The bundle's versions are outside the supported compatibility matrix.", "物料版本不在支持的兼容矩阵内";
    ScriptHookMissing = 32012, "script_hook_missing", 422, "script hook missing", "A hook named in the index is missing from script/hooks.", "索引中声明的钩子脚本缺失";
    ScriptHookExecFailed = 32013, "script_hook_exec_failed", 500, "script hook failed", "A hook exited non-zero; read the step's stderr excerpt and logs.", "钩子脚本执行失败，请查看步骤的 stderr 摘要与日志";
    PreflightFailed = 32014, "preflight_failed", 422, "preflight failed", "A preflight check failed; fix the host and preview again.", "预检失败，请修复主机后重新预览";
    SshUnreachable = 32015, "ssh_unreachable", 502, "ssh unreachable", "The host cannot be reached; check network, address and port.", "目标主机不可达，请检查网络与凭据";
    SshAuthFailed = 32016, "ssh_auth_failed", 502, "ssh authentication failed", "SSH login was refused; check the user and the stored key or password.", "SSH 认证失败，请检查用户与密钥/密码";
    NodeRoleInvalid = 32017, "node_role_invalid", 422, "node role invalid", "Roles are control_plane, worker, compose_manager or compose_worker, matching the runtime.", "节点角色无效，应为 control_plane、worker、compose_manager 或 compose_worker";
    InsufficientNodes = 32018, "insufficient_nodes", 422, "insufficient nodes", "The runtime needs more nodes of a role; bind more hosts.", "节点数量不足，请绑定更多主机";
    SshHostKeyMismatch = 32019, "ssh_host_key_mismatch", 502, "ssh host key changed", "The host presented a key other than the pinned one; an admin must verify and re-trust it.", "主机密钥与已固定的不一致，需管理员核实后重新信任";
    InstallTaskCancelled = 32020, "install_task_cancelled", 409, "install task cancelled", "The task was cancelled; what ran stays on the hosts: repair or roll back, or preview again.", "安装任务已取消，已执行的部分保留在主机上：可修复、回滚或重新预览";
    // 33xxx clusters and certificates
    ClusterNotFound = 33001, "cluster_not_found", 404, "cluster not found", "Check the cluster id or name.", "集群不存在，请检查集群 ID 或名称";
    ClusterConnectionNotFound = 33002, "cluster_connection_not_found", 404, "cluster connection not found", "The cluster has no stored connection; import one.", "集群没有可用的连接信息，请先导入";
    KubeconfigInvalid = 33003, "kubeconfig_invalid", 422, "kubeconfig invalid", "The kubeconfig is not valid YAML or lacks a cluster, user or context.", "kubeconfig 无效或格式错误";
    CertificateInvalid = 33004, "certificate_invalid", 422, "certificate invalid", "A certificate or key is not valid PEM, or they do not match.", "证书或私钥无效，或二者不匹配";
    EndpointInvalid = 33005, "endpoint_invalid", 422, "endpoint invalid", "The endpoint must be an https:// URL with a host and port.", "API 地址无效，应为带主机与端口的 https:// 地址";
    ClusterConnectFailed = 33006, "cluster_connect_failed", 502, "cluster connect failed", "The API server did not answer or refused the credentials.", "无法连接集群 API，请检查网络与凭据";
    ClusterPermissionInsufficient = 33007, "cluster_permission_insufficient", 403, "cluster permission insufficient", "The credentials lack verbs a release needs; grant them and retry.", "凭据权限不足，请授予所需权限后重试";
    CertRotationNotAllowed = 33008, "cert_rotation_not_allowed", 409, "certificate rotation not allowed", "Only platform-created clusters can have their certificates rotated.", "仅平台创建的集群支持证书轮转";
    CertRotationFailed = 33009, "cert_rotation_failed", 500, "certificate rotation failed", "Rotation failed; read the task's steps and logs.", "证书轮转失败，请查看任务步骤与日志";
    KubeadmInitFailed = 33010, "kubeadm_init_failed", 500, "kubeadm init failed", "kubeadm init failed on the control plane; read the step log.", "kubeadm init 失败，请查看步骤日志";
    KubeadmJoinFailed = 33011, "kubeadm_join_failed", 500, "kubeadm join failed", "A node failed to join; read the step log.", "节点加入集群失败，请查看步骤日志";
    CniInstallFailed = 33012, "cni_install_failed", 500, "cni install failed", "The CNI could not be installed; read the step log.", "CNI 安装失败，请查看步骤日志";
    K8sBinaryMissing = 33013, "k8s_binary_missing", 422, "kubernetes binary missing", "A Kubernetes binary is missing from the bundle.", "安装包中缺少 Kubernetes 二进制";
    K8sVersionIncompatible = 33014, "k8s_version_incompatible", 422, "kubernetes version incompatible", "The Kubernetes version is outside the bundle's compatibility matrix.", "Kubernetes 版本不兼容";
    // 331xx network entry
    VipConflict = 33101, "vip_conflict", 409, "vip conflict", "The VIP is already in use on the network; choose another address.", "VIP 与现有地址冲突，请更换";
    VipUnreachable = 33102, "vip_unreachable", 502, "vip unreachable", "The VIP does not answer on the health port.", "VIP 不可达";
    LvsBinaryMissing = 33103, "lvs_binary_missing", 422, "lvs binary missing", "keepalived or ipvsadm is missing from the bundle or host.", "缺少 keepalived 或 ipvsadm";
    KeepalivedConfigInvalid = 33104, "keepalived_config_invalid", 422, "keepalived config invalid", "The rendered keepalived.conf failed its check.", "keepalived 配置校验失败";
    BackendNodesInvalid = 33105, "backend_nodes_invalid", 422, "backend nodes invalid", "At least two backend nodes in one subnet with SSH configured are needed.", "后端节点无效：至少 2 个、同网段且已配置 SSH";
    NetworkEntryPreviewRequired = 33106, "network_entry_preview_required", 409, "network entry preview required", "Preview the network entry before applying it.", "请先预览网络入口再执行";
    NetworkEntryPreviewExpired = 33107, "network_entry_preview_expired", 409, "network entry preview expired", "The network entry preview has expired; preview again.", "网络入口预览已过期，请重新预览";
    NetworkEntryApplyFailed = 33108, "network_entry_apply_failed", 500, "network entry apply failed", "Applying the network entry failed; read the task and retry.", "网络入口部署失败，请查看任务后重试";
    // 34xxx compose
    ComposeBinaryMissing = 34001, "compose_binary_missing", 422, "compose binary missing", "docker or the compose plugin is missing on the host; install the compose runtime.", "主机缺少 docker 或 compose 插件，请先安装 Compose 运行时";
    ComposeUpFailed = 34004, "compose_up_failed", 500, "compose up failed", "docker compose up failed; read its output.", "docker compose up 失败，请查看输出";
    ComposePsFailed = 34005, "compose_ps_failed", 500, "compose ps failed", "docker compose ps failed on the host.", "docker compose ps 失败";
    ComposeRollbackFailed = 34006, "compose_rollback_failed", 500, "compose rollback failed", "Restoring the previous compose file failed; read its output.", "Compose 回滚失败，请查看输出";
    ComposeProjectConflict = 34007, "compose_project_conflict", 409, "compose project conflict", "Another target already uses this compose project on the host.", "该主机上已有同名 Compose 项目";
    ComposeHostUnhealthy = 34008, "compose_host_unhealthy", 502, "compose host unhealthy", "The Docker engine on the host does not answer.", "Compose 主机上的 Docker 引擎不健康";
    // 35xxx releases and approvals
    ReleaseNotFound = 35001, "release_not_found", 404, "release not found", "Check the release id.", "发布不存在，请检查发布 ID";
    ReleaseStateInvalid = 35002, "release_state_invalid", 409, "release state invalid", "The release's state does not allow this action.", "发布当前状态不允许此操作";
    ApprovalRequired = 35003, "approval_required", 409, "approval required", "This action needs approval; it is waiting in the approval inbox.", "该操作需要审批，已进入审批收件箱";
    ApprovalTicketNotFound = 35004, "approval_ticket_not_found", 404, "approval ticket not found", "Check the ticket; tickets of other projects are not visible.", "审批票据不存在或不可见";
    ApprovalTicketExpired = 35005, "approval_ticket_expired", 409, "approval ticket expired", "The ticket expired; submit the request again.", "审批已过期，建议重新提交";
    ApprovalTicketScopeMismatch = 35006, "approval_ticket_scope_mismatch", 409, "approval ticket scope mismatch", "The ticket does not match this release context; request approval again.", "审批票据与当前发布上下文不匹配，需重提审批";
    ApprovalTicketNotApproved = 35007, "approval_ticket_not_approved", 409, "approval ticket not approved", "The ticket has not been approved yet.", "审批票据尚未通过";
    ApprovalPermissionDenied = 35008, "approval_permission_denied", 403, "approval permission denied", "You may not approve this ticket (missing permission, or it is your own request).", "无审批权限（缺少权限或不能审批自己的申请）";
    ReleaseApplyFailed = 35009, "release_apply_failed", 500, "release apply failed", "Applying the release failed; read the timeline for the reason.", "发布执行失败，请查看时间线中的原因";
    ReleaseRollbackFailed = 35010, "release_rollback_failed", 500, "release rollback failed", "The rollback failed; read the timeline for the reason.", "回滚失败，请查看时间线中的原因";
    ReleaseTimelineUnavailable = 35011, "release_timeline_unavailable", 503, "release timeline unavailable", "The timeline cannot be read right now; retry shortly.", "时间线暂不可用，请稍后重试";
    ApprovalTicketDecided = 35012, "approval_ticket_decided", 409, "approval ticket already decided", "The ticket was already approved, rejected or cancelled; reload it.", "审批票据已处理（已通过、已驳回或已取消），请刷新";
    ReleaseCancelled = 35013, "release_cancelled", 409, "release cancelled", "The release was cancelled before it ran; preview again to ship it.", "发布已在执行前取消，如需发布请重新预览";
    ApprovalRejected = 35014, "approval_rejected", 409, "approval rejected", "The request was rejected in the approval inbox; read the comment, change it and request again.", "审批被驳回，请查看意见、调整后重新提交";
    // 36xxx general
    PermissionDenied = 36001, "permission_denied", 403, "permission denied", "Your role lacks the permission for this action; ask an admin.", "权限不足，请联系管理员";
    ProjectScopeDenied = 36002, "project_scope_denied", 403, "project scope denied", "This resource belongs to a project you are not a member of.", "无权访问该项目的资源";
    TeamScopeDenied = 36003, "team_scope_denied", 403, "team scope denied", "This resource belongs to a team you are not a member of.", "无权访问该团队的资源";
    ValidationError = 36004, "validation_error", 422, "validation error", "Check the named field and send the request again.", "参数校验失败，请检查字段后重试";
    ResourceConflict = 36005, "resource_conflict", 409, "resource conflict", "The resource changed or already exists; reload and retry.", "资源冲突（已存在或已被修改），请刷新后重试";
    ResourceLocked = 36006, "resource_locked", 423, "resource locked", "Another operation holds this resource; retry when it finishes.", "资源被其他操作占用，请稍后重试";
    RateLimited = 36007, "rate_limited", 429, "rate limited", "Too many attempts; wait a minute and retry.", "请求过于频繁，请稍后重试";
    InternalError = 36008, "internal_error", 500, "internal error", "Something went wrong on our side; retry, and report the request id if it persists.", "服务内部错误，请重试；若持续出现请反馈请求 ID";
    Unauthenticated = 36009, "unauthenticated", 401, "unauthenticated", "Log in (POST /api/v1/auth/login) and send the token as Authorization: Bearer.", "请先登录，并以 Authorization: Bearer 携带令牌";
    NotFound = 36010, "not_found", 404, "not found", "The resource does not exist or is not visible to you.", "资源不存在或不可见";
}

impl ErrorCode {
    /// The numeric code.
    pub fn code(self) -> u32 {
        self.entry().code
    }
    /// The `error_key`.
    pub fn key(self) -> &'static str {
        self.entry().key
    }
    /// The hint in the wanted language.
    pub fn hint(self, lang: Lang) -> &'static str {
        match lang {
            Lang::En => self.entry().hint_en,
            Lang::ZhCn => self.entry().hint_zh,
        }
    }
}

/// An error the user can act on: a dictionary code plus what exactly went wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {detail}", code.key())]
pub struct DomainError {
    pub code: ErrorCode,
    /// Human-readable specifics (which field, which stream); never secret material.
    pub detail: String,
}

impl DomainError {
    /// Builds an error from a code and its specifics.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        DomainError { code, detail: detail.into() }
    }
    /// A `validation_error` naming the field.
    pub fn validation(field: &str, why: impl std::fmt::Display) -> Self {
        DomainError::new(ErrorCode::ValidationError, format!("{field}: {why}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Every code of the seed conversation, with its exact number.
    const SEED: &[(u32, &str)] = &[
        (32001, "preview_required"), (32002, "preview_expired"), (32003, "preview_mismatch"),
        (32004, "environment_not_found"), (32005, "environment_status_invalid"),
        (32006, "install_task_not_found"), (32007, "install_task_state_invalid"),
        (32008, "artifact_manifest_missing"), (32009, "artifact_missing"),
        (32010, "artifact_checksum_mismatch"), (32011, "artifact_version_unsupported"),
        (32012, "script_hook_missing"), (32013, "script_hook_exec_failed"), (32014, "preflight_failed"),
        (32015, "ssh_unreachable"), (32016, "ssh_auth_failed"), (32017, "node_role_invalid"),
        (32018, "insufficient_nodes"),
        (33001, "cluster_not_found"), (33002, "cluster_connection_not_found"), (33003, "kubeconfig_invalid"),
        (33004, "certificate_invalid"), (33005, "endpoint_invalid"), (33006, "cluster_connect_failed"),
        (33007, "cluster_permission_insufficient"), (33008, "cert_rotation_not_allowed"),
        (33009, "cert_rotation_failed"), (33010, "kubeadm_init_failed"), (33011, "kubeadm_join_failed"),
        (33012, "cni_install_failed"), (33013, "k8s_binary_missing"), (33014, "k8s_version_incompatible"),
        (33101, "vip_conflict"), (33102, "vip_unreachable"), (33103, "lvs_binary_missing"),
        (33104, "keepalived_config_invalid"), (33105, "backend_nodes_invalid"),
        (33106, "network_entry_preview_required"), (33107, "network_entry_preview_expired"),
        (33108, "network_entry_apply_failed"),
        (34001, "compose_binary_missing"), (34004, "compose_up_failed"), (34005, "compose_ps_failed"),
        (34006, "compose_rollback_failed"), (34007, "compose_project_conflict"), (34008, "compose_host_unhealthy"),
        (35001, "release_not_found"), (35002, "release_state_invalid"), (35003, "approval_required"),
        (35004, "approval_ticket_not_found"), (35005, "approval_ticket_expired"),
        (35006, "approval_ticket_scope_mismatch"), (35007, "approval_ticket_not_approved"),
        (35008, "approval_permission_denied"), (35009, "release_apply_failed"),
        (35010, "release_rollback_failed"), (35011, "release_timeline_unavailable"),
        (36001, "permission_denied"), (36002, "project_scope_denied"), (36003, "team_scope_denied"),
        (36004, "validation_error"), (36005, "resource_conflict"), (36006, "resource_locked"),
        (36007, "rate_limited"), (36008, "internal_error"),
    ];

    #[test]
    fn every_seed_code_is_in_the_dictionary_with_its_exact_number() {
        for (code, key) in SEED {
            let found = ErrorCode::from_key(key).unwrap_or_else(|| panic!("{key} missing"));
            assert_eq!(found.code(), *code, "{key} has the wrong number");
        }
    }

    #[test]
    fn codes_and_keys_are_unique_and_hints_exist_in_both_languages() {
        let codes: HashSet<u32> = DICTIONARY.iter().map(|e| e.code).collect();
        let keys: HashSet<&str> = DICTIONARY.iter().map(|e| e.key).collect();
        assert_eq!(codes.len(), DICTIONARY.len());
        assert_eq!(keys.len(), DICTIONARY.len());
        for e in DICTIONARY {
            assert!(!e.hint_en.is_empty() && !e.hint_zh.is_empty(), "{} lacks a hint", e.key);
            assert!((32001..=36999).contains(&e.code), "{} is outside the ranges", e.key);
        }
    }

    #[test]
    fn accept_language_picks_the_hint() {
        assert_eq!(Lang::from_accept_language(Some("zh-CN,zh;q=0.9")), Lang::ZhCn);
        assert_eq!(Lang::from_accept_language(Some("en-US")), Lang::En);
        assert_eq!(ErrorCode::PreviewRequired.hint(Lang::ZhCn), "请先执行预览并确认后再发布");
    }
}
