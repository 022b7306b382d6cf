import { randomBytes, createHash } from 'node:crypto';
import { MatrixError } from './errors.js';

const ALPHA = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
const ALNUM = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

/** A uniformly random string over `alphabet` (rejection sampling, no modulo bias). */
export function randomString(length: number, alphabet = ALNUM): string {
  let out = '';
  const limit = 256 - (256 % alphabet.length);
  while (out.length < length) {
    for (const b of randomBytes(length * 2)) {
      if (b < limit) out += alphabet[b % alphabet.length];
      if (out.length === length) break;
    }
  }
  return out;
}

export const newDeviceId = () => randomString(10, ALPHA);
export const newOpaqueToken = (prefix: string) => `${prefix}_${randomString(40)}`;
export const sha256Hex = (s: string) => createHash('sha256').update(s).digest('hex');

/** Characters allowed in new user localparts (spec: user identifiers). */
const LOCALPART_RE = /^[a-z0-9._=\-/+]+$/;
/** Historical user ids may hold any printable ASCII except ':'; accepted when parsing, never created. */
const HISTORICAL_LOCALPART_RE = /^[\x21-\x39\x3b-\x7e]+$/;

export interface UserId {
  localpart: string;
  serverName: string;
}

/** The spec caps a full user id at 255 bytes. */
export const MAX_USER_ID_BYTES = 255;

export function makeUserId(localpart: string, serverName: string): string {
  return `@${localpart}@${serverName}`.replace(/^@(.*)@/, '@$1:');
}

export function parseUserId(id: string): UserId | null {
  if (typeof id !== 'string' || !id.startsWith('@') || Buffer.byteLength(id) > MAX_USER_ID_BYTES) return null;
  const colon = id.indexOf(':');
  if (colon < 2) return null;
  const localpart = id.slice(1, colon);
  const serverName = id.slice(colon + 1);
  if (!HISTORICAL_LOCALPART_RE.test(localpart) || serverName.length === 0) return null;
  return { localpart, serverName };
}

/** Validates a localpart chosen for a new account; throws M_INVALID_USERNAME. */
export function validateNewLocalpart(localpart: string, serverName: string): void {
  if (localpart.length === 0) throw new MatrixError(400, 'M_INVALID_USERNAME', 'User ID cannot be empty');
  if (!LOCALPART_RE.test(localpart)) {
    throw new MatrixError(
      400,
      'M_INVALID_USERNAME',
      'User ID may only contain a-z, 0-9, and the characters . _ = - / +',
    );
  }
  if (Buffer.byteLength(makeUserId(localpart, serverName)) > MAX_USER_ID_BYTES) {
    throw new MatrixError(400, 'M_INVALID_USERNAME', `User ID may be at most ${MAX_USER_ID_BYTES} bytes`);
  }
}
