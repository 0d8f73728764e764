import { App, Button, Card, Descriptions, Form, Input, List, Modal, Select, Space, Table, Tag, Typography } from 'antd';
import { useEffect, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, useNavigate, useParams } from 'react-router-dom';
import { gql, rest } from '../api/client';
import { useQuery, useSubscription } from '../api/hooks';
import { Countdown } from '../components/Countdown';
import { ErrorAlert } from '../components/ErrorAlert';
import { StateTag } from '../components/StateTag';
import { graphql } from '../gql';
import { useSession } from '../session';

const EnvsDoc = graphql(`
  query Environments { environments(pageSize: 200) { list { id name projectId runtimeType mode status region currentTaskId nodes { hostId hostName ip nodeRole hostStatus } } } }
`);
const EnvDoc = graphql(`
  query EnvironmentDetail($id: String!) {
    environment(id: $id) { id name projectId teamId runtimeType mode status region currentTaskId nodes { hostId hostName ip nodeRole weight hostStatus } }
    installTasks(environment: $id, pageSize: 10) { list { taskId action status requestedAt errorKey } }
    hosts(pageSize: 200) { list { id name ip status projectId } }
  }
`);
const TaskDoc = graphql(`
  query InstallTaskView($env: String!, $task: UUID!) {
    installTask(environment: $env, taskId: $task) { taskId action status stepIndex errorKey errorMessage steps { stepIndex name runOn status nodes { hostId attempt status exitCode errorKey durationMs } } }
    installTaskLogs(environment: $env, taskId: $task, limit: 2000) { stepIndex hostId attempt seq stream line }
  }
`);
const ProgressLive = graphql(`
  subscription InstallProgressLive($env: String!, $task: UUID) {
    installTaskProgress(environment: $env, taskId: $task) { kind taskId action status log { stepIndex hostId attempt seq stream line } }
  }
`);
const TeamsDoc = graphql(`
  query TeamsOf { teams(pageSize: 200) { list { id name projectId } } }
`);
const CreateEnvDoc = graphql(`
  mutation CreateEnvironment($input: EnvironmentInput!) { createEnvironment(input: $input) { position result } }
`);
const BindDoc = graphql(`
  mutation BindNodes($env: String!, $input: NodesInput!) { bindNodes(environment: $env, input: $input) { position result } }
`);
const PreviewInstallDoc = graphql(`
  mutation PreviewInstall($env: String!, $input: InstallPreviewInput) { previewInstall(environment: $env, input: $input) { position result } }
`);
const ApplyInstallDoc = graphql(`
  mutation ApplyInstall($env: String!, $input: InstallApplyInput!, $rollbackOnly: Boolean) { applyInstall(environment: $env, input: $input, rollbackOnly: $rollbackOnly) { position result } }
`);
const CancelInstallDoc = graphql(`
  mutation CancelInstall($env: String!, $task: UUID!) { cancelInstall(environment: $env, taskId: $task) { position result } }
`);

interface InstallPreview {
  preview_ref: string;
  action: string;
  checks: { level: string; code: string; message: string }[];
  warnings: string[];
  steps: string[];
  expires_at: string;
}
type Log = { stepIndex: number; hostId: string; attempt: number; seq: number; stream: string; line: string };

