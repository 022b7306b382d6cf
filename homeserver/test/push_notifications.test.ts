// Push notifications, server side (spec: "Push Notifications"): unread_notifications in /sync
// going up with other members' messages (never the sender's own) and back to 0 after a read
// receipt (m.read or m.read.private), highlights for user and room mentions (room mentions need
// the sender's notifications.room power), per-thread counts with unread_thread_notifications,
// a push rule change taking effect at once, invites notifying the invitee, GET /notifications
// (paging, read flags, only=highlight), and pushers: validation, update, append, deletion and
// removal with the device's session.
import * as assert from 'uvu/assert';
import type { TestServer } from './support/harness.js';
import { login } from './support/harness.js';
import { api, assertError, createRoom, enc, invite, join, ok, send, suiteWithUsers, type User } from './support/rooms.js';
import { beforeAll } from './support/hooks.js';
import { syncAs as sync } from './support/e2e.js';

const receipt = (s: TestServer, u: User, roomId: string, type: string, eventId: string, body: Record<string, unknown> = {}) =>
  api(s, u, 'POST', `/rooms/${enc(roomId)}/receipt/${enc(type)}/${enc(eventId)}`, body);
const counts = (body: any, roomId: string) => body.rooms?.join?.[roomId]?.unread_notifications;
const mention = (u: User, text = 'hey') => ({ msgtype: 'm.text', body: `${text} ${u.user_id}`, 'm.mentions': { user_ids: [u.user_id] } });
const THREADED = JSON.stringify({ room: { timeline: { unread_thread_notifications: true } } });

const t = suiteWithUsers('push notifications', ['alice', 'bob', 'carol', 'dave'] as const);
const c = {} as { roomId: string };

beforeAll(t, async ({ s, alice, bob, carol }) => {
  c.roomId = await createRoom(s, alice, { preset: 'public_chat', name: 'Push' });
  await join(s, bob, c.roomId);
  await join(s, carol, c.roomId);
});

t('counts rise with others\' messages, mentions highlight, a receipt brings them back to 0', async ({ s, alice, bob }) => {
  const { roomId } = c;
  const first = await sync(s, bob);
  assert.equal(counts(first, roomId), { notification_count: 0, highlight_count: 0 }, 'initial sync: nothing unread');
  await send(s, alice, roomId, 'one');
  await send(s, alice, roomId, 'two');
  const inc = await sync(s, bob, { since: first.next_batch });
  assert.equal(counts(inc, roomId), { notification_count: 2, highlight_count: 0 }, 'the count arrives with the events');
  const m3 = await send(s, alice, roomId, mention(bob));
  const inc2 = await sync(s, bob, { since: inc.next_batch });
  assert.equal(counts(inc2, roomId), { notification_count: 3, highlight_count: 1 }, 'a mention highlights');
  assert.equal(counts(await sync(s, alice), roomId), { notification_count: 0, highlight_count: 0 }, 'the sender\'s own messages never count');
  await send(s, bob, roomId, 'bob speaks');
  assert.equal(counts(await sync(s, bob), roomId), { notification_count: 3, highlight_count: 1 }, 'bob\'s own message adds nothing');

  ok(await receipt(s, bob, roomId, 'm.read', m3));
  const afterReceipt = await sync(s, bob, { since: inc2.next_batch });
  assert.equal(counts(afterReceipt, roomId), { notification_count: 0, highlight_count: 0 }, 'the receipt brings the room back with 0');
  const m4 = await send(s, alice, roomId, 'four');
  assert.equal(counts(await sync(s, bob, { since: afterReceipt.next_batch }), roomId), { notification_count: 1, highlight_count: 0 });
  ok(await receipt(s, bob, roomId, 'm.read.private', m4));
  assert.equal(counts(await sync(s, bob), roomId), { notification_count: 0, highlight_count: 0 }, 'a private receipt clears too');
});

