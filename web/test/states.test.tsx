import { act, render, screen } from '@testing-library/react';
import { I18nextProvider } from 'react-i18next';
import i18n from '../src/i18n';
import { StateTag } from '../src/components/StateTag';
import { stateLook, statesOf } from '../src/states';

describe('the one state table', () => {
  it('names every release state in both languages with a color of its own', () => {
    const states = statesOf('release');
    expect(states).toContain('pending_approval');
    expect(states).toHaveLength(14);
    const colors = new Set(states.map((s) => stateLook('release', s, 'en').color));
    expect(colors.size).toBe(14);
    for (const s of states) {
      expect(stateLook('release', s, 'zh-CN').label).not.toBe(s);
      expect(stateLook('release', s, 'en').label).not.toBe(s);
    }
    expect(stateLook('release', 'applying', 'zh-CN').label).toBe('发布中');
    expect(stateLook('release', 'applying', 'en').label).toBe('Applying');
  });

  it('reads a ticket waiting like the release waiting for it', () => {
    expect(stateLook('ticket', 'pending', 'zh-CN')).toEqual(stateLook('release', 'pending_approval', 'zh-CN'));
  });

  it('shows an unknown state by its name in gray rather than hiding it', () => {
    expect(stateLook('release', 'executing', 'en')).toEqual({ label: 'executing', color: '#6b7280', known: false });
  });

  it('renders the tag in the current language', async () => {
    await i18n.changeLanguage('zh-CN');
    const { rerender } = render(<I18nextProvider i18n={i18n}><StateTag kind="release" state="applied" /></I18nextProvider>);
    expect(screen.getByText('已发布')).toHaveAttribute('data-state', 'applied');
    await act(async () => {
      await i18n.changeLanguage('en');
    });
    rerender(<I18nextProvider i18n={i18n}><StateTag kind="release" state="applied" /></I18nextProvider>);
    expect(screen.getByText('Applied')).toBeInTheDocument();
  });
});
