import { MatrixError } from '../../core/errors.js';

/**
 * A position in the server's streams, as handed to clients in `next_batch` / `since` and as
 * pagination tokens. Today one stream (room events); later streams append `_N` fields, and older
 * tokens without them still parse (missing positions read as 0).
 */
export interface StreamToken {
  events: number;
}

export function formatToken(t: StreamToken): string {
  return `s${t.events}`;
}

export function parseToken(raw: string, what = 'token'): StreamToken {
  const m = /^s(\d{1,15})(?:_\d{1,15})*$/.exec(raw);
  if (!m) throw new MatrixError(400, 'M_INVALID_PARAM', `Invalid ${what}`);
  return { events: Number(m[1]) };
}
