import { Button, Card, Form, Input, Modal, Select, Space, Table, Tag } from 'antd';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { gql } from '../api/client';
import { useQuery } from '../api/hooks';
import { ErrorAlert } from '../components/ErrorAlert';
import { graphql } from '../gql';

const UsersDoc = graphql(`
  query Users { users(pageSize: 200) { list { id username displayName roles disabled createdAt } } }
`);
const CreateUserDoc = graphql(`
  mutation CreateUser($input: NewUserInput!) { createUser(input: $input) { position result } }
`);
const GrantDoc = graphql(`
  mutation GrantRole($user: String!, $input: RoleInput!) { grantRole(user: $user, input: $input) { position result } }
`);
const RevokeDoc = graphql(`
  mutation RevokeRole($user: String!, $role: String!) { revokeRole(user: $user, role: $role) { position result } }
`);

const ROLES = ['operator', 'approver', 'admin'];

/** Users and roles (admins). */
export default function Users() {
  const { t } = useTranslation();
  const q = useQuery(UsersDoc, {});
  const [error, setError] = useState<unknown>(null);
  const [creating, setCreating] = useState(false);
  const [form] = Form.useForm();
  const run = async (f: () => Promise<unknown>) => { setError(null); try { await f(); await q.reload(); } catch (e) { setError(e); } };
  return (
    <Card title={t('users.title')} extra={<Button type="primary" onClick={() => setCreating(true)}>{t('users.create')}</Button>}>
      <ErrorAlert error={error ?? q.error} onClose={() => setError(null)} />
      <Table size="small" rowKey="id" loading={q.loading} dataSource={q.data?.users.list ?? []}
        columns={[
          { title: t('users.username'), dataIndex: 'username' },
          { title: t('users.displayName'), dataIndex: 'displayName' },
          { title: t('users.roles'), render: (_: unknown, u: { username: string; roles: string[] }) => (
            <Space wrap>
              {u.roles.map((r) => <Tag key={r} closable onClose={(e) => { e.preventDefault(); void run(() => gql(RevokeDoc, { user: u.username, role: r })); }}>{r}</Tag>)}
              <Select size="small" placeholder={t('users.grant')} style={{ width: 120 }} value={null} onChange={(role: string) => run(() => gql(GrantDoc, { user: u.username, input: { role } }))}
                options={ROLES.filter((r) => !u.roles.includes(r)).map((r) => ({ value: r, label: r }))} />
            </Space>
          ) },
        ]} />
      <Modal open={creating} title={t('users.create')} onCancel={() => setCreating(false)} onOk={() => form.submit()} destroyOnClose>
        <Form form={form} layout="vertical" onFinish={(v: { username: string; displayName?: string; password: string; roles: string[] }) => run(async () => { await gql(CreateUserDoc, { input: { ...v, roles: v.roles ?? [] } }); setCreating(false); })}>
          <Form.Item name="username" label={t('users.username')} rules={[{ required: true }]}><Input /></Form.Item>
          <Form.Item name="displayName" label={t('users.displayName')}><Input /></Form.Item>
          <Form.Item name="password" label={t('login.password')} rules={[{ required: true }]}><Input.Password /></Form.Item>
          <Form.Item name="roles" label={t('users.roles')}><Select mode="multiple" options={ROLES.map((r) => ({ value: r, label: r }))} /></Form.Item>
        </Form>
      </Modal>
    </Card>
  );
}
