import { MatrixError } from '../../core/errors.js';

/**
 * A position in the server's streams, as handed to clients in `next_batch` / `since` and as
 * pagination tokens. Two streams: room events and account data. Sync tokens are
 * `s<events>_<accountData>`; pagination tokens (/messages, /relations, search) carry only the events
 * part (`s<events>`). Older tokens without the later parts still parse (missing positions read as 0),
 * and unknown later parts are ignored.
 */
export interface StreamToken {
  events: number;
  /** Position in the account-data stream; absent in pagination tokens. */
  accountData?: number;
}

export function formatToken(t: StreamToken): string {
  return t.accountData === undefined ? `s${t.events}` : `s${t.events}_${t.accountData}`;
}

export function parseToken(raw: string, what = 'token'): StreamToken {
  const m = /^s(\d{1,15})(?:_(\d{1,15}))?(?:_\d{1,15})*$/.exec(raw);
  if (!m) throw new MatrixError(400, 'M_INVALID_PARAM', `Invalid ${what}`);
  return { events: Number(m[1]), accountData: m[2] === undefined ? 0 : Number(m[2]) };
}

/** Whether every stream position of `a` is at or below that of `b`. */
export function tokenAtOrBefore(a: StreamToken, b: StreamToken): boolean {
  return a.events <= b.events && (a.accountData ?? 0) <= (b.accountData ?? 0);
}
