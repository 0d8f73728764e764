import { diffLines } from 'diff';

export interface Side {
  n: number;
  text: string;
  kind: 'same' | 'removed' | 'added';
}
export interface Row {
  left?: Side;
  right?: Side;
}

/** Lines of `before` and `after` side by side: unchanged lines on one row, a
 * changed block's removed and added lines paired row by row. */
export function sideBySide(before: string, after: string): Row[] {
  const rows: Row[] = [];
  let l = 1;
  let r = 1;
  const parts = diffLines(before, after);
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    const lines = part.value.replace(/\n$/, '').split('\n');
    if (!part.added && !part.removed) {
      for (const text of lines) rows.push({ left: { n: l++, text, kind: 'same' }, right: { n: r++, text, kind: 'same' } });
    } else if (part.removed) {
      const next = parts[i + 1];
      const added = next?.added ? next.value.replace(/\n$/, '').split('\n') : [];
      if (next?.added) i++;
      for (let k = 0; k < Math.max(lines.length, added.length); k++) {
        const row: Row = {};
        if (k < lines.length) row.left = { n: l++, text: lines[k]!, kind: 'removed' };
        if (k < added.length) row.right = { n: r++, text: added[k]!, kind: 'added' };
        rows.push(row);
      }
    } else {
      for (const text of lines) rows.push({ right: { n: r++, text, kind: 'added' } });
    }
  }
  return rows;
}

const bg = { same: undefined, removed: '#fee2e2', added: '#dcfce7' } as const;

function Cell({ side }: { side?: Side }) {
  return (
    <>
      <td style={{ color: '#9ca3af', textAlign: 'right', padding: '0 6px', userSelect: 'none', width: 36 }}>{side?.n ?? ''}</td>
      <td data-kind={side?.kind ?? 'empty'} style={{ background: side ? bg[side.kind] : '#f3f4f6', whiteSpace: 'pre', padding: '0 8px', width: '50%' }}>
        {side?.text ?? ''}
      </td>
    </>
  );
}

/** The rendered manifest (or compose file) of what runs now next to this release's. */
export function ManifestDiff({ before, after, leftTitle, rightTitle }: { before: string; after: string; leftTitle: string; rightTitle: string }) {
  const rows = sideBySide(before, after);
  return (
    <div style={{ overflow: 'auto', maxHeight: 480, border: '1px solid #e5e7eb', borderRadius: 6 }}>
      <table data-testid="manifest-diff" style={{ width: '100%', borderCollapse: 'collapse', fontFamily: 'ui-monospace, monospace', fontSize: 12 }}>
        <thead>
          <tr style={{ background: '#f9fafb' }}>
            <th colSpan={2} style={{ textAlign: 'left', padding: 4 }}>{leftTitle}</th>
            <th colSpan={2} style={{ textAlign: 'left', padding: 4 }}>{rightTitle}</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((row, i) => (
            <tr key={i}>
              <Cell side={row.left} />
              <Cell side={row.right} />
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
