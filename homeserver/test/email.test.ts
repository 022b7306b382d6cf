import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { startTestServer, login, type TestServer, type Response } from './support/harness.js';
import { startSmtpServer, type TestSmtpServer } from './support/smtp.js';
import {
  V3,
  SUBMIT_PATH,
  newSecret,
  emailEnv,
  requestToken,
  linkOf,
  codeOf,
  validateByLink,
  registerWith,
  registerByEmail,
  otherCode,
} from './support/email.js';

const list3pids = (s: TestServer, token: string) => s.request('GET', `${V3}/account/3pid`, { token });

// ---------------------------------------------------------------------------------------------

const t = suite<{ s: TestServer; smtp: TestSmtpServer }>('email validation and 3PIDs');

t.before(async (ctx) => {
  ctx.smtp = await startSmtpServer();
  ctx.s = await startTestServer(emailEnv(ctx.smtp));
});
t.after(async (ctx) => {
  await ctx.s.close();
  await ctx.smtp.close();
});

t('registration by email, end to end: flows, mail, link, register, GET /account/3pid', async ({ s, smtp }) => {
  const first = await s.request('POST', `${V3}/register`, { body: { username: 'alice', password: 'a good password' } });
  assert.is(first.status, 401);
  assert.equal(first.body.flows, [{ stages: ['m.login.email.identity'] }]);
  const session = first.body.session as string;

  const client_secret = newSecret();
  const req = await requestToken(s, 'register', '  Alice@Example.ORG ', client_secret);
  assert.is(req.status, 200, JSON.stringify(req.body));
  assert.match(req.body.sid, /^[0-9a-zA-Z.=_-]{1,255}$/);
  assert.is(req.body.submit_url, `http://hearth.test${SUBMIT_PATH}`);

  const mail = await smtp.waitForMail('alice@example.org');
  assert.equal(mail.to, ['alice@example.org'], 'sent to the lower-cased address');
  assert.is(mail.from, 'noreply@hearth.test');
  assert.match(mail.subject, /Confirm your email address/);
  const link = linkOf(mail);
  const url = new URL(link, 'http://hearth.test');
  assert.is(url.searchParams.get('sid'), req.body.sid);
  assert.is(url.searchParams.get('client_secret'), client_secret);
  const code = codeOf(mail);
  assert.is(url.searchParams.get('token'), code.replace('-', ''), 'the link carries the same token as the code');

  // Only a hash of the token is stored.
  const rows = await s.hs.deps.db.query<Record<string, unknown>>('select * from threepid_validations where sid = ?', [req.body.sid]);
  assert.is(rows.length, 1);
  assert.match(rows[0]!.token_hash as string, /^[0-9a-f]{64}$/);
  assert.is.not(rows[0]!.token_hash, createHash('sha256').update(code.replace('-', '')).digest('hex'), 'keyed, not a bare hash');
  assert.not.ok(JSON.stringify(rows[0]).includes(code.replace('-', '')), 'the token itself is nowhere in the row');
  assert.is(rows[0]!.address, 'alice@example.org');

  const creds = { sid: req.body.sid, client_secret };
  const early = await registerWith(s, 'alice', creds, 'a good password', session);
  assert.is(early.status, 401, 'not validated before the link is followed');
  assert.is(early.body.errcode, 'M_UNAUTHORIZED');
  assert.is(early.body.session, session);

  const page = await s.request('GET', link);
  assert.is(page.status, 200);
  assert.match(String(page.headers['content-type']), /text\/html/);
  assert.match(page.body, /Email address confirmed/);
  assert.is(page.headers['cache-control'], 'no-store');

  const done = await registerWith(s, 'alice', creds, 'a good password', session);
  assert.is(done.status, 200, JSON.stringify(done.body));
  assert.is(done.body.user_id, '@alice:hearth.test');
  const listed = await list3pids(s, done.body.access_token);
  assert.is(listed.status, 200);
  assert.is(listed.body.threepids.length, 1);
  const [tp] = listed.body.threepids;
  assert.is(tp.medium, 'email');
  assert.is(tp.address, 'alice@example.org');
  assert.type(tp.validated_at, 'number');
  assert.type(tp.added_at, 'number');
  assert.ok(tp.added_at >= tp.validated_at);
});

