import { useCallback, useEffect, useRef, useState } from 'react';
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { gql, subscribe, type Source } from './client';

/** Runs a query now and whenever `variables` change; `reload` runs it again. */
export function useQuery<R, V>(doc: TypedDocumentNode<R, V>, variables: V, opts: { skip?: boolean; source?: Source } = {}) {
  const [data, setData] = useState<R | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(!opts.skip);
  const key = JSON.stringify(variables);
  const seq = useRef(0);
  const reload = useCallback(async () => {
    const mine = ++seq.current;
    setLoading(true);
    try {
      const r = await gql(doc, JSON.parse(key) as V, opts.source);
      if (mine === seq.current) {
        setData(r);
        setError(null);
      }
    } catch (e) {
      if (mine === seq.current) setError(e);
    } finally {
      if (mine === seq.current) setLoading(false);
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [doc, key]);
  useEffect(() => {
    if (!opts.skip) void reload();
  }, [reload, opts.skip]);
  return { data, error, loading, reload };
}

/** Subscribes while mounted (and `variables` stay the same). */
export function useSubscription<R, V>(doc: TypedDocumentNode<R, V>, variables: V, onData: (r: R) => void, skip = false) {
  const handler = useRef(onData);
  handler.current = onData;
  const key = JSON.stringify(variables);
  useEffect(() => {
    if (skip) return;
    return subscribe(doc, JSON.parse(key) as V, (r) => handler.current(r));
  }, [doc, key, skip]);
}
