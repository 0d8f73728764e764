import { ApiOutlined, AuditOutlined, CheckSquareOutlined, ClusterOutlined, CloudServerOutlined, DeploymentUnitOutlined, HomeOutlined, RobotOutlined, RocketOutlined, TeamOutlined, UnorderedListOutlined } from '@ant-design/icons';
import { Button, Layout, Menu, Select, Space, Typography } from 'antd';
import type { ReactNode } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, useLocation } from 'react-router-dom';
import { setLang } from '../api/client';
import { useSession } from '../session';

/** The console frame: the menu (what the user may use), the project scope, the language switch. */
export function AppLayout({ children }: { children: ReactNode }) {
  const { t, i18n } = useTranslation();
  const { me, projects, projectId, setProjectId, can, signOut } = useSession();
  const loc = useLocation();
  const items = [
    { key: '/', icon: <HomeOutlined />, label: <Link to="/">{t('nav.home')}</Link> },
    { key: '/ai', icon: <RobotOutlined />, label: <Link to="/ai">{t('nav.ai')}</Link> },
    { key: '/deploy', icon: <RocketOutlined />, label: <Link to="/deploy">{t('nav.deploy')}</Link> },
    { key: '/releases', icon: <UnorderedListOutlined />, label: <Link to="/releases">{t('nav.releases')}</Link> },
    { key: '/inbox', icon: <CheckSquareOutlined />, label: <Link to="/inbox">{t('nav.inbox')}</Link> },
    can('environment:read') && { key: '/environments', icon: <DeploymentUnitOutlined />, label: <Link to="/environments">{t('nav.environments')}</Link> },
    can('host:read') && { key: '/hosts', icon: <CloudServerOutlined />, label: <Link to="/hosts">{t('nav.hosts')}</Link> },
    can('cluster:read') && { key: '/clusters', icon: <ClusterOutlined />, label: <Link to="/clusters">{t('nav.clusters')}</Link> },
    can('audit:read') && { key: '/audit', icon: <AuditOutlined />, label: <Link to="/audit">{t('nav.audit')}</Link> },
    can('identity:manage') && { key: '/users', icon: <TeamOutlined />, label: <Link to="/users">{t('nav.users')}</Link> },
  ].filter((x): x is Exclude<typeof x, false> => !!x);
  const selected = items.map((i) => i.key).filter((k) => (k === '/' ? loc.pathname === '/' : loc.pathname.startsWith(k)));
  const switchLang = () => {
    const next = i18n.language === 'en' ? 'zh-CN' : 'en';
    setLang(next);
    void i18n.changeLanguage(next);
  };
  return (
    <Layout style={{ minHeight: '100vh' }}>
      <Layout.Sider theme="light" width={200} breakpoint="lg" collapsedWidth={56}>
        <div style={{ padding: '16px 20px', fontWeight: 700, fontSize: 18 }}>
          <ApiOutlined /> {t('app.title')}
        </div>
        <Menu mode="inline" selectedKeys={selected} items={items} />
      </Layout.Sider>
      <Layout>
        <Layout.Header style={{ background: '#fff', display: 'flex', justifyContent: 'flex-end', alignItems: 'center', gap: 16, paddingInline: 24 }}>
          <Space>
            <Typography.Text type="secondary">{t('app.project')}</Typography.Text>
            <Select
              data-testid="project-scope"
              style={{ minWidth: 180 }}
              value={projectId ?? ''}
              onChange={(v: string) => setProjectId(v || null)}
              options={[{ value: '', label: t('app.allProjects') }, ...projects.map((p) => ({ value: p.id, label: p.name }))]}
            />
          </Space>
          <Button type="text" onClick={switchLang} data-testid="lang-switch">
            {t('app.language')}
          </Button>
          <Typography.Text data-testid="whoami">{me?.username}</Typography.Text>
          <Button type="link" onClick={signOut}>
            {t('app.logout')}
          </Button>
        </Layout.Header>
        <Layout.Content style={{ padding: 24 }}>{children}</Layout.Content>
      </Layout>
    </Layout>
  );
}
