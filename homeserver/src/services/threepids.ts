import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Database, Sql } from '../storage/db.js';
import type { Mailer } from './mailer.js';
import type { Logger } from '../core/logger.js';
import type { ValidatedThreepid } from './auth/uia.js';
import { requireString, type JsonObject } from '../core/json.js';
import { MatrixError, invalidParam } from '../core/errors.js';
import { randomString } from '../core/ids.js';
import { getOrCreateSecret } from '../storage/server_secrets.js';
import { getUser } from '../storage/users.js';
import { findThreepidOwner } from '../storage/threepids.js';
import * as store from '../storage/threepid_validations.js';
import { validationMail } from './threepid_mail.js';

export type ThreepidPurpose = 'register' | 'bind' | 'password_reset';

export interface ThreepidServiceDeps {
  db: Database;
  mailer: Mailer;
  publicBaseUrl: string;
  serverName: string;
  tokenLifetimeMs: number;
  logger: Logger;
}

/** Served by the homeserver itself (see api/client/threepid.ts), relative to the public base URL. */
export const EMAIL_VALIDATE_PATH = '/_hearth/client/email/validate';
export const EMAIL_SUBMIT_TOKEN_PATH = '/_hearth/client/email/submit_token';

/**
 * Tokens are 8 characters people can read out and type (no 0/O, 1/I/L): 31^8 ≈ 8.5e11 values, so
 * even an attacker who started the session (a password reset for someone else's address) and keeps
 * asking for new emails at the rate limit cannot hope to guess one.
 */
const TOKEN_ALPHABET = 'ABCDEFGHJKMNPQRSTUVWXYZ23456789';
const TOKEN_LENGTH = 8;
/** Wrong tokens a session survives; after that it is dead and a new email must be requested. */
export const MAX_FAILED_ATTEMPTS = 5;
/** Expired sessions are kept this long, so a late click still gets "expired" rather than "unknown". */
const KEEP_EXPIRED_MS = 24 * 3600_000;

/** Spec grammar of `client_secret` (and of the `sid` we hand out). */
const CLIENT_SECRET_RE = /^[0-9a-zA-Z.=_-]{1,255}$/;
// A deliberately plain address grammar: dot-atom local part, DNS host name with at least one dot.
// Nothing a mail header could misread (no spaces, quotes, commas or angle brackets) gets through.
const LOCAL_RE = /^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/;
const DOMAIN_RE = /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** `client_secret` from a request body; M_INVALID_PARAM unless it matches the spec's grammar. */
export function requireClientSecret(body: JsonObject, key = 'client_secret'): string {
  const v = requireString(body, key);
  if (!CLIENT_SECRET_RE.test(v)) throw invalidParam(`'${key}' must be 1-255 characters of [0-9a-zA-Z.=_-]`);
  return v;
}

/** The stored form of an email address: trimmed and lower-cased; M_INVALID_PARAM if it is not one. */
export function canonicaliseEmail(raw: string): string {
  const email = raw.trim().toLowerCase();
  const at = email.lastIndexOf('@');
  const local = email.slice(0, at);
  const domain = email.slice(at + 1);
  if (at < 1 || email.length > 254 || local.length > 64 || !LOCAL_RE.test(local) || !DOMAIN_RE.test(domain)) {
    throw invalidParam('The email address is not valid');
  }
  return email;
}

/** `next_link` must be an absolute http(s) URL: we redirect browsers to it. */
export function checkNextLink(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw invalidParam("'next_link' is not a URL");
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalidParam("'next_link' must be an http(s) URL");
  return url.toString();
}

/** A failed token submission: the Identity Service API's submitToken errors, plus `success: false`. */
const submitError = (errcode: string, message: string) => new MatrixError(400, errcode, message, { success: false });
/** A `threepid_creds` that does not prove an address (UIA answers it with 401). */
const notValidated = (message: string) => new MatrixError(401, 'M_UNAUTHORIZED', message);

const sha256 = (s: string) => createHash('sha256').update(s).digest();
const sameSecret = (a: string, b: string) => timingSafeEqual(sha256(a), sha256(b));

export interface EmailTokenRequest {
  email: string;
  clientSecret: string;
  sendAttempt: number;
  nextLink?: string;
  purpose: ThreepidPurpose;
}

export interface ValidationState {
  purpose: ThreepidPurpose;
  address: string;
  validated: boolean;
  nextLink: string | null;
}

