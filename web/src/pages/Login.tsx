import { Button, Card, Form, Input } from 'antd';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { gql, setLang } from '../api/client';
import { ErrorAlert } from '../components/ErrorAlert';
import { graphql } from '../gql';
import { useSession } from '../session';

const LoginDoc = graphql(`
  mutation Login($input: LoginInput!) {
    login(input: $input) { token expiresAt }
  }
`);

export function Login() {
  const { t, i18n } = useTranslation();
  const { signedIn } = useSession();
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (v: { username: string; password: string }) => {
    setBusy(true);
    setError(null);
    try {
      const r = await gql(LoginDoc, { input: v });
      await signedIn(r.login.token);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div style={{ display: 'flex', justifyContent: 'center', paddingTop: '12vh', minHeight: '100vh', background: '#f5f5f7' }}>
      <Card title={t('login.title')} style={{ width: 380, height: 'fit-content' }} extra={
        <Button type="link" data-testid="lang-switch" onClick={() => { const n = i18n.language === 'en' ? 'zh-CN' : 'en'; setLang(n); void i18n.changeLanguage(n); }}>
          {t('app.language')}
        </Button>
      }>
        <ErrorAlert error={error} />
        <Form layout="vertical" onFinish={submit}>
          <Form.Item name="username" label={t('login.username')} rules={[{ required: true, message: t('login.required', { field: t('login.username') }) }]}>
            <Input autoComplete="username" data-testid="username" />
          </Form.Item>
          <Form.Item name="password" label={t('login.password')} rules={[{ required: true, message: t('login.required', { field: t('login.password') }) }]}>
            <Input.Password autoComplete="current-password" data-testid="password" />
          </Form.Item>
          <Button type="primary" htmlType="submit" block loading={busy} data-testid="login-submit">
            {t('login.submit')}
          </Button>
        </Form>
      </Card>
    </div>
  );
}