t('an ignored sender\'s messages do not notify', async ({ s, alice, bob, carol }) => {
  const { roomId } = c;
  ok(await api(s, carol, 'PUT', `/user/${enc(carol.user_id)}/account_data/m.ignored_user_list`, { ignored_users: { [alice.user_id]: {} } }));
  const before = counts(await sync(s, carol), roomId);
  const bobBefore = counts(await sync(s, bob), roomId);
  await send(s, alice, roomId, mention(carol, 'ignored'));
  assert.equal(counts(await sync(s, carol), roomId), before, 'carol ignores alice: nothing unread, no highlight');
  assert.is(counts(await sync(s, bob), roomId).notification_count, bobBefore.notification_count + 1, 'bob does not: it counts');
  ok(await api(s, carol, 'PUT', `/user/${enc(carol.user_id)}/account_data/m.ignored_user_list`, { ignored_users: {} }));
  await send(s, alice, roomId, 'heard again');
  assert.is(counts(await sync(s, carol), roomId).notification_count, before.notification_count + 1, 'no longer ignored: it counts');
});

t('a room mention highlights only from a sender with notifications.room power', async ({ s, alice, bob, carol }) => {
  const { roomId } = c;
  const roomMention = { msgtype: 'm.text', body: '@room look', 'm.mentions': { room: true } };
  const base = await sync(s, bob);
  const before = counts(base, roomId);
  await send(s, carol, roomId, roomMention); // carol: power 0 < 50
  assert.equal(counts(await sync(s, bob), roomId), { notification_count: before.notification_count + 1, highlight_count: before.highlight_count });
  await send(s, alice, roomId, roomMention); // alice created the room: 100
  assert.equal(counts(await sync(s, bob), roomId), { notification_count: before.notification_count + 2, highlight_count: before.highlight_count + 1 });
});

t('a push rule change applies to the next event', async ({ s, alice, bob }) => {
  const { roomId } = c;
  const path = '/pushrules/global/underride/.m.rule.message/enabled';
  const n0 = counts(await sync(s, bob), roomId).notification_count;
  ok(await api(s, bob, 'PUT', path, { enabled: false }));
  await send(s, alice, roomId, 'unheard');
  assert.is(counts(await sync(s, bob), roomId).notification_count, n0, 'disabled: no notification');
  ok(await api(s, bob, 'PUT', path, { enabled: true }));
  await send(s, alice, roomId, 'heard');
  assert.is(counts(await sync(s, bob), roomId).notification_count, n0 + 1, 'enabled again');
  ok(await api(s, bob, 'PUT', `/pushrules/global/room/${enc(roomId)}`, { actions: [] }));
  await send(s, alice, roomId, 'room muted');
  assert.is(counts(await sync(s, bob), roomId).notification_count, n0 + 1, 'a room rule with no actions mutes');
  ok(await api(s, bob, 'DELETE', `/pushrules/global/room/${enc(roomId)}`));
});

t('threads: per-thread counts with unread_thread_notifications; a threaded receipt clears its thread', async ({ s, alice, bob }) => {
  const roomId = await createRoom(s, alice, { preset: 'public_chat' });
  await join(s, bob, roomId);
  const root = await send(s, alice, roomId, 'root');
  const r1 = await send(s, alice, roomId, { msgtype: 'm.text', body: 'in thread', 'm.relates_to': { rel_type: 'm.thread', event_id: root } });
  await send(s, alice, roomId, { msgtype: 'm.text', body: 'in thread 2', 'm.relates_to': { rel_type: 'm.thread', event_id: root } });
  const plain = await sync(s, bob);
  assert.equal(counts(plain, roomId), { notification_count: 3, highlight_count: 0 }, 'without the flag: every thread summed');
  assert.is(plain.rooms.join[roomId].unread_thread_notifications, undefined);
  const threaded = await sync(s, bob, { filter: THREADED });
  assert.equal(counts(threaded, roomId), { notification_count: 1, highlight_count: 0 }, 'main timeline only');
  assert.equal(threaded.rooms.join[roomId].unread_thread_notifications, { [root]: { notification_count: 2, highlight_count: 0 } });
  ok(await receipt(s, bob, roomId, 'm.read', r1, { thread_id: root }));
  const after = await sync(s, bob, { filter: THREADED, since: threaded.next_batch });
  assert.equal(after.rooms.join[roomId].unread_thread_notifications, { [root]: { notification_count: 1, highlight_count: 0 } }, 'thread receipt: one left');
  assert.equal(counts(after, roomId), { notification_count: 1, highlight_count: 0 }, 'main untouched');
  ok(await receipt(s, bob, roomId, 'm.read', root, { thread_id: 'main' }));
  const after2 = await sync(s, bob, { filter: THREADED });
  assert.equal(counts(after2, roomId), { notification_count: 0, highlight_count: 0 }, 'main receipt clears main');
  assert.equal(after2.rooms.join[roomId].unread_thread_notifications, { [root]: { notification_count: 1, highlight_count: 0 } }, 'but not the thread');
});

