import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { startTestServer, registerUser, type TestServer } from './support/harness.js';

const t = suite<{ s: TestServer }>('profile and capabilities');

t.before(async (ctx) => {
  ctx.s = await startTestServer();
});
t.after(async (ctx) => {
  await ctx.s.close();
});

const V3 = '/_matrix/client/v3';
const profileUrl = (userId: string, field?: string) =>
  `${V3}/profile/${encodeURIComponent(userId)}${field ? `/${field}` : ''}`;

t('a new user has their localpart as display name and no avatar; GET needs no token', async ({ s }) => {
  await registerUser(s, 'newbie');
  const res = await s.request('GET', profileUrl('@newbie:hearth.test'));
  assert.is(res.status, 200);
  assert.equal(res.body, { displayname: 'newbie' });
  const name = await s.request('GET', profileUrl('@newbie:hearth.test', 'displayname'));
  assert.is(name.status, 200);
  assert.equal(name.body, { displayname: 'newbie' });
  const avatar = await s.request('GET', profileUrl('@newbie:hearth.test', 'avatar_url'));
  assert.is(avatar.status, 404, 'an unset field is not found');
  assert.is(avatar.body.errcode, 'M_NOT_FOUND');
});

t('set and read back display name and avatar; empty values remove them', async ({ s }) => {
  const me = await registerUser(s, 'painter');
  const id = '@painter:hearth.test';
  const put = (field: string, body: unknown) => s.request('PUT', profileUrl(id, field), { token: me.access_token, body });

  const name = await put('displayname', { displayname: 'Pablo ✨' });
  assert.is(name.status, 200);
  assert.equal(name.body, {});
  const avatar = await put('avatar_url', { avatar_url: 'mxc://hearth.test/AbC_123-x' });
  assert.is(avatar.status, 200);
  assert.equal((await s.request('GET', profileUrl(id))).body, {
    displayname: 'Pablo ✨',
    avatar_url: 'mxc://hearth.test/AbC_123-x',
  });
  assert.equal((await s.request('GET', profileUrl(id, 'avatar_url'))).body, { avatar_url: 'mxc://hearth.test/AbC_123-x' });
  // r0 is the same API.
  const r0 = await s.request('GET', `/_matrix/client/r0/profile/${encodeURIComponent(id)}/displayname`);
  assert.equal(r0.body, { displayname: 'Pablo ✨' });

  assert.is((await put('displayname', { displayname: '' })).status, 200);
  const noName = await s.request('GET', profileUrl(id));
  assert.equal(noName.body, { avatar_url: 'mxc://hearth.test/AbC_123-x' }, 'no displayname: the key is omitted');
  assert.is((await s.request('GET', profileUrl(id, 'displayname'))).status, 404);
  assert.is((await put('avatar_url', { avatar_url: '' })).status, 200);
  const empty = await s.request('GET', profileUrl(id));
  assert.is(empty.status, 200);
  assert.equal(empty.body, {});
});

t("setting someone else's profile is 403 M_FORBIDDEN and changes nothing", async ({ s }) => {
  await registerUser(s, 'target');
  const me = await registerUser(s, 'meddler');
  const attempts: [string, string][] = [['displayname', 'Hacked'], ['avatar_url', 'mxc://hearth.test/evil']];
  for (const [field, value] of attempts) {
    const res = await s.request('PUT', profileUrl('@target:hearth.test', field), {
      token: me.access_token,
      body: { [field]: value },
    });
    assert.is(res.status, 403, field);
    assert.is(res.body.errcode, 'M_FORBIDDEN');
  }
  const remote = await s.request('PUT', profileUrl('@meddler:elsewhere.test', 'displayname'), {
    token: me.access_token,
    body: { displayname: 'x' },
  });
  assert.is(remote.status, 403);
  assert.equal((await s.request('GET', profileUrl('@target:hearth.test'))).body, { displayname: 'target' });
  const anonymous = await s.request('PUT', profileUrl('@target:hearth.test', 'displayname'), { body: { displayname: 'x' } });
  assert.is(anonymous.status, 401);
  assert.is(anonymous.body.errcode, 'M_MISSING_TOKEN');
});

