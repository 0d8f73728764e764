import { Table, Tag } from 'antd';
import { useTranslation } from 'react-i18next';
import { Link } from 'react-router-dom';
import { StateTag } from './StateTag';

/** One entry of a timeline (the AuditEntry fields every timeline query selects). */
export interface Entry {
  position: number;
  action: string;
  source: string;
  status: string;
  actorId: string;
  occurredAt: string;
  resourceType?: string;
  resourceId?: string;
  detail?: unknown;
}

const sourceColor: Record<string, string> = { deployment_ui: 'blue', ai_command_center: 'purple', approval_inbox: 'gold', system_scheduler: 'default', api_direct: 'cyan' };

/** The one timeline: every event in log order with the entry point it came from. */
export function Timeline({ entries, users }: { entries: Entry[]; users?: Map<string, string> }) {
  const { t } = useTranslation();
  return (
    <div data-testid="timeline">
    <Table<Entry>
      size="small"
      rowKey="position"
      pagination={false}
      dataSource={entries}
      onRow={(e) => ({ 'data-action': e.action, 'data-source': e.source }) as React.HTMLAttributes<HTMLElement>}
      columns={[
        { title: '#', dataIndex: 'position', width: 70 },
        { title: t('common.time'), dataIndex: 'occurredAt', width: 190, render: (v: string) => new Date(v).toLocaleString() },
        { title: t('audit.action'), dataIndex: 'action', render: (v: string) => <code>{v}</code> },
        { title: t('common.source'), dataIndex: 'source', width: 130, render: (v: string) => <Tag color={sourceColor[v]}>{t(`sources.${v}`, { defaultValue: v })}</Tag> },
        { title: t('common.actor'), dataIndex: 'actorId', width: 160, render: (v: string) => users?.get(v) ?? v.slice(0, 8) },
        { title: t('common.status'), dataIndex: 'status', width: 100, render: (v: string) => <StateTag kind="event" state={v} /> },
        {
          title: t('common.open'),
          width: 80,
          render: (_: unknown, e: Entry) => (e.resourceType === 'deployment_release' && e.resourceId ? <Link to={`/releases/${e.resourceId}`}>{e.resourceId.slice(0, 8)}</Link> : null),
        },
      ]}
    />
    </div>
  );
}
