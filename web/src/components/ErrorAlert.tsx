import { Alert } from 'antd';
import { useTranslation } from 'react-i18next';
import { OpsError } from '../api/client';

/** A refusal: the dictionary's hint in the current language as the next step, with the key and detail. */
export function ErrorAlert({ error, onClose }: { error: unknown; onClose?: () => void }) {
  const { t } = useTranslation();
  if (!error) return null;
  const e = error instanceof OpsError ? error : new OpsError(36001, 'internal_error', '', String(error));
  return (
    <Alert
      type="error"
      showIcon
      closable={!!onClose}
      onClose={onClose}
      data-error-key={e.key}
      message={`${t('error.title')}: ${e.detail}`}
      description={
        <span>
          {e.hint && (
            <>
              {t('common.nextStep')}: {e.hint}{' '}
            </>
          )}
          <code>
            {t('common.errorKey')} {e.code} {e.key}
          </code>
        </span>
      }
      style={{ marginBottom: 12 }}
    />
  );
}
