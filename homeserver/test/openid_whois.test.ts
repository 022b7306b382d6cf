// OpenID tokens (POST /user/{userId}/openid/request_token, GET /_matrix/federation/v1/openid/userinfo)
// and GET /admin/whois/{userId}.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import { startTestServer, registerUser, type TestServer } from './support/harness.js';
import { beforeAll } from './support/hooks.js';
import { api, assertError, enc, ok, type User } from './support/rooms.js';

type Ctx = { s: TestServer; alice: User; bob: User; admin: User };
const t = suite<Ctx>('openid and whois');
beforeAll(t, async (ctx) => {
  // Federation on: the userinfo endpoint is a federation endpoint (without X-Matrix authentication).
  ctx.s = await startTestServer({ HEARTH_FEDERATION_ENABLED: 'true', HEARTH_OPENID_TOKEN_LIFETIME_MS: '600000' });
  ctx.alice = await registerUser(ctx.s, 'alice');
  ctx.bob = await registerUser(ctx.s, 'bob');
  ctx.admin = await registerUser(ctx.s, 'admin');
  await ctx.s.hs.deps.services.accounts.setAdmin(ctx.admin.user_id, true);
});
t.after(async (ctx) => {
  await ctx.s?.close();
});

const userinfo = (s: TestServer, token: string) => s.request('GET', `/_matrix/federation/v1/openid/userinfo?access_token=${enc(token)}`);

t('request_token: a bearer token another server resolves to the user', async ({ s, alice, bob }) => {
  const tok = ok(await api(s, alice, 'POST', `/user/${enc(alice.user_id)}/openid/request_token`, {}));
  assert.is(tok.token_type, 'Bearer');
  assert.is(tok.matrix_server_name, 'hearth.test');
  assert.is(tok.expires_in, 600);
  assert.type(tok.access_token, 'string');
  assert.equal(ok(await userinfo(s, tok.access_token)), { sub: alice.user_id });
  // It is not an access token for the client API, and not stored in clear.
  assertError(await s.request('GET', '/_matrix/client/v3/account/whoami', { token: tok.access_token }), 401, 'M_UNKNOWN_TOKEN');
  const db = new pg.Client({ connectionString: s.databaseUrl });
  await db.connect();
  try {
    const rows = await db.query('select token_hash from openid_tokens');
    assert.ok(rows.rows.length >= 1);
    assert.not.ok(rows.rows.some((r) => r.token_hash === tok.access_token), 'hashed');
    // Expired: no longer recognized.
    await db.query('update openid_tokens set expires_ts = 1');
  } finally {
    await db.end();
  }
  assertError(await userinfo(s, tok.access_token), 401, 'M_UNKNOWN_TOKEN', 'expired');
  assertError(await userinfo(s, 'nonsense'), 401, 'M_UNKNOWN_TOKEN');
  assertError(await s.request('GET', '/_matrix/federation/v1/openid/userinfo'), 401, 'M_UNKNOWN_TOKEN');
  // Only for oneself; and only with an access token.
  assertError(await api(s, bob, 'POST', `/user/${enc(alice.user_id)}/openid/request_token`, {}), 403, 'M_FORBIDDEN');
  assertError(await api(s, null, 'POST', `/user/${enc(alice.user_id)}/openid/request_token`, {}), 401, 'M_MISSING_TOKEN');
});

t('whois: the user themself and server admins see devices with ip and last_seen', async ({ s, alice, bob, admin }) => {
  // Activity is recorded after the response (fire and forget): poll a bounded number of requests.
  let info: any;
  for (let i = 0; i < 50; i++) {
    info = ok(await s.request('GET', `/_matrix/client/v3/admin/whois/${enc(alice.user_id)}`, { token: alice.access_token, remoteAddress: '10.1.2.3' }));
    if (info.devices[alice.device_id]?.sessions[0]?.connections[0]?.ip === '10.1.2.3') break;
  }
  assert.is(info.user_id, alice.user_id);
  const conn = info.devices[alice.device_id].sessions[0].connections[0];
  assert.is(conn.ip, '10.1.2.3');
  assert.type(conn.last_seen, 'number');
  const byAdmin = ok(await api(s, admin, 'GET', `/admin/whois/${enc(alice.user_id)}`));
  assert.equal(Object.keys(byAdmin.devices), [alice.device_id]);
  assertError(await api(s, bob, 'GET', `/admin/whois/${enc(alice.user_id)}`), 403, 'M_FORBIDDEN');
  assertError(await api(s, admin, 'GET', `/admin/whois/${enc('@nobody:hearth.test')}`), 404, 'M_NOT_FOUND');
});

t.run();
