import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { startTestServer, registerUser, login, type TestServer } from './support/harness.js';

const t = suite<{ s: TestServer }>('devices: list, get, rename, delete with UIA, last seen');

t.before(async (ctx) => {
  ctx.s = await startTestServer();
});
t.after(async (ctx) => {
  await ctx.s.close();
});

const V3 = '/_matrix/client/v3';
const whoami = (s: TestServer, token: string) => s.request('GET', `${V3}/account/whoami`, { token });
const passwordAuth = (user: string, password: string, session: string) => ({
  type: 'm.login.password',
  identifier: { type: 'm.id.user', user },
  password,
  session,
});

/** A user with a second device (`other`) besides the one `me` registered with. */
async function userWithTwoDevices(s: TestServer, localpart: string, password: string) {
  const me = await registerUser(s, localpart, password, { device_id: 'MAIN', initial_device_display_name: 'Main' });
  const other = (await login(s, localpart, password, { device_id: 'OTHER' })).body;
  return { me, other };
}

t('GET /devices lists the devices, absent fields left out', async ({ s }) => {
  const { me } = await userWithTwoDevices(s, 'lister', 'lister password');
  const res = await s.request('GET', `${V3}/devices`, { token: me.access_token });
  assert.is(res.status, 200);
  const byId = Object.fromEntries(res.body.devices.map((d: { device_id: string }) => [d.device_id, d]));
  assert.equal(Object.keys(byId).sort(), ['MAIN', 'OTHER']);
  assert.is(byId.MAIN.display_name, 'Main');
  assert.not.ok('display_name' in byId.OTHER, 'no name: the key is absent, not null');
  for (const d of res.body.devices) {
    for (const v of Object.values(d)) assert.is.not(v, null);
  }
  const none = await s.request('GET', `${V3}/devices`);
  assert.is(none.status, 401);
  assert.is(none.body.errcode, 'M_MISSING_TOKEN');
});

t('GET /devices/{id}: own device, 404 for unknown and for another user\'s', async ({ s }) => {
  const { me } = await userWithTwoDevices(s, 'getter', 'getter password');
  const stranger = await registerUser(s, 'stranger', 'stranger password', { device_id: 'STRANGERDEV' });
  const own = await s.request('GET', `${V3}/devices/MAIN`, { token: me.access_token });
  assert.is(own.status, 200);
  assert.is(own.body.device_id, 'MAIN');
  assert.is(own.body.display_name, 'Main');
  const unknown = await s.request('GET', `${V3}/devices/NOSUCHDEV`, { token: me.access_token });
  assert.is(unknown.status, 404);
  assert.is(unknown.body.errcode, 'M_NOT_FOUND');
  const theirs = await s.request('GET', `${V3}/devices/STRANGERDEV`, { token: me.access_token });
  assert.is(theirs.status, 404);
  assert.is(theirs.body.errcode, 'M_NOT_FOUND');
  assert.is((await s.request('GET', `${V3}/devices/STRANGERDEV`, { token: stranger.access_token })).status, 200);
});