t('a validation registers once; the link then says it was used', async ({ s, smtp }) => {
  const creds = await validateByLink(s, smtp, 'register', 'once@example.org');
  assert.is((await registerWith(s, 'once1', creds)).status, 200);
  const again = await registerWith(s, 'once2', creds);
  assert.is(again.status, 401);
  assert.is(again.body.errcode, 'M_UNAUTHORIZED');
  assert.match(again.body.error, /already been used/);
  assert.is((await s.request('GET', `${V3}/register/available?username=once2`)).status, 200, 'no second account');
  const { db, services } = s.hs.deps;
  assert.is(await db.transaction((tx) => services.threepids.consume(tx, creds.sid)), false, 'consume() refuses a used validation');
  const mailLink = linkOf(smtp.mails.find((m) => m.to.includes('once@example.org'))!);
  const page = await s.request('GET', mailLink);
  assert.is(page.status, 400);
  assert.match(page.body, /already been used/);
});

t('the code path: submit_url takes {sid, client_secret, token}; wrong codes are counted', async ({ s, smtp }) => {
  const client_secret = newSecret();
  const req = await requestToken(s, 'register', 'coder@example.org', client_secret);
  const code = codeOf(await smtp.waitForMail('coder@example.org'));
  const wrongCode = otherCode(code);
  const wrong = await s.request('POST', SUBMIT_PATH, { body: { sid: req.body.sid, client_secret, token: wrongCode } });
  assert.is(wrong.status, 400);
  assert.is(wrong.body.errcode, 'M_TOKEN_INCORRECT');
  assert.is(wrong.body.success, false);
  const badSecret = await s.request('POST', SUBMIT_PATH, { body: { sid: req.body.sid, client_secret: 'other', token: code } });
  assert.is(badSecret.status, 400);
  assert.is(badSecret.body.errcode, 'M_INVALID_PARAM');
  const missing = await s.request('POST', SUBMIT_PATH, { body: { sid: req.body.sid, client_secret } });
  assert.is(missing.status, 400);
  assert.is(missing.body.errcode, 'M_MISSING_PARAM');
  // Typed in lower case with a space instead of the dash, as people do.
  const typed = `${code.slice(0, 4)} ${code.slice(5)}`.toLowerCase();
  const ok = await s.request('POST', SUBMIT_PATH, { body: { sid: req.body.sid, client_secret, token: typed } });
  assert.is(ok.status, 200, JSON.stringify(ok.body));
  assert.equal(ok.body, { success: true });
  assert.is((await registerWith(s, 'coder', { sid: req.body.sid, client_secret })).status, 200);
});

t('five wrong codes kill the validation, even for the right code afterwards', async ({ s, smtp }) => {
  const client_secret = newSecret();
  const req = await requestToken(s, 'register', 'guesser@example.org', client_secret);
  const code = codeOf(await smtp.waitForMail('guesser@example.org'));
  const wrongCode = otherCode(code);
  for (let i = 0; i < 5; i++) {
    const r = await s.request('POST', SUBMIT_PATH, { body: { sid: req.body.sid, client_secret, token: wrongCode } });
    assert.is(r.body.errcode, 'M_TOKEN_INCORRECT', `attempt ${i + 1}`);
  }
  const right = await s.request('POST', SUBMIT_PATH, { body: { sid: req.body.sid, client_secret, token: code } });
  assert.is(right.status, 400);
  assert.is(right.body.errcode, 'M_SESSION_EXPIRED');
  assert.match(right.body.error, /Too many wrong codes/);
  const reg = await registerWith(s, 'guesser', { sid: req.body.sid, client_secret });
  assert.is(reg.status, 401);
  assert.is(reg.body.errcode, 'M_UNAUTHORIZED');
});

t('wrong client_secret is refused by the link, by the code path and by UIA', async ({ s, smtp }) => {
  const creds = await validateByLink(s, smtp, 'register', 'secretive@example.org');
  const stolen = await registerWith(s, 'thief', { sid: creds.sid, client_secret: 'guessed' });
  assert.is(stolen.status, 401);
  assert.is(stolen.body.errcode, 'M_UNAUTHORIZED');
  const link = new URL(linkOf(smtp.mails.find((m) => m.to.includes('secretive@example.org'))!), 'http://hearth.test');
  link.searchParams.set('client_secret', 'guessed');
  const page = await s.request('GET', link.pathname + link.search);
  assert.is(page.status, 400);
  assert.match(page.body, /No validation session matches/);
  assert.is((await registerWith(s, 'secretive', creds)).status, 200, 'the owner still can');
});

