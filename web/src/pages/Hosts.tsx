import { Alert, App, Button, Card, Descriptions, Form, Input, InputNumber, Modal, Radio, Select, Space, Table } from 'antd';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { gql } from '../api/client';
import { useQuery } from '../api/hooks';
import { ErrorAlert } from '../components/ErrorAlert';
import { StateTag } from '../components/StateTag';
import { graphql } from '../gql';
import type { HostsQuery } from '../gql/graphql';
import { useSession } from '../session';

const HostsDoc = graphql(`
  query Hosts { hosts(pageSize: 200) { list { id name projectId ip port sshUser authType status hostKeyFingerprint presentedFingerprint lastCheckAt lastCheckError } } }
`);
const RegisterDoc = graphql(`
  mutation RegisterHost($input: HostInput!) { registerHost(input: $input) { position result } }
`);
const ScanDoc = graphql(`
  mutation ScanHostKey($host: String!) { scanHostKey(host: $host) }
`);
const TrustDoc = graphql(`
  mutation TrustHostKey($host: String!, $input: TrustInput!) { trustHostKey(host: $host, input: $input) { position result } }
`);
const CheckDoc = graphql(`
  mutation CheckHost($host: String!) { checkHost(host: $host) { position result } }
`);

type Host = HostsQuery['hosts']['list'][number];

/** Hosts: register, scan the key and compare before trusting, re-trust a changed key, check. */
export default function Hosts() {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const { projects, can } = useSession();
  const q = useQuery(HostsDoc, {});
  const [error, setError] = useState<unknown>(null);
  const [registering, setRegistering] = useState(false);
  const [scan, setScan] = useState<{ host: Host; fingerprint: string } | null>(null);
  const [form] = Form.useForm();
  const auth = Form.useWatch('auth', form);
  const run = async (f: () => Promise<void>) => {
    setError(null);
    try { await f(); await q.reload(); } catch (e) { setError(e); }
  };
  const doScan = (h: Host) => run(async () => {
    const r = (await gql(ScanDoc, { host: h.id })).scanHostKey as { presented_fingerprint: string; trusted_fingerprint?: string | null };
    setScan({ host: { ...h, hostKeyFingerprint: r.trusted_fingerprint ?? h.hostKeyFingerprint }, fingerprint: r.presented_fingerprint });
  });
  return (
    <Card title={t('host.title')} extra={can('host:manage') && <Button type="primary" onClick={() => setRegistering(true)} data-testid="host-register">{t('host.register')}</Button>}>
      <ErrorAlert error={error ?? q.error} onClose={() => setError(null)} />
      <Table<Host> size="small" rowKey="id" loading={q.loading} dataSource={q.data?.hosts.list ?? []}
        onRow={(h) => ({ 'data-host': h.name }) as React.HTMLAttributes<HTMLElement>}
        columns={[
          { title: t('common.name'), dataIndex: 'name' },
          { title: t('host.ip'), render: (_: unknown, h) => `${h.ip}:${h.port}` },
          { title: t('host.user'), dataIndex: 'sshUser' },
          { title: t('host.auth'), dataIndex: 'authType' },
          { title: t('common.status'), dataIndex: 'status', render: (s: string) => <StateTag kind="host" state={s} /> },
          { title: t('host.pinned'), dataIndex: 'hostKeyFingerprint', render: (v?: string | null) => <code>{v ?? '—'}</code> },
          { title: t('common.actions'), render: (_: unknown, h) => (
            <Space>
              {can('host:manage') && <Button size="small" onClick={() => doScan(h)} data-testid={`scan-${h.name}`}>{t('host.scan')}</Button>}
              <Button size="small" onClick={() => run(async () => { const r = await gql(CheckDoc, { host: h.id }); void message.info(JSON.stringify(r.checkHost.result)); })}>{t('host.check')}</Button>
            </Space>
          ) },
        ]} />
      <Modal open={!!scan} title={t('host.scan')} onCancel={() => setScan(null)} okText={t('host.trust')} okButtonProps={{ 'data-testid': 'trust-key' }}
        onOk={() => scan && run(async () => { await gql(TrustDoc, { host: scan.host.id, input: { fingerprint: scan.fingerprint } }); setScan(null); })}>
        {scan && (
          <>
            {scan.host.hostKeyFingerprint && scan.host.hostKeyFingerprint !== scan.fingerprint && <Alert type="error" showIcon message={t('host.changed')} style={{ marginBottom: 12 }} />}
            <Descriptions column={1} size="small" bordered>
              <Descriptions.Item label={t('host.pinned')}><code>{scan.host.hostKeyFingerprint ?? '—'}</code></Descriptions.Item>
              <Descriptions.Item label={t('host.presented')}><code data-testid="scanned-fingerprint">{scan.fingerprint}</code></Descriptions.Item>
            </Descriptions>
            <Alert type="info" message={t('host.compare')} style={{ marginTop: 12 }} />
          </>
        )}
      </Modal>
      <Modal open={registering} title={t('host.register')} onCancel={() => setRegistering(false)} onOk={() => form.submit()} destroyOnClose>
        <Form form={form} layout="vertical" initialValues={{ port: 22, sshUser: 'root', auth: 'key' }}
          onFinish={(v: { name: string; projectId: string; ip: string; port: number; sshUser: string; auth: string; privateKey?: string; password?: string }) =>
            run(async () => { await gql(RegisterDoc, { input: v }); setRegistering(false); })}>
          <Form.Item name="name" label={t('common.name')} rules={[{ required: true }]}><Input /></Form.Item>
          <Form.Item name="projectId" label={t('common.project')} rules={[{ required: true }]}><Select options={projects.map((p) => ({ value: p.id, label: p.name }))} /></Form.Item>
          <Space>
            <Form.Item name="ip" label={t('host.ip')} rules={[{ required: true }]}><Input /></Form.Item>
            <Form.Item name="port" label={t('host.port')}><InputNumber min={1} max={65535} /></Form.Item>
            <Form.Item name="sshUser" label={t('host.user')} rules={[{ required: true }]}><Input /></Form.Item>
          </Space>
          <Form.Item name="auth" label={t('host.auth')}><Radio.Group options={[{ value: 'key', label: t('host.key') }, { value: 'password', label: t('host.password') }]} /></Form.Item>
          {auth === 'password' ? (
            <Form.Item name="password" label={t('host.password')} rules={[{ required: true }]}><Input.Password /></Form.Item>
          ) : (
            <Form.Item name="privateKey" label={t('host.key')} rules={[{ required: true }]}><Input.TextArea rows={4} /></Form.Item>
          )}
        </Form>
      </Modal>
    </Card>
  );
}