/**
 * Email validation done by the homeserver itself (spec: `.../email/requestToken`, `submit_url`,
 * `m.login.email.identity`). Each session is tied to a client secret, an address and a purpose;
 * its token goes out by email (as a link and as a code), is stored only as an HMAC, survives a
 * few wrong guesses, expires, and once validated can be used exactly once.
 */
export class ThreepidService {
  private hmacKey?: Promise<Buffer>;

  constructor(private readonly deps: ThreepidServiceDeps) {}

  /** The spec's `submit_url`: where clients POST {sid, client_secret, token}. */
  get submitUrl(): string {
    return this.url(EMAIL_SUBMIT_TOKEN_PATH);
  }

  /** Starts (or, for a repeated send_attempt, returns) a validation session and emails its token. */
  async requestEmailToken(req: EmailTokenRequest): Promise<{ sid: string; submit_url: string }> {
    if (!this.deps.mailer.enabled) {
      throw new MatrixError(400, 'M_THREEPID_MEDIUM_NOT_SUPPORTED', 'This server cannot send email');
    }
    if (!CLIENT_SECRET_RE.test(req.clientSecret)) throw invalidParam("'client_secret' must be 1-255 characters of [0-9a-zA-Z.=_-]");
    const address = canonicaliseEmail(req.email);
    const nextLink = req.nextLink === undefined ? null : checkNextLink(req.nextLink);
    await this.checkAddressFor(address, req.purpose);

    const key = { clientSecret: req.clientSecret, medium: 'email', address, purpose: req.purpose };
    const existing = await store.findLatestValidation(this.deps.db, key);
    // Spec: only a send_attempt higher than the last one seen sends another email.
    if (existing && req.sendAttempt <= Number(existing.send_attempt)) {
      return { sid: existing.sid, submit_url: this.submitUrl };
    }
    const now = Date.now();
    const live = existing && existing.consumed_ts === null && Number(existing.expires_ts) > now ? existing : undefined;
    const sid = live?.sid ?? randomString(24);
    const token = randomString(TOKEN_LENGTH, TOKEN_ALPHABET);
    const tokenHash = await this.hashToken(sid, token);
    const expiresTs = now + this.deps.tokenLifetimeMs;
    // Mail first: if sending fails nothing is recorded, so the client's retry sends again.
    await this.deps.mailer.send(
      validationMail({
        to: address,
        purpose: req.purpose,
        serverName: this.deps.serverName,
        link: `${this.url(EMAIL_VALIDATE_PATH)}?${new URLSearchParams({ sid, client_secret: req.clientSecret, token })}`,
        code: `${token.slice(0, 4)}-${token.slice(4)}`,
        lifetimeMs: this.deps.tokenLifetimeMs,
      }),
    );
    if (live) {
      await store.replaceToken(this.deps.db, sid, { tokenHash, sendAttempt: req.sendAttempt, expiresTs, nextLink });
    } else {
      await store.deleteExpiredValidations(this.deps.db, now - KEEP_EXPIRED_MS);
      await store.insertValidation(this.deps.db, { ...key, sid, tokenHash, sendAttempt: req.sendAttempt, expiresTs, nextLink });
    }
    this.deps.logger.info({ sid, purpose: req.purpose, domain: address.split('@')[1] }, 'email validation sent');
    return { sid, submit_url: this.submitUrl };
  }

  /** What the emailed link is about, without checking its token (the password-reset confirmation page). */
  async describe(sid: string, clientSecret: string): Promise<ValidationState> {
    const row = await store.getValidation(this.deps.db, sid);
    if (!row || !sameSecret(row.client_secret, clientSecret)) throw this.noSession();
    const problem = this.unusable(row, Date.now());
    if (problem) throw problem;
    return this.stateOf(row);
  }

