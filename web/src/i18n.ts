// UI texts in zh-CN (the default) and en. State labels are not here: they
// come from states.json, the one table every page reads.
import i18n from 'i18next';
import { initReactI18next } from 'react-i18next';
import { lang } from './api/client';

const zh = {
  app: { title: 'OpsPilot', logout: '退出登录', language: 'English', project: '项目', allProjects: '全部项目' },
  nav: { home: '首页', deploy: '发布', releases: '发布记录', ai: 'AI 助手', inbox: '审批中心', environments: '环境', hosts: '主机', clusters: '集群', audit: '审计', users: '用户与角色' },
  login: { title: '登录 OpsPilot', username: '用户名', password: '密码', submit: '登录', required: '请输入{{field}}' },
  common: {
    refresh: '刷新', submit: '提交', cancel: '取消', confirm: '确认', create: '创建', save: '保存', actions: '操作', status: '状态', name: '名称',
    time: '时间', source: '来源', actor: '操作人', detail: '详情', comment: '意见', search: '搜索', none: '暂无数据', loading: '加载中…', open: '打开',
    nextStep: '下一步', errorKey: '错误码', project: '项目', env: '环境', all: '全部',
  },
  sources: { deployment_ui: '控制台', ai_command_center: 'AI 助手', approval_inbox: '审批中心', system_scheduler: '调度器', api_direct: 'API' },
  home: {
    canDo: '我可以做什么', release: '发布服务', rollback: '回滚发布', askAi: '问 AI 助手', inFlight: '我进行中的发布', myRequests: '我发起的审批',
    waitingForMe: '等我审批的工单', problems: '有问题的集群与环境', noProblems: '一切正常', metrics: '交付指标（近 30 天）',
    frequency: '发布次数', leadTime: '交付时长（预览→发布，分钟）', failureRate: '变更失败率', restore: '恢复时长（分钟）',
  },
  deploy: {
    title: '发布服务', service: '服务', target: '目标', env: '环境', strategy: '发布策略', variables: '变量', addVariable: '添加变量',
    key: '变量名', value: '值', preview: '预览', repreview: '重新预览', confirm: '确认发布', checks: '检查项', warnings: '警告',
    diff: '清单对比', current: '当前运行', next: '本次发布', expiresIn: '预览有效期', expired: '预览已过期，请重新预览', firstRelease: '首次发布（当前无运行版本）',
    risk: '风险等级', sent: '已提交发布', pendingApproval: '已提交审批，等待审批人处理',
  },
  release: {
    title: '发布详情', timeline: '时间线', rollback: '回滚', cancel: '撤回', rollbackConfirm: '回滚到上一个已发布版本？', lastError: '最近错误', list: '发布记录',
    mineOnly: '只看我的', id: '发布 ID',
  },
  ai: {
    title: 'AI 助手', newSession: '新对话', placeholder: '例如：把 svc-a 发布到 staging，镜像 v2.0.1', send: '发送', confirm: '确认执行', sessions: '对话',
    previewCard: '预览结果', approvalCard: '等待审批', statusCard: '发布状态', you: '我', assistant: 'AI 助手', confirmed: '已确认',
  },
  inbox: {
    title: '审批中心', mine: '我的待办', pending: '全部待办', requested: '我发起的', statusF: '状态', scopeF: '类型', projectF: '项目', teamF: '团队',
    riskF: '风险', priorityF: '优先级', expiringF: '即将过期', q: '搜索工单、服务、发起人', stats: { pending: '待审批', overdue: '已超时', expiring15m: '15 分钟内过期' },
    expiring: { '15m': '15 分钟内', '1h': '1 小时内', today: '今天' }, ticket: '工单', summary: '摘要', sla: 'SLA 剩余', overdue: '已超时',
    approve: '批准', reject: '驳回', assign: '指派', comment: '评论', batchApprove: '批量批准', assignee: '指派给', commentRequired: '驳回需要填写意见',
    detail: '工单详情', related: '关联对象', actions: '操作记录', done: '已处理',
  },
  env: {
    title: '环境', runtime: '运行时', mode: '模式', region: '区域', nodes: '节点', bind: '绑定主机', role: '角色', installPreview: '安装预览',
    apply: '执行安装', task: '任务', steps: '步骤', logs: '日志', cancelTask: '取消任务', repair: '修复', rollback: '回滚', health: '健康检查',
    action: '动作', plannedSteps: '计划步骤', tasks: '任务记录',
  },
  host: {
    title: '主机', register: '注册主机', ip: 'IP', port: '端口', user: 'SSH 用户', auth: '认证方式', key: '私钥', password: '密码',
    scan: '扫描主机密钥', trust: '信任此密钥', fingerprint: '指纹', pinned: '已信任的指纹', presented: '主机当前出示的指纹', check: '连通性检查',
    compare: '请与主机上 ssh-keygen -lf 的输出核对后再信任', changed: '主机密钥已变更：原指纹与当前指纹不同',
  },
  cluster: {
    title: '集群', import: '导入集群', kubeconfig: 'kubeconfig', endpoint: 'API 地址', ca: 'CA 证书', token: 'Token', test: '测试连接', source: '来源',
    version: '版本', permissions: '权限探测', certExpires: '客户端证书到期', lastCheck: '最近检查', create: '创建集群', createSoon: '平台创建集群与 LVS+VIP 网络入口在后续版本开放', certs: '证书', certId: '证书', subject: '主体', issuer: '签发者', notAfter: '到期时间', daysLeft: '剩余天数', origin: '来源',
  },
  audit: { title: '审计', resource: '资源', action: '动作', verify: '校验哈希链', intact: '哈希链完整，共校验 {{n}} 条', broken: '哈希链在位置 {{at}} 断开：{{problem}}' },
  users: { title: '用户与角色', username: '用户名', displayName: '显示名', roles: '角色', create: '创建用户', grant: '授予角色' },
  error: { title: '操作未完成' },
};

