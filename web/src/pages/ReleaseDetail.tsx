import { App, Button, Card, Descriptions, Popconfirm, Space } from 'antd';
import { useEffect, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { useParams } from 'react-router-dom';
import { gql, rest } from '../api/client';
import { useQuery, useSubscription } from '../api/hooks';
import { ErrorAlert } from '../components/ErrorAlert';
import { StateTag } from '../components/StateTag';
import { Timeline, type Entry } from '../components/Timeline';
import { graphql } from '../gql';

const ReleaseDoc = graphql(`
  query ReleaseDetail($id: UUID!) {
    release(id: $id) { id serviceId targetId projectId env strategy runtimeType status previewRef approvalTicket variables lastErrorKey lastSummary createdAt updatedAt }
    releaseTimeline(id: $id) { position action source status actorId occurredAt resourceType resourceId }
  }
`);

const TimelineLive = graphql(`
  subscription TimelineAppended($id: UUID!) {
    timelineAppended(id: $id) { position action source status actorId occurredAt resourceType resourceId }
  }
`);

const RollbackDoc = graphql(`
  mutation RollbackRelease($id: UUID!) { rollbackRelease(id: $id) { position result } }
`);
const CancelDoc = graphql(`
  mutation CancelRelease($id: UUID!) { cancelRelease(id: $id) { position result } }
`);

/** A release with its live status and the one timeline. */
export default function ReleaseDetail() {
  const { id = '' } = useParams();
  const { t } = useTranslation();
  const { message } = App.useApp();
  const q = useQuery(ReleaseDoc, { id });
  const [entries, setEntries] = useState<Entry[]>([]);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    if (q.data) setEntries(q.data.releaseTimeline);
  }, [q.data]);
  useSubscription(TimelineLive, { id }, (r) => {
    const e = r.timelineAppended;
    setEntries((all) => (all.some((x) => x.position === e.position) ? all : [...all, e].sort((a, b) => a.position - b.position)));
    if (e.resourceType === 'deployment_release') void q.reload();
  });
  const act = async (f: () => Promise<unknown>) => {
    setError(null);
    try {
      await f();
      void message.success(t('common.submit'));
      await q.reload();
    } catch (e) {
      setError(e);
    }
  };
  const r = q.data?.release;
  const [compose, setCompose] = useState<string | null>(null);
  const composeView = async (what: 'ps' | 'logs') => {
    if (!r) return;
    setError(null);
    try {
      const out = await rest<unknown>('GET', `/deploy/targets/${r.targetId}/compose/${what}${what === 'logs' ? '?tail=200' : ''}`);
      setCompose(typeof out === 'string' ? out : JSON.stringify(out, null, 2));
    } catch (e) {
      setError(e);
    }
  };
  return (
    <Space direction="vertical" style={{ width: '100%' }} size={16}>
      <ErrorAlert error={error ?? q.error} onClose={() => setError(null)} />
      <Card title={`${t('release.title')} ${id.slice(0, 8)}`} loading={q.loading && !q.data} extra={
        r && (
          <Space>
            {r.status === 'applied' && (
              <Popconfirm title={t('release.rollbackConfirm')} onConfirm={() => act(() => gql(RollbackDoc, { id }))}>
                <Button danger data-testid="rollback">{t('release.rollback')}</Button>
              </Popconfirm>
            )}
            {(r.status === 'pending_approval' || r.status === 'rollback_requested') && (
              <Button onClick={() => act(() => gql(CancelDoc, { id }))}>{t('release.cancel')}</Button>
            )}
          </Space>
        )
      }>
        {r ? (
          <Descriptions size="small" column={3}>
            <Descriptions.Item label={t('common.status')}><span data-testid="release-status" data-status={r.status}><StateTag kind="release" state={r.status} /></span></Descriptions.Item>
            <Descriptions.Item label={t('common.env')}>{r.env}</Descriptions.Item>
            <Descriptions.Item label={t('deploy.strategy')}>{r.strategy}</Descriptions.Item>
            <Descriptions.Item label="preview_ref"><code>{r.previewRef}</code></Descriptions.Item>
            <Descriptions.Item label={t('inbox.ticket')}>{r.approvalTicket ?? '—'}</Descriptions.Item>
            <Descriptions.Item label={t('release.lastError')}>{r.lastErrorKey ? `${r.lastErrorKey}: ${r.lastSummary ?? ''}` : '—'}</Descriptions.Item>
            <Descriptions.Item label={t('deploy.variables')} span={3}><code>{JSON.stringify(r.variables)}</code></Descriptions.Item>
          </Descriptions>
        ) : (
          !q.loading && <span>{t('common.none')}</span>
        )}
      </Card>
      {r?.runtimeType === 'compose' && (
        <Card title="Docker Compose" size="small" extra={<Space><Button size="small" onClick={() => composeView('ps')}>ps</Button><Button size="small" onClick={() => composeView('logs')}>logs</Button></Space>}>
          {compose && <pre data-testid="compose-output" style={{ maxHeight: 320, overflow: 'auto', margin: 0 }}>{compose}</pre>}
        </Card>
      )}
      <Card title={t('release.timeline')}>
        <Timeline entries={entries} />
      </Card>
    </Space>
  );
}
