// End-to-end encryption keys (keys.yaml, cross_signing.yaml): device/one-time/fallback key upload,
// query, claim (atomic under concurrency), cross-signing keys with UIA, and signature uploads
// checked against the stored public keys.
import * as assert from 'uvu/assert';
import { login, type Response } from './support/harness.js';
import { api, assertError, ok, suiteWithUsers, type User } from './support/rooms.js';
import { crossSigningKey, deviceKeys, newKey, signAs, syncAs, uploadDeviceKeys } from './support/e2e.js';
import { responseErrors } from './support/spec_schema.js';

const t = suiteWithUsers('e2e keys', ['alice', 'bob', 'carol', 'dave'] as const);
const PASSWORD = 'correct horse battery';

/** Asserts a 200 body matches the spec's response schema (keys.yaml / cross_signing.yaml) and returns it. */
function specOk(res: Response, file: 'keys' | 'cross_signing', route: string): any {
  const body = ok(res, route);
  const errors = responseErrors(`api/client-server/${file}.yaml`, route, 'post', 200, body);
  assert.equal(errors, [], `${route}: ${errors.join('; ')}`);
  return body;
}

async function secondDevice(s: Parameters<typeof api>[0], u: User, name?: string): Promise<User> {
  const extra = name ? { initial_device_display_name: name } : {};
  return ok(await login(s, u.user_id, PASSWORD, extra), 'login') as User;
}

t('keys/upload: device keys must be this device\'s, well-formed, and never change', async ({ s, alice }) => {
  const k = newKey();
  const good = deviceKeys(alice, k);
  const bad = async (device_keys: unknown, what: string) => assertError(await api(s, alice, 'POST', '/keys/upload', { device_keys }), 400, 'M_BAD_JSON', what);
  await bad({ ...good, user_id: '@someone:hearth.test' }, 'other user');
  await bad({ ...good, device_id: 'OTHERDEV' }, 'other device');
  await bad({ ...good, keys: { 'ed25519:OTHERDEV': k.pub } }, 'key of another device');
  await bad({ ...good, keys: {} }, 'no keys');
  await bad({ ...good, algorithms: 'x' }, 'algorithms not an array');
  const { signatures: _s, ...unsigned } = good;
  await bad(unsigned, 'no signatures');
  await bad({ ...good, signatures: { [alice.user_id]: { 'ed25519:x': 5 } } }, 'signature not a string');
  await bad('nope', 'not an object');

  const first = specOk(await api(s, alice, 'POST', '/keys/upload', { device_keys: good }), 'keys', '/keys/upload');
  assert.equal(first.one_time_key_counts, {});
  // The same keys again (a retry): fine. Different keys for the same device: refused.
  ok(await api(s, alice, 'POST', '/keys/upload', { device_keys: good }), 're-upload');
  assertError(await api(s, alice, 'POST', '/keys/upload', { device_keys: deviceKeys(alice, newKey()) }), 400, 'M_BAD_JSON', 'changed keys');

  const q = ok(await api(s, alice, 'POST', '/keys/query', { device_keys: { [alice.user_id]: [] } }), 'query');
  const got = q.device_keys[alice.user_id][alice.device_id];
  assert.equal(got.keys, good.keys);
  assert.equal(got.signatures, good.signatures, 'stored exactly as uploaded');
});

