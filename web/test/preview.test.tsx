import { act, fireEvent, render, screen } from '@testing-library/react';
import { I18nextProvider } from 'react-i18next';
import i18n from '../src/i18n';
import { ManifestDiff, sideBySide } from '../src/components/ManifestDiff';
import { PreviewPanel, type Preview } from '../src/components/PreviewPanel';

const before = 'kind: Deployment\nimage: svc-a:v1\nreplicas: 2\n';
const after = 'kind: Deployment\nimage: svc-a:v2\nreplicas: 2\nport: 8080\n';

function preview(expiresInSeconds: number): Preview {
  return {
    preview_ref: 'pv_rel_1',
    release_id: 'r1',
    resolved_manifest: after,
    current_manifest: before,
    checks: [{ level: 'info', code: 'dry_run_ok', message: 'server-side dry-run apply accepted every object' }],
    warnings: ['an image uses the tag latest: the release is not reproducible'],
    expires_at: new Date(Date.now() + expiresInSeconds * 1000).toISOString(),
    risk_level: 'medium',
  };
}

const wrap = (ui: React.ReactNode) => render(<I18nextProvider i18n={i18n}>{ui}</I18nextProvider>);

describe('the side-by-side diff', () => {
  it('pairs a changed line with its replacement and keeps the line numbers of both sides', () => {
    const rows = sideBySide(before, after);
    expect(rows).toHaveLength(4);
    expect(rows[0]).toEqual({ left: { n: 1, text: 'kind: Deployment', kind: 'same' }, right: { n: 1, text: 'kind: Deployment', kind: 'same' } });
    expect(rows[1]).toEqual({ left: { n: 2, text: 'image: svc-a:v1', kind: 'removed' }, right: { n: 2, text: 'image: svc-a:v2', kind: 'added' } });
    expect(rows[3]).toEqual({ right: { n: 4, text: 'port: 8080', kind: 'added' } });
  });

  it('shows a first release as all added', () => {
    const rows = sideBySide('', 'a\nb\n');
    expect(rows.map((r) => [r.left, r.right?.kind])).toEqual([[undefined, 'added'], [undefined, 'added']]);
  });

  it('renders the removed and added cells', () => {
    wrap(<ManifestDiff before={before} after={after} leftTitle="now" rightTitle="next" />);
    const table = screen.getByTestId('manifest-diff');
    expect(table.querySelectorAll('td[data-kind="removed"]')).toHaveLength(1);
    expect(table.querySelectorAll('td[data-kind="added"]')).toHaveLength(2);
    expect(screen.getByText('image: svc-a:v2')).toBeInTheDocument();
  });
});

describe('the preview panel', () => {
  beforeEach(async () => {
    await i18n.changeLanguage('en');
  });

  it('shows checks, warnings and the diff, and confirms while the preview is valid', () => {
    const confirm = vi.fn();
    const again = vi.fn();
    wrap(<PreviewPanel preview={preview(600)} onConfirm={confirm} onRepreview={again} />);
    expect(screen.getByText('server-side dry-run apply accepted every object')).toBeInTheDocument();
    expect(screen.getByText(/tag latest/)).toBeInTheDocument();
    expect(screen.getByText('Running now')).toBeInTheDocument();
    fireEvent.click(screen.getByTestId('confirm-release'));
    expect(confirm).toHaveBeenCalledTimes(1);
    fireEvent.click(screen.getByText('Preview again'));
    expect(again).toHaveBeenCalledTimes(1);
  });

  it('refuses to confirm once the TTL has run out and says to preview again', () => {
    vi.useFakeTimers();
    try {
      const confirm = vi.fn();
      wrap(<PreviewPanel preview={preview(2)} onConfirm={confirm} onRepreview={() => {}} />);
      expect(screen.getByTestId('confirm-release')).not.toBeDisabled();
      act(() => {
        vi.advanceTimersByTime(3000);
      });
      expect(screen.getByTestId('confirm-release')).toBeDisabled();
      expect(screen.getByText('The preview expired: preview again')).toBeInTheDocument();
      fireEvent.click(screen.getByTestId('confirm-release'));
      expect(confirm).not.toHaveBeenCalled();
    } finally {
      vi.useRealTimers();
    }
  });

  it('says so when nothing runs yet', () => {
    wrap(<PreviewPanel preview={{ ...preview(600), current_manifest: null }} onConfirm={() => {}} onRepreview={() => {}} />);
    expect(screen.getByText('First release (nothing runs yet)')).toBeInTheDocument();
  });
});
