import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { startTestServer, registerUser, login, type TestServer } from './support/harness.js';

const t = suite<{ s: TestServer }>('sessions: login, refresh, logout');

t.before(async (ctx) => {
  ctx.s = await startTestServer();
});
t.after(async (ctx) => {
  await ctx.s.close();
});

const whoami = (s: TestServer, token: string) => s.request('GET', '/_matrix/client/v3/account/whoami', { token });

t('GET /login offers password login', async ({ s }) => {
  const res = await s.request('GET', '/_matrix/client/v3/login');
  assert.is(res.status, 200);
  assert.equal(res.body.flows, [{ type: 'm.login.password' }]);
});

t('login by localpart and by full user id; wrong password is M_FORBIDDEN', async ({ s }) => {
  await registerUser(s, 'alice', 'alice password 1');
  const byLocal = await login(s, 'alice', 'alice password 1');
  assert.is(byLocal.status, 200);
  assert.is(byLocal.body.user_id, '@alice:hearth.test');
  assert.type(byLocal.body.device_id, 'string');
  assert.is(byLocal.body.refresh_token, undefined, 'no refresh token unless asked');
  assert.is(byLocal.body.expires_in_ms, undefined);
  const byId = await login(s, '@alice:hearth.test', 'alice password 1', { device_id: 'MYDEVICE' });
  assert.is(byId.status, 200);
  assert.is(byId.body.device_id, 'MYDEVICE');
  const me = await whoami(s, byId.body.access_token);
  assert.equal(me.body, { user_id: '@alice:hearth.test', device_id: 'MYDEVICE', is_guest: false });
  const bad = await login(s, 'alice', 'wrong password');
  assert.is(bad.status, 403);
  assert.is(bad.body.errcode, 'M_FORBIDDEN');
  const nobody = await login(s, 'nobody', 'whatever pw');
  assert.is(nobody.status, 403);
  assert.is(nobody.body.errcode, 'M_FORBIDDEN');
});

t('missing, malformed and unknown tokens', async ({ s }) => {
  const none = await s.request('GET', '/_matrix/client/v3/account/whoami');
  assert.is(none.status, 401);
  assert.is(none.body.errcode, 'M_MISSING_TOKEN');
  const junk = await whoami(s, 'not-a-token');
  assert.is(junk.status, 401);
  assert.is(junk.body.errcode, 'M_UNKNOWN_TOKEN');
  assert.is(junk.body.soft_logout, false);
  const { access_token } = await registerUser(s, 'querytoken');
  const viaQuery = await s.request('GET', `/_matrix/client/v3/account/whoami?access_token=${access_token}`);
  assert.is(viaQuery.status, 200);
});

t('refresh rotates; the old pair works until the new access token is used', async ({ s }) => {
  const reg = await registerUser(s, 'bob', 'bob password 1', { refresh_token: true });
  assert.type(reg.refresh_token, 'string');
  assert.is(reg.expires_in_ms, 300_000);
  const r1 = await s.request('POST', '/_matrix/client/v3/refresh', { body: { refresh_token: reg.refresh_token } });
  assert.is(r1.status, 200);
  assert.type(r1.body.access_token, 'string');
  assert.is.not(r1.body.refresh_token, reg.refresh_token);
  // The old access token still works: the new one has not been used yet.
  assert.is((await whoami(s, reg.access_token)).status, 200);
  // Using the new access token retires the old generation.
  assert.is((await whoami(s, r1.body.access_token)).status, 200);
  const old = await whoami(s, reg.access_token);
  assert.is(old.status, 401);
  assert.is(old.body.errcode, 'M_UNKNOWN_TOKEN');
  assert.is(old.body.soft_logout, true);
  const r2 = await s.request('POST', '/_matrix/client/v3/refresh', { body: { refresh_token: r1.body.refresh_token } });
  assert.is(r2.status, 200);
  assert.is((await whoami(s, r2.body.access_token)).body.user_id, '@bob:hearth.test');
});