t('keys/query: display names, device filter, unknown users, remote servers in failures', async ({ s, alice, bob }) => {
  const phone = await secondDevice(s, bob, 'Bob phone');
  await uploadDeviceKeys(s, bob);
  await uploadDeviceKeys(s, phone);
  const q = specOk(
    await api(s, alice, 'POST', '/keys/query', { device_keys: { [bob.user_id]: [], '@nobody:hearth.test': [], '@x:remote.example': [] }, timeout: 1000 }),
    'keys',
    '/keys/query',
  );
  assert.equal(Object.keys(q.device_keys[bob.user_id]).sort(), [bob.device_id, phone.device_id].sort());
  assert.is(q.device_keys[bob.user_id][phone.device_id].unsigned.device_display_name, 'Bob phone');
  assert.equal(q.device_keys['@nobody:hearth.test'], {});
  assert.ok(q.failures['remote.example'], 'remote server reported');
  const one = ok(await api(s, alice, 'POST', '/keys/query', { device_keys: { [bob.user_id]: [phone.device_id] } }), 'query one');
  assert.equal(Object.keys(one.device_keys[bob.user_id]), [phone.device_id]);
  assertError(await api(s, alice, 'POST', '/keys/query', { device_keys: { 'not-a-user': [] } }), 400, 'M_INVALID_PARAM');
  assertError(await api(s, alice, 'POST', '/keys/query', { device_keys: { [bob.user_id]: 'x' } }), 400, 'M_BAD_JSON');
  assertError(await api(s, alice, 'POST', '/keys/query', {}), 400, 'M_BAD_JSON');

  // A deleted device's keys go with it.
  ok(await api(s, phone, 'POST', '/logout'), 'logout');
  const after = ok(await api(s, alice, 'POST', '/keys/query', { device_keys: { [bob.user_id]: [] } }), 'query');
  assert.equal(Object.keys(after.device_keys[bob.user_id]), [bob.device_id]);
});

t('one-time keys: counts, idempotent re-upload, conflicts refused, claimed oldest first and once', async ({ s, alice, carol }) => {
  const dev = await secondDevice(s, carol);
  const key = (n: number) => ({ key: `otk${n}`, signatures: { [carol.user_id]: { [`ed25519:${dev.device_id}`]: 'sig' } } });
  const up1 = ok(await api(s, dev, 'POST', '/keys/upload', { one_time_keys: { 'signed_curve25519:A1': key(1), 'signed_curve25519:A2': key(2), 'curve25519:C1': 'plain' } }), 'upload');
  assert.equal(up1.one_time_key_counts, { signed_curve25519: 2, curve25519: 1 });
  const up2 = ok(await api(s, dev, 'POST', '/keys/upload', { one_time_keys: { 'signed_curve25519:A2': key(2), 'signed_curve25519:A3': key(3) } }), 'same again plus one');
  assert.equal(up2.one_time_key_counts, { signed_curve25519: 3, curve25519: 1 });
  assertError(await api(s, dev, 'POST', '/keys/upload', { one_time_keys: { 'signed_curve25519:A1': key(9) } }), 400, 'M_BAD_JSON', 'different key, same id');
  assertError(await api(s, dev, 'POST', '/keys/upload', { one_time_keys: { nocolon: 'x' } }), 400, 'M_BAD_JSON');
  assertError(await api(s, dev, 'POST', '/keys/upload', { one_time_keys: { 'a:b': { nokey: 1 } } }), 400, 'M_BAD_JSON');
  assertError(await api(s, dev, 'POST', '/keys/upload', { one_time_keys: { 'a:b': 1.5 } }), 400, 'M_BAD_JSON');
  // A refused upload stored nothing.
  assert.equal(ok(await api(s, dev, 'POST', '/keys/upload', {}), 'counts').one_time_key_counts, { signed_curve25519: 3, curve25519: 1 });

  const claim = async () => specOk(await api(s, alice, 'POST', '/keys/claim', { one_time_keys: { [carol.user_id]: { [dev.device_id]: 'signed_curve25519' } } }), 'keys', '/keys/claim');
  const c1 = await claim();
  assert.equal(c1.one_time_keys[carol.user_id][dev.device_id], { 'signed_curve25519:A1': key(1) }, 'oldest upload first');
  const c2 = await claim();
  assert.equal(Object.keys(c2.one_time_keys[carol.user_id][dev.device_id]).length, 1);
  assert.not.equal(c2.one_time_keys[carol.user_id][dev.device_id], c1.one_time_keys[carol.user_id][dev.device_id]);
  const counts = (await syncAs(s, dev)).device_one_time_keys_count;
  assert.equal(counts, { signed_curve25519: 1, curve25519: 1 }, 'sync reports the remaining counts');
  const remote = ok(await api(s, alice, 'POST', '/keys/claim', { one_time_keys: { '@x:remote.example': { D: 'signed_curve25519' } } }), 'remote');
  assert.ok(remote.failures['remote.example']);
  assertError(await api(s, alice, 'POST', '/keys/claim', { one_time_keys: { [carol.user_id]: { D: 5 } } }), 400, 'M_BAD_JSON');
});

