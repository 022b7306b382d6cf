import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { startTestServer, registerUser, login, type TestServer } from './support/harness.js';

const t = suite<{ s: TestServer }>('account: password change, deactivation, UIA');

t.before(async (ctx) => {
  ctx.s = await startTestServer();
});
t.after(async (ctx) => {
  await ctx.s.close();
});

const whoami = (s: TestServer, token: string) => s.request('GET', '/_matrix/client/v3/account/whoami', { token });

t('password change needs the old password and logs out the other devices', async ({ s }) => {
  const me = await registerUser(s, 'pat', 'old password 1');
  const other = (await login(s, 'pat', 'old password 1')).body;
  const first = await s.request('POST', '/_matrix/client/v3/account/password', {
    token: me.access_token,
    body: { new_password: 'new password 2' },
  });
  assert.is(first.status, 401);
  assert.equal(first.body.flows, [{ stages: ['m.login.password'] }]);
  const session = first.body.session;
  assert.type(session, 'string');
  const wrong = await s.request('POST', '/_matrix/client/v3/account/password', {
    token: me.access_token,
    body: {
      new_password: 'new password 2',
      auth: { type: 'm.login.password', session, identifier: { type: 'm.id.user', user: 'pat' }, password: 'nope nope' },
    },
  });
  assert.is(wrong.status, 401);
  assert.is(wrong.body.errcode, 'M_FORBIDDEN');
  assert.is(wrong.body.session, session);
  const ok = await s.request('POST', '/_matrix/client/v3/account/password', {
    token: me.access_token,
    body: {
      new_password: 'new password 2',
      auth: { type: 'm.login.password', session, identifier: { type: 'm.id.user', user: 'pat' }, password: 'old password 1' },
    },
  });
  assert.is(ok.status, 200);
  assert.is((await whoami(s, me.access_token)).status, 200, 'the device that changed it stays logged in');
  assert.is((await whoami(s, other.access_token)).status, 401, 'other devices are logged out at once');
  assert.is((await login(s, 'pat', 'old password 1')).status, 403);
  assert.is((await login(s, 'pat', 'new password 2')).status, 200);
  // The completed UIA session is single use.
  const replay = await s.request('POST', '/_matrix/client/v3/account/password', {
    token: me.access_token,
    body: { new_password: 'new password 3', auth: { type: 'm.login.password', session, user: 'pat', password: 'new password 2' } },
  });
  assert.is(replay.status, 400);
});

t('logout_devices: false keeps the other devices', async ({ s }) => {
  const me = await registerUser(s, 'quinn', 'quinn password');
  const other = (await login(s, 'quinn', 'quinn password')).body;
  const res = await s.request('POST', '/_matrix/client/v3/account/password', {
    token: me.access_token,
    body: {
      new_password: 'quinn password 2',
      logout_devices: false,
      auth: { type: 'm.login.password', identifier: { type: 'm.id.user', user: '@quinn:hearth.test' }, password: 'quinn password' },
    },
  });
  assert.is(res.status, 200);
  assert.is((await whoami(s, other.access_token)).status, 200);
});

t('a weak new password is refused before any UIA', async ({ s }) => {
  const me = await registerUser(s, 'rita', 'rita password');
  const res = await s.request('POST', '/_matrix/client/v3/account/password', { token: me.access_token, body: { new_password: 'short' } });
  assert.is(res.status, 400);
  assert.is(res.body.errcode, 'M_WEAK_PASSWORD');
});

t('a UIA session cannot be carried to another user or endpoint', async ({ s }) => {
  const a = await registerUser(s, 'sam', 'sam password');
  const b = await registerUser(s, 'tess', 'tess password');
  const started = await s.request('POST', '/_matrix/client/v3/account/password', { token: a.access_token, body: { new_password: 'sam password 2' } });
  const stolen = await s.request('POST', '/_matrix/client/v3/account/deactivate', {
    token: b.access_token,
    body: { auth: { type: 'm.login.password', session: started.body.session, user: 'tess', password: 'tess password' } },
  });
  assert.is(stolen.status, 403);
  assert.is(stolen.body.errcode, 'M_FORBIDDEN');
  assert.is((await whoami(s, b.access_token)).status, 200);
});

t('deactivation needs the password, ends every session and frees nothing for reuse', async ({ s }) => {
  const me = await registerUser(s, 'uma', 'uma password');
  const other = (await login(s, 'uma', 'uma password', { refresh_token: true })).body;
  const first = await s.request('POST', '/_matrix/client/v3/account/deactivate', { token: me.access_token, body: {} });
  assert.is(first.status, 401);
  const done = await s.request('POST', '/_matrix/client/v3/account/deactivate', {
    token: me.access_token,
    body: { auth: { type: 'm.login.password', session: first.body.session, user: 'uma', password: 'uma password' } },
  });
  assert.is(done.status, 200);
  assert.equal(done.body, { id_server_unbind_result: 'no-support' });
  assert.is((await whoami(s, me.access_token)).status, 401);
  assert.is((await whoami(s, other.access_token)).status, 401);
  const rt = await s.request('POST', '/_matrix/client/v3/refresh', { body: { refresh_token: other.refresh_token } });
  assert.is(rt.status, 401);
  assert.is((await login(s, 'uma', 'uma password')).status, 403);
  // A deactivated user id is never handed out again.
  const again = await s.request('GET', '/_matrix/client/v3/register/available?username=uma');
  assert.is(again.status, 400);
  assert.is(again.body.errcode, 'M_USER_IN_USE');
});

t('passwords are stored as scrypt hashes at the configured cost', async ({ s }) => {
  await registerUser(s, 'vic', 'vic password');
  const rows = await s.hs.deps.db.query<{ password_hash: string }>('select password_hash from users where user_id = ?', ['@vic:hearth.test']);
  assert.match(rows[0]!.password_hash, /^\$scrypt\$N=1024,r=8,p=1\$/);
  assert.not.match(rows[0]!.password_hash, /vic password/);
});

t.run();
