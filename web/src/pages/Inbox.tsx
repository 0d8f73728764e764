import { App, Button, Card, Descriptions, Drawer, Input, Select, Space, Statistic, Table, Tabs, Timeline as AntTimeline, Typography } from 'antd';
import { useEffect, useMemo, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, useNavigate, useParams } from 'react-router-dom';
import { gql, rest } from '../api/client';
import { useQuery, useSubscription } from '../api/hooks';
import { Countdown } from '../components/Countdown';
import { ErrorAlert } from '../components/ErrorAlert';
import { StateTag } from '../components/StateTag';
import { graphql } from '../gql';
import type { InboxQuery } from '../gql/graphql';
import { batchApprovable, emptyFilters, toInboxFilter, type FilterState, type InboxView } from '../inbox/filters';
import { useSession } from '../session';
import { stateLook, statesOf, type Lang } from '../states';

const InboxDoc = graphql(`
  query Inbox($filter: InboxFilter, $page: Int) {
    inbox(filter: $filter, page: $page, pageSize: 20) {
      list { ticket scopeType scopeId projectId teamId riskLevel priority status requestedBy assignedTo summary expiresAt slaDueAt overdue createdAt source }
      total
      stats { pending overdue expiring15M }
    }
  }
`);
const InboxLive = graphql(`
  subscription InboxChanged { inboxChanged { position action } }
`);
const ApproveDoc = graphql(`
  mutation ApproveTicket($ticket: String!, $comment: String) { approveTicket(ticket: $ticket, comment: $comment) { position result } }
`);
const RejectDoc = graphql(`
  mutation RejectTicket($ticket: String!, $comment: String) { rejectTicket(ticket: $ticket, comment: $comment) { position result } }
`);
const AssignDoc = graphql(`
  mutation AssignTicket($ticket: String!, $input: AssignInput!) { assignTicket(ticket: $ticket, input: $input) { position result } }
`);
const CommentDoc = graphql(`
  mutation CommentTicket($ticket: String!, $comment: String!) { commentTicket(ticket: $ticket, comment: $comment) { position result } }
`);

type Item = InboxQuery['inbox']['list'][number];
interface Opened {
  item: Record<string, any>;
  timeline: { action: string; actor_id: string; comment?: string | null; created_at: string }[];
}

/** The filter bar of the inbox (status, scope, project, team, risk, priority, expiring, search). */
export function FilterBar({ value, onChange, projects }: { value: FilterState; onChange: (f: FilterState) => void; projects: { id: string; name: string }[] }) {
  const { t, i18n } = useTranslation();
  const lang = i18n.language as Lang;
  return (
    <Space wrap data-testid="inbox-filters">
      <Select mode="multiple" allowClear placeholder={t('inbox.statusF')} style={{ minWidth: 160 }} value={value.status} aria-label="status"
        onChange={(status: string[]) => onChange({ ...value, status })}
        options={statesOf('ticket').map((s) => ({ value: s, label: stateLook('ticket', s, lang).label }))} />
      <Select mode="multiple" allowClear placeholder={t('inbox.scopeF')} style={{ minWidth: 160 }} value={value.scopeType} aria-label="scope"
        onChange={(scopeType: string[]) => onChange({ ...value, scopeType })}
        options={['release', 'install', 'cluster_import', 'cert_rotation', 'compose_apply', 'k8s_apply', 'network_entry'].map((s) => ({ value: s, label: s }))} />
      <Select allowClear placeholder={t('inbox.projectF')} style={{ minWidth: 140 }} value={value.projectId} aria-label="project"
        onChange={(projectId?: string) => onChange({ ...value, projectId })} options={projects.map((p) => ({ value: p.id, label: p.name }))} />
      <Input allowClear placeholder={t('inbox.teamF')} style={{ width: 120 }} value={value.teamId ?? ''} aria-label="team" onChange={(e) => onChange({ ...value, teamId: e.target.value || undefined })} />
      <Select allowClear placeholder={t('inbox.riskF')} style={{ width: 110 }} value={value.riskLevel} aria-label="risk"
        onChange={(riskLevel?: string) => onChange({ ...value, riskLevel })} options={['low', 'medium', 'high', 'critical'].map((s) => ({ value: s, label: s }))} />
      <Select allowClear placeholder={t('inbox.priorityF')} style={{ width: 110 }} value={value.priority} aria-label="priority"
        onChange={(priority?: string) => onChange({ ...value, priority })} options={['p0', 'p1', 'p2', 'p3'].map((s) => ({ value: s, label: s.toUpperCase() }))} />
      <Select allowClear placeholder={t('inbox.expiringF')} style={{ width: 140 }} value={value.expiring} aria-label="expiring"
        onChange={(expiring?: FilterState['expiring']) => onChange({ ...value, expiring })}
        options={(['15m', '1h', 'today'] as const).map((s) => ({ value: s, label: t(`inbox.expiring.${s}`) }))} />
      <Input.Search allowClear placeholder={t('inbox.q')} style={{ width: 260 }} defaultValue={value.q} aria-label="search" onSearch={(q) => onChange({ ...value, q: q || undefined })} />
    </Space>
  );
}

