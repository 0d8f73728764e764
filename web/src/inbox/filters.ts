// The inbox's filter bar as state, and how it becomes the GraphQL filter.
import type { InboxFilter } from '../gql/graphql';

export type InboxView = 'mine' | 'pending' | 'requested';

export interface FilterState {
  status: string[];
  scopeType: string[];
  projectId?: string;
  teamId?: string;
  riskLevel?: string;
  priority?: string;
  expiring?: '15m' | '1h' | 'today';
  q?: string;
}

export const emptyFilters: FilterState = { status: [], scopeType: [] };

/** 我的待办: what waits for me (pending, mine); 全部待办: every pending ticket I
 * may see; 我发起的: what I asked for, whatever became of it. */
export function toInboxFilter(view: InboxView, f: FilterState, me: string): InboxFilter {
  const out: InboxFilter = {};
  if (view === 'mine') {
    out.view = 'mine';
    out.status = f.status.length ? f.status : ['pending'];
  } else if (view === 'pending') {
    out.view = 'pending';
  } else {
    out.view = 'all';
    out.requestedBy = me;
    if (f.status.length) out.status = f.status;
  }
  if (view === 'pending' && f.status.length) out.status = f.status.filter((s) => s === 'pending');
  if (f.scopeType.length) out.scopeType = f.scopeType;
  if (f.projectId) out.projectId = f.projectId;
  if (f.teamId) out.teamId = f.teamId;
  if (f.riskLevel) out.riskLevel = f.riskLevel;
  if (f.priority) out.priority = f.priority;
  if (f.expiring) out.expiring = f.expiring;
  const q = f.q?.trim();
  if (q) out.q = q;
  out.sortBy = f.expiring ? 'expires_at' : 'sla_due_at';
  out.sortOrder = 'asc';
  return out;
}

/** Only a pending ticket the user may decide and did not request can be batch-approved. */
export function batchApprovable(t: { status: string; requestedBy: string }, me: string, canApprove: boolean): boolean {
  return canApprove && t.status === 'pending' && t.requestedBy !== me;
}
