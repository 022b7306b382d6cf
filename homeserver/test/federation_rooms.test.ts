import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { registerUser } from './support/harness.js';
import { currentStateMap, eventRow, eventually, startFederationCluster, type FederationCluster, type FederationTestServer, asTestServer as ts } from './support/federation.js';
import { beforeAll } from './support/hooks.js';
import { api, assertError, bodies, enc, ok, send, putState, type User } from './support/rooms.js';


/**
 * Rooms between real servers: invite over federation, send_join, /sync on the joining server,
 * backfill, a third server joining through the second, a rejected remote invite, knocks, ACLs,
 * remote alias/profile/publicRooms look-ups, and messages both ways through the sender.
 */
type Ctx = { cluster: FederationCluster; a: FederationTestServer; b: FederationTestServer; c: FederationTestServer; alice: User; bob: User; carol: User; dave: User; roomId: string };
const t = suite<Ctx>('federation: rooms between servers');


beforeAll(t, async (ctx) => {
  ctx.cluster = await startFederationCluster(['hs-a', 'hs-b', 'hs-c']);
  [ctx.a, ctx.b, ctx.c] = ['hs-a', 'hs-b', 'hs-c'].map((l) => ctx.cluster.get(l)) as [FederationTestServer, FederationTestServer, FederationTestServer];
  ctx.alice = await registerUser(ts(ctx.a), 'alice');
  ctx.bob = await registerUser(ts(ctx.b), 'bob');
  ctx.dave = await registerUser(ts(ctx.b), 'dave');
  ctx.carol = await registerUser(ts(ctx.c), 'carol');
  ok(await api(ts(ctx.b), ctx.bob, 'PUT', `/profile/${enc(ctx.bob.user_id)}/displayname`, { displayname: 'Bob of B' }));
});
t.after(async (ctx) => {
  await ctx.cluster?.close();
});

t('alice on A invites bob on B: the invite is signed by B and shows in bob\'s /sync with stripped state', async (ctx) => {
  const { a, b, alice, bob } = ctx;
  ctx.roomId = ok(await api(ts(a), alice, 'POST', '/createRoom', { name: 'Across', preset: 'private_chat', room_alias_name: 'across' })).room_id;
  for (let i = 1; i <= 5; i++) await send(ts(a), alice, ctx.roomId, `before join ${i}`);
  ok(await api(ts(a), alice, 'POST', `/rooms/${enc(ctx.roomId)}/invite`, { user_id: bob.user_id }), 'invite');
  // A keeps the invite signed by both servers.
  const inviteId = (await currentStateMap(a, ctx.roomId)).get(`m.room.member|${bob.user_id}`)!;
  const row = await eventRow(a, inviteId);
  assert.ok(row.json.signatures[b.serverName], 'B signed the invite');
  assert.ok(row.json.signatures[a.serverName], 'A signed the invite');
  const sync = ok(await api(ts(b), bob, 'GET', '/sync?timeout=0'));
  const inv = sync.rooms.invite[ctx.roomId];
  assert.ok(inv, 'the invite is in bob\'s sync');
  const member = inv.invite_state.events.find((e: any) => e.type === 'm.room.member' && e.state_key === bob.user_id);
  assert.is(member.content.membership, 'invite');
  assert.is(member.sender, alice.user_id);
  // The room's stripped state comes from A's invite: bob sees its name before joining.
  const name = inv.invite_state.events.find((e: any) => e.type === 'm.room.name');
  assert.is(name?.content.name, 'Across', 'the room name from the inviting server');
  assert.is(inv.invite_state.events.filter((e: any) => e.type === 'm.room.member' && e.state_key === bob.user_id).length, 1, 'one invite member event');
});

t('bob joins through A (make_join/send_join): B gets the state, /sync shows the room, A sees the join', async (ctx) => {
  const { a, b, bob, roomId } = ctx;
  const joined = ok(await api(ts(b), bob, 'POST', `/join/${enc(roomId)}?server_name=${enc(a.serverName)}`, {}), 'join');
  assert.is(joined.room_id, roomId);
  const sync = ok(await api(ts(b), bob, 'GET', '/sync?timeout=0'));
  const room = sync.rooms.join[roomId];
  assert.ok(room, 'the room is joined in bob\'s sync');
  const types = new Set([...room.state.events, ...room.timeline.events].map((e: any) => e.type));
  for (const t of ['m.room.create', 'm.room.power_levels', 'm.room.join_rules', 'm.room.name']) assert.ok(types.has(t), `state has ${t}`);
  const nameEv = [...room.state.events, ...room.timeline.events].find((e: any) => e.type === 'm.room.name');
  assert.is(nameEv.content.name, 'Across');
  assert.is((await currentStateMap(a, roomId)).get(`m.room.member|${bob.user_id}`), (await currentStateMap(b, roomId)).get(`m.room.member|${bob.user_id}`));
  const onA = await eventRow(a, (await currentStateMap(a, roomId)).get(`m.room.member|${bob.user_id}`)!);
  assert.is(onA.json.content.membership, 'join');
  assert.is(onA.json.content.displayname, 'Bob of B');
  // Both servers hold the same current state.
  assert.equal([...(await currentStateMap(b, roomId))].sort(), [...(await currentStateMap(a, roomId))].sort());
});

