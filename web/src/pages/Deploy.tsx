import { MinusCircleOutlined, PlusOutlined } from '@ant-design/icons';
import { App, Button, Card, Form, Input, Select, Space } from 'antd';
import { useMemo, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { useNavigate } from 'react-router-dom';
import { gql } from '../api/client';
import { useQuery } from '../api/hooks';
import { ErrorAlert } from '../components/ErrorAlert';
import { PreviewPanel, type Preview } from '../components/PreviewPanel';
import { graphql } from '../gql';
import { useSession } from '../session';

const CatalogDoc = graphql(`
  query Catalog {
    services(pageSize: 200) { list { id name projectId runtimeType defaultVariables riskLevel } }
    targets(pageSize: 200) { list { id name projectId runtimeType env namespace } }
  }
`);

const PreviewDoc = graphql(`
  mutation PreviewRelease($input: ReleaseInput!) {
    previewRelease(input: $input) { position result }
  }
`);

const ApplyDoc = graphql(`
  mutation ApplyRelease($input: ApplyReleaseInput!) {
    applyRelease(input: $input) { position result }
  }
`);

interface Draft {
  serviceId: string;
  targetId: string;
  env: string;
  strategy: string;
  variables: { key: string; value: string }[];
}

const STRATEGIES = ['rolling', 'recreate', 'blue_green', 'canary'];

/** The release draft → preview → confirm flow of the deployment page. */
export default function Deploy() {
  const { t } = useTranslation();
  const nav = useNavigate();
  const { message } = App.useApp();
  const { projectId } = useSession();
  const catalog = useQuery(CatalogDoc, {});
  const [form] = Form.useForm<Draft>();
  const serviceId = Form.useWatch('serviceId', form);
  const [preview, setPreview] = useState<Preview | null>(null);
  const [draft, setDraft] = useState<Draft | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const services = useMemo(() => (catalog.data?.services.list ?? []).filter((s) => !projectId || s.projectId === projectId), [catalog.data, projectId]);
  const service = services.find((s) => s.id === serviceId);
  const targets = (catalog.data?.targets.list ?? []).filter((x) => (!service || (x.projectId === service.projectId && x.runtimeType === service.runtimeType)));

  const input = (d: Draft) => ({
    serviceId: d.serviceId,
    targetId: d.targetId,
    env: d.env,
    strategy: d.strategy,
    variables: Object.fromEntries((d.variables ?? []).filter((v) => v?.key).map((v) => [v.key, v.value ?? ''])),
  });

  const runPreview = async (d: Draft) => {
    setBusy(true);
    setError(null);
    setPreview(null);
    try {
      const r = await gql(PreviewDoc, { input: input(d) });
      setDraft(d);
      setPreview(r.previewRelease.result as Preview);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  const confirm = async () => {
    if (!draft || !preview) return;
    setBusy(true);
    setError(null);
    try {
      const r = await gql(ApplyDoc, { input: { ...input(draft), previewRef: preview.preview_ref } });
      const res = r.applyRelease.result as { release_id: string; status: string };
      void message.success(res.status === 'pending_approval' ? t('deploy.pendingApproval') : t('deploy.sent'));
      nav(`/releases/${res.release_id}`);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  const onService = (id: string) => {
    const s = services.find((x) => x.id === id);
    const defaults = (s?.defaultVariables ?? {}) as Record<string, string>;
    form.setFieldsValue({ targetId: undefined, variables: Object.entries(defaults).map(([key, value]) => ({ key, value: String(value) })) });
  };
  const onTarget = (id: string) => {
    const x = targets.find((y) => y.id === id);
    if (x) form.setFieldsValue({ env: x.env });
  };

  return (
    <>
      <Card title={t('deploy.title')}>
        <ErrorAlert error={error ?? catalog.error} onClose={() => setError(null)} />
        <Form form={form} layout="vertical" initialValues={{ strategy: 'rolling', variables: [] }} onFinish={runPreview} onValuesChange={() => setPreview(null)}>
          <Space wrap size={16} align="start">
            <Form.Item name="serviceId" label={t('deploy.service')} rules={[{ required: true }]}>
              <Select style={{ width: 220 }} data-testid="deploy-service" onChange={onService} options={services.map((s) => ({ value: s.id, label: s.name }))} showSearch optionFilterProp="label" />
            </Form.Item>
            <Form.Item name="targetId" label={t('deploy.target')} rules={[{ required: true }]}>
              <Select style={{ width: 220 }} data-testid="deploy-target" onChange={onTarget} options={targets.map((x) => ({ value: x.id, label: `${x.name} (${x.env})` }))} />
            </Form.Item>
            <Form.Item name="env" label={t('deploy.env')} rules={[{ required: true }]}>
              <Input style={{ width: 160 }} data-testid="deploy-env" />
            </Form.Item>
            <Form.Item name="strategy" label={t('deploy.strategy')}>
              <Select style={{ width: 160 }} options={STRATEGIES.map((s) => ({ value: s, label: s }))} />
            </Form.Item>
          </Space>
          <Form.List name="variables">
            {(fields, { add, remove }) => (
              <Form.Item label={t('deploy.variables')}>
                {fields.map((f) => (
                  <Space key={f.key} align="baseline">
                    <Form.Item name={[f.name, 'key']} rules={[{ required: true }]}>
                      <Input placeholder={t('deploy.key')} data-testid={`var-key-${f.name}`} />
                    </Form.Item>
                    <Form.Item name={[f.name, 'value']}>
                      <Input placeholder={t('deploy.value')} style={{ width: 320 }} data-testid={`var-value-${f.name}`} />
                    </Form.Item>
                    <MinusCircleOutlined onClick={() => remove(f.name)} />
                  </Space>
                ))}
                <Button type="dashed" onClick={() => add({ key: '', value: '' })} icon={<PlusOutlined />}>
                  {t('deploy.addVariable')}
                </Button>
              </Form.Item>
            )}
          </Form.List>
          <Button type="primary" htmlType="submit" loading={busy} data-testid="deploy-preview">
            {t('deploy.preview')}
          </Button>
        </Form>
      </Card>
      {preview && <PreviewPanel preview={preview} busy={busy} onConfirm={confirm} onRepreview={() => draft && void runPreview(draft)} />}
    </>
  );
}