t('claims are atomic: 30 concurrent claims of 10 keys hand each key out once, then the fallback key', async ({ s, alice, bob, dave }) => {
  const dev = await secondDevice(s, dave);
  const otks: Record<string, string> = {};
  for (let i = 0; i < 10; i++) otks[`signed_curve25519:K${i}`] = `key${i}`;
  ok(await api(s, dev, 'POST', '/keys/upload', { one_time_keys: otks, fallback_keys: { 'signed_curve25519:FB': { key: 'fallback', fallback: true } } }), 'upload');
  const body = { one_time_keys: { [dave.user_id]: { [dev.device_id]: 'signed_curve25519' } } };
  const results = await Promise.all(Array.from({ length: 30 }, (_, i) => api(s, i % 2 ? alice : bob, 'POST', '/keys/claim', body)));
  const got = results.map((r) => Object.keys(ok(r, 'claim').one_time_keys[dave.user_id][dev.device_id])[0]!);
  const otkIds = got.filter((id) => id !== 'signed_curve25519:FB');
  assert.is(otkIds.length, 10, 'every one-time key handed out');
  assert.is(new Set(otkIds).size, 10, 'none twice');
  assert.is(got.filter((id) => id === 'signed_curve25519:FB').length, 20, 'the rest got the fallback key');
});

t('fallback keys: unused until claimed, reported by sync, a new one is unused again', async ({ s, alice, bob }) => {
  const dev = await secondDevice(s, bob);
  const fb = (k: string) => ({ 'signed_curve25519:F1': { key: k, fallback: true } });
  ok(await api(s, dev, 'POST', '/keys/upload', { fallback_keys: fb('one') }), 'upload fallback');
  assert.equal((await syncAs(s, dev)).device_unused_fallback_key_types, ['signed_curve25519']);
  assertError(await api(s, dev, 'POST', '/keys/upload', { fallback_keys: { 'signed_curve25519:F1': { key: 'a' }, 'signed_curve25519:F2': { key: 'b' } } }), 400, 'M_BAD_JSON', 'two per algorithm');
  const claim = async () => ok(await api(s, alice, 'POST', '/keys/claim', { one_time_keys: { [bob.user_id]: { [dev.device_id]: 'signed_curve25519' } } }), 'claim');
  assert.equal((await claim()).one_time_keys[bob.user_id][dev.device_id], { 'signed_curve25519:F1': { key: 'one', fallback: true } });
  assert.equal((await syncAs(s, dev)).device_unused_fallback_key_types, [], 'used');
  // Claimed again (no one-time keys): the same fallback key.
  assert.ok((await claim()).one_time_keys[bob.user_id][dev.device_id]['signed_curve25519:F1']);
  ok(await api(s, dev, 'POST', '/keys/upload', { fallback_keys: fb('one') }), 'same key again');
  assert.equal((await syncAs(s, dev)).device_unused_fallback_key_types, [], 'the same key stays used');
  ok(await api(s, dev, 'POST', '/keys/upload', { fallback_keys: { 'signed_curve25519:F2': { key: 'two', fallback: true } } }), 'new key');
  assert.equal((await syncAs(s, dev)).device_unused_fallback_key_types, ['signed_curve25519']);
  // A device with neither one-time nor fallback keys: no entry.
  const none = ok(await api(s, alice, 'POST', '/keys/claim', { one_time_keys: { [bob.user_id]: { NODEVICE: 'signed_curve25519' } } }), 'claim none');
  assert.equal(none.one_time_keys, {});
});

