// The one table of states: every page shows a state with this label and
// color. Release states are the server's own table (a Rust test compares
// them with the domain), so the console, the AI and the API never disagree.
import table from './states.json';

export type Lang = 'zh-CN' | 'en';
export type StateKind = keyof typeof table;

export interface StateLook {
  label: string;
  color: string;
  known: boolean;
}

const all = table as Record<StateKind, Record<string, { en: string; zh: string; color: string }>>;

/** The label and color of `state` of `kind` in `lang`; an unknown state shows its raw name in gray. */
export function stateLook(kind: StateKind, state: string | null | undefined, lang: Lang): StateLook {
  const entry = state ? all[kind][state] : undefined;
  if (!entry) return { label: state ?? '—', color: '#6b7280', known: false };
  return { label: lang === 'en' ? entry.en : entry.zh, color: entry.color, known: true };
}

/** Every state of a kind, in table order (for filters). */
export function statesOf(kind: StateKind): string[] {
  return Object.keys(all[kind]);
}

/** Release states after which nothing happens by itself. */
export const FINAL_RELEASE_STATES = ['applied', 'failed', 'rejected', 'expired', 'cancelled', 'rolled_back', 'rollback_failed'];
