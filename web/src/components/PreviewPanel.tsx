import { Alert, Button, Card, Descriptions, List, Space, Tag } from 'antd';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { Countdown, secondsLeft } from './Countdown';
import { ManifestDiff } from './ManifestDiff';

/** A release preview as the server answers it. */
export interface Preview {
  preview_ref: string;
  release_id: string;
  resolved_manifest: string;
  current_manifest?: string | null;
  checks: { level: string; code: string; message: string }[];
  warnings: string[];
  expires_at: string;
  risk_level?: string;
  runtime?: string;
}

const levelColor: Record<string, string> = { info: 'green', warning: 'orange', error: 'red' };

/** Checks, warnings, the side-by-side diff and the TTL; confirm is possible
 * only while the preview is valid, re-preview always. */
export function PreviewPanel({ preview, onConfirm, onRepreview, busy }: { preview: Preview; onConfirm: () => void; onRepreview: () => void; busy?: boolean }) {
  const { t } = useTranslation();
  const [expired, setExpired] = useState(() => secondsLeft(preview.expires_at) === 0);
  return (
    <Card title={t('deploy.preview')} data-testid="preview-panel" data-preview-ref={preview.preview_ref} style={{ marginTop: 16 }}>
      <Descriptions size="small" column={3}>
        <Descriptions.Item label="preview_ref">
          <code>{preview.preview_ref}</code>
        </Descriptions.Item>
        <Descriptions.Item label={t('deploy.risk')}>{preview.risk_level ?? '—'}</Descriptions.Item>
        <Descriptions.Item label={t('deploy.expiresIn')}>
          <Countdown key={preview.expires_at} until={preview.expires_at} onExpired={() => setExpired(true)} />
        </Descriptions.Item>
      </Descriptions>
      <List
        size="small"
        header={t('deploy.checks')}
        dataSource={preview.checks}
        renderItem={(c) => (
          <List.Item data-check={c.code}>
            <Tag color={levelColor[c.level] ?? 'default'}>{c.level}</Tag> {c.message}
          </List.Item>
        )}
      />
      {preview.warnings.map((w) => (
        <Alert key={w} type="warning" showIcon message={w} style={{ marginTop: 8 }} />
      ))}
      <h4 style={{ marginTop: 16 }}>{t('deploy.diff')}</h4>
      <ManifestDiff
        before={preview.current_manifest ?? ''}
        after={preview.resolved_manifest}
        leftTitle={preview.current_manifest ? t('deploy.current') : t('deploy.firstRelease')}
        rightTitle={t('deploy.next')}
      />
      {expired && <Alert type="error" showIcon message={t('deploy.expired')} style={{ marginTop: 12 }} />}
      <Space style={{ marginTop: 16 }}>
        <Button type="primary" onClick={onConfirm} disabled={expired} loading={busy} data-testid="confirm-release">
          {t('deploy.confirm')}
        </Button>
        <Button onClick={onRepreview} disabled={busy}>
          {t('deploy.repreview')}
        </Button>
      </Space>
    </Card>
  );
}
