import { fireEvent, render, screen } from '@testing-library/react';
import { I18nextProvider } from 'react-i18next';
import i18n from '../src/i18n';
import { batchApprovable, emptyFilters, toInboxFilter } from '../src/inbox/filters';
import { FilterBar } from '../src/pages/Inbox';

const ME = '00000000-0000-0000-0000-0000000000aa';

describe('inbox views and filters', () => {
  it('我的待办 asks for what waits for me, pending first by SLA', () => {
    expect(toInboxFilter('mine', emptyFilters, ME)).toEqual({ view: 'mine', status: ['pending'], sortBy: 'sla_due_at', sortOrder: 'asc' });
  });

  it('全部待办 is every pending ticket; 我发起的 is mine whatever became of it', () => {
    expect(toInboxFilter('pending', emptyFilters, ME).view).toBe('pending');
    const requested = toInboxFilter('requested', { ...emptyFilters, status: ['rejected'] }, ME);
    expect(requested).toMatchObject({ view: 'all', requestedBy: ME, status: ['rejected'] });
  });

  it('passes every filter of the bar and sorts by expiry when filtering on it', () => {
    const f = toInboxFilter('mine', { status: [], scopeType: ['release'], projectId: 'p', teamId: 't', riskLevel: 'high', priority: 'p1', expiring: '15m', q: '  svc-a ' }, ME);
    expect(f).toMatchObject({ scopeType: ['release'], projectId: 'p', teamId: 't', riskLevel: 'high', priority: 'p1', expiring: '15m', q: 'svc-a', sortBy: 'expires_at' });
  });

  it('batch approval offers only pending tickets of others to an approver', () => {
    expect(batchApprovable({ status: 'pending', requestedBy: 'someone' }, ME, true)).toBe(true);
    expect(batchApprovable({ status: 'pending', requestedBy: ME }, ME, true)).toBe(false);
    expect(batchApprovable({ status: 'approved', requestedBy: 'someone' }, ME, true)).toBe(false);
    expect(batchApprovable({ status: 'pending', requestedBy: 'someone' }, ME, false)).toBe(false);
  });

  it('the filter bar hands a search and a team on as filters', async () => {
    await i18n.changeLanguage('zh-CN');
    const seen: unknown[] = [];
    render(<I18nextProvider i18n={i18n}><FilterBar value={emptyFilters} projects={[]} onChange={(f) => seen.push(f)} /></I18nextProvider>);
    const search = screen.getByPlaceholderText('搜索工单、服务、发起人');
    fireEvent.change(search, { target: { value: 'svc-a' } });
    fireEvent.keyDown(search, { key: 'Enter', code: 'Enter', keyCode: 13 });
    expect(seen.at(-1)).toMatchObject({ q: 'svc-a' });
    fireEvent.change(screen.getByPlaceholderText('团队'), { target: { value: 'team-app' } });
    expect(seen.at(-1)).toMatchObject({ teamId: 'team-app' });
  });
});
