import { App, Button, Card, Form, Input, Modal, Radio, Select, Space, Table, Tag, Tooltip } from 'antd';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { gql } from '../api/client';
import { useQuery } from '../api/hooks';
import { ErrorAlert } from '../components/ErrorAlert';
import { StateTag } from '../components/StateTag';
import { graphql } from '../gql';
import type { ClusterCertsQuery, ClustersQuery } from '../gql/graphql';
import { useSession } from '../session';

const ClustersDoc = graphql(`
  query Clusters {
    clusters(pageSize: 200) { list { id name projectId sourceType status connection { authType endpoint serverVersion clientCertExpiresAt lastCheckAt lastCheckStatus lastCheckError permissions } } }
    teams(pageSize: 200) { list { id name projectId } }
  }
`);
const ImportKubeconfigDoc = graphql(`
  mutation ImportKubeconfig($input: ImportKubeconfigInput!) { importClusterKubeconfig(input: $input) { position result } }
`);
const ImportCertDoc = graphql(`
  mutation ImportCert($input: ImportCertInput!) { importClusterCert(input: $input) { position result } }
`);
const CertsDoc = graphql(`
  query ClusterCerts($id: String!) { clusterCertificates(id: $id) { certId origin subject issuer sans serial notAfter daysLeft isCa } }
`);
const TestDoc = graphql(`
  mutation TestCluster($id: String!) { testClusterConnection(id: $id) { position result } }
`);

type Cluster = ClustersQuery['clusters']['list'][number];
type Cert = ClusterCertsQuery['clusterCertificates'][number];

/** Red within 7 days, orange within 30 (the scheduler's warning thresholds), green after. */
const daysColor = (d: number) => (d < 7 ? 'red' : d < 30 ? 'orange' : 'green');