t('PUT /devices/{id} renames; bad names are 400; unknown devices 404', async ({ s }) => {
  const { me } = await userWithTwoDevices(s, 'renamer', 'renamer password');
  const stranger = await registerUser(s, 'stranger2', 'stranger password', { device_id: 'STRANGER2' });
  const put = (id: string, body: unknown, token = me.access_token) =>
    s.request('PUT', `${V3}/devices/${id}`, { token, body });
  const get = async (id: string) => (await s.request('GET', `${V3}/devices/${id}`, { token: me.access_token })).body;

  const ok = await put('OTHER', { display_name: 'Work laptop' });
  assert.is(ok.status, 200);
  assert.equal(ok.body, {});
  assert.is((await get('OTHER')).display_name, 'Work laptop');
  assert.is((await put('OTHER', {})).status, 200, 'no display_name: unchanged');
  assert.is((await get('OTHER')).display_name, 'Work laptop');
  assert.is((await put('OTHER', { display_name: '' })).status, 200);
  assert.not.ok('display_name' in (await get('OTHER')), 'an empty name removes it');

  const notString = await put('OTHER', { display_name: 42 });
  assert.is(notString.status, 400);
  assert.is(notString.body.errcode, 'M_BAD_JSON');
  const tooLong = await put('OTHER', { display_name: 'x'.repeat(513) });
  assert.is(tooLong.status, 400);
  assert.is(tooLong.body.errcode, 'M_INVALID_PARAM');
  assert.is((await put('OTHER', { display_name: 'x'.repeat(512) })).status, 200);

  for (const id of ['NOSUCHDEV', 'STRANGER2']) {
    for (const body of [{ display_name: 'mine now' }, {}]) {
      const res = await put(id, body);
      assert.is(res.status, 404, `${id} ${JSON.stringify(body)}`);
      assert.is(res.body.errcode, 'M_NOT_FOUND');
    }
  }
  const theirs = await s.request('GET', `${V3}/devices/STRANGER2`, { token: stranger.access_token });
  assert.not.ok('display_name' in theirs.body, "another user's device was not renamed");
});

t('DELETE /devices/{id}: UIA password, then the device and its token are gone at once', async ({ s }) => {
  const { me, other } = await userWithTwoDevices(s, 'deleter', 'deleter password');
  const url = `${V3}/devices/OTHER`;
  const first = await s.request('DELETE', url, { token: me.access_token, body: {} });
  assert.is(first.status, 401);
  assert.equal(first.body.flows, [{ stages: ['m.login.password'] }]);
  assert.type(first.body.session, 'string');
  const session = first.body.session;
  assert.is((await whoami(s, other.access_token)).status, 200, 'nothing deleted before UIA completes');

  const wrong = await s.request('DELETE', url, { token: me.access_token, body: { auth: passwordAuth('deleter', 'wrong password', session) } });
  assert.is(wrong.status, 401);
  assert.is(wrong.body.errcode, 'M_FORBIDDEN');
  assert.is(wrong.body.session, session);
  assert.equal(wrong.body.flows, [{ stages: ['m.login.password'] }]);
  assert.is((await whoami(s, other.access_token)).status, 200);

  const ok = await s.request('DELETE', url, { token: me.access_token, body: { auth: passwordAuth('deleter', 'deleter password', session) } });
  assert.is(ok.status, 200);
  assert.equal(ok.body, {});
  const dead = await whoami(s, other.access_token);
  assert.is(dead.status, 401);
  assert.is(dead.body.errcode, 'M_UNKNOWN_TOKEN');
  assert.is((await whoami(s, me.access_token)).status, 200, 'the current device is untouched');
  assert.is((await s.request('GET', url, { token: me.access_token })).status, 404);
  const list = await s.request('GET', `${V3}/devices`, { token: me.access_token });
  assert.equal(list.body.devices.map((d: { device_id: string }) => d.device_id), ['MAIN']);
});

t('a UIA session started to delete one device cannot delete another', async ({ s }) => {
  await registerUser(s, 'replayer', 'replayer password', { device_id: 'MAIN' });
  const me = (await login(s, 'replayer', 'replayer password', { device_id: 'CURRENT' })).body;
  const x = (await login(s, 'replayer', 'replayer password', { device_id: 'DEVX' })).body;
  const y = (await login(s, 'replayer', 'replayer password', { device_id: 'DEVY' })).body;
  const started = await s.request('DELETE', `${V3}/devices/DEVX`, { token: me.access_token, body: {} });
  assert.is(started.status, 401);
  const session = started.body.session;
  const auth = passwordAuth('replayer', 'replayer password', session);

  const other = await s.request('DELETE', `${V3}/devices/DEVY`, { token: me.access_token, body: { auth } });
  assert.is(other.status, 403);
  assert.is(other.body.errcode, 'M_FORBIDDEN');
  const bulk = await s.request('POST', `${V3}/delete_devices`, { token: me.access_token, body: { devices: ['DEVY'], auth } });
  assert.is(bulk.status, 403);
  assert.is(bulk.body.errcode, 'M_FORBIDDEN');
  assert.is((await whoami(s, y.access_token)).status, 200, 'DEVY survives');

  // Completed for DEVX, the session deletes DEVX, once.
  const ok = await s.request('DELETE', `${V3}/devices/DEVX`, { token: me.access_token, body: { auth } });
  assert.is(ok.status, 200);
  assert.is((await whoami(s, x.access_token)).status, 401);
  const replay = await s.request('DELETE', `${V3}/devices/DEVY`, { token: me.access_token, body: { auth: { session } } });
  assert.is(replay.status, 400, 'a finished session is gone');
  assert.is((await whoami(s, y.access_token)).status, 200);
});

