// The console's one door to OpsPilot: GraphQL over HTTP for queries and
// mutations, graphql-ws for live updates, REST where only REST exists (login,
// the release's compose logs). Every request carries the token, the UI
// language (the server words the dictionary's hint in it) and the entry point
// (X-OpsPilot-Source), so the timeline says where an action came from.
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { print } from 'graphql';
import { createClient, type Client } from 'graphql-ws';

export type Source = 'deployment_ui' | 'ai_command_center' | 'approval_inbox';

/** A refusal as the error dictionary words it. */
export class OpsError extends Error {
  constructor(
    public code: number,
    public key: string,
    public hint: string,
    public detail: string,
  ) {
    super(detail || key);
  }
}

const TOKEN = 'opspilot.token';
const LANG = 'opspilot.lang';

export function token(): string | null {
  return localStorage.getItem(TOKEN);
}
export function setToken(t: string | null): void {
  if (t) localStorage.setItem(TOKEN, t);
  else localStorage.removeItem(TOKEN);
  closeLive();
}
export function lang(): 'zh-CN' | 'en' {
  return localStorage.getItem(LANG) === 'en' ? 'en' : 'zh-CN';
}
export function setLang(l: 'zh-CN' | 'en'): void {
  localStorage.setItem(LANG, l);
}

function headers(source: Source): Record<string, string> {
  const h: Record<string, string> = { 'content-type': 'application/json', 'accept-language': lang(), 'x-opspilot-source': source };
  const t = token();
  if (t) h.authorization = `Bearer ${t}`;
  return h;
}

interface GqlError {
  message: string;
  extensions?: { code?: number; error_key?: string; hint?: string; detail?: string };
}

function refusal(e: GqlError): OpsError {
  const x = e.extensions ?? {};
  return new OpsError(x.code ?? 36004, x.error_key ?? 'validation_error', x.hint ?? '', x.detail ?? e.message);
}

/** Runs a query or mutation; a refusal throws an OpsError. */
export async function gql<R, V>(doc: TypedDocumentNode<R, V>, variables: V, source: Source = 'deployment_ui'): Promise<R> {
  const resp = await fetch('/graphql', { method: 'POST', headers: headers(source), body: JSON.stringify({ query: print(doc), variables }) });
  const body = (await resp.json()) as { data?: R; errors?: GqlError[] };
  const first = body.errors?.[0];
  if (first) {
    if (first.extensions?.error_key === 'unauthenticated' && token()) onSignedOut();
    throw refusal(first);
  }
  if (!body.data) throw new OpsError(36001, 'internal_error', '', `HTTP ${resp.status}`);
  return body.data;
}

/** A REST call answering the envelope's data; a refusal throws an OpsError. */
export async function rest<T>(method: string, path: string, body?: unknown, source: Source = 'deployment_ui'): Promise<T> {
  const resp = await fetch(`/api/v1${path}`, { method, headers: headers(source), body: body === undefined ? undefined : JSON.stringify(body) });
  const env = (await resp.json()) as { code: number; msg: string; data: T & { error_key?: string; hint?: string; detail?: string } };
  if (env.code !== 1000) {
    const d = env.data as { error_key?: string; hint?: string; detail?: string };
    throw new OpsError(env.code, d.error_key ?? 'internal_error', d.hint ?? '', d.detail ?? env.msg);
  }
  return env.data;
}

let live: Client | null = null;

function liveClient(): Client {
  if (!live) {
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql/ws`;
    live = createClient({ url, connectionParams: () => ({ token: token() ?? '' }), lazy: true, retryAttempts: 30 });
  }
  return live;
}

function closeLive(): void {
  void live?.dispose();
  live = null;
}

/** Subscribes; answers the function that ends the subscription. */
export function subscribe<R, V>(doc: TypedDocumentNode<R, V>, variables: V, onData: (r: R) => void, onError?: (e: OpsError) => void): () => void {
  return liveClient().subscribe<R>(
    { query: print(doc), variables: variables as Record<string, unknown> },
    {
      next: (msg) => {
        if (msg.errors?.[0]) onError?.(refusal(msg.errors[0] as GqlError));
        else if (msg.data) onData(msg.data as R);
      },
      error: () => onError?.(new OpsError(36001, 'internal_error', '', 'live connection lost')),
      complete: () => undefined,
    },
  );
}

let signedOut: () => void = () => undefined;
/** What happens when the server no longer knows the token. */
export function onSignedOutDo(f: () => void): void {
  signedOut = f;
}
function onSignedOut(): void {
  setToken(null);
  signedOut();
}