/** One task: every node-step live, and its log lines as they stream. */
function TaskView({ env, task, hosts }: { env: string; task: string; hosts: Map<string, string> }) {
  const { t } = useTranslation();
  const q = useQuery(TaskDoc, { env, task });
  const [logs, setLogs] = useState<Log[]>([]);
  useEffect(() => {
    setLogs(q.data?.installTaskLogs ?? []);
  }, [q.data]);
  useSubscription(ProgressLive, { env, task }, (r) => {
    const p = r.installTaskProgress;
    if (p.kind === 'log' && p.log) {
      const l = p.log;
      setLogs((all) => (all.some((x) => x.stepIndex === l.stepIndex && x.hostId === l.hostId && x.attempt === l.attempt && x.seq === l.seq) ? all : [...all, l]));
    } else void q.reload();
  });
  const task_ = q.data?.installTask;
  if (!task_) return null;
  return (
    <Card size="small" title={`${t('env.task')} ${task.slice(0, 8)} · ${task_.action}`} extra={<StateTag kind="task" state={task_.status} />} data-testid="install-task" data-status={task_.status}>
      {task_.errorKey && <Typography.Text type="danger">{task_.errorKey}: {task_.errorMessage}</Typography.Text>}
      <Table size="small" rowKey="stepIndex" pagination={false} dataSource={task_.steps}
        columns={[
          { title: '#', dataIndex: 'stepIndex', width: 40 },
          { title: t('env.steps'), dataIndex: 'name' },
          { title: t('common.status'), dataIndex: 'status', render: (s: string) => <StateTag kind="step" state={s} /> },
          { title: t('env.nodes'), render: (_: unknown, s: (typeof task_.steps)[number]) => (
            <Space wrap>{s.nodes.map((n) => <span key={`${n.hostId}-${n.attempt}`} data-node-step={`${s.stepIndex}:${hosts.get(n.hostId) ?? n.hostId}`} data-status={n.status}>{hosts.get(n.hostId) ?? n.hostId.slice(0, 8)} #{n.attempt} <StateTag kind="step" state={n.status} /></span>)}</Space>
          ) },
        ]} />
      <h4 style={{ marginTop: 12 }}>{t('env.logs')}</h4>
      <pre data-testid="install-logs" style={{ maxHeight: 260, overflow: 'auto', background: '#111827', color: '#e5e7eb', padding: 8, fontSize: 12 }}>
        {logs.map((l) => `[${l.stepIndex}] ${hosts.get(l.hostId) ?? l.hostId.slice(0, 8)} ${l.stream === 'stderr' ? '!' : ' '} ${l.line}`).join('\n')}
      </pre>
    </Card>
  );
}

function EnvironmentDetail({ id }: { id: string }) {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const { can } = useSession();
  const q = useQuery(EnvDoc, { id });
  const [error, setError] = useState<unknown>(null);
  const [preview, setPreview] = useState<InstallPreview | null>(null);
  const [task, setTask] = useState<string | null>(null);
  const [bind, setBind] = useState(false);
  const [health, setHealth] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const e = q.data?.environment;
  useEffect(() => {
    setTask(e?.currentTaskId ?? null);
  }, [e?.currentTaskId]);
  useSubscription(ProgressLive, { env: id, task: null }, (r) => { if (r.installTaskProgress.kind === 'event') void q.reload(); });
  const hosts = new Map((q.data?.hosts.list ?? []).map((h) => [h.id, h.name]));
  const run = async (f: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    try { await f(); } catch (err) { setError(err); } finally { setBusy(false); }
  };
  const doPreview = (action: string) => run(async () => {
    const r = await gql(PreviewInstallDoc, { env: id, input: { action } });
    setPreview(r.previewInstall.result as InstallPreview);
  });
  const doApply = () => run(async () => {
    if (!preview) return;
    const r = await gql(ApplyInstallDoc, { env: id, input: { previewRef: preview.preview_ref, confirm: true }, rollbackOnly: preview.action === 'rollback' });
    const res = r.applyInstall.result as { task_id: string; status: string };
    setTask(res.task_id);
    setPreview(null);
    void message.success(res.status);
    await q.reload();
  });
  if (!e) return <Card loading={q.loading}><ErrorAlert error={q.error} /></Card>;
  const roles = e.runtimeType === 'k8s' ? ['control_plane', 'worker'] : ['compose_manager', 'compose_worker'];
  return (
    <Space direction="vertical" style={{ width: '100%' }} size={16}>
      <ErrorAlert error={error} onClose={() => setError(null)} />
      <Card title={e.name} extra={<StateTag kind="environment" state={e.status} />}>
        <Descriptions size="small" column={4}>
          <Descriptions.Item label={t('env.runtime')}>{e.runtimeType}</Descriptions.Item>
          <Descriptions.Item label={t('env.mode')}>{e.mode}</Descriptions.Item>
          <Descriptions.Item label={t('env.region')}>{e.region || '—'}</Descriptions.Item>
        </Descriptions>
        <Table size="small" rowKey="hostId" pagination={false} dataSource={e.nodes}
          columns={[{ title: t('common.name'), dataIndex: 'hostName' }, { title: t('host.ip'), dataIndex: 'ip' }, { title: t('env.role'), dataIndex: 'nodeRole' }, { title: t('common.status'), dataIndex: 'hostStatus', render: (s: string) => <StateTag kind="host" state={s} /> }]} />
        {can('environment:install') && (
          <Space wrap style={{ marginTop: 12 }}>
            <Button onClick={() => setBind(true)} data-testid="env-bind">{t('env.bind')}</Button>
            <Button type="primary" loading={busy} onClick={() => doPreview('install')} data-testid="env-install-preview">{t('env.installPreview')}</Button>
            <Button onClick={() => doPreview('preflight')}>preflight</Button>
            <Button onClick={() => doPreview('repair')}>{t('env.repair')}</Button>
            <Button onClick={() => doPreview('rollback')}>{t('env.rollback')}</Button>
            <Button onClick={() => run(async () => setHealth(await rest('POST', `/environments/${id}/health/check`, {})))}>{t('env.health')}</Button>
            {task && <Button danger onClick={() => run(async () => { await gql(CancelInstallDoc, { env: id, task }); await q.reload(); })}>{t('env.cancelTask')}</Button>}
          </Space>
        )}
        {health != null && <pre style={{ marginTop: 12 }}>{JSON.stringify(health, null, 2)}</pre>}
      </Card>
      {preview && (
        <Card title={`${t('env.installPreview')} · ${preview.action}`} data-testid="install-preview" extra={<Countdown until={preview.expires_at} />}>
          <List size="small" header={t('deploy.checks')} dataSource={preview.checks} renderItem={(c) => <List.Item><Tag color="green">{c.level}</Tag>{c.message}</List.Item>} />
          {preview.warnings.map((w) => <Typography.Paragraph key={w} type="warning">{w}</Typography.Paragraph>)}
          <List size="small" header={t('env.plannedSteps')} dataSource={preview.steps} renderItem={(s, i) => <List.Item>{i + 1}. {s}</List.Item>} />
          <Button type="primary" loading={busy} onClick={doApply} data-testid="env-install-apply">{t('env.apply')}</Button>
        </Card>
      )}
      {task && <TaskView env={id} task={task} hosts={hosts} />}
      <Card size="small" title={t('env.tasks')}>
        <Table size="small" rowKey="taskId" pagination={false} dataSource={q.data?.installTasks.list ?? []} onRow={(r) => ({ onClick: () => setTask(r.taskId), style: { cursor: 'pointer' } })}
          columns={[{ title: t('env.task'), dataIndex: 'taskId', render: (v: string) => v.slice(0, 8) }, { title: t('env.action'), dataIndex: 'action' }, { title: t('common.status'), dataIndex: 'status', render: (s: string) => <StateTag kind="task" state={s} /> }, { title: t('common.time'), dataIndex: 'requestedAt', render: (v: string) => new Date(v).toLocaleString() }]} />
      </Card>
      <Modal open={bind} title={t('env.bind')} footer={null} onCancel={() => setBind(false)} destroyOnClose>
        <Form layout="vertical" initialValues={{ nodes: e.nodes.map((n) => ({ hostId: n.hostId, nodeRole: n.nodeRole })) }}
          onFinish={(v: { nodes: { hostId: string; nodeRole: string }[] }) => run(async () => { await gql(BindDoc, { env: id, input: { nodes: v.nodes } }); setBind(false); await q.reload(); })}>
          <Form.List name="nodes">
            {(fields, { add, remove }) => (
              <>
                {fields.map((f) => (
                  <Space key={f.key} align="baseline">
                    <Form.Item name={[f.name, 'hostId']} rules={[{ required: true }]}><Select style={{ width: 220 }} options={(q.data?.hosts.list ?? []).filter((h) => h.projectId === e.projectId).map((h) => ({ value: h.id, label: `${h.name} (${h.ip})` }))} /></Form.Item>
                    <Form.Item name={[f.name, 'nodeRole']} rules={[{ required: true }]}><Select style={{ width: 150 }} options={roles.map((r) => ({ value: r, label: r }))} /></Form.Item>
                    <Button type="link" onClick={() => remove(f.name)}>−</Button>
                  </Space>
                ))}
                <Button type="dashed" onClick={() => add({ nodeRole: roles[0] })}>+</Button>
              </>
            )}
          </Form.List>
          <Button type="primary" htmlType="submit" style={{ marginTop: 12 }}>{t('common.save')}</Button>
        </Form>
      </Modal>
    </Space>
  );
}

export default function Environments() {
  const { id } = useParams();
  const { t } = useTranslation();
  const nav = useNavigate();
  const { projects, can } = useSession();
  const q = useQuery(EnvsDoc, {});
  const teams = useQuery(TeamsDoc, {});
  const [creating, setCreating] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [form] = Form.useForm();
  const projectOf = Form.useWatch('projectId', form);
  if (id) return <EnvironmentDetail id={id} />;
  return (
    <Card title={t('env.title')} extra={can('environment:manage') && <Button type="primary" onClick={() => setCreating(true)}>{t('common.create')}</Button>}>
      <ErrorAlert error={error ?? q.error} onClose={() => setError(null)} />
      <Table size="small" rowKey="id" loading={q.loading} dataSource={q.data?.environments.list ?? []}
        onRow={(r) => ({ 'data-environment': r.name }) as React.HTMLAttributes<HTMLElement>}
        columns={[
          { title: t('common.name'), dataIndex: 'name', render: (v: string, r) => <Link to={`/environments/${r.id}`}>{v}</Link> },
          { title: t('env.runtime'), dataIndex: 'runtimeType' },
          { title: t('env.nodes'), render: (_: unknown, r) => r.nodes.length },
          { title: t('common.status'), dataIndex: 'status', render: (s: string) => <StateTag kind="environment" state={s} /> },
        ]} />
      <Modal open={creating} title={t('common.create')} onCancel={() => setCreating(false)} onOk={() => form.submit()} destroyOnClose>
        <Form form={form} layout="vertical" initialValues={{ runtimeType: 'compose' }} onFinish={async (v: { name: string; projectId: string; teamId: string; runtimeType: string; region?: string }) => {
          try {
            const r = await gql(CreateEnvDoc, { input: v });
            setCreating(false);
            nav(`/environments/${(r.createEnvironment.result as { id: string }).id}`);
          } catch (e) { setError(e); setCreating(false); }
        }}>
          <Form.Item name="name" label={t('common.name')} rules={[{ required: true }]}><Input /></Form.Item>
          <Form.Item name="projectId" label={t('common.project')} rules={[{ required: true }]}><Select options={projects.map((p) => ({ value: p.id, label: p.name }))} /></Form.Item>
          <Form.Item name="teamId" label="Team" rules={[{ required: true }]}><Select options={(teams.data?.teams.list ?? []).filter((x) => x.projectId === projectOf).map((x) => ({ value: x.id, label: x.name }))} /></Form.Item>
          <Form.Item name="runtimeType" label={t('env.runtime')}><Select options={[{ value: 'compose', label: 'Docker Compose' }, { value: 'k8s', label: 'Kubernetes' }]} /></Form.Item>
          <Form.Item name="region" label={t('env.region')}><Input /></Form.Item>
        </Form>
      </Modal>
    </Card>
  );
}
