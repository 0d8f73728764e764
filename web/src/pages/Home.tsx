import { RobotOutlined, RocketOutlined, RollbackOutlined } from '@ant-design/icons';
import { Button, Card, Col, List, Row, Space, Spin, Typography } from 'antd';
import { lazy, Suspense } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, useNavigate } from 'react-router-dom';
import { useQuery } from '../api/hooks';
import { ErrorAlert } from '../components/ErrorAlert';
import { StateTag } from '../components/StateTag';
import { graphql } from '../gql';
import { useSession } from '../session';

const DeliveryCharts = lazy(() => import('../components/DeliveryCharts'));

const HomeDoc = graphql(`
  query Home($projectId: UUID, $me: String!, $inFlight: [String!]) {
    releases(mine: true, status: $inFlight, projectId: $projectId, pageSize: 10) { list { id env status runtimeType updatedAt } total }
    requested: inbox(filter: { view: "all", requestedBy: $me, sortBy: "created_at", sortOrder: "desc" }, pageSize: 5) { list { ticket status summary scopeId scopeType } }
    waiting: inbox(filter: { view: "mine", status: ["pending"], sortBy: "sla_due_at", sortOrder: "asc" }, pageSize: 5) { list { ticket status summary requestedBy overdue } stats { pending overdue expiring15M } }
    deliveryMetrics(projectId: $projectId, bucket: "day") {
      totals { start deployments changeFailureRate leadTimeP50Seconds timeToRestoreP50Seconds }
      buckets { start deployments changeFailureRate leadTimeP50Seconds timeToRestoreP50Seconds }
    }
  }
`);

const ProblemsDoc = graphql(`
  query Problems {
    clusters(pageSize: 200) { list { id name status } }
    environments(pageSize: 200) { list { id name status } }
  }
`);

const IN_FLIGHT = ['previewed', 'pending_approval', 'approved', 'applying', 'rollback_requested', 'rolling_back'];

export function Home() {
  const { t } = useTranslation();
  const nav = useNavigate();
  const { me, projectId, can } = useSession();
  const home = useQuery(HomeDoc, { projectId: projectId ?? null, me: me?.id ?? '', inFlight: IN_FLIGHT });
  const problems = useQuery(ProblemsDoc, {}, { skip: !can('cluster:read') || !can('environment:read') });
  const bad = [
    ...(problems.data?.clusters.list.filter((c) => c.status !== 'connected').map((c) => ({ key: c.id, name: c.name, kind: 'cluster' as const, state: c.status })) ?? []),
    ...(problems.data?.environments.list.filter((e) => e.status === 'failed' || e.status === 'offline').map((e) => ({ key: e.id, name: e.name, kind: 'environment' as const, state: e.status })) ?? []),
  ];
  const d = home.data;
  return (
    <Space direction="vertical" size={16} style={{ width: '100%' }}>
      <ErrorAlert error={home.error} />
      <Card title={t('home.canDo')}>
        <Space wrap>
          <Button type="primary" icon={<RocketOutlined />} onClick={() => nav('/deploy')} data-testid="action-release">{t('home.release')}</Button>
          <Button icon={<RollbackOutlined />} onClick={() => nav('/releases?status=applied')}>{t('home.rollback')}</Button>
          <Button icon={<RobotOutlined />} onClick={() => nav('/ai')} data-testid="action-ai">{t('home.askAi')}</Button>
        </Space>
      </Card>
      <Row gutter={16}>
        <Col span={8}>
          <Card title={t('home.inFlight')} size="small" data-testid="home-in-flight">
            <List loading={home.loading} dataSource={d?.releases.list ?? []} locale={{ emptyText: t('common.none') }}
              renderItem={(r) => (
                <List.Item><Link to={`/releases/${r.id}`}>{r.id.slice(0, 8)}</Link> {r.env} <StateTag kind="release" state={r.status} /></List.Item>
              )} />
          </Card>
        </Col>
        <Col span={8}>
          <Card title={t('home.myRequests')} size="small" data-testid="home-my-requests">
            <List loading={home.loading} dataSource={d?.requested.list ?? []} locale={{ emptyText: t('common.none') }}
              renderItem={(x) => (
                <List.Item><Link to={`/inbox/${x.ticket}`}>{x.summary}</Link> <StateTag kind="ticket" state={x.status} /></List.Item>
              )} />
          </Card>
        </Col>
        <Col span={8}>
          <Card title={t('home.waitingForMe')} size="small" data-testid="home-waiting" extra={d && <Typography.Text type="secondary">{d.waiting.stats.pending}</Typography.Text>}>
            <List loading={home.loading} dataSource={(d?.waiting.list ?? []).filter((x) => x.requestedBy !== me?.id)} locale={{ emptyText: t('common.none') }}
              renderItem={(x) => (
                <List.Item><Link to={`/inbox/${x.ticket}`}>{x.summary}</Link> {x.overdue && <Typography.Text type="danger">{t('inbox.overdue')}</Typography.Text>}</List.Item>
              )} />
          </Card>
        </Col>
      </Row>
      {(can('cluster:read') && can('environment:read')) && (
        <Card title={t('home.problems')} size="small" data-testid="home-problems">
          {bad.length === 0 ? <Typography.Text type="success">{t('home.noProblems')}</Typography.Text> : (
            <List dataSource={bad} renderItem={(b) => <List.Item>{b.name} <StateTag kind={b.kind} state={b.state} /></List.Item>} />
          )}
        </Card>
      )}
      <Card title={t('home.metrics')} data-testid="home-metrics">
        {d ? <Suspense fallback={<Spin />}><DeliveryCharts buckets={d.deliveryMetrics.buckets} totals={d.deliveryMetrics.totals} /></Suspense> : <Spin />}
      </Card>
    </Space>
  );
}