t('a UIA session cannot be used by another user', async ({ s }) => {
  const a = await registerUser(s, 'owner', 'owner password', { device_id: 'OWNERDEV' });
  const b = await registerUser(s, 'thief', 'thief password', { device_id: 'OWNERDEV' });
  const started = await s.request('DELETE', `${V3}/devices/OWNERDEV`, { token: a.access_token, body: {} });
  const res = await s.request('DELETE', `${V3}/devices/OWNERDEV`, {
    token: b.access_token,
    body: { auth: passwordAuth('thief', 'thief password', started.body.session) },
  });
  assert.is(res.status, 403);
  assert.is((await whoami(s, a.access_token)).status, 200);
  assert.is((await whoami(s, b.access_token)).status, 200);
});

t("deleting another user's device id only ever touches your own devices", async ({ s }) => {
  const victim = await registerUser(s, 'victim', 'victim password', { device_id: 'VICTIMDEV' });
  const me = await registerUser(s, 'attacker', 'attacker password', { device_id: 'ATTACKERDEV' });
  const first = await s.request('DELETE', `${V3}/devices/VICTIMDEV`, { token: me.access_token, body: {} });
  const res = await s.request('DELETE', `${V3}/devices/VICTIMDEV`, {
    token: me.access_token,
    body: { auth: passwordAuth('attacker', 'attacker password', first.body.session) },
  });
  assert.is(res.status, 200, 'spec: 200 when the device "had been removed previously"');
  assert.is((await whoami(s, victim.access_token)).status, 200, "the other user's device lives on");
});

t('POST /delete_devices: UIA, then every listed device is gone; validation', async ({ s }) => {
  await registerUser(s, 'bulk', 'bulk password', { device_id: 'MAIN' });
  const me = (await login(s, 'bulk', 'bulk password', { device_id: 'CURRENT' })).body;
  const a = (await login(s, 'bulk', 'bulk password', { device_id: 'DEVA' })).body;
  const b = (await login(s, 'bulk', 'bulk password', { device_id: 'DEVB', refresh_token: true })).body;
  const c = (await login(s, 'bulk', 'bulk password', { device_id: 'DEVC' })).body;
  const url = `${V3}/delete_devices`;

  const missing = await s.request('POST', url, { token: me.access_token, body: {} });
  assert.is(missing.status, 400);
  assert.is(missing.body.errcode, 'M_MISSING_PARAM');
  const bad = await s.request('POST', url, { token: me.access_token, body: { devices: 'DEVA' } });
  assert.is(bad.status, 400);
  assert.is(bad.body.errcode, 'M_BAD_JSON');

  const first = await s.request('POST', url, { token: me.access_token, body: { devices: ['DEVA', 'DEVB'] } });
  assert.is(first.status, 401);
  assert.equal(first.body.flows, [{ stages: ['m.login.password'] }]);
  const session = first.body.session;
  const wrong = await s.request('POST', url, {
    token: me.access_token,
    body: { devices: ['DEVA', 'DEVB'], auth: passwordAuth('bulk', 'bad password', session) },
  });
  assert.is(wrong.status, 401);
  assert.is(wrong.body.errcode, 'M_FORBIDDEN');
  // The same session with a different device list is a different request.
  const widened = await s.request('POST', url, {
    token: me.access_token,
    body: { devices: ['DEVA', 'DEVB', 'DEVC'], auth: passwordAuth('bulk', 'bulk password', session) },
  });
  assert.is(widened.status, 403);
  assert.is((await whoami(s, c.access_token)).status, 200);

  // Order and duplicates do not make a different request.
  const ok = await s.request('POST', url, {
    token: me.access_token,
    body: { devices: ['DEVB', 'DEVA', 'DEVB'], auth: passwordAuth('bulk', 'bulk password', session) },
  });
  assert.is(ok.status, 200);
  assert.equal(ok.body, {});
  for (const gone of [a, b]) {
    const res = await whoami(s, gone.access_token);
    assert.is(res.status, 401);
    assert.is(res.body.errcode, 'M_UNKNOWN_TOKEN');
  }
  const refresh = await s.request('POST', `${V3}/refresh`, { body: { refresh_token: b.refresh_token } });
  assert.is(refresh.status, 401, 'the refresh token died with the device');
  assert.is((await whoami(s, me.access_token)).status, 200);
  assert.is((await whoami(s, c.access_token)).status, 200);
  const list = await s.request('GET', `${V3}/devices`, { token: me.access_token });
  assert.equal(list.body.devices.map((d: { device_id: string }) => d.device_id).sort(), ['CURRENT', 'DEVC', 'MAIN']);
});