t('requestToken is idempotent per send_attempt; a higher one mails a new token that replaces the old', async ({ s, smtp }) => {
  const client_secret = newSecret();
  const a = await requestToken(s, 'register', 'retry@example.org', client_secret, 1);
  const firstMail = await smtp.waitForMail('retry@example.org');
  const b = await requestToken(s, 'register', 'Retry@example.org', client_secret, 1);
  assert.is(b.status, 200);
  assert.is(b.body.sid, a.body.sid, 'same sid for a retry');
  assert.is(smtp.pending('retry@example.org').length, 0, 'no second mail for the same send_attempt');
  const c = await requestToken(s, 'register', 'retry@example.org', client_secret, 2);
  assert.is(c.body.sid, a.body.sid, 'a reminder continues the same session');
  const secondMail = await smtp.waitForMail('retry@example.org');
  assert.is.not(codeOf(secondMail), codeOf(firstMail), 'a new token');
  const old = await s.request('GET', linkOf(firstMail));
  assert.is(old.status, 400, 'the superseded link no longer works');
  assert.match(old.body, /incorrect/);
  assert.is((await s.request('GET', linkOf(secondMail))).status, 200);
  // A different client secret is a different session.
  const d = await requestToken(s, 'register', 'retry@example.org', newSecret(), 1);
  assert.is.not(d.body.sid, a.body.sid);
  await smtp.waitForMail('retry@example.org');
});

t('next_link: the validated link redirects there; only http(s) is accepted', async ({ s, smtp }) => {
  const bad = await requestToken(s, 'register', 'next@example.org', newSecret(), 1, { next_link: 'javascript:alert(1)' });
  assert.is(bad.status, 400);
  assert.is(bad.body.errcode, 'M_INVALID_PARAM');
  const client_secret = newSecret();
  await requestToken(s, 'register', 'next@example.org', client_secret, 1, { next_link: 'https://client.example/welcome?step=2' });
  const res = await s.request('GET', linkOf(await smtp.waitForMail('next@example.org')));
  assert.is(res.status, 302);
  assert.is(res.headers.location, 'https://client.example/welcome?step=2');
});

t('bad input is a Matrix 400, and refused requests send no mail', async ({ s, smtp }) => {
  const expect = async (res: Response, errcode: string) => {
    assert.is(res.status, 400, JSON.stringify(res.body));
    assert.is(res.body.errcode, errcode);
  };
  await expect(await requestToken(s, 'register', 'x@example.org', 'has space'), 'M_INVALID_PARAM');
  await expect(await requestToken(s, 'register', 'x@example.org', 'a'.repeat(256)), 'M_INVALID_PARAM');
  for (const email of ['not-an-email', 'a@b', 'a b@example.org', 'a@example.org, b@example.org', '<a@example.org>', '@example.org']) {
    await expect(await requestToken(s, 'register', email, newSecret()), 'M_INVALID_PARAM');
  }
  await expect(await s.request('POST', `${V3}/register/email/requestToken`, { body: { email: 'x@example.org', client_secret: 'abc' } }), 'M_MISSING_PARAM');
  await expect(await requestToken(s, 'register', 'x@example.org', newSecret(), 'one' as never), 'M_BAD_JSON');
  await expect(await requestToken(s, 'account/password', 'nobody@example.org', newSecret()), 'M_THREEPID_NOT_FOUND');
  await expect(await s.request('POST', `${V3}/register/msisdn/requestToken`, { body: {} }), 'M_THREEPID_MEDIUM_NOT_SUPPORTED');
  assert.is(smtp.pending('x@example.org').length + smtp.pending('nobody@example.org').length, 0);
});

t('M_THREEPID_IN_USE for a bound address (any case), for registration and for adding', async ({ s, smtp }) => {
  await registerByEmail(s, smtp, 'taken', 'taken@example.org');
  for (const kind of ['register', 'account/3pid'] as const) {
    const res = await requestToken(s, kind, 'TAKEN@example.org', newSecret());
    assert.is(res.status, 400);
    assert.is(res.body.errcode, 'M_THREEPID_IN_USE');
  }
  assert.is(smtp.pending('taken@example.org').length, 0, 'no mail');
});