t('an invite notifies the invitee; GET /notifications pages newest first with read flags and only=highlight', async ({ s, alice, dave }) => {
  const roomId = await createRoom(s, alice, { preset: 'private_chat' });
  await invite(s, alice, roomId, dave.user_id);
  let list = ok(await api(s, dave, 'GET', '/notifications'));
  assert.is(list.notifications.length, 1);
  assert.is(list.notifications[0].event.type, 'm.room.member', 'invite_for_me');
  assert.is(list.notifications[0].room_id, roomId);
  await join(s, dave, roomId);
  const ids: string[] = [];
  for (let i = 0; i < 4; i++) ids.push(await send(s, alice, roomId, `n${i}`));
  const mentionId = await send(s, alice, roomId, mention(dave));
  ok(await receipt(s, dave, roomId, 'm.read', ids[1]!));

  const page1 = ok(await api(s, dave, 'GET', '/notifications?limit=3'));
  assert.equal(page1.notifications.map((n: any) => n.event.event_id), [mentionId, ids[3], ids[2]], 'newest first');
  assert.equal(page1.notifications.map((n: any) => n.read), [false, false, false]);
  const n0 = page1.notifications[0];
  assert.type(n0.ts, 'number');
  assert.equal(n0.actions, ['notify', { set_tweak: 'sound', value: 'default' }, { set_tweak: 'highlight' }]);
  assert.is(n0.event.room_id, undefined, 'the event has no room_id (it is beside it)');
  assert.type(page1.next_token, 'string');
  const page2 = ok(await api(s, dave, 'GET', `/notifications?limit=3&from=${page1.next_token}`));
  assert.equal(page2.notifications.map((n: any) => [n.event.event_id, n.read]), [[ids[1], true], [ids[0], true], [list.notifications[0].event.event_id, true]]);
  const page3 = ok(await api(s, dave, 'GET', `/notifications?limit=3&from=${page2.next_token}`));
  assert.equal(page3.notifications, []);
  assert.is(page3.next_token, undefined, 'the end: no next_token');
  list = ok(await api(s, dave, 'GET', '/notifications?only=highlight'));
  assert.equal(list.notifications.map((n: any) => n.event.event_id), [mentionId]);
  assertError(await api(s, dave, 'GET', '/notifications?from=abc'), 400, 'M_INVALID_PARAM');
  assertError(await api(s, null, 'GET', '/notifications'), 401, 'M_MISSING_TOKEN');
});

const pusher = (o: Record<string, unknown> = {}) => ({
  kind: 'http',
  app_id: 'org.hearth.test',
  pushkey: 'key-1',
  app_display_name: 'Hearth Test',
  device_display_name: 'Phone',
  lang: 'en',
  data: { url: 'https://push.example.org/_matrix/push/v1/notify', format: 'event_id_only' },
  ...o,
});

