/**
 * Pagination positions below zero: backfilled history sits at negative stream positions
 * (services/federation/backfill.ts), which the `s<n>` token grammar cannot carry. Such positions
 * are written `b<n>` (meaning -n) in /messages tokens; every other position keeps its `s` token.
 */
import { formatToken, parseToken } from '../sync/token.js';

const BACKFILL_TOKEN = /^b(\d{1,15})$/;

export function pagePosition(raw: string, what: string): number {
  const m = BACKFILL_TOKEN.exec(raw);
  return m ? -Number(m[1]) : parseToken(raw, what).events;
}

export function pageToken(position: number): string {
  return position < 0 ? `b${-position}` : formatToken({ events: position });
}
