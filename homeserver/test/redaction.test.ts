import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { startTestServer, registerUser, type TestServer } from './support/harness.js';
import { beforeAll } from './support/hooks.js';
import { api, assertError, createRoom, enc, join, ok, send, type User } from './support/rooms.js';

const t = suite<{ s: TestServer; alice: User; bob: User }>('rooms: redaction and sending');

beforeAll(t, async (ctx) => {
  ctx.s = await startTestServer();
  ctx.alice = await registerUser(ctx.s, 'alice');
  ctx.bob = await registerUser(ctx.s, 'bob');
});
t.after(async (ctx) => {
  await ctx.s?.close();
});

const redact = (s: TestServer, u: User, roomId: string, eventId: string, txnId: string, body: object = {}) =>
  api(s, u, 'PUT', `/rooms/${enc(roomId)}/redact/${enc(eventId)}/${enc(txnId)}`, body);
const getEvent = async (s: TestServer, u: User, roomId: string, eventId: string) => ok(await api(s, u, 'GET', `/rooms/${enc(roomId)}/event/${enc(eventId)}`));
const sendRaw = (s: TestServer, u: User, roomId: string, type: string, txnId: string, rawBody: string) =>
  s.request('PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/${enc(type)}/${enc(txnId)}`, {
    token: u.access_token,
    rawBody,
    headers: { 'content-type': 'application/json' },
  });