t('a validation only serves the purpose it was requested for', async ({ s, smtp }) => {
  const creds = await validateByLink(s, smtp, 'account/3pid', 'purpose@example.org');
  const res = await registerWith(s, 'purpose', creds);
  assert.is(res.status, 401);
  assert.is(res.body.errcode, 'M_UNAUTHORIZED');
  assert.match(res.body.error, /something else/);
  const me = await registerByEmail(s, smtp, 'purpose2', 'purpose2@example.org');
  const regCreds = await validateByLink(s, smtp, 'register', 'purpose3@example.org');
  const add = await s.request('POST', `${V3}/account/3pid/add`, { token: me.access_token, body: regCreds });
  assert.is(add.status, 403, 'a registration validation cannot add an address');
  assert.is(add.body.errcode, 'M_THREEPID_AUTH_FAILED');
});

t('password reset by email: confirm page, reset without a token, old sessions ended', async ({ s, smtp }) => {
  const reg = await registerByEmail(s, smtp, 'bob', 'bob@example.org', 'bob old password');
  const other = (await login(s, 'bob', 'bob old password')).body;
  const client_secret = newSecret();
  const req = await requestToken(s, 'account/password', 'BOB@example.org', client_secret);
  assert.is(req.status, 200);
  const mail = await smtp.waitForMail('bob@example.org');
  assert.match(mail.subject, /Reset your password/);
  const link = linkOf(mail);
  const reset = (creds: object) =>
    s.request('POST', `${V3}/account/password`, {
      body: { new_password: 'bob new password', auth: { type: 'm.login.email.identity', threepid_creds: creds } },
    });

  // Following the link only asks for confirmation: a mail scanner's GET must not validate a reset.
  const confirm = await s.request('GET', link);
  assert.is(confirm.status, 200);
  assert.match(confirm.body, /<form method="post">/);
  assert.is(confirm.headers['x-frame-options'], 'DENY');
  const tooEarly = await reset({ sid: req.body.sid, client_secret });
  assert.is(tooEarly.status, 401);
  assert.is(tooEarly.body.errcode, 'M_UNAUTHORIZED');

  const confirmed = await s.request('POST', link, { headers: { 'content-type': 'application/x-www-form-urlencoded' }, rawBody: '' });
  assert.is(confirmed.status, 200, String(confirmed.body));
  assert.match(confirmed.body, /Email address confirmed/);

  const done = await reset({ sid: req.body.sid, client_secret });
  assert.is(done.status, 200, JSON.stringify(done.body));
  assert.is((await login(s, 'bob', 'bob old password')).status, 403);
  assert.is((await login(s, 'bob', 'bob new password')).status, 200);
  for (const token of [reg.access_token, other.access_token]) {
    assert.is((await s.request('GET', `${V3}/account/whoami`, { token })).status, 401, 'old sessions are logged out');
  }
  const replay = await reset({ sid: req.body.sid, client_secret });
  assert.is(replay.status, 401, 'the validation is single use');
  assert.is(replay.body.errcode, 'M_UNAUTHORIZED');
  // A used session is never revived: asking again with the same secret starts a new one.
  const again = await requestToken(s, 'account/password', 'bob@example.org', client_secret, 2);
  assert.is(again.status, 200);
  assert.is.not(again.body.sid, req.body.sid);
  await smtp.waitForMail('bob@example.org');
});

t('two password resets racing on one validation: exactly one wins', async ({ s, smtp }) => {
  await registerByEmail(s, smtp, 'erin', 'erin@example.org', 'erin old password');
  const creds = await (async () => {
    const client_secret = newSecret();
    const req = await requestToken(s, 'account/password', 'erin@example.org', client_secret);
    const link = linkOf(await smtp.waitForMail('erin@example.org'));
    assert.is((await s.request('POST', link)).status, 200);
    return { sid: req.body.sid, client_secret };
  })();
  const reset = (pw: string) =>
    s.request('POST', `${V3}/account/password`, {
      body: { new_password: pw, auth: { type: 'm.login.email.identity', threepid_creds: creds } },
    });
  const results = await Promise.all([reset('erin password one'), reset('erin password two')]);
  assert.equal(results.map((r) => r.status).sort(), [200, 403], JSON.stringify(results.map((r) => r.body)));
  const winner = results[0]!.status === 200 ? 'erin password one' : 'erin password two';
  assert.is((await login(s, 'erin', winner)).status, 200);
});

