import { App as AntApp, ConfigProvider, Spin } from 'antd';
import enUS from 'antd/locale/en_US';
import zhCN from 'antd/locale/zh_CN';
import 'dayjs/locale/zh-cn';
import { lazy, StrictMode, Suspense } from 'react';
import { createRoot } from 'react-dom/client';
import { useTranslation } from 'react-i18next';
import { BrowserRouter, Navigate, Route, Routes } from 'react-router-dom';
import './i18n';
import { AppLayout } from './layout/AppLayout';
import { Home } from './pages/Home';
import { Login } from './pages/Login';
import { SessionProvider, useSession } from './session';

// Pages past the home page load when first opened.
const Deploy = lazy(() => import('./pages/Deploy'));
const Releases = lazy(() => import('./pages/Releases'));
const ReleaseDetail = lazy(() => import('./pages/ReleaseDetail'));
const Ai = lazy(() => import('./pages/Ai'));
const Inbox = lazy(() => import('./pages/Inbox'));
const Environments = lazy(() => import('./pages/Environments'));
const Hosts = lazy(() => import('./pages/Hosts'));
const Clusters = lazy(() => import('./pages/Clusters'));
const Audit = lazy(() => import('./pages/Audit'));
const Users = lazy(() => import('./pages/Users'));

function Console() {
  const { me, loading } = useSession();
  if (loading) return <Spin style={{ margin: 64 }} />;
  if (!me) return <Login />;
  return (
    <AppLayout>
      <Suspense fallback={<Spin />}>
        <Routes>
          <Route path="/" element={<Home />} />
          <Route path="/deploy" element={<Deploy />} />
          <Route path="/releases" element={<Releases />} />
          <Route path="/releases/:id" element={<ReleaseDetail />} />
          <Route path="/ai" element={<Ai />} />
          <Route path="/ai/:sessionId" element={<Ai />} />
          <Route path="/inbox" element={<Inbox />} />
          <Route path="/inbox/:ticket" element={<Inbox />} />
          <Route path="/environments" element={<Environments />} />
          <Route path="/environments/:id" element={<Environments />} />
          <Route path="/hosts" element={<Hosts />} />
          <Route path="/clusters" element={<Clusters />} />
          <Route path="/audit" element={<Audit />} />
          <Route path="/users" element={<Users />} />
          <Route path="/login" element={<Navigate to="/" replace />} />
          <Route path="*" element={<Navigate to="/" replace />} />
        </Routes>
      </Suspense>
    </AppLayout>
  );
}

function Root() {
  const { i18n } = useTranslation();
  return (
    <ConfigProvider locale={i18n.language === 'en' ? enUS : zhCN} theme={{ token: { colorPrimary: '#4f46e5' } }}>
      <AntApp>
        <SessionProvider>
          <BrowserRouter>
            <Console />
          </BrowserRouter>
        </SessionProvider>
      </AntApp>
    </ConfigProvider>
  );
}

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <Root />
  </StrictMode>,
);