t('pushers: validation with the spec errors', async ({ s, carol }) => {
  const set = (body: unknown) => api(s, carol, 'POST', '/pushers/set', body);
  const bad: [string, unknown, number, string][] = [
    ['no kind', { app_id: 'a', pushkey: 'k' }, 400, 'M_MISSING_PARAM'],
    ['no app_id', { kind: 'http', pushkey: 'k' }, 400, 'M_MISSING_PARAM'],
    ['no lang/data', pusher({ lang: undefined, data: undefined }), 400, 'M_MISSING_PARAM'],
    ['no url', pusher({ data: { format: 'event_id_only' } }), 400, 'M_MISSING_PARAM'],
    ['not a URL', pusher({ data: { url: 'nope' } }), 400, 'M_INVALID_PARAM'],
    ['wrong scheme', pusher({ data: { url: 'ftp://push.example.org/_matrix/push/v1/notify' } }), 400, 'M_INVALID_PARAM'],
    ['wrong path', pusher({ data: { url: 'https://push.example.org/notify' } }), 400, 'M_INVALID_PARAM'],
    ['pushkey over 512 bytes', pusher({ pushkey: 'é'.repeat(257) }), 400, 'M_INVALID_PARAM'],
    ['app_id over 64 chars', pusher({ app_id: 'a'.repeat(65) }), 400, 'M_INVALID_PARAM'],
    ['unknown kind', pusher({ kind: 'carrier-pigeon' }), 400, 'M_INVALID_PARAM'],
    ['email pushers unsupported', pusher({ kind: 'email', app_id: 'm.email', pushkey: 'c@example.org' }), 400, 'M_INVALID_PARAM'],
    ['data not an object', pusher({ data: 'x' }), 400, 'M_BAD_JSON'],
    ['append not a boolean', pusher({ append: 'yes' }), 400, 'M_BAD_JSON'],
    ['format not a string', pusher({ data: { url: 'https://p.example/_matrix/push/v1/notify', format: 1 } }), 400, 'M_INVALID_PARAM'],
  ];
  for (const [what, body, status, errcode] of bad) assertError(await set(body), status, errcode, what);
  assert.equal(ok(await api(s, carol, 'GET', '/pushers')).pushers, [], 'nothing stored');
  assertError(await api(s, null, 'GET', '/pushers'), 401, 'M_MISSING_TOKEN');
});

t('pushers: set, list, update, append, delete; gone when the device logs out', async ({ s, carol, dave }) => {
  ok(await api(s, carol, 'POST', '/pushers/set', pusher({ profile_tag: 'tag' })));
  let list = ok(await api(s, carol, 'GET', '/pushers')).pushers;
  assert.equal(list, [
    {
      pushkey: 'key-1',
      kind: 'http',
      app_id: 'org.hearth.test',
      app_display_name: 'Hearth Test',
      device_display_name: 'Phone',
      lang: 'en',
      profile_tag: 'tag',
      data: { url: 'https://push.example.org/_matrix/push/v1/notify', format: 'event_id_only' },
    },
  ]);
  ok(await api(s, carol, 'POST', '/pushers/set', pusher({ device_display_name: 'Renamed' })));
  list = ok(await api(s, carol, 'GET', '/pushers')).pushers;
  assert.equal(list.map((p: any) => p.device_display_name), ['Renamed'], 'same app_id + pushkey: updated in place');
  // Another user takes the same pushkey: with append false carol's goes, with append true both stay.
  ok(await api(s, dave, 'POST', '/pushers/set', pusher({ append: true })));
  assert.is(ok(await api(s, carol, 'GET', '/pushers')).pushers.length, 1, 'append: carol keeps hers');
  ok(await api(s, dave, 'POST', '/pushers/set', pusher()));
  assert.equal(ok(await api(s, carol, 'GET', '/pushers')).pushers, [], 'no append: others\' pusher with this app_id and pushkey removed');
  ok(await api(s, dave, 'POST', '/pushers/set', { kind: null, app_id: 'org.hearth.test', pushkey: 'key-1' }));
  assert.equal(ok(await api(s, dave, 'GET', '/pushers')).pushers, [], 'kind null deletes');
  ok(await api(s, dave, 'POST', '/pushers/set', { kind: null, app_id: 'org.hearth.test', pushkey: 'key-1' }), 'deleting a missing pusher is fine');

  // A second session of carol's sets a pusher; logging that session out removes it.
  const second = ok(await login(s, 'carol', 'correct horse battery'));
  const other = { user_id: second.user_id, access_token: second.access_token, device_id: second.device_id };
  ok(await api(s, other, 'POST', '/pushers/set', pusher({ pushkey: 'key-2' })));
  ok(await api(s, carol, 'POST', '/pushers/set', pusher({ pushkey: 'key-3' })));
  assert.is(ok(await api(s, carol, 'GET', '/pushers')).pushers.length, 2);
  ok(await api(s, other, 'POST', '/logout', {}));
  assert.equal(ok(await api(s, carol, 'GET', '/pushers')).pushers.map((p: any) => p.pushkey), ['key-3'], 'the logged-out device\'s pusher went with it');
});

t.run();