t('3PID add needs a validated bind session and the password; delete removes it', async ({ s, smtp }) => {
  const me = await registerByEmail(s, smtp, 'carol', 'carol@example.org', 'carol password');
  const client_secret = newSecret();
  const req = await requestToken(s, 'account/3pid', 'carol.work@example.org', client_secret);
  const mail = await smtp.waitForMail('carol.work@example.org');
  assert.match(mail.subject, /Confirm adding this email address/);
  const add = (auth?: object) =>
    s.request('POST', `${V3}/account/3pid/add`, { token: me.access_token, body: { sid: req.body.sid, client_secret, ...(auth ? { auth } : {}) } });

  const unclicked = await add();
  assert.is(unclicked.status, 403);
  assert.is(unclicked.body.errcode, 'M_THREEPID_AUTH_FAILED');
  assert.is((await s.request('GET', linkOf(mail))).status, 200);

  const uia = await add();
  assert.is(uia.status, 401);
  assert.equal(uia.body.flows, [{ stages: ['m.login.password'] }]);
  const wrong = await add({ type: 'm.login.password', session: uia.body.session, user: 'carol', password: 'not it at all' });
  assert.is(wrong.status, 401);
  assert.is(wrong.body.errcode, 'M_FORBIDDEN');
  const ok = await add({ type: 'm.login.password', session: uia.body.session, user: 'carol', password: 'carol password' });
  assert.is(ok.status, 200, JSON.stringify(ok.body));
  assert.equal(ok.body, {});
  const addresses = (await list3pids(s, me.access_token)).body.threepids.map((x: { address: string }) => x.address).sort();
  assert.equal(addresses, ['carol.work@example.org', 'carol@example.org']);
  const replay = await add({ type: 'm.login.password', user: 'carol', password: 'carol password' });
  assert.is(replay.status, 403, 'a bind validation is single use too');

  const del = await s.request('POST', `${V3}/account/3pid/delete`, {
    token: me.access_token,
    body: { medium: 'email', address: 'Carol.Work@example.org' },
  });
  assert.is(del.status, 200);
  assert.equal(del.body, { id_server_unbind_result: 'no-support' });
  assert.equal((await list3pids(s, me.access_token)).body.threepids.map((x: { address: string }) => x.address), ['carol@example.org']);
  const freed = await requestToken(s, 'register', 'carol.work@example.org', newSecret());
  assert.is(freed.status, 200, 'a deleted address is free again');
  await smtp.waitForMail('carol.work@example.org');
  const badMedium = await s.request('POST', `${V3}/account/3pid/delete`, { token: me.access_token, body: { medium: 'fax', address: 'x' } });
  assert.is(badMedium.body.errcode, 'M_INVALID_PARAM');
});

t('identity-server endpoints: bind refused, unbind no-support, deprecated POST /account/3pid refused, auth required', async ({ s, smtp }) => {
  const me = await registerByEmail(s, smtp, 'dan', 'dan@example.org');
  const bind = await s.request('POST', `${V3}/account/3pid/bind`, {
    token: me.access_token,
    body: { id_server: 'id.example.org', id_access_token: 'x', sid: 'y', client_secret: 'z' },
  });
  assert.is(bind.status, 400);
  assert.is(bind.body.errcode, 'M_SERVER_NOT_TRUSTED');
  const unbind = await s.request('POST', `${V3}/account/3pid/unbind`, { token: me.access_token, body: { medium: 'email', address: 'dan@example.org' } });
  assert.is(unbind.status, 200);
  assert.equal(unbind.body, { id_server_unbind_result: 'no-support' });
  assert.is((await list3pids(s, me.access_token)).body.threepids.length, 1, 'unbind keeps the address on the homeserver');
  const old = await s.request('POST', `${V3}/account/3pid`, { token: me.access_token, body: { three_pid_creds: {} } });
  assert.is(old.status, 403);
  assert.is(old.body.errcode, 'M_THREEPID_AUTH_FAILED');
  for (const [method, path] of [['GET', '/account/3pid'], ['POST', '/account/3pid/add'], ['POST', '/account/3pid/delete']] as const) {
    const res = await s.request(method, `${V3}${path}`, { body: method === 'POST' ? {} : undefined });
    assert.is(res.status, 401, path);
    assert.is(res.body.errcode, 'M_MISSING_TOKEN');
  }
});

t.run();

// ---------------------------------------------------------------------------------------------

const short = suite<{ s: TestServer; smtp: TestSmtpServer }>('email validation: expiry and rate limits');

