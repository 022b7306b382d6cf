import { MatrixError } from '../../core/errors.js';

/**
 * The server's streams besides room events, in the order their positions appear in a sync token.
 * Never reorder: tokens handed out earlier must keep parsing to the same positions. New streams go
 * at the end.
 */
export const EXTRA_STREAMS = ['accountData', 'receipts', 'typing', 'presence', 'toDevice', 'deviceLists'] as const;
export type ExtraStream = (typeof EXTRA_STREAMS)[number];

/**
 * A position in the server's streams, as handed to clients in `next_batch` / `since` and as
 * pagination tokens. Sync tokens are `s<events>_<accountData>_<receipts>_...` (EXTRA_STREAMS order);
 * pagination tokens (/messages, /relations, search) carry only the events part (`s<events>`).
 * Older tokens with fewer parts still parse (missing positions read as 0), and unknown later parts
 * are ignored.
 */
export type StreamToken = { events: number } & Partial<Record<ExtraStream, number>>;

export function formatToken(t: StreamToken): string {
  if (EXTRA_STREAMS.every((s) => t[s] === undefined)) return `s${t.events}`;
  return `s${t.events}_${EXTRA_STREAMS.map((s) => t[s] ?? 0).join('_')}`;
}

const TOKEN = /^s(\d{1,15})((?:_\d{1,15})*)$/;

/** Parses a sync or pagination token: every extra stream is set (0 when the token lacks it). */
export function parseToken(raw: string, what = 'token'): Required<StreamToken> {
  const m = TOKEN.exec(raw);
  if (!m) throw new MatrixError(400, 'M_INVALID_PARAM', `Invalid ${what}`);
  const parts = m[2] === '' ? [] : m[2]!.slice(1).split('_').map(Number);
  const t = { events: Number(m[1]) } as Required<StreamToken>;
  EXTRA_STREAMS.forEach((s, i) => (t[s] = parts[i] ?? 0));
  return t;
}

/** Whether every stream position of `a` is at or below that of `b`. */
export function tokenAtOrBefore(a: StreamToken, b: StreamToken): boolean {
  return a.events <= b.events && EXTRA_STREAMS.every((s) => (a[s] ?? 0) <= (b[s] ?? 0));
}