t('cross-signing keys: first upload without UIA, a replacement needs the password, a retry does not', async ({ s, carol, alice }) => {
  const master = newKey();
  const selfSigning = newKey();
  const userSigning = newKey();
  const body = {
    master_key: crossSigningKey(carol, 'master', master),
    self_signing_key: crossSigningKey(carol, 'self_signing', selfSigning, master),
    user_signing_key: crossSigningKey(carol, 'user_signing', userSigning, master),
  };
  assertError(await api(s, carol, 'POST', '/keys/device_signing/upload', { self_signing_key: body.self_signing_key }), 400, 'M_MISSING_PARAM', 'no master key');
  const forged = { ...body, self_signing_key: crossSigningKey(carol, 'self_signing', selfSigning, newKey()) };
  assertError(await api(s, carol, 'POST', '/keys/device_signing/upload', forged), 400, 'M_INVALID_SIGNATURE', 'not signed by the master');
  assertError(await api(s, carol, 'POST', '/keys/device_signing/upload', { master_key: { ...body.master_key, user_id: alice.user_id } }), 400, 'M_BAD_JSON');
  assertError(await api(s, carol, 'POST', '/keys/device_signing/upload', { master_key: { ...body.master_key, keys: { 'ed25519:a': 'b' } } }), 400, 'M_BAD_JSON');
  ok(await api(s, carol, 'POST', '/keys/device_signing/upload', body), 'first upload, no UIA');
  ok(await api(s, carol, 'POST', '/keys/device_signing/upload', body), 'identical retry, no UIA');

  const mine = specOk(await api(s, carol, 'POST', '/keys/query', { device_keys: { [carol.user_id]: [] } }), 'keys', '/keys/query');
  assert.equal(mine.master_keys[carol.user_id].keys, body.master_key.keys);
  assert.equal(mine.self_signing_keys[carol.user_id].keys, body.self_signing_key.keys);
  assert.equal(mine.user_signing_keys[carol.user_id].keys, body.user_signing_key.keys);
  const theirs = ok(await api(s, alice, 'POST', '/keys/query', { device_keys: { [carol.user_id]: [] } }), 'other query');
  assert.ok(theirs.master_keys[carol.user_id]);
  assert.ok(theirs.self_signing_keys[carol.user_id]);
  assert.equal(theirs.user_signing_keys, {}, 'the user-signing key only for its owner');

  const master2 = newKey();
  const replace = { master_key: crossSigningKey(carol, 'master', master2), self_signing_key: crossSigningKey(carol, 'self_signing', newKey(), master2) };
  const challenge = await api(s, carol, 'POST', '/keys/device_signing/upload', replace);
  assert.is(challenge.status, 401);
  assert.equal(challenge.body.flows, [{ stages: ['m.login.password'] }]);
  const wrong = await api(s, carol, 'POST', '/keys/device_signing/upload', {
    ...replace,
    auth: { type: 'm.login.password', session: challenge.body.session, identifier: { type: 'm.id.user', user: carol.user_id }, password: 'wrong' },
  });
  assert.is(wrong.status, 401);
  assert.is(wrong.body.errcode, 'M_FORBIDDEN');
  ok(
    await api(s, carol, 'POST', '/keys/device_signing/upload', {
      ...replace,
      auth: { type: 'm.login.password', session: challenge.body.session, identifier: { type: 'm.id.user', user: carol.user_id }, password: PASSWORD },
    }),
    'replacement with the password',
  );
  const after = ok(await api(s, alice, 'POST', '/keys/query', { device_keys: { [carol.user_id]: [] } }), 'query');
  assert.equal(after.master_keys[carol.user_id].keys, replace.master_key.keys);
});

