import { Tag } from 'antd';
import { useTranslation } from 'react-i18next';
import { stateLook, type Lang, type StateKind } from '../states';

/** A state with the label and color of the one state table. */
export function StateTag({ kind, state }: { kind: StateKind; state: string | null | undefined }) {
  const { i18n } = useTranslation();
  const look = stateLook(kind, state, i18n.language as Lang);
  return (
    <Tag color={look.color} data-state={state ?? ''} data-kind={kind}>
      {look.label}
    </Tag>
  );
}
