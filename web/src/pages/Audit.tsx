import { Alert, Button, Card, Input, Select, Space, Table } from 'antd';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { gql } from '../api/client';
import { useQuery } from '../api/hooks';
import { ErrorAlert } from '../components/ErrorAlert';
import { StateTag } from '../components/StateTag';
import { graphql } from '../gql';
import type { AuditFilterInput, AuditVerifyQuery } from '../gql/graphql';

const AuditDoc = graphql(`
  query Audit($filter: AuditFilterInput, $page: Int) {
    auditEvents(filter: $filter, page: $page, pageSize: 50) { list { position action resourceType resourceId actorId source status occurredAt } total }
  }
`);
const VerifyDoc = graphql(`
  query AuditVerify { auditVerifyChain { checked headPosition intact brokenAt problem } }
`);

const SOURCES = ['deployment_ui', 'ai_command_center', 'approval_inbox', 'system_scheduler', 'api_direct'];

/** The audit explorer: filter by resource, actor, source, action; verify the hash chain. */
export default function Audit() {
  const { t } = useTranslation();
  const [filter, setFilter] = useState<AuditFilterInput & { source?: string }>({});
  const [page, setPage] = useState(1);
  const [verified, setVerified] = useState<AuditVerifyQuery['auditVerifyChain'] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const { source, ...f } = filter;
  const q = useQuery(AuditDoc, { filter: f, page });
  const rows = (q.data?.auditEvents.list ?? []).filter((e) => !source || e.source === source);
  const set = (k: keyof AuditFilterInput, v: string) => { setFilter({ ...filter, [k]: v || undefined }); setPage(1); };
  return (
    <Card title={t('audit.title')} extra={<Button onClick={async () => { try { setVerified((await gql(VerifyDoc, {})).auditVerifyChain); } catch (e) { setError(e); } }} data-testid="audit-verify">{t('audit.verify')}</Button>}>
      <ErrorAlert error={error ?? q.error} />
      {verified && (verified.intact
        ? <Alert type="success" showIcon message={t('audit.intact', { n: verified.checked })} style={{ marginBottom: 12 }} data-testid="chain-intact" />
        : <Alert type="error" showIcon message={t('audit.broken', { at: verified.brokenAt, problem: verified.problem })} style={{ marginBottom: 12 }} />)}
      <Space wrap style={{ marginBottom: 12 }}>
        <Input.Search placeholder={t('audit.resource')} allowClear onSearch={(v) => set('resourceId', v)} />
        <Input.Search placeholder={`${t('audit.resource')} type`} allowClear onSearch={(v) => set('resourceType', v)} />
        <Input.Search placeholder={t('audit.action')} allowClear onSearch={(v) => set('action', v)} />
        <Input.Search placeholder={t('common.actor')} allowClear onSearch={(v) => set('actorId', v)} />
        <Select allowClear placeholder={t('common.source')} style={{ width: 160 }} onChange={(v?: string) => setFilter({ ...filter, source: v })} options={SOURCES.map((s) => ({ value: s, label: t(`sources.${s}`) }))} />
      </Space>
      <Table size="small" rowKey="position" loading={q.loading} dataSource={rows}
        pagination={{ current: page, pageSize: 50, total: q.data?.auditEvents.total ?? 0, onChange: setPage }}
        columns={[
          { title: '#', dataIndex: 'position' },
          { title: t('common.time'), dataIndex: 'occurredAt', render: (v: string) => new Date(v).toLocaleString() },
          { title: t('audit.action'), dataIndex: 'action', render: (v: string) => <code>{v}</code> },
          { title: t('audit.resource'), render: (_: unknown, e: { resourceType: string; resourceId: string }) => `${e.resourceType} ${e.resourceId.slice(0, 12)}` },
          { title: t('common.actor'), dataIndex: 'actorId', render: (v: string) => v.slice(0, 8) },
          { title: t('common.source'), dataIndex: 'source', render: (v: string) => t(`sources.${v}`, { defaultValue: v }) },
          { title: t('common.status'), dataIndex: 'status', render: (v: string) => <StateTag kind="event" state={v} /> },
        ]} />
    </Card>
  );
}