t('signatures/upload: self-signing signs own devices, user-signing signs others\' master keys; forged ones fail', async ({ s }) => {
  // Fresh users of this test's own, so earlier tests' keys don't matter.
  const { registerUser } = await import('./support/harness.js');
  const erin = (await registerUser(s, 'erin')) as User;
  const frank = (await registerUser(s, 'frank')) as User;
  const devKey = newKey();
  const erinDevice = deviceKeys(erin, devKey);
  ok(await api(s, erin, 'POST', '/keys/upload', { device_keys: erinDevice }), 'device keys');
  const [eMaster, eSelf, eUser] = [newKey(), newKey(), newKey()];
  ok(
    await api(s, erin, 'POST', '/keys/device_signing/upload', {
      master_key: crossSigningKey(erin, 'master', eMaster),
      self_signing_key: crossSigningKey(erin, 'self_signing', eSelf, eMaster),
      user_signing_key: crossSigningKey(erin, 'user_signing', eUser, eMaster),
    }),
    'erin cross-signing',
  );
  const fMaster = newKey();
  const frankMaster = crossSigningKey(frank, 'master', fMaster);
  ok(await api(s, frank, 'POST', '/keys/device_signing/upload', { master_key: frankMaster, self_signing_key: crossSigningKey(frank, 'self_signing', newKey(), fMaster) }), 'frank cross-signing');

  const { signatures: _own, ...deviceUnsigned } = erinDevice;
  const signedDevice = signAs({ ...deviceUnsigned }, erin.user_id, eSelf.pub, eSelf);
  const forgedDevice = signAs({ ...deviceUnsigned }, erin.user_id, eSelf.pub, newKey());
  const signedFrank = signAs({ ...frankMaster }, erin.user_id, eUser.pub, eUser);
  const tampered = { ...signAs({ ...frankMaster }, erin.user_id, eUser.pub, eUser), usage: ['master', 'extra'] };

  const forged = specOk(await api(s, erin, 'POST', '/keys/signatures/upload', { [erin.user_id]: { [erin.device_id]: forgedDevice }, [frank.user_id]: { [fMaster.pub]: tampered } }), 'cross_signing', '/keys/signatures/upload');
  assert.is(forged.failures[erin.user_id][erin.device_id].errcode, 'M_INVALID_SIGNATURE');
  assert.is(forged.failures[frank.user_id][fMaster.pub].errcode, 'M_INVALID_SIGNATURE', 'object differs from the stored key');
  const unknown = ok(await api(s, erin, 'POST', '/keys/signatures/upload', { [frank.user_id]: { NOSUCHKEY: signedFrank } }), 'unknown key');
  assert.is(unknown.failures[frank.user_id].NOSUCHKEY.errcode, 'M_NOT_FOUND');
  const q0 = ok(await api(s, frank, 'POST', '/keys/query', { device_keys: { [erin.user_id]: [] } }), 'query');
  assert.not.ok(q0.device_keys[erin.user_id][erin.device_id].signatures[erin.user_id][`ed25519:${eSelf.pub}`], 'a forged signature is not stored');

  const good = ok(await api(s, erin, 'POST', '/keys/signatures/upload', { [erin.user_id]: { [erin.device_id]: signedDevice }, [frank.user_id]: { [fMaster.pub]: signedFrank } }), 'valid');
  assert.equal(good.failures, {});
  // Everyone sees the self-signing signature of Erin's device (next to its own signature).
  const byFrank = ok(await api(s, frank, 'POST', '/keys/query', { device_keys: { [erin.user_id]: [], [frank.user_id]: [] } }), 'query');
  const sigs = byFrank.device_keys[erin.user_id][erin.device_id].signatures[erin.user_id];
  assert.is(sigs[`ed25519:${eSelf.pub}`], signedDevice.signatures[erin.user_id][`ed25519:${eSelf.pub}`]);
  assert.ok(sigs[`ed25519:${erin.device_id}`]);
  // Erin's signature of Frank's master key: Erin sees it, Frank does not.
  assert.not.ok(byFrank.master_keys[frank.user_id].signatures?.[erin.user_id], 'hidden from others');
  const byErin = specOk(await api(s, erin, 'POST', '/keys/query', { device_keys: { [frank.user_id]: [] } }), 'keys', '/keys/query');
  assert.is(byErin.master_keys[frank.user_id].signatures[erin.user_id][`ed25519:${eUser.pub}`], signedFrank.signatures[erin.user_id][`ed25519:${eUser.pub}`]);
});

t.run();
