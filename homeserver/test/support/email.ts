import * as assert from 'uvu/assert';
import type { TestServer, Response } from './harness.js';
import type { ReceivedMail, TestSmtpServer } from './smtp.js';

/** Helpers for tests that go through email validation (requestToken → mail → link or code). */
export const V3 = '/_matrix/client/v3';
export const SUBMIT_PATH = '/_hearth/client/email/submit_token';
export type Kind = 'register' | 'account/3pid' | 'account/password';

let secrets = 0;
/** A fresh client_secret in the spec's grammar. */
export const newSecret = () => `s3cret.${++secrets}_${Date.now()}`;

/** Server settings for email registration through the given SMTP server. */
export function emailEnv(smtp: TestSmtpServer, extra: Record<string, string> = {}): Record<string, string> {
  return { HEARTH_REGISTRATION: 'email', HEARTH_SMTP_URL: smtp.url, HEARTH_SMTP_FROM: 'Hearth <noreply@hearth.test>', ...extra };
}

export function requestToken(
  s: TestServer,
  kind: Kind,
  email: string,
  clientSecret: string,
  sendAttempt = 1,
  extra: Record<string, unknown> = {},
  remoteAddress?: string,
): Promise<Response> {
  return s.request('POST', `${V3}/${kind}/email/requestToken`, {
    body: { email, client_secret: clientSecret, send_attempt: sendAttempt, ...extra },
    remoteAddress,
  });
}

/** The validation link in the mail (text and HTML agree), as a path on the test server. */
export function linkOf(mail: ReceivedMail): string {
  const m = /http:\/\/hearth\.test(\/_hearth\/client\/email\/validate\?\S+)/.exec(mail.text);
  assert.ok(m, `no validation link in: ${mail.text}`);
  assert.ok(mail.html.includes(`href="http://hearth.test${m[1]!.replace(/&/g, '&#38;')}"`), 'the HTML part links to the same URL');
  return m[1]!;
}

/** The short code in the mail, as shown (XXXX-XXXX). */
export function codeOf(mail: ReceivedMail): string {
  const m = /enter this code in the app: ([A-Z2-9]{4}-[A-Z2-9]{4})\n/.exec(mail.text);
  assert.ok(m, `no code in: ${mail.text}`);
  return m[1]!;
}

/** A well-formed code that is not `code`. */
export const otherCode = (code: string) => (code.startsWith('AAAA') ? 'BBBB-BBBB' : 'AAAA-AAAA');

/** requestToken → the mail → its link, followed; returns the threepid_creds. */
export async function validateByLink(s: TestServer, smtp: TestSmtpServer, kind: Kind, email: string) {
  const client_secret = newSecret();
  const res = await requestToken(s, kind, email, client_secret);
  assert.is(res.status, 200, JSON.stringify(res.body));
  const page = await s.request('GET', linkOf(await smtp.waitForMail(email)));
  assert.is(page.status, 200, String(page.body));
  return { sid: res.body.sid as string, client_secret };
}

/** POST /register completing m.login.email.identity with `creds`. */
export function registerWith(s: TestServer, username: string, creds: object, password = 'a good password', session?: string): Promise<Response> {
  return s.request('POST', `${V3}/register`, {
    body: { username, password, auth: { type: 'm.login.email.identity', threepid_creds: creds, ...(session ? { session } : {}) } },
  });
}

/** Registers `username` with a freshly validated `email` (server in HEARTH_REGISTRATION=email). */
export async function registerByEmail(s: TestServer, smtp: TestSmtpServer, username: string, email: string, password = 'a good password') {
  const creds = await validateByLink(s, smtp, 'register', email);
  const res = await registerWith(s, username, creds, password);
  assert.is(res.status, 200, JSON.stringify(res.body));
  return res.body as { user_id: string; access_token: string };
}