type Tree = { [k: string]: string | Tree };

const en: typeof zh = {
  app: { title: 'OpsPilot', logout: 'Sign out', language: '中文', project: 'Project', allProjects: 'All projects' },
  nav: { home: 'Home', deploy: 'Deploy', releases: 'Releases', ai: 'AI assistant', inbox: 'Approval inbox', environments: 'Environments', hosts: 'Hosts', clusters: 'Clusters', audit: 'Audit', users: 'Users and roles' },
  login: { title: 'Sign in to OpsPilot', username: 'Username', password: 'Password', submit: 'Sign in', required: 'Enter the {{field}}' },
  common: {
    refresh: 'Refresh', submit: 'Submit', cancel: 'Cancel', confirm: 'Confirm', create: 'Create', save: 'Save', actions: 'Actions', status: 'Status', name: 'Name',
    time: 'Time', source: 'Source', actor: 'Actor', detail: 'Detail', comment: 'Comment', search: 'Search', none: 'Nothing yet', loading: 'Loading…', open: 'Open',
    nextStep: 'Next step', errorKey: 'Error key', project: 'Project', env: 'Env', all: 'All',
  },
  sources: { deployment_ui: 'Console', ai_command_center: 'AI assistant', approval_inbox: 'Approval inbox', system_scheduler: 'Scheduler', api_direct: 'API' },
  home: {
    canDo: 'What I can do', release: 'Release a service', rollback: 'Roll back', askAi: 'Ask the AI', inFlight: 'My releases in flight', myRequests: 'My approval requests',
    waitingForMe: 'Tickets waiting for me', problems: 'Clusters and environments with problems', noProblems: 'All is well', metrics: 'Delivery (last 30 days)',
    frequency: 'Releases', leadTime: 'Lead time (preview → applied, min)', failureRate: 'Change failure rate', restore: 'Time to restore (min)',
  },
  deploy: {
    title: 'Release a service', service: 'Service', target: 'Target', env: 'Env', strategy: 'Strategy', variables: 'Variables', addVariable: 'Add a variable',
    key: 'Name', value: 'Value', preview: 'Preview', repreview: 'Preview again', confirm: 'Confirm release', checks: 'Checks', warnings: 'Warnings',
    diff: 'Manifest diff', current: 'Running now', next: 'This release', expiresIn: 'Preview valid for', expired: 'The preview expired: preview again', firstRelease: 'First release (nothing runs yet)',
    risk: 'Risk', sent: 'Release submitted', pendingApproval: 'Sent for approval: waiting for an approver',
  },
  release: {
    title: 'Release', timeline: 'Timeline', rollback: 'Roll back', cancel: 'Withdraw', rollbackConfirm: 'Roll back to the previous applied release?', lastError: 'Last error', list: 'Releases',
    mineOnly: 'Mine only', id: 'Release id',
  },
  ai: {
    title: 'AI assistant', newSession: 'New conversation', placeholder: 'e.g. release svc-a to staging with image v2.0.1', send: 'Send', confirm: 'Confirm', sessions: 'Conversations',
    previewCard: 'Preview', approvalCard: 'Waiting for approval', statusCard: 'Release status', you: 'Me', assistant: 'AI assistant', confirmed: 'Confirmed',
  },
  inbox: {
    title: 'Approval inbox', mine: 'My to-do', pending: 'All pending', requested: 'Requested by me', statusF: 'Status', scopeF: 'Type', projectF: 'Project', teamF: 'Team',
    riskF: 'Risk', priorityF: 'Priority', expiringF: 'Expiring', q: 'Search tickets, services, requesters', stats: { pending: 'Pending', overdue: 'Overdue', expiring15m: 'Expiring in 15 min' },
    expiring: { '15m': 'within 15 min', '1h': 'within 1 h', today: 'today' }, ticket: 'Ticket', summary: 'Summary', sla: 'SLA left', overdue: 'Overdue',
    approve: 'Approve', reject: 'Reject', assign: 'Assign', comment: 'Comment', batchApprove: 'Approve selected', assignee: 'Assign to', commentRequired: 'A rejection needs a comment',
    detail: 'Ticket', related: 'Related', actions: 'Actions so far', done: 'Done',
  },
  env: {
    title: 'Environments', runtime: 'Runtime', mode: 'Mode', region: 'Region', nodes: 'Nodes', bind: 'Bind hosts', role: 'Role', installPreview: 'Install preview',
    apply: 'Install', task: 'Task', steps: 'Steps', logs: 'Logs', cancelTask: 'Cancel task', repair: 'Repair', rollback: 'Roll back', health: 'Health check',
    action: 'Action', plannedSteps: 'Planned steps', tasks: 'Tasks',
  },
  host: {
    title: 'Hosts', register: 'Register a host', ip: 'IP', port: 'Port', user: 'SSH user', auth: 'Auth', key: 'Private key', password: 'Password',
    scan: 'Scan host key', trust: 'Trust this key', fingerprint: 'Fingerprint', pinned: 'Trusted fingerprint', presented: 'Fingerprint presented now', check: 'Connectivity check',
    compare: 'Compare with ssh-keygen -lf on the host before trusting', changed: 'The host key changed: the trusted and the presented fingerprints differ',
  },
  cluster: {
    title: 'Clusters', import: 'Import a cluster', kubeconfig: 'kubeconfig', endpoint: 'API endpoint', ca: 'CA certificate', token: 'Token', test: 'Test connection', source: 'Source',
    version: 'Version', permissions: 'Permission probe', certExpires: 'Client cert expires', lastCheck: 'Last check', create: 'Create a cluster', createSoon: 'Platform-created clusters and the LVS+VIP entry open in a later version', certs: 'Certificates', certId: 'Certificate', subject: 'Subject', issuer: 'Issuer', notAfter: 'Expires', daysLeft: 'Days left', origin: 'Origin',
  },
  audit: { title: 'Audit', resource: 'Resource', action: 'Action', verify: 'Verify the hash chain', intact: 'The hash chain is intact: {{n}} events checked', broken: 'The hash chain breaks at {{at}}: {{problem}}' },
  users: { title: 'Users and roles', username: 'Username', displayName: 'Display name', roles: 'Roles', create: 'Create a user', grant: 'Grant a role' },
  error: { title: 'Not done' },
};

export const resources: Record<'zh-CN' | 'en', Tree> = { 'zh-CN': zh, en };

void i18n.use(initReactI18next).init({
  resources: { 'zh-CN': { translation: zh }, en: { translation: en } },
  lng: lang(),
  fallbackLng: 'zh-CN',
  interpolation: { escapeValue: false },
  showSupportNotice: false,
});

export default i18n;
