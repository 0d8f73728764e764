import { useEffect, useState } from 'react';

/** Seconds left until `until` (never below zero). */
export function secondsLeft(until: string | Date, now: number = Date.now()): number {
  const end = typeof until === 'string' ? Date.parse(until) : until.getTime();
  return Math.max(0, Math.floor((end - now) / 1000));
}

/** `1h 02m`, `12:05`, `0:09`. */
export function formatLeft(s: number): string {
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (h > 0) return `${h}h ${String(m).padStart(2, '0')}m`;
  return `${m}:${String(sec).padStart(2, '0')}`;
}

/** A live countdown; calls `onExpired` once when it reaches zero. */
export function Countdown({ until, onExpired, expiredText }: { until: string; onExpired?: () => void; expiredText?: string }) {
  const [left, setLeft] = useState(() => secondsLeft(until));
  useEffect(() => {
    setLeft(secondsLeft(until));
    const id = setInterval(() => {
      const l = secondsLeft(until);
      setLeft(l);
      if (l === 0) {
        clearInterval(id);
        onExpired?.();
      }
    }, 1000);
    return () => clearInterval(id);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [until]);
  return (
    <span data-testid="countdown" data-left={left} style={{ color: left === 0 ? '#dc2626' : left < 120 ? '#d97706' : undefined, fontVariantNumeric: 'tabular-nums' }}>
      {left === 0 && expiredText ? expiredText : formatLeft(left)}
    </span>
  );
}
