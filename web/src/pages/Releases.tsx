import { Card, Input, Select, Space, Switch, Table } from 'antd';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, useNavigate, useSearchParams } from 'react-router-dom';
import { useQuery } from '../api/hooks';
import { ErrorAlert } from '../components/ErrorAlert';
import { StateTag } from '../components/StateTag';
import { graphql } from '../gql';
import { useSession } from '../session';
import { stateLook, statesOf, type Lang } from '../states';

const ReleasesDoc = graphql(`
  query Releases($mine: Boolean, $status: [String!], $projectId: UUID, $page: Int) {
    releases(mine: $mine, status: $status, projectId: $projectId, page: $page, pageSize: 20) {
      list { id env strategy runtimeType status lastErrorKey updatedAt serviceId }
      total
    }
  }
`);

export default function Releases() {
  const { t, i18n } = useTranslation();
  const nav = useNavigate();
  const [params, setParams] = useSearchParams();
  const { projectId } = useSession();
  const [page, setPage] = useState(1);
  const status = params.get('status')?.split(',').filter(Boolean) ?? [];
  const mine = params.get('mine') === '1';
  const q = useQuery(ReleasesDoc, { mine, status, projectId: projectId ?? null, page });
  const set = (k: string, v: string | null) => {
    const next = new URLSearchParams(params);
    if (v) next.set(k, v);
    else next.delete(k);
    setParams(next);
    setPage(1);
  };
  return (
    <Card title={t('release.list')} extra={
      <Space>
        <Input.Search placeholder={t('release.id')} onSearch={(id) => id.trim() && nav(`/releases/${id.trim()}`)} style={{ width: 300 }} data-testid="open-release" />
        <Select mode="multiple" allowClear style={{ minWidth: 220 }} placeholder={t('common.status')} value={status} onChange={(v: string[]) => set('status', v.join(','))}
          options={statesOf('release').map((s) => ({ value: s, label: stateLook('release', s, i18n.language as Lang).label }))} />
        <span>{t('release.mineOnly')}</span>
        <Switch checked={mine} onChange={(v) => set('mine', v ? '1' : null)} />
      </Space>
    }>
      <ErrorAlert error={q.error} />
      <Table rowKey="id" size="small" loading={q.loading} dataSource={q.data?.releases.list ?? []}
        pagination={{ current: page, total: q.data?.releases.total ?? 0, pageSize: 20, onChange: setPage }}
        columns={[
          { title: t('release.id'), dataIndex: 'id', render: (id: string) => <Link to={`/releases/${id}`}>{id.slice(0, 8)}</Link> },
          { title: t('common.env'), dataIndex: 'env' },
          { title: t('deploy.strategy'), dataIndex: 'strategy' },
          { title: t('common.status'), dataIndex: 'status', render: (s: string) => <StateTag kind="release" state={s} /> },
          { title: t('release.lastError'), dataIndex: 'lastErrorKey' },
          { title: t('common.time'), dataIndex: 'updatedAt', render: (v: string) => new Date(v).toLocaleString() },
        ]} />
    </Card>
  );
}