t('a refresh whose answer was lost can be retried with the same token', async ({ s }) => {
  const reg = await registerUser(s, 'carol', 'carol password', { refresh_token: true });
  const lost = await s.request('POST', '/_matrix/client/v3/refresh', { body: { refresh_token: reg.refresh_token } });
  assert.is(lost.status, 200);
  const retry = await s.request('POST', '/_matrix/client/v3/refresh', { body: { refresh_token: reg.refresh_token } });
  assert.is(retry.status, 200, 'the retry succeeds');
  assert.is((await whoami(s, retry.body.access_token)).status, 200);
  // The lost pair was replaced by the retry's answer.
  const lostRt = await s.request('POST', '/_matrix/client/v3/refresh', { body: { refresh_token: lost.body.refresh_token } });
  assert.is(lostRt.status, 401);
});

t('reusing a rotated-out refresh token revokes the whole session', async ({ s }) => {
  const reg = await registerUser(s, 'dave', 'dave password', { refresh_token: true });
  const r1 = await s.request('POST', '/_matrix/client/v3/refresh', { body: { refresh_token: reg.refresh_token } });
  assert.is((await whoami(s, r1.body.access_token)).status, 200); // rotation confirmed
  const r2 = await s.request('POST', '/_matrix/client/v3/refresh', { body: { refresh_token: r1.body.refresh_token } });
  assert.is((await whoami(s, r2.body.access_token)).status, 200);
  // An attacker replays the very first refresh token.
  const replay = await s.request('POST', '/_matrix/client/v3/refresh', { body: { refresh_token: reg.refresh_token } });
  assert.is(replay.status, 401);
  assert.is(replay.body.errcode, 'M_UNKNOWN_TOKEN');
  const after = await whoami(s, r2.body.access_token);
  assert.is(after.status, 401, 'the legitimate session is gone too');
  assert.is(after.body.soft_logout, false);
  const rt = await s.request('POST', '/_matrix/client/v3/refresh', { body: { refresh_token: r2.body.refresh_token } });
  assert.is(rt.status, 401);
  const devices = await s.hs.deps.db.query('select * from devices where user_id = ?', ['@dave:hearth.test']);
  assert.is(devices.length, 0, 'the device was removed');
});

t('an expired access token is a soft logout, and refresh recovers', async () => {
  const s = await startTestServer({ HEARTH_ACCESS_TOKEN_LIFETIME_MS: '1000' });
  try {
    const reg = await registerUser(s, 'erin', 'erin password', { refresh_token: true });
    assert.is(reg.expires_in_ms, 1000);
    await new Promise((r) => setTimeout(r, 1500));
    const expired = await whoami(s, reg.access_token);
    assert.is(expired.status, 401);
    assert.is(expired.body.soft_logout, true);
    const r = await s.request('POST', '/_matrix/client/v3/refresh', { body: { refresh_token: reg.refresh_token } });
    assert.is(r.status, 200);
    assert.is((await whoami(s, r.body.access_token)).status, 200);
  } finally {
    await s.close();
  }
});

t('logout invalidates the token at once; logout/all ends every session', async ({ s }) => {
  await registerUser(s, 'frank', 'frank password');
  const a = (await login(s, 'frank', 'frank password')).body;
  const b = (await login(s, 'frank', 'frank password', { refresh_token: true })).body;
  const out = await s.request('POST', '/_matrix/client/v3/logout', { token: a.access_token, body: {} });
  assert.is(out.status, 200);
  const gone = await whoami(s, a.access_token);
  assert.is(gone.status, 401);
  assert.is(gone.body.errcode, 'M_UNKNOWN_TOKEN');
  assert.is((await whoami(s, b.access_token)).status, 200, 'other devices stay logged in');
  const c = (await login(s, 'frank', 'frank password')).body;
  const all = await s.request('POST', '/_matrix/client/v3/logout/all', { token: c.access_token });
  assert.is(all.status, 200);
  assert.is((await whoami(s, b.access_token)).status, 401);
  assert.is((await whoami(s, c.access_token)).status, 401);
  const rt = await s.request('POST', '/_matrix/client/v3/refresh', { body: { refresh_token: b.refresh_token } });
  assert.is(rt.status, 401, 'refresh tokens die with the session');
});

t('logging in again with the same device id replaces its old token', async ({ s }) => {
  await registerUser(s, 'gina', 'gina password');
  const first = (await login(s, 'gina', 'gina password', { device_id: 'SAMEDEV' })).body;
  const second = (await login(s, 'gina', 'gina password', { device_id: 'SAMEDEV' })).body;
  assert.is((await whoami(s, first.access_token)).status, 401);
  assert.is((await whoami(s, second.access_token)).status, 200);
});

t.run();