/** Clusters: import by kubeconfig or by endpoint + CA + token, connection test with the permission probe. */
export default function Clusters() {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const { projects, can } = useSession();
  const q = useQuery(ClustersDoc, {});
  const [error, setError] = useState<unknown>(null);
  const [importing, setImporting] = useState(false);
  const [certs, setCerts] = useState<{ cluster: string; list: Cert[] } | null>(null);
  const [form] = Form.useForm();
  const mode = Form.useWatch('mode', form);
  const projectOf = Form.useWatch('projectId', form);
  const run = async (f: () => Promise<void>) => {
    setError(null);
    try { await f(); await q.reload(); } catch (e) { setError(e); }
  };
  return (
    <Card title={t('cluster.title')} extra={can('cluster:manage') && (
      <Space>
        <Tooltip title={t('cluster.createSoon')}><Button disabled>{t('cluster.create')}</Button></Tooltip>
        <Button type="primary" onClick={() => setImporting(true)} data-testid="cluster-import">{t('cluster.import')}</Button>
      </Space>
    )}>
      <ErrorAlert error={error ?? q.error} onClose={() => setError(null)} />
      <Table<Cluster> size="small" rowKey="id" loading={q.loading} dataSource={q.data?.clusters.list ?? []}
        onRow={(c) => ({ 'data-cluster': c.name }) as React.HTMLAttributes<HTMLElement>}
        columns={[
          { title: t('common.name'), dataIndex: 'name' },
          { title: t('cluster.source'), dataIndex: 'sourceType' },
          { title: t('cluster.endpoint'), render: (_: unknown, c) => <code>{c.connection.endpoint}</code> },
          { title: t('cluster.version'), render: (_: unknown, c) => c.connection.serverVersion ?? '—' },
          { title: t('common.status'), dataIndex: 'status', render: (s: string) => <StateTag kind="cluster" state={s} /> },
          { title: t('cluster.permissions'), render: (_: unknown, c) => (
            <Space wrap size={2}>{Object.entries((c.connection.permissions ?? {}) as Record<string, boolean>).map(([k, v]) => <Tag key={k} color={v ? 'green' : 'red'}>{k}</Tag>)}</Space>
          ) },
          { title: t('cluster.certExpires'), render: (_: unknown, c) => (c.connection.clientCertExpiresAt ? new Date(c.connection.clientCertExpiresAt).toLocaleDateString() : '—') },
          { title: t('common.actions'), render: (_: unknown, c) => (
            <Space size={4}>
              <Button size="small" onClick={() => run(async () => { const r = await gql(TestDoc, { id: c.id }); void message.info(JSON.stringify(r.testClusterConnection.result).slice(0, 200)); })}>{t('cluster.test')}</Button>
              <Button size="small" data-testid="cluster-certs" onClick={() => run(async () => { const r = await gql(CertsDoc, { id: c.id }); setCerts({ cluster: c.name, list: r.clusterCertificates }); })}>{t('cluster.certs')}</Button>
            </Space>
          ) },
        ]} />
      <Modal open={certs !== null} title={`${t('cluster.certs')} · ${certs?.cluster ?? ''}`} onCancel={() => setCerts(null)} footer={null} width={860}>
        <Table<Cert> size="small" rowKey="certId" pagination={false} dataSource={certs?.list ?? []}
          onRow={(c) => ({ 'data-cert': c.certId }) as React.HTMLAttributes<HTMLElement>}
          columns={[
            { title: t('cluster.certId'), dataIndex: 'certId', render: (v: string, c) => <Space size={4}><code>{v}</code>{c.isCa && <Tag>CA</Tag>}</Space> },
            { title: t('cluster.subject'), dataIndex: 'subject', ellipsis: true },
            { title: t('cluster.issuer'), dataIndex: 'issuer', ellipsis: true },
            { title: t('cluster.notAfter'), dataIndex: 'notAfter', render: (v: string) => new Date(v).toLocaleString() },
            { title: t('cluster.daysLeft'), dataIndex: 'daysLeft', render: (d: number) => <Tag color={daysColor(d)} data-testid="cert-days">{d}</Tag> },
            { title: t('cluster.origin'), dataIndex: 'origin' },
          ]} />
      </Modal>
      <Modal open={importing} title={t('cluster.import')} onCancel={() => setImporting(false)} onOk={() => form.submit()} destroyOnClose width={640} okButtonProps={{ 'data-testid': 'cluster-import-ok' }}>
        <Form form={form} layout="vertical" initialValues={{ mode: 'kubeconfig' }}
          onFinish={(v: { mode: string; name: string; projectId: string; teamId: string; kubeconfig?: string; endpoint?: string; caCert?: string; token?: string }) => run(async () => {
            if (v.mode === 'kubeconfig') await gql(ImportKubeconfigDoc, { input: { name: v.name, projectId: v.projectId, teamId: v.teamId, kubeconfig: v.kubeconfig ?? '' } });
            else await gql(ImportCertDoc, { input: { name: v.name, projectId: v.projectId, teamId: v.teamId, endpoint: v.endpoint ?? '', caCert: v.caCert ?? '', token: v.token } });
            setImporting(false);
          })}>
          <Form.Item name="mode"><Radio.Group options={[{ value: 'kubeconfig', label: t('cluster.kubeconfig') }, { value: 'cert', label: `${t('cluster.endpoint')} + ${t('cluster.ca')} + ${t('cluster.token')}` }]} /></Form.Item>
          <Form.Item name="name" label={t('common.name')} rules={[{ required: true }]}><Input data-testid="cluster-name" /></Form.Item>
          <Space>
            <Form.Item name="projectId" label={t('common.project')} rules={[{ required: true }]}><Select style={{ width: 200 }} data-testid="cluster-project" options={projects.map((p) => ({ value: p.id, label: p.name }))} /></Form.Item>
            <Form.Item name="teamId" label="Team" rules={[{ required: true }]}><Select style={{ width: 200 }} data-testid="cluster-team" options={(q.data?.teams.list ?? []).filter((x) => x.projectId === projectOf).map((x) => ({ value: x.id, label: x.name }))} /></Form.Item>
          </Space>
          {mode === 'cert' ? (
            <>
              <Form.Item name="endpoint" label={t('cluster.endpoint')} rules={[{ required: true }]}><Input placeholder="https://10.0.0.1:6443" /></Form.Item>
              <Form.Item name="caCert" label={t('cluster.ca')} rules={[{ required: true }]}><Input.TextArea rows={3} /></Form.Item>
              <Form.Item name="token" label={t('cluster.token')} rules={[{ required: true }]}><Input.Password /></Form.Item>
            </>
          ) : (
            <Form.Item name="kubeconfig" label={t('cluster.kubeconfig')} rules={[{ required: true }]}><Input.TextArea rows={8} data-testid="cluster-kubeconfig" /></Form.Item>
          )}
        </Form>
      </Modal>
    </Card>
  );
}