t('bob pages back on B: history from before the join is backfilled from A', async (ctx) => {
  const { b, bob, roomId } = ctx;
  const page = ok(await api(ts(b), bob, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=50`));
  const got = bodies(page.chunk);
  for (let i = 1; i <= 5; i++) assert.ok(got.includes(`before join ${i}`), `backfilled "before join ${i}" (got ${JSON.stringify(got)})`);
  // Newest first, and the create event is reached.
  assert.equal(got.filter((x) => x.startsWith('before join')), ['before join 5', 'before join 4', 'before join 3', 'before join 2', 'before join 1']);
  // Backfilled events never come to a sync as new.
  const sync = ok(await api(ts(b), bob, 'GET', '/sync?timeout=0'));
  const next = ok(await api(ts(b), bob, 'GET', `/sync?timeout=0&since=${enc(sync.next_batch)}`));
  assert.not.ok(next.rooms.join[roomId], 'no new events after backfill');
  // Paging on with the returned token ends (no more history).
  if (page.end) {
    const more = ok(await api(ts(b), bob, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=50&from=${enc(page.end)}`));
    assert.is(bodies(more.chunk).length, 0);
  }
});

t('messages, edits, reactions and redactions flow both ways (through the sender)', async (ctx) => {
  const { a, b, alice, bob, roomId } = ctx;
  const hello = await send(ts(a), alice, roomId, 'hello from A');
  await eventually(async () => bodies(ok(await api(ts(b), bob, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=5`)).chunk).includes('hello from A'), 'A → B message');
  const reply = await send(ts(b), bob, roomId, 'hello from B');
  await eventually(async () => bodies(ok(await api(ts(a), alice, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=5`)).chunk).includes('hello from B'), 'B → A message');
  await send(ts(b), bob, roomId, { 'm.relates_to': { rel_type: 'm.annotation', event_id: hello, key: '👍' } }, 'm.reaction');
  await send(ts(a), alice, roomId, { msgtype: 'm.text', body: '* edited', 'm.new_content': { msgtype: 'm.text', body: 'edited' }, 'm.relates_to': { rel_type: 'm.replace', event_id: hello } });
  await eventually(async () => {
    const rel = ok(await ts(b).request('GET', `/_matrix/client/v1/rooms/${enc(roomId)}/relations/${enc(hello)}`, { token: bob.access_token }));
    return rel.chunk.some((e: any) => e.type === 'm.reaction') && rel.chunk.some((e: any) => e.content?.['m.new_content']?.body === 'edited');
  }, 'reaction and edit on B');
  await eventually(async () => {
    const rel = ok(await ts(a).request('GET', `/_matrix/client/v1/rooms/${enc(roomId)}/relations/${enc(hello)}`, { token: alice.access_token }));
    return rel.chunk.some((e: any) => e.type === 'm.reaction' && e.sender === bob.user_id);
  }, 'reaction on A');
  ok(await api(ts(b), bob, 'PUT', `/rooms/${enc(roomId)}/redact/${enc(reply)}/r${Date.now()}`, {}));
  await eventually(async () => {
    const ev = await api(ts(a), alice, 'GET', `/rooms/${enc(roomId)}/event/${enc(reply)}`);
    return ev.status === 200 && ev.body.content.body === undefined;
  }, 'redaction applied on A');
});

t('a remote user\'s messages notify local users: unread counts and a mention highlight on B', async (ctx) => {
  const { a, b, alice, bob, roomId } = ctx;
  const counts = async () => ok(await api(ts(b), bob, 'GET', '/sync')).rooms.join[roomId]?.unread_notifications;
  const before = await counts();
  const mentionId = await send(ts(a), alice, roomId, { msgtype: 'm.text', body: `ping ${bob.user_id}`, 'm.mentions': { user_ids: [bob.user_id] } });
  await eventually(async () => (await api(ts(b), bob, 'GET', `/rooms/${enc(roomId)}/event/${enc(mentionId)}`)).status === 200, 'the mention reaches B');
  const after = await counts();
  assert.is(after.notification_count, before.notification_count + 1, 'push rules ran for the remote event');
  assert.is(after.highlight_count, before.highlight_count + 1, 'the mention highlights');
});

