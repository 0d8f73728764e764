import { Alert, Button, Card, Collapse, Empty, Input, Layout, List, Space, Tag, Typography } from 'antd';
import { useEffect, useRef, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, useNavigate, useParams } from 'react-router-dom';
import { gql } from '../api/client';
import { useQuery, useSubscription } from '../api/hooks';
import { Countdown } from '../components/Countdown';
import { ErrorAlert } from '../components/ErrorAlert';
import { StateTag } from '../components/StateTag';
import { Timeline } from '../components/Timeline';
import { graphql } from '../gql';
import { useSession } from '../session';

const SessionsDoc = graphql(`
  query AiSessions { aiSessions(pageSize: 50) { id title releaseId releaseStatus updatedAt } }
`);
const SessionDoc = graphql(`
  query AiSession($id: UUID!) { aiSession(id: $id) { id context events { position action detail occurredAt } timeline { position action source status actorId occurredAt resourceType resourceId } } }
`);
const StartDoc = graphql(`
  mutation AiStart($input: AiSessionInput) { aiStartSession(input: $input) { result } }
`);
const SendDoc = graphql(`
  mutation AiSend($id: UUID!, $text: String!) { aiSend(sessionId: $id, text: $text) { result } }
`);
const ConfirmDoc = graphql(`
  mutation AiConfirm($id: UUID!, $ref: String!) { aiConfirm(sessionId: $id, previewRef: $ref) { result } }
`);
const EventsLive = graphql(`
  subscription AiSessionEvents($id: UUID!, $after: Int) { aiSessionEvents(sessionId: $id, after: $after) { position action detail occurredAt } }
`);

interface Ev {
  position: number;
  action: string;
  detail: Record<string, any>;
  occurredAt: string;
}

const Bubble = ({ mine, children }: { mine?: boolean; children: React.ReactNode }) => (
  <div style={{ display: 'flex', justifyContent: mine ? 'flex-end' : 'flex-start', margin: '8px 0' }}>
    <div style={{ maxWidth: '75%', background: mine ? '#4f46e5' : '#f3f4f6', color: mine ? '#fff' : undefined, padding: '8px 12px', borderRadius: 10, whiteSpace: 'pre-wrap' }}>{children}</div>
  </div>
);

/** One event of the conversation as the user sees it (bookkeeping events show nothing). */
function EventView({ e, confirmed, onConfirm, onChoice }: { e: Ev; confirmed: Set<string>; onConfirm: (ref: string) => void; onChoice: (c: string) => void }) {
  const { t } = useTranslation();
  const d = e.detail;
  switch (e.action) {
    case 'ai.user_message':
      return <Bubble mine>{d.text}</Bubble>;
    case 'ai.assistant_message':
      return (
        <Bubble>
          {d.text}
          {Array.isArray(d.choices) && d.choices.length > 0 && (
            <div style={{ marginTop: 8 }}>
              <Space wrap>{(d.choices as string[]).map((c) => <Button size="small" key={c} onClick={() => onChoice(c)}>{c}</Button>)}</Space>
            </div>
          )}
        </Bubble>
      );
    case 'ai.preview_result':
      return (
        <Card size="small" data-testid="ai-preview-card" data-ok={String(d.ok)} title={t('ai.previewCard')} style={{ margin: '8px 0', borderColor: d.ok ? '#16a34a' : '#dc2626' }}>
          <div>{d.text}</div>
          {d.preview_ref && <div><code>{d.preview_ref}</code> {d.expires_at && <Countdown until={d.expires_at} />}</div>}
          {(d.warnings as string[] | undefined)?.map((w) => <Alert key={w} type="warning" message={w} showIcon style={{ marginTop: 4 }} />)}
          {d.release_id && <Link to={`/releases/${d.release_id}`}>{t('release.title')} {String(d.release_id).slice(0, 8)}</Link>}
        </Card>
      );
    case 'ai.user_confirmation_required': {
      const ref: string = d.pending?.preview_ref ?? d.pending?.confirm_ref;
      const done = confirmed.has(ref);
      return (
        <Card size="small" style={{ margin: '8px 0' }} data-testid="ai-confirm-card">
          <div style={{ marginBottom: 8 }}>{d.text}</div>
          <Button type="primary" disabled={done} onClick={() => onConfirm(ref)} data-testid="ai-confirm" data-ref={ref}>
            {done ? t('ai.confirmed') : t('ai.confirm')}
          </Button>
        </Card>
      );
    }
    case 'ai.approval_required':
      return (
        <Card size="small" data-testid="ai-approval-card" title={t('ai.approvalCard')} style={{ margin: '8px 0', borderColor: '#d97706' }}>
          {d.text} <Tag>{d.approval_ticket}</Tag> <StateTag kind="release" state="pending_approval" />
        </Card>
      );
    case 'ai.approval_status_changed':
      return (
        <Card size="small" style={{ margin: '8px 0' }} data-testid="ai-approval-status" data-status={d.status}>
          <StateTag kind="ticket" state={d.status} /> {d.text} {d.comment && <Typography.Text type="secondary">“{d.comment}”</Typography.Text>}
        </Card>
      );
    case 'ai.release_status_changed':
      return (
        <Card size="small" style={{ margin: '8px 0' }} data-testid="ai-release-status" data-status={d.status}>
          <StateTag kind="release" state={d.status} /> {d.text} <Link to={`/releases/${d.release_id}`}>{String(d.release_id).slice(0, 8)}</Link>
        </Card>
      );
    case 'ai.action_refused':
      return <Alert type="warning" showIcon data-error-key={d.error_key} message={d.text} description={<code>{d.error_key}</code>} style={{ margin: '8px 0' }} />;
    case 'ai.cancelled':
      return <Bubble>{d.text}</Bubble>;
    default:
      return null;
  }
}

