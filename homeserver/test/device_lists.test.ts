// Device-list tracking (end_to_end_encryption.md "Tracking the device list for a user"): /sync
// `device_lists.changed` / `left` and GET /keys/changes, for key uploads, new, renamed and deleted devices,
// cross-signing keys, and users who start or stop sharing a room; long-polls wake for them.
import * as assert from 'uvu/assert';
import { login } from './support/harness.js';
import { api, createRoom, enc, invite, join, ok, suiteWithUsers, type User } from './support/rooms.js';
import { crossSigningKey, newKey, syncAs, uploadDeviceKeys } from './support/e2e.js';

const PASSWORD = 'correct horse battery';
const t = suiteWithUsers('device lists', ['alice', 'bob', 'carol', 'loner'] as const);

const lists = (body: any) => ({ changed: [...body.device_lists.changed].sort(), left: [...body.device_lists.left].sort() });

t('changed: a shared-room user\'s new device keys, cross-signing keys and deleted device; never strangers', async ({ s, alice, bob, loner }) => {
  const roomId = await createRoom(s, alice);
  await invite(s, alice, roomId, bob.user_id);
  await join(s, bob, roomId);
  const start = await syncAs(s, alice);
  assert.equal(start.device_lists, { changed: [], left: [] }, 'nothing on an initial sync');

  await uploadDeviceKeys(s, bob);
  await uploadDeviceKeys(s, loner);
  const a = await syncAs(s, alice, { since: start.next_batch });
  assert.equal(lists(a), { changed: [bob.user_id], left: [] }, 'bob, not the user sharing no room');
  const changes = ok(await api(s, alice, 'GET', `/keys/changes?from=${enc(start.next_batch)}&to=${enc(a.next_batch)}`), 'keys/changes');
  assert.equal(changes, { changed: [bob.user_id], left: [] });
  assert.equal(lists(await syncAs(s, alice, { since: a.next_batch })), { changed: [], left: [] }, 'reported once');

  // Bob sees his own device change too (his other devices must re-fetch his keys).
  const bobStart = await syncAs(s, bob);
  const master = newKey();
  ok(await api(s, bob, 'POST', '/keys/device_signing/upload', { master_key: crossSigningKey(bob, 'master', master) }), 'cross-signing');
  const b = await syncAs(s, alice, { since: a.next_batch });
  assert.equal(lists(b).changed, [bob.user_id], 'cross-signing keys');
  assert.equal(lists(await syncAs(s, bob, { since: bobStart.next_batch })).changed, [bob.user_id], 'own change');

  const phone = ok(await login(s, bob.user_id, PASSWORD), 'login') as User;
  await uploadDeviceKeys(s, phone);
  const c = await syncAs(s, alice, { since: b.next_batch });
  assert.equal(lists(c).changed, [bob.user_id], 'a new device with keys');
  ok(await api(s, bob, 'PUT', `/devices/${enc(phone.device_id)}`, { display_name: 'Bob phone' }), 'rename');
  const renamed = await syncAs(s, alice, { since: c.next_batch });
  assert.equal(lists(renamed).changed, [bob.user_id], 'a renamed device (its name is in the published keys)');
  ok(await api(s, phone, 'POST', '/logout'), 'logout');
  const d = await syncAs(s, alice, { since: renamed.next_batch });
  assert.equal(lists(d).changed, [bob.user_id], 'a deleted device');
});

t('joins and leaves: newly shared users are changed, users no longer shared are left', async ({ s, alice, carol }) => {
  const roomId = await createRoom(s, alice, { preset: 'public_chat' });
  const start = await syncAs(s, alice);
  await join(s, carol, roomId);
  const a = await syncAs(s, alice, { since: start.next_batch });
  assert.ok(lists(a).changed.includes(carol.user_id), 'carol now shares a room');
  ok(await api(s, carol, 'POST', `/rooms/${enc(roomId)}/leave`, {}), 'leave');
  const b = await syncAs(s, alice, { since: a.next_batch });
  assert.equal(lists(b).left, [carol.user_id], 'carol shares no room any more');
  assert.not.ok(lists(b).changed.includes(carol.user_id));
  const changes = ok(await api(s, alice, 'GET', `/keys/changes?from=${enc(a.next_batch)}&to=${enc(b.next_batch)}`), 'keys/changes');
  assert.equal(changes.left, [carol.user_id]);

  // Carol joining a room with Alice: Carol's own sync lists Alice (and her other members) as changed.
  const carolStart = await syncAs(s, carol);
  await join(s, carol, roomId);
  const c = await syncAs(s, carol, { since: carolStart.next_batch });
  assert.ok(lists(c).changed.includes(alice.user_id), 'the members of a room one joins');
  // And Carol leaving: Alice is left for Carol.
  ok(await api(s, carol, 'POST', `/rooms/${enc(roomId)}/leave`, {}), 'leave again');
  const d = await syncAs(s, carol, { since: c.next_batch });
  assert.ok(lists(d).left.includes(alice.user_id));
});

t('a waiting long-poll wakes when a room member uploads keys', async ({ s, alice, bob }) => {
  let pos = (await syncAs(s, alice)).next_batch;
  pos = (await syncAs(s, alice, { since: pos })).next_batch;
  const waiting = syncAs(s, alice, { since: pos, timeout: 20_000 });
  await new Promise((r) => setTimeout(r, 100));
  const tablet = ok(await login(s, bob.user_id, PASSWORD), 'login') as User;
  await uploadDeviceKeys(s, tablet);
  const woke = await waiting;
  assert.equal(lists(woke).changed, [bob.user_id]);
});

t('keys/changes: parameters required', async ({ s, alice }) => {
  assert.is((await api(s, alice, 'GET', '/keys/changes?from=s1')).body.errcode, 'M_MISSING_PARAM');
  assert.is((await api(s, alice, 'GET', '/keys/changes?from=nonsense&to=s1')).body.errcode, 'M_INVALID_PARAM');
});

t.run();