t('bad values are 400 with the right errcode', async ({ s }) => {
  const me = await registerUser(s, 'validator');
  const id = '@validator:hearth.test';
  const put = (field: string, body: unknown) => s.request('PUT', profileUrl(id, field), { token: me.access_token, body });
  const cases: [string, unknown, string][] = [
    ['avatar_url', { avatar_url: 'https://example.org/me.png' }, 'M_INVALID_PARAM'],
    ['avatar_url', { avatar_url: 'mxc://hearth.test' }, 'M_INVALID_PARAM'],
    ['avatar_url', { avatar_url: 'mxc://hearth.test/a/b' }, 'M_INVALID_PARAM'],
    ['avatar_url', { avatar_url: 'mxc://hearth.test/bad id' }, 'M_INVALID_PARAM'],
    ['avatar_url', { avatar_url: `mxc://hearth.test/${'a'.repeat(1000)}` }, 'M_INVALID_PARAM'],
    ['avatar_url', { avatar_url: 12 }, 'M_BAD_JSON'],
    ['avatar_url', {}, 'M_MISSING_PARAM'],
    ['displayname', { displayname: 'x'.repeat(257) }, 'M_INVALID_PARAM'],
    ['displayname', { displayname: ['Bob'] }, 'M_BAD_JSON'],
    ['displayname', { displayname: null }, 'M_BAD_JSON'],
    ['displayname', { name: 'Bob' }, 'M_MISSING_PARAM'],
  ];
  for (const [field, body, errcode] of cases) {
    const res = await put(field, body);
    assert.is(res.status, 400, JSON.stringify(body).slice(0, 80));
    assert.is(res.body.errcode, errcode, JSON.stringify(body).slice(0, 80));
  }
  const notJson = await s.request('PUT', profileUrl(id, 'displayname'), { token: me.access_token, rawBody: '{oops' });
  assert.is(notJson.status, 400);
  assert.is(notJson.body.errcode, 'M_NOT_JSON');
  assert.equal((await s.request('GET', profileUrl(id))).body, { displayname: 'validator' }, 'nothing was stored');
  // The limits themselves are allowed (256 code points, even astral ones; IP-literal server names).
  assert.is((await put('displayname', { displayname: '🔥'.repeat(256) })).status, 200);
  assert.is((await put('avatar_url', { avatar_url: 'mxc://[::1]:8448/abc' })).status, 200);
});

t('unknown, deactivated, remote and malformed users', async ({ s }) => {
  const gone = await registerUser(s, 'leaver', 'leaver password');
  const deactivate = async (session?: string) =>
    s.request('POST', `${V3}/account/deactivate`, {
      token: gone.access_token,
      body: session ? { auth: { type: 'm.login.password', user: 'leaver', password: 'leaver password', session } } : {},
    });
  const first = await deactivate();
  assert.is((await deactivate(first.body.session)).status, 200);
  for (const userId of ['@nobody:hearth.test', '@leaver:hearth.test', '@alice:remote.example']) {
    for (const field of [undefined, 'displayname', 'avatar_url']) {
      const res = await s.request('GET', profileUrl(userId, field));
      assert.is(res.status, 404, `${userId} ${field}`);
      assert.is(res.body.errcode, 'M_NOT_FOUND');
    }
  }
  const malformed = await s.request('GET', profileUrl('not-a-user-id'));
  assert.is(malformed.status, 400);
  assert.is(malformed.body.errcode, 'M_INVALID_PARAM');
});

t('GET /capabilities: the advertised shape; needs a token', async ({ s }) => {
  const me = await registerUser(s, 'capable');
  const res = await s.request('GET', `${V3}/capabilities`, { token: me.access_token });
  assert.is(res.status, 200);
  assert.equal(res.body, {
    capabilities: {
      'm.change_password': { enabled: true },
      'm.room_versions': { default: '11', available: { '10': 'stable', '11': 'stable', '12': 'stable' } },
      'm.set_displayname': { enabled: true },
      'm.set_avatar_url': { enabled: true },
      'm.profile_fields': { enabled: true, allowed: ['displayname', 'avatar_url'] },
      'm.3pid_changes': { enabled: true },
      'm.get_login_token': { enabled: false },
    },
  });
  const none = await s.request('GET', `${V3}/capabilities`);
  assert.is(none.status, 401);
  assert.is(none.body.errcode, 'M_MISSING_TOKEN');
});

t('a profile change reaches every joined room as a new member event', async ({ s }) => {
  const u = await registerUser(s, 'roamer');
  const enc = encodeURIComponent;
  const rooms: string[] = [];
  for (const name of ['one', 'two']) {
    const r = await s.request('POST', '/_matrix/client/v3/createRoom', { token: u.access_token, body: { name } });
    assert.is(r.status, 200);
    rooms.push(r.body.room_id);
  }
  const put = await s.request('PUT', `/_matrix/client/v3/profile/${enc(u.user_id)}/displayname`, {
    token: u.access_token,
    body: { displayname: 'Roaming Rita' },
  });
  assert.is(put.status, 200);
  for (const roomId of rooms) {
    const member = await s.request('GET', `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.member/${enc(u.user_id)}`, { token: u.access_token });
    assert.is(member.body.displayname, 'Roaming Rita');
    assert.is(member.body.membership, 'join');
  }
  // Setting the same name again sends nothing new.
  const before = await s.hs.deps.db.query('select count(*)::int as n from events where sender = ?', [u.user_id]);
  await s.request('PUT', `/_matrix/client/v3/profile/${enc(u.user_id)}/displayname`, { token: u.access_token, body: { displayname: 'Roaming Rita' } });
  const after = await s.hs.deps.db.query('select count(*)::int as n from events where sender = ?', [u.user_id]);
  assert.equal(after, before);
});

t.run();