t('redacted events are served stripped per room version, with redacted_because; v10 and v11 redaction shapes', async ({ s, alice, bob }) => {
  for (const version of ['10', '11']) {
    const roomId = await createRoom(s, alice, { preset: 'public_chat', room_version: version });
    await join(s, bob, roomId);
    const msg = await send(s, alice, roomId, { msgtype: 'm.text', body: 'oops', format: 'x' });
    const redaction = ok(await redact(s, alice, roomId, msg, `r-${version}`, { reason: 'typo' })).event_id;

    const redacted = await getEvent(s, bob, roomId, msg);
    assert.equal(redacted.content, {}, `v${version}: message content is gone`);
    assert.equal([redacted.type, redacted.sender, redacted.event_id], ['m.room.message', alice.user_id, msg]);
    const because = redacted.unsigned.redacted_because;
    assert.equal([because.event_id, because.type, because.sender, because.content.reason], [redaction, 'm.room.redaction', alice.user_id, 'typo']);
    const page = ok(await api(s, bob, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=5`)).chunk as any[];
    assert.equal(page.find((e) => e.event_id === msg).content, {}, '/messages serves it redacted too');

    const ev = await getEvent(s, bob, roomId, redaction);
    assert.is(ev.redacts, msg, 'clients see `redacts` at the top level');
    if (version === '10') assert.equal(ev.content, { reason: 'typo' }, 'v10: redacts stays out of content');
    else assert.equal(ev.content, { reason: 'typo', redacts: msg }, 'v11: redacts moved into content');

    // State: the version's algorithm decides what survives (v11 also keeps power levels' `invite`).
    const plId = (ok(await api(s, alice, 'GET', `/rooms/${enc(roomId)}/state/m.room.power_levels?format=event`)) as any).event_id;
    ok(await redact(s, alice, roomId, plId, `rpl-${version}`));
    const pl = ok(await api(s, alice, 'GET', `/rooms/${enc(roomId)}/state/m.room.power_levels`));
    assert.is(pl.ban, 50);
    assert.is(pl.notifications, undefined, `v${version}: notifications is not protected`);
    assert.is(pl.invite, version === '11' ? 0 : undefined, `v${version}: invite`);
  }
});

t('own events need only the send level; others need the redact level; twice is fine; idempotent by txn', async ({ s, alice, bob }) => {
  const roomId = await createRoom(s, alice, { preset: 'public_chat' });
  await join(s, bob, roomId);
  const alices = await send(s, alice, roomId, 'alice says');
  const bobs = await send(s, bob, roomId, 'bob says');

  assertError(await redact(s, bob, roomId, alices, 'b1'), 403, 'M_FORBIDDEN', 'below the redact level');
  assert.is((await getEvent(s, bob, roomId, alices)).content.body, 'alice says');
  ok(await redact(s, bob, roomId, bobs, 'b2'), 'own event');
  const first = ok(await redact(s, alice, roomId, alices, 'a1')).event_id;
  assert.is(ok(await redact(s, alice, roomId, alices, 'a1')).event_id, first, 'same txn id: same redaction');
  const second = ok(await redact(s, alice, roomId, alices, 'a2')).event_id;
  assert.is.not(second, first, 'redacting again is a new redaction');
  const ev = await getEvent(s, alice, roomId, alices);
  assert.equal([ev.content, ev.unsigned.redacted_because.event_id], [{}, first]);

  assertError(await redact(s, alice, roomId, '$unknown', 'a3'), 404, 'M_NOT_FOUND');
  const other = await createRoom(s, alice);
  assertError(await redact(s, alice, other, bobs, 'a4'), 404, 'M_NOT_FOUND', 'event of another room');
});

t('PUT /send m.room.redaction is a real redaction, in both room versions', async ({ s, alice, bob }) => {
  for (const version of ['10', '11']) {
    const roomId = await createRoom(s, alice, { preset: 'public_chat', room_version: version });
    await join(s, bob, roomId);
    const target = await send(s, alice, roomId, 'to go');
    const viaSend = (u: User, txn: string, body: object) => api(s, u, 'PUT', `/rooms/${enc(roomId)}/send/m.room.redaction/${txn}`, body);
    assertError(await viaSend(bob, 'x', { redacts: target }), 403, 'M_FORBIDDEN', 'still needs the redact level');
    assertError(await viaSend(alice, 'y', { reason: 'no target' }), 400, 'M_BAD_JSON');
    const id = ok(await viaSend(alice, 'z', { redacts: target, reason: 'bye' })).event_id;
    assert.is(ok(await viaSend(alice, 'z', { redacts: target, reason: 'bye' })).event_id, id, 'idempotent');
    const ev = await getEvent(s, bob, roomId, target);
    assert.equal([ev.content, ev.unsigned.redacted_because.event_id], [{}, id], `v${version}`);
    assert.is((await getEvent(s, bob, roomId, id)).redacts, target);
  }
});

t('transaction ids: retries return the first event; another room, type or endpoint is a new request', async ({ s, alice }) => {
  const a = await createRoom(s, alice);
  const b = await createRoom(s, alice);
  const sendTo = (roomId: string, type: string, body: string) => api(s, alice, 'PUT', `/rooms/${enc(roomId)}/send/${type}/same`, { msgtype: 'm.text', body });
  const first = ok(await sendTo(a, 'm.room.message', 'one')).event_id;
  assert.is(ok(await sendTo(a, 'm.room.message', 'one again')).event_id, first);
  const inB = ok(await sendTo(b, 'm.room.message', 'two')).event_id;
  const otherType = ok(await sendTo(a, 'org.example.note', 'three')).event_id;
  assert.is(new Set([first, inB, otherType]).size, 3);
  assert.is((await getEvent(s, alice, b, inB)).content.body, 'two');
  const red = ok(await redact(s, alice, a, first, 'same')).event_id;
  assert.is.not(red, first, 'the redact endpoint has its own transaction ids');
  // The sending device sees its own transaction id, as the client chose it.
  assert.is((await getEvent(s, alice, b, inB)).unsigned.transaction_id, 'same');
});

t('power: m.room.power_levels and state need their levels', async ({ s, alice, bob }) => {
  const roomId = await createRoom(s, alice, { preset: 'public_chat' });
  await join(s, bob, roomId);
  const pl = ok(await api(s, alice, 'GET', `/rooms/${enc(roomId)}/state/m.room.power_levels`));
  const raised = { ...pl, users: { ...pl.users, [bob.user_id]: 100 } };
  assertError(await api(s, bob, 'PUT', `/rooms/${enc(roomId)}/state/m.room.power_levels`, raised), 403, 'M_FORBIDDEN', 'state');
  assertError(await api(s, bob, 'PUT', `/rooms/${enc(roomId)}/send/m.room.power_levels/p1`, raised), 403, 'M_FORBIDDEN', 'as a message event');
  assertError(await api(s, bob, 'PUT', `/rooms/${enc(roomId)}/state/m.room.name`, { name: 'mine' }), 403, 'M_FORBIDDEN', 'name');
  assertError(await api(s, bob, 'PUT', `/rooms/${enc(roomId)}/state/org.example/${enc(bob.user_id)}`, {}), 403, 'M_FORBIDDEN', 'below state_default');

  // With state_default 0, state keyed by a user ID is still only that user's.
  const open = await createRoom(s, alice, { preset: 'public_chat', power_level_content_override: { state_default: 0 } });
  await join(s, bob, open);
  ok(await api(s, bob, 'PUT', `/rooms/${enc(open)}/state/org.example/${enc(bob.user_id)}`, { mine: true }));
  assertError(await api(s, bob, 'PUT', `/rooms/${enc(open)}/state/org.example/${enc(alice.user_id)}`, {}), 403, 'M_FORBIDDEN', "another user's key");
});

t('bad input: not JSON, too large, long types and keys, floats, redaction as state', async ({ s, alice }) => {
  const roomId = await createRoom(s, alice, { preset: 'private_chat' });
  assertError(await sendRaw(s, alice, roomId, 'm.room.message', 'n1', 'not json'), 400, 'M_NOT_JSON');
  assertError(await sendRaw(s, alice, roomId, 'm.room.message', 'n2', '[1, 2]'), 400, 'M_NOT_JSON');
  assertError(await sendRaw(s, alice, roomId, 'm.room.message', 'n3', '{"n": 1.5}'), 400, 'M_BAD_JSON');
  assertError(await sendRaw(s, alice, roomId, 'm.room.message', 'n4', '{"a": 1, "a": 2}'), 400, 'M_BAD_JSON');
  assertError(await sendRaw(s, alice, roomId, 'm.room.message', 'n5', '{"n": 9007199254740992}'), 400, 'M_BAD_JSON');

  const big = (n: number) => ({ msgtype: 'm.text', body: 'x'.repeat(n) });
  assertError(await api(s, alice, 'PUT', `/rooms/${enc(roomId)}/send/m.room.message/big`, big(65_536)), 413, 'M_TOO_LARGE');
  ok(await api(s, alice, 'PUT', `/rooms/${enc(roomId)}/send/m.room.message/fits`, big(60_000)));

  assertError(await api(s, alice, 'PUT', `/rooms/${enc(roomId)}/send/${'t'.repeat(256)}/long`, {}), 400, 'M_INVALID_PARAM');
  ok(await api(s, alice, 'PUT', `/rooms/${enc(roomId)}/send/${'t'.repeat(255)}/exact`, {}), '255 bytes is fine');
  assertError(await api(s, alice, 'PUT', `/rooms/${enc(roomId)}/send/${enc('é'.repeat(128))}/utf8`, {}), 400, 'M_INVALID_PARAM', '256 bytes of UTF-8');
  assertError(await api(s, alice, 'PUT', `/rooms/${enc(roomId)}/state/${'t'.repeat(256)}`, {}), 400, 'M_INVALID_PARAM');
  assertError(await api(s, alice, 'PUT', `/rooms/${enc(roomId)}/state/org.example/${'k'.repeat(256)}`, {}), 400, 'M_INVALID_PARAM');
  assertError(await api(s, alice, 'PUT', `/rooms/${enc(roomId)}/send/m.room.message/${'t'.repeat(1025)}`, {}), 400, 'M_INVALID_PARAM');
  assertError(await api(s, alice, 'PUT', `/rooms/${enc(roomId)}/state/m.room.redaction`, { redacts: '$x' }), 400, 'M_BAD_JSON');
  const nul = ok(await api(s, alice, 'PUT', `/rooms/${enc(roomId)}/send/m.room.message/nul`, { body: 'a\u0000b' })).event_id;
  assert.is((await getEvent(s, alice, roomId, nul)).content.body, 'a\u0000b', 'NUL is fine inside content (stored escaped)');
  assertError(await api(s, alice, 'PUT', `/rooms/${enc('!nope:hearth.test')}/send/m.room.message/t`, {}), 404, 'M_NOT_FOUND');
});

t.run();
