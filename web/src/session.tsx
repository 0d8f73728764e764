// Who is signed in, their projects, and the project the pages are scoped to.
import { createContext, useCallback, useContext, useEffect, useState, type ReactNode } from 'react';
import { gql, onSignedOutDo, setToken, token } from './api/client';
import { graphql } from './gql';
import type { MeQuery } from './gql/graphql';

const MeDoc = graphql(`
  query Me {
    me { id username roles permissions teamIds projectIds }
    projects(pageSize: 200) { list { id name } }
  }
`);

export type Me = MeQuery['me'];
export type Project = MeQuery['projects']['list'][number];

interface SessionValue {
  me: Me | null;
  projects: Project[];
  projectId: string | null;
  setProjectId: (p: string | null) => void;
  can: (permission: string) => boolean;
  signedIn: (t: string) => Promise<void>;
  signOut: () => void;
  loading: boolean;
}

const Ctx = createContext<SessionValue | null>(null);

export function SessionProvider({ children }: { children: ReactNode }) {
  const [me, setMe] = useState<Me | null>(null);
  const [projects, setProjects] = useState<Project[]>([]);
  const [projectId, setProjectId] = useState<string | null>(() => localStorage.getItem('opspilot.project'));
  const [loading, setLoading] = useState(!!token());

  const load = useCallback(async () => {
    setLoading(true);
    try {
      const r = await gql(MeDoc, {});
      setMe(r.me);
      setProjects(r.projects.list);
    } catch {
      setMe(null);
    } finally {
      setLoading(false);
    }
  }, []);

  useEffect(() => {
    onSignedOutDo(() => setMe(null));
    if (token()) void load();
  }, [load]);

  const value: SessionValue = {
    me,
    projects,
    projectId,
    setProjectId: (p) => {
      if (p) localStorage.setItem('opspilot.project', p);
      else localStorage.removeItem('opspilot.project');
      setProjectId(p);
    },
    can: (perm) => !!me && (me.roles.includes('admin') || me.permissions.includes(perm)),
    signedIn: async (t) => {
      setToken(t);
      await load();
    },
    signOut: () => {
      setToken(null);
      setMe(null);
    },
    loading,
  };
  return <Ctx.Provider value={value}>{children}</Ctx.Provider>;
}

export function useSession(): SessionValue {
  const v = useContext(Ctx);
  if (!v) throw new Error('useSession outside SessionProvider');
  return v;
}