/** last_seen is recorded off the request path, so wait briefly for it to land. */
async function deviceOnceSeen(s: TestServer, token: string, deviceId: string) {
  for (let i = 0; i < 50; i++) {
    const d = (await s.request('GET', `${V3}/devices/${deviceId}`, { token })).body;
    if (d.last_seen_ts !== undefined) return d;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`${deviceId} was never seen`);
}

t('an authenticated request records last_seen_ts and last_seen_ip, at most once a minute', async ({ s }) => {
  await registerUser(s, 'seen', 'seen password', { device_id: 'MAIN' });
  const me = (await login(s, 'seen', 'seen password', { device_id: 'PHONE' })).body;
  const watcher = (await login(s, 'seen', 'seen password', { device_id: 'WATCHER' })).body;
  const before = Date.now();
  assert.is((await whoami(s, me.access_token)).status, 200);
  // Read through another device, so only the whoami above can have marked PHONE as seen.
  const s1 = await deviceOnceSeen(s, watcher.access_token, 'PHONE');
  assert.type(s1.last_seen_ts, 'number');
  assert.ok(s1.last_seen_ts >= before && s1.last_seen_ts <= Date.now(), 'a current timestamp');
  assert.is(s1.last_seen_ip, '127.0.0.1');
  const listed = await s.request('GET', `${V3}/devices`, { token: watcher.access_token });
  const phone = listed.body.devices.find((d: { device_id: string }) => d.device_id === 'PHONE');
  assert.is(phone.last_seen_ts, s1.last_seen_ts);

  // Within the minute, from the same address: no new write.
  await new Promise((r) => setTimeout(r, 30));
  await whoami(s, me.access_token);
  await new Promise((r) => setTimeout(r, 100));
  const s2 = (await s.request('GET', `${V3}/devices/PHONE`, { token: watcher.access_token })).body;
  assert.is(s2.last_seen_ts, s1.last_seen_ts, 'throttled');

  // A new address is recorded at once.
  await s.request('GET', `${V3}/account/whoami`, { token: me.access_token, remoteAddress: '10.9.8.7' });
  let s3 = s2;
  for (let i = 0; i < 50 && s3.last_seen_ip !== '10.9.8.7'; i++) {
    await new Promise((r) => setTimeout(r, 20));
    s3 = (await s.request('GET', `${V3}/devices/PHONE`, { token: watcher.access_token })).body;
  }
  assert.is(s3.last_seen_ip, '10.9.8.7');
});

t.run();