  /** Checks a token from the link or the typed code; errors are the Identity Service API's submitToken ones. */
  async submitToken(sid: string, clientSecret: string, rawToken: string): Promise<ValidationState> {
    // Users type the code with its dash, spaces or in lower case; the link carries it verbatim.
    const token = rawToken.replace(/[\s-]/g, '').toUpperCase();
    const outcome = await this.deps.db.transaction(async (tx): Promise<ValidationState | MatrixError> => {
      const row = await store.getValidation(tx, sid, true);
      if (!row || !sameSecret(row.client_secret, clientSecret)) return this.noSession();
      const now = Date.now();
      const problem = this.unusable(row, now);
      if (problem) return problem;
      const expected = Buffer.from(row.token_hash, 'hex');
      const given = Buffer.from(await this.hashToken(sid, token), 'hex');
      if (expected.length !== given.length || !timingSafeEqual(expected, given)) {
        // Returned, not thrown: the count must be committed.
        const left = MAX_FAILED_ATTEMPTS - (await store.recordFailedAttempt(tx, sid));
        return submitError(
          'M_TOKEN_INCORRECT',
          left > 0 ? `The code is incorrect (${left} ${left === 1 ? 'try' : 'tries'} left)` : 'The code is incorrect: request a new email',
        );
      }
      if (row.validated_ts === null) {
        // The session counts as modified when validated: it lives on for another lifetime.
        await store.markValidated(tx, sid, now, now + this.deps.tokenLifetimeMs);
      }
      return { ...this.stateOf(row), validated: true };
    });
    if (outcome instanceof MatrixError) throw outcome;
    return outcome;
  }

  /** `threepid_creds` {sid, client_secret} of a validated, unexpired, unused session for `purpose`. */
  async checkValidated(creds: JsonObject, purpose: ThreepidPurpose): Promise<ValidatedThreepid> {
    const sid = requireString(creds, 'sid', 255);
    const clientSecret = requireString(creds, 'client_secret', 255);
    const row = await store.getValidation(this.deps.db, sid);
    if (!row || !sameSecret(row.client_secret, clientSecret)) throw notValidated('No email validation matches these credentials');
    if (row.purpose !== purpose) throw notValidated('This email validation was requested for something else');
    if (row.consumed_ts !== null) throw notValidated('This email validation has already been used');
    if (row.validated_ts === null) {
      throw notValidated('The email address has not been validated yet: follow the link in the email or enter its code');
    }
    if (Number(row.expires_ts) <= Date.now()) throw notValidated('This email validation has expired: request a new email');
    return { medium: row.medium, address: row.address, validated_ts: Number(row.validated_ts), sid: row.sid };
  }

  /** Marks the validation used (single use) inside the caller's transaction; false if already used. */
  async consume(tx: Sql, sid: string): Promise<boolean> {
    return store.consumeValidation(tx, sid, Date.now());
  }

  /** Spec: register and bind need an address nobody has; a password reset needs one a live account has. */
  private async checkAddressFor(address: string, purpose: ThreepidPurpose): Promise<void> {
    const owner = await findThreepidOwner(this.deps.db, 'email', address);
    if (purpose === 'password_reset') {
      const user = owner === undefined ? undefined : await getUser(this.deps.db, owner);
      if (!user || user.deactivated) {
        throw new MatrixError(400, 'M_THREEPID_NOT_FOUND', 'No account on this server has that email address');
      }
    } else if (owner !== undefined) {
      throw new MatrixError(400, 'M_THREEPID_IN_USE', 'That email address is already in use on this server');
    }
  }

  /** Why a session can no longer take a token, if it cannot. */
  private unusable(row: store.ValidationRow, now: number): MatrixError | null {
    if (row.consumed_ts !== null) return submitError('M_SESSION_EXPIRED', 'This validation has already been used');
    if (row.failed_attempts >= MAX_FAILED_ATTEMPTS) return submitError('M_SESSION_EXPIRED', 'Too many wrong codes: request a new email');
    if (Number(row.expires_ts) <= now) return submitError('M_SESSION_EXPIRED', 'This validation has expired: request a new email');
    return null;
  }

  private stateOf(row: store.ValidationRow): ValidationState {
    return {
      purpose: row.purpose as ThreepidPurpose,
      address: row.address,
      validated: row.validated_ts !== null,
      nextLink: row.next_link,
    };
  }

  private noSession(): MatrixError {
    return submitError('M_INVALID_PARAM', 'No validation session matches this sid and client_secret');
  }

  private url(path: string): string {
    return this.deps.publicBaseUrl + path.slice(1);
  }

  /** HMAC-SHA256 under a server secret, bound to the session: a leaked table reveals no usable token. */
  private async hashToken(sid: string, token: string): Promise<string> {
    this.hmacKey ??= getOrCreateSecret(this.deps.db, 'threepid_token_hmac_key', async () => randomBytes(32).toString('base64')).then(
      (b64) => Buffer.from(b64, 'base64'),
      (err: unknown) => {
        this.hmacKey = undefined; // a database hiccup must not poison every later request
        throw err;
      },
    );
    return createHmac('sha256', await this.hmacKey).update(`${sid}\0${token}`).digest('hex');
  }
}