/** The AI command center: conversations, preview cards, explicit confirm, and the cards that follow the release by themselves. */
export default function Ai() {
  const { t, i18n } = useTranslation();
  const nav = useNavigate();
  const { sessionId } = useParams();
  const { projectId } = useSession();
  const sessions = useQuery(SessionsDoc, {}, { source: 'ai_command_center' });
  const session = useQuery(SessionDoc, { id: sessionId ?? '' }, { skip: !sessionId, source: 'ai_command_center' });
  const [events, setEvents] = useState<Ev[]>([]);
  const [text, setText] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const bottom = useRef<HTMLDivElement>(null);

  useEffect(() => {
    setEvents([]);
  }, [sessionId]);
  useEffect(() => {
    if (session.data) setEvents(session.data.aiSession.events as Ev[]);
  }, [session.data]);
  const merge = (more: Ev[]) => setEvents((all) => {
    const seen = new Set(all.map((x) => x.position));
    return [...all, ...more.filter((x) => !seen.has(x.position))].sort((a, b) => a.position - b.position);
  });
  // Live after the loaded events; a reload loads again and resumes from there.
  const loadedUpTo = session.data ? Math.max(0, ...session.data.aiSession.events.map((x) => x.position)) : 0;
  useSubscription(EventsLive, { id: sessionId ?? '', after: loadedUpTo }, (r) => {
    merge([r.aiSessionEvents as Ev]);
    if (r.aiSessionEvents.action === 'ai.timeline_synced') void refreshTimeline();
  }, !sessionId || !session.data);
  const [timeline, setTimeline] = useState<NonNullable<typeof session.data>['aiSession']['timeline']>([]);
  useEffect(() => {
    setTimeline(session.data?.aiSession.timeline ?? []);
  }, [session.data]);
  const refreshTimeline = async () => {
    if (!sessionId) return;
    try {
      setTimeline((await gql(SessionDoc, { id: sessionId }, 'ai_command_center')).aiSession.timeline);
    } catch {
      /* the conversation still shows; the next sync tries again */
    }
  };
  useEffect(() => {
    // Chromium's scrollIntoView answers a promise: never hand it to React as a cleanup.
    void bottom.current?.scrollIntoView?.({ block: 'end' });
  }, [events.length]);

  const confirmed = new Set(events.filter((e) => e.action === 'ai.apply_requested').map((e) => String(e.detail.reference)));

  const start = async () => {
    setError(null);
    try {
      const r = await gql(StartDoc, { input: { lang: i18n.language === 'en' ? 'en' : 'zh-CN', projectId: projectId ?? undefined } }, 'ai_command_center');
      const id = (r.aiStartSession.result as { session_id: string }).session_id;
      await sessions.reload();
      nav(`/ai/${id}`);
      return id;
    } catch (e) {
      setError(e);
      return null;
    }
  };
  const send = async (value: string) => {
    if (!value.trim()) return;
    setBusy(true);
    setError(null);
    try {
      const id = sessionId ?? (await start());
      if (!id) return;
      const r = await gql(SendDoc, { id, text: value }, 'ai_command_center');
      merge(((r.aiSend.result as { events?: Ev[] }).events ?? []) as Ev[]);
      setText('');
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const confirm = async (ref: string) => {
    if (!sessionId) return;
    setError(null);
    try {
      const r = await gql(ConfirmDoc, { id: sessionId, ref }, 'ai_command_center');
      merge(((r.aiConfirm.result as { events?: Ev[] }).events ?? []) as Ev[]);
    } catch (e) {
      setError(e);
    }
  };

  return (
    <Layout style={{ background: 'transparent', gap: 16 }} hasSider>
      <Card size="small" title={t('ai.sessions')} style={{ width: 260 }} extra={<Button size="small" onClick={start} data-testid="ai-new">{t('ai.newSession')}</Button>}>
        <List size="small" dataSource={sessions.data?.aiSessions ?? []} locale={{ emptyText: t('common.none') }}
          renderItem={(s) => (
            <List.Item style={{ background: s.id === sessionId ? '#eef2ff' : undefined, cursor: 'pointer' }} onClick={() => nav(`/ai/${s.id}`)}>
              <div>
                <div>{s.title}</div>
                {s.releaseStatus && <StateTag kind="release" state={s.releaseStatus} />}
              </div>
            </List.Item>
          )} />
      </Card>
      <Card title={t('ai.title')} style={{ flex: 1 }} styles={{ body: { display: 'flex', flexDirection: 'column', height: 'calc(100vh - 220px)' } }}>
        <ErrorAlert error={error ?? session.error} onClose={() => setError(null)} />
        <div style={{ flex: 1, overflow: 'auto' }} data-testid="ai-conversation">
          {events.length === 0 && <Empty description={t('ai.placeholder')} />}
          {events.map((e) => <EventView key={e.position} e={e} confirmed={confirmed} onConfirm={confirm} onChoice={(c) => void send(c)} />)}
          <div ref={bottom} />
        </div>
        {timeline.length > 0 && (
          <div data-testid="ai-timeline">
            <Collapse size="small" style={{ marginTop: 8 }} items={[{ key: 't', label: t('release.timeline'), children: <Timeline entries={timeline} /> }]} />
          </div>
        )}
        <Space.Compact style={{ marginTop: 12 }}>
          <Input value={text} onChange={(e) => setText(e.target.value)} onPressEnter={() => void send(text)} placeholder={t('ai.placeholder')} disabled={busy} data-testid="ai-input" />
          <Button type="primary" onClick={() => void send(text)} loading={busy} data-testid="ai-send">{t('ai.send')}</Button>
        </Space.Compact>
      </Card>
    </Layout>
  );
}