short.before(async (ctx) => {
  ctx.smtp = await startSmtpServer();
  ctx.s = await startTestServer(emailEnv(ctx.smtp, { HEARTH_EMAIL_TOKEN_LIFETIME_MS: '1000', HEARTH_RATELIMIT_REQUEST_TOKEN: '0.01/3' }));
});
short.after(async (ctx) => {
  await ctx.s.close();
  await ctx.smtp.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

short('an unused token expires; so does a validation not used in time', async ({ s, smtp }) => {
  const client_secret = newSecret();
  const late = await requestToken(s, 'register', 'late@example.org', client_secret, 1, {}, '10.0.0.1');
  const lateMail = await smtp.waitForMail('late@example.org');
  const slow = newSecret();
  const slowReq = await requestToken(s, 'register', 'slow@example.org', slow, 1, {}, '10.0.0.2');
  const slowPage = await s.request('GET', linkOf(await smtp.waitForMail('slow@example.org')));
  assert.is(slowPage.status, 200, 'validated in time');
  await sleep(1200);
  const page = await s.request('GET', linkOf(lateMail));
  assert.is(page.status, 400);
  assert.match(page.body, /expired/);
  const code = await s.request('POST', SUBMIT_PATH, { body: { sid: late.body.sid, client_secret, token: codeOf(lateMail) } });
  assert.is(code.status, 400);
  assert.is(code.body.errcode, 'M_SESSION_EXPIRED');
  const reg = await registerWith(s, 'slow', { sid: slowReq.body.sid, client_secret: slow });
  assert.is(reg.status, 401);
  assert.is(reg.body.errcode, 'M_UNAUTHORIZED');
  assert.match(reg.body.error, /expired/);
  // A reminder for an expired session starts a new one, which works.
  const renewed = await requestToken(s, 'register', 'late@example.org', client_secret, 2, {}, '10.0.0.1');
  assert.is(renewed.status, 200);
  assert.is.not(renewed.body.sid, late.body.sid);
  assert.is((await s.request('GET', linkOf(await smtp.waitForMail('late@example.org')))).status, 200);
});

short('requestToken is rate limited per IP and per address', async ({ s, smtp }) => {
  for (let i = 0; i < 3; i++) {
    const ok = await requestToken(s, 'register', `rl${i}@example.org`, newSecret(), 1, {}, '10.0.1.1');
    assert.is(ok.status, 200, JSON.stringify(ok.body));
    await smtp.waitForMail(`rl${i}@example.org`);
  }
  const limited = await requestToken(s, 'register', 'rl9@example.org', newSecret(), 1, {}, '10.0.1.1');
  assert.is(limited.status, 429);
  assert.is(limited.body.errcode, 'M_LIMIT_EXCEEDED');
  assert.type(limited.body.retry_after_ms, 'number');
  assert.ok(limited.body.retry_after_ms > 0);
  assert.ok(Number(limited.headers['retry-after']) >= 1);
  assert.is(smtp.pending('rl9@example.org').length, 0, 'no mail when limited');
  // Another IP may still ask, but not for an address that already had its share.
  const elsewhere = await requestToken(s, 'register', 'rl9@example.org', newSecret(), 1, {}, '10.0.1.2');
  assert.is(elsewhere.status, 200);
  await smtp.waitForMail('rl9@example.org');
  for (let i = 0; i < 3; i++) {
    await requestToken(s, 'register', 'victim@example.org', newSecret(), 1, {}, `10.0.2.${i}`);
  }
  const flood = await requestToken(s, 'register', 'victim@example.org', newSecret(), 1, {}, '10.0.2.9');
  assert.is(flood.status, 429);
  assert.is(smtp.pending('victim@example.org').length, 3);
});

short.run();

// ---------------------------------------------------------------------------------------------

const noMail = suite<{ s: TestServer }>('email validation without SMTP');

noMail.before(async (ctx) => {
  ctx.s = await startTestServer({ HEARTH_REGISTRATION: 'open' });
});
noMail.after(async (ctx) => {
  await ctx.s.close();
});

noMail('a server that cannot send email says so', async ({ s }) => {
  for (const kind of ['register', 'account/3pid', 'account/password'] as const) {
    const res = await requestToken(s, kind, 'someone@example.org', newSecret());
    assert.is(res.status, 400, kind);
    assert.is(res.body.errcode, 'M_THREEPID_MEDIUM_NOT_SUPPORTED', kind);
  }
});

noMail.run();