export default function Inbox() {
  const { t } = useTranslation();
  const nav = useNavigate();
  const { modal, message } = App.useApp();
  const { ticket: openTicket } = useParams();
  const { me, projects, can } = useSession();
  const [view, setView] = useState<InboxView>('mine');
  const [filters, setFilters] = useState<FilterState>(emptyFilters);
  const [page, setPage] = useState(1);
  const [selected, setSelected] = useState<string[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [opened, setOpened] = useState<Opened | null>(null);
  const filter = useMemo(() => toInboxFilter(view, filters, me?.id ?? ''), [view, filters, me]);
  const q = useQuery(InboxDoc, { filter, page }, { source: 'approval_inbox' });
  useSubscription(InboxLive, {}, () => {
    void q.reload();
    if (openTicket) void open(openTicket);
  });
  const canApprove = can('deploy:release:approve');

  const open = async (ticket: string) => {
    try {
      setOpened(await rest<Opened>('GET', `/approvals/inbox/${encodeURIComponent(ticket)}`, undefined, 'approval_inbox'));
    } catch (e) {
      setError(e);
    }
  };
  useEffect(() => {
    if (openTicket) void open(openTicket);
    else setOpened(null);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [openTicket]);

  const run = async (f: () => Promise<unknown>) => {
    setError(null);
    try {
      await f();
      void message.success(t('inbox.done'));
      await q.reload();
      if (openTicket) await open(openTicket);
    } catch (e) {
      setError(e);
    }
  };
  const withComment = (title: string, required: boolean, act: (c: string | undefined) => Promise<unknown>) => {
    let comment = '';
    modal.confirm({
      title,
      content: <Input.TextArea rows={3} data-testid="decision-comment" onChange={(e) => (comment = e.target.value)} placeholder={t('common.comment')} />,
      okButtonProps: { 'data-testid': 'decision-ok' } as Record<string, string>,
      onOk: async () => {
        if (required && !comment.trim()) {
          void message.error(t('inbox.commentRequired'));
          throw new Error('comment');
        }
        await run(() => act(comment.trim() || undefined));
      },
    });
  };
  const approve = (ticket: string) => withComment(t('inbox.approve'), false, (comment) => gql(ApproveDoc, { ticket, comment: comment ?? null }, 'approval_inbox'));
  const reject = (ticket: string) => withComment(t('inbox.reject'), true, (comment) => gql(RejectDoc, { ticket, comment: comment ?? null }, 'approval_inbox'));
  const assign = (ticket: string) => {
    let who = '';
    modal.confirm({ title: t('inbox.assign'), content: <Input placeholder={t('inbox.assignee')} onChange={(e) => (who = e.target.value)} />, onOk: () => run(() => gql(AssignDoc, { ticket, input: { assignedTo: who } }, 'approval_inbox')) });
  };
  const comment = (ticket: string) => withComment(t('inbox.comment'), true, (c) => gql(CommentDoc, { ticket, comment: c ?? '' }, 'approval_inbox'));
  const batch = async () => {
    await run(async () => {
      for (const ticket of selected) await gql(ApproveDoc, { ticket, comment: null }, 'approval_inbox');
      setSelected([]);
    });
  };

  const list = q.data?.inbox.list ?? [];
  const stats = q.data?.inbox.stats;
  const item = opened?.item;
  return (
    <Card title={t('inbox.title')}>
      <ErrorAlert error={error ?? q.error} onClose={() => setError(null)} />
      <Space size={48} style={{ marginBottom: 12 }} data-testid="inbox-stats">
        <Statistic title={t('inbox.stats.pending')} value={stats?.pending ?? 0} />
        <Statistic title={t('inbox.stats.overdue')} value={stats?.overdue ?? 0} valueStyle={{ color: stats?.overdue ? '#dc2626' : undefined }} />
        <Statistic title={t('inbox.stats.expiring15m')} value={stats?.expiring15M ?? 0} />
      </Space>
      <Tabs activeKey={view} onChange={(k) => { setView(k as InboxView); setPage(1); setSelected([]); }}
        items={[{ key: 'mine', label: t('inbox.mine') }, { key: 'pending', label: t('inbox.pending') }, { key: 'requested', label: t('inbox.requested') }]} />
      <FilterBar value={filters} projects={projects} onChange={(f) => { setFilters(f); setPage(1); }} />
      <div style={{ margin: '12px 0' }}>
        <Button disabled={selected.length === 0} onClick={batch} data-testid="batch-approve">{t('inbox.batchApprove')} ({selected.length})</Button>
      </div>
      <div data-testid="inbox-table">
      <Table<Item> rowKey="ticket" size="small" loading={q.loading} dataSource={list}
        rowSelection={{ selectedRowKeys: selected, onChange: (k) => setSelected(k as string[]), getCheckboxProps: (r) => ({ disabled: !batchApprovable(r, me?.id ?? '', canApprove) }) }}
        pagination={{ current: page, pageSize: 20, total: q.data?.inbox.total ?? 0, onChange: setPage }}
        onRow={(r) => ({ 'data-ticket': r.ticket }) as React.HTMLAttributes<HTMLElement>}
        columns={[
          { title: t('inbox.ticket'), dataIndex: 'ticket', render: (v: string) => <Link to={`/inbox/${v}`}>{v}</Link> },
          { title: t('inbox.summary'), dataIndex: 'summary' },
          { title: t('inbox.scopeF'), dataIndex: 'scopeType' },
          { title: t('inbox.riskF'), dataIndex: 'riskLevel' },
          { title: t('inbox.priorityF'), dataIndex: 'priority', render: (v: string) => v.toUpperCase() },
          { title: t('common.status'), dataIndex: 'status', render: (s: string) => <StateTag kind="ticket" state={s} /> },
          { title: t('inbox.sla'), render: (_: unknown, r: Item) => (r.status !== 'pending' ? '—' : r.overdue ? <Typography.Text type="danger" data-testid="overdue">{t('inbox.overdue')}</Typography.Text> : <Countdown until={r.slaDueAt} />) },
          {
            title: t('common.actions'),
            render: (_: unknown, r: Item) => r.status === 'pending' && (
              <Space>
                <Button size="small" type="primary" onClick={() => approve(r.ticket)} data-testid={`approve-${r.ticket}`}>{t('inbox.approve')}</Button>
                <Button size="small" danger onClick={() => reject(r.ticket)} data-testid={`reject-${r.ticket}`}>{t('inbox.reject')}</Button>
              </Space>
            ),
          },
        ]} />
      </div>
      <Drawer open={!!openTicket} width={640} title={`${t('inbox.detail')} ${openTicket ?? ''}`} onClose={() => nav('/inbox')}>
        {item && (
          <>
            <Descriptions size="small" column={2} bordered>
              <Descriptions.Item label={t('common.status')}><StateTag kind="ticket" state={item.status} /></Descriptions.Item>
              <Descriptions.Item label={t('inbox.riskF')}>{item.risk_level}</Descriptions.Item>
              <Descriptions.Item label={t('inbox.summary')} span={2}>{item.summary}</Descriptions.Item>
              <Descriptions.Item label={t('inbox.related')} span={2}>
                {item.scope_type === 'release' ? <Link to={`/releases/${item.scope_id}`}>{t('release.title')} {String(item.scope_id).slice(0, 8)}</Link> : `${item.scope_type} ${item.scope_id}`}
              </Descriptions.Item>
              <Descriptions.Item label={t('inbox.sla')}>{item.status === 'pending' ? <Countdown until={item.sla_due_at} /> : '—'}</Descriptions.Item>
              <Descriptions.Item label={t('common.source')}>{t(`sources.${item.source}`, { defaultValue: item.source })}</Descriptions.Item>
              <Descriptions.Item label={t('common.detail')} span={2}><pre style={{ margin: 0, whiteSpace: 'pre-wrap' }}>{JSON.stringify(item.detail, null, 2)}</pre></Descriptions.Item>
            </Descriptions>
            <h4 style={{ marginTop: 16 }}>{t('inbox.actions')}</h4>
            <AntTimeline items={opened.timeline.map((a) => ({ children: <span data-action={a.action}><code>{a.action}</code> {a.actor_id.slice(0, 8)} {a.comment && `“${a.comment}”`} <Typography.Text type="secondary">{new Date(a.created_at).toLocaleString()}</Typography.Text></span> }))} />
            <Space>
              {item.status === 'pending' && <Button type="primary" onClick={() => approve(item.ticket)} data-testid="drawer-approve">{t('inbox.approve')}</Button>}
              {item.status === 'pending' && <Button danger onClick={() => reject(item.ticket)} data-testid="drawer-reject">{t('inbox.reject')}</Button>}
              {item.status === 'pending' && <Button onClick={() => assign(item.ticket)}>{t('inbox.assign')}</Button>}
              <Button onClick={() => comment(item.ticket)}>{t('inbox.comment')}</Button>
            </Space>
          </>
        )}
      </Drawer>
    </Card>
  );
}