t('carol on C joins through B (B is resident now); A learns of it', async (ctx) => {
  const { a, b, c, alice, carol, roomId } = ctx;
  await putState(ts(a), alice, roomId, 'm.room.join_rules', '', { join_rule: 'public' });
  await eventually(async () => (await currentStateMap(b, roomId)).get('m.room.join_rules|') === (await currentStateMap(a, roomId)).get('m.room.join_rules|'), 'join rules reach B');
  ok(await api(ts(c), carol, 'POST', `/rooms/${enc(roomId)}/join?via=${enc(b.serverName)}`, {}), 'carol joins via B');
  assert.ok(b.federationRequests.some((r) => r.url.includes('/send_join/') && r.origin === c.serverName), 'send_join went to B');
  assert.ok((await currentStateMap(c, roomId)).get(`m.room.member|${carol.user_id}`));
  await eventually(async () => (await currentStateMap(a, roomId)).has(`m.room.member|${carol.user_id}`), 'A sees carol (forwarded by B)');
});

t('a remote invite rejected: make_leave/send_leave via the inviting server', async (ctx) => {
  const { a, b, alice, dave } = ctx;
  const roomId = ok(await api(ts(a), alice, 'POST', '/createRoom', { preset: 'private_chat' })).room_id;
  ok(await api(ts(a), alice, 'POST', `/rooms/${enc(roomId)}/invite`, { user_id: dave.user_id }));
  const s1 = ok(await api(ts(b), dave, 'GET', '/sync?timeout=0'));
  assert.ok(s1.rooms.invite[roomId]);
  ok(await api(ts(b), dave, 'POST', `/rooms/${enc(roomId)}/leave`, {}), 'reject');
  const leaveId = (await currentStateMap(a, roomId)).get(`m.room.member|${dave.user_id}`)!;
  assert.is((await eventRow(a, leaveId)).json.content.membership, 'leave', 'A holds the rejection');
  const s2 = ok(await api(ts(b), dave, 'GET', `/sync?timeout=0&since=${enc(s1.next_batch)}`));
  assert.ok(s2.rooms.leave[roomId], 'the room is left in dave\'s sync');
});

t('knocking on a remote room (make_knock/send_knock)', async (ctx) => {
  const { a, b, alice, dave } = ctx;
  const roomId = ok(await api(ts(a), alice, 'POST', '/createRoom', { preset: 'private_chat', room_version: '11', initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'knock' } }] })).room_id;
  ok(await api(ts(b), dave, 'POST', `/knock/${enc(roomId)}?via=${enc(a.serverName)}`, { reason: 'let me in' }), 'knock');
  const knockId = (await currentStateMap(a, roomId)).get(`m.room.member|${dave.user_id}`)!;
  const row = await eventRow(a, knockId);
  assert.is(row.json.content.membership, 'knock');
  const sync = ok(await api(ts(b), dave, 'GET', '/sync?timeout=0'));
  assert.ok(sync.rooms.knock[roomId], 'the knock is in dave\'s sync');
});

t('a remote alias resolves over federation, and joining by it works', async (ctx) => {
  const { a, b, bob } = ctx;
  const res = ok(await api(ts(b), bob, 'GET', `/directory/room/${enc(`#across:${a.serverName}`)}`));
  assert.is(res.room_id, ctx.roomId);
  assert.ok(res.servers.includes(a.serverName));
  assertError(await api(ts(b), bob, 'GET', `/directory/room/${enc(`#nope:${a.serverName}`)}`), 404, 'M_NOT_FOUND');
});

t('remote profiles and publicRooms over federation', async (ctx) => {
  const { a, b, alice, bob } = ctx;
  const p = ok(await api(ts(a), alice, 'GET', `/profile/${enc(bob.user_id)}`));
  assert.is(p.displayname, 'Bob of B');
  ok(await api(ts(a), alice, 'GET', `/profile/${enc(bob.user_id)}/displayname`));
  const pub = ok(await api(ts(a), alice, 'POST', '/createRoom', { preset: 'public_chat', visibility: 'public', name: 'Lobby' })).room_id;
  const list = ok(await api(ts(b), bob, 'GET', `/publicRooms?server=${enc(a.serverName)}`));
  assert.ok(list.chunk.some((r: any) => r.room_id === pub && r.name === 'Lobby'));
  const filtered = ok(await api(ts(b), bob, 'POST', `/publicRooms?server=${enc(a.serverName)}`, { filter: { generic_search_term: 'lobby' } }));
  assert.ok(filtered.chunk.some((r: any) => r.room_id === pub));
});

t('m.room.server_acl: a denied server cannot join nor read the room', async (ctx) => {
  const { a, c, alice, carol } = ctx;
  const roomId = ok(await api(ts(a), alice, 'POST', '/createRoom', { preset: 'public_chat' })).room_id;
  await putState(ts(a), alice, roomId, 'm.room.server_acl', '', { allow: ['*'], deny: ['hs-c.localhost'], allow_ip_literals: false });
  assertError(await api(ts(c), carol, 'POST', `/join/${enc(roomId)}?server_name=${enc(a.serverName)}`, {}), 403, 'M_FORBIDDEN');
  const fedC = c.hs.deps.services.federation.client;
  const err = await fedC.request({ destination: a.serverName, method: 'GET', path: `/_matrix/federation/v1/state_ids/${enc(roomId)}`, query: { event_id: '$x' } }).catch((e: any) => e);
  assert.is(err.status, 403);
});

t.run();
