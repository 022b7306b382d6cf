// GET /_matrix/client/v1/rooms/{roomId}/hierarchy (spec: spaces; space_hierarchy.yaml): the
// depth-first walk in the spec's child order, which rooms a user may see, children_state,
// suggested_only, max_depth, limit and `from` pagination, loops, and 403 for a hidden space.
import * as assert from 'uvu/assert';
import { startTestServer, registerUser } from './support/harness.js';
import { assertError, createRoom, enc, invite, ok, putState, suiteWithUsers } from './support/rooms.js';

const t = suiteWithUsers('space hierarchy', ['alice', 'bob']);

const hierarchy = (ctx: any, u: any, roomId: string, query = '') =>
  ctx.s.request('GET', `/_matrix/client/v1/rooms/${enc(roomId)}/hierarchy${query}`, { token: u.access_token });
const ids = (body: any): string[] => body.rooms.map((r: any) => r.room_id);
const via = ['hearth.test'];

t('createRoom with creation_content.type m.space makes a space', async (ctx) => {
  const space = await createRoom(ctx.s, ctx.alice, { creation_content: { type: 'm.space' } });
  const body = ok(await hierarchy(ctx, ctx.alice, space));
  assert.is(body.rooms[0].room_type, 'm.space');
  assert.equal(body.rooms[0].children_state, []);
});

t('the walk: depth first, ordered children, visibility, children_state, counts', async (ctx) => {
  const { s, alice, bob } = ctx;
  const space = await createRoom(s, alice, { preset: 'public_chat', name: 'Top', topic: 'The top', creation_content: { type: 'm.space' } });
  const sub = await createRoom(s, alice, { preset: 'public_chat', name: 'Sub', creation_content: { type: 'm.space' } });
  const a = await createRoom(s, alice, { preset: 'public_chat', name: 'A', room_alias_name: 'hier-a' });
  const b = await createRoom(s, alice, { preset: 'public_chat', name: 'B' });
  const subChild = await createRoom(s, alice, { preset: 'public_chat', name: 'Sub child' });
  const secret = await createRoom(s, alice, { preset: 'private_chat', name: 'Secret' });
  const invited = await createRoom(s, alice, { preset: 'private_chat', name: 'Invited' });
  const readable = await createRoom(s, alice, { preset: 'private_chat', name: 'Readable' });
  await putState(s, alice, readable, 'm.room.history_visibility', '', { history_visibility: 'world_readable' });
  const knock = await createRoom(s, alice, { preset: 'private_chat', name: 'Knock' });
  await putState(s, alice, knock, 'm.room.join_rules', '', { join_rule: 'knock' });
  const restricted = await createRoom(s, alice, { preset: 'private_chat', name: 'Restricted to sub' });
  await putState(s, alice, restricted, 'm.room.join_rules', '', { join_rule: 'restricted', allow: [{ type: 'm.room_membership', room_id: sub }] });
  await invite(s, alice, invited, bob.user_id);

  // Order: ordered children first (by `order`), then by timestamp; `b` is given order '  ' before a's 'b'.
  await putState(s, alice, space, 'm.space.child', a, { via, order: 'b' });
  await putState(s, alice, space, 'm.space.child', b, { via, order: ' ' });
  await putState(s, alice, space, 'm.space.child', sub, { via, suggested: true });
  await putState(s, alice, space, 'm.space.child', secret, { via });
  await putState(s, alice, space, 'm.space.child', invited, { via });
  await putState(s, alice, space, 'm.space.child', readable, { via });
  await putState(s, alice, space, 'm.space.child', knock, { via });
  await putState(s, alice, space, 'm.space.child', restricted, { via });
  await putState(s, alice, space, 'm.space.child', '!removed:hearth.test', {}); // no via: not a child
  await putState(s, alice, space, 'm.space.child', '!elsewhere:other.example', { via: ['other.example'] }); // unknown here: skipped
  await putState(s, alice, sub, 'm.space.child', subChild, { via });
  await putState(s, alice, sub, 'm.space.child', space, { via }); // a loop back to the top

  // alice (in every room): all of them, depth first (sub's child right after sub).
  const all = ok(await hierarchy(ctx, alice, space));
  assert.equal(ids(all), [space, b, a, sub, subChild, secret, invited, readable, knock, restricted]);
  assert.is(all.next_batch, undefined);
  const top = all.rooms[0];
  assert.is(top.name, 'Top');
  assert.is(top.topic, 'The top');
  assert.is(top.room_type, 'm.space');
  assert.is(top.num_joined_members, 1);
  assert.is(top.join_rule, 'public');
  assert.is(top.world_readable, false);
  assert.is(top.guest_can_join, false);
  assert.equal(
    top.children_state.map((c: any) => c.state_key),
    [b, a, sub, secret, invited, readable, knock, restricted, '!elsewhere:other.example'],
    'valid children in the spec order',
  );
  const childA = top.children_state.find((c: any) => c.state_key === a);
  assert.equal(Object.keys(childA).sort(), ['content', 'origin_server_ts', 'sender', 'state_key', 'type']);
  assert.is(childA.type, 'm.space.child');
  assert.is(childA.sender, alice.user_id);
  assert.equal(childA.content, { via, order: 'b' });
  const roomA = all.rooms.find((r: any) => r.room_id === a);
  assert.is(roomA.canonical_alias, '#hier-a:hearth.test');
  assert.equal(roomA.children_state, [], 'not a space: no children');
  assert.not.ok('room_type' in roomA);

  // bob (in nothing yet): public, invited, world-readable and knockable rooms; not the private one,
  // nor the restricted one until he joins the space it names.
  const seen = ok(await hierarchy(ctx, bob, space));
  assert.equal(ids(seen), [space, b, a, sub, subChild, invited, readable, knock]);
  ok(await s.request('POST', `/_matrix/client/v3/join/${enc(sub)}`, { token: bob.access_token, body: {} }));
  assert.ok(ids(ok(await hierarchy(ctx, bob, space))).includes(restricted), 'restricted: bob is in an allowed room');
  assert.equal(ids(ok(await hierarchy(ctx, bob, sub))), [sub, subChild, space, b, a, invited, readable, knock, restricted], 'the loop is broken, each room once');

  // suggested_only: only suggested children (and the root).
  const suggested = ok(await hierarchy(ctx, alice, space, '?suggested_only=true'));
  assert.equal(ids(suggested), [space, sub]);
  assert.equal(suggested.rooms[0].children_state.map((c: any) => c.state_key), [sub]);

  // max_depth: 0 is the root alone; 1 stops above sub's child.
  assert.equal(ids(ok(await hierarchy(ctx, alice, space, '?max_depth=0'))), [space]);
  assert.equal(ids(ok(await hierarchy(ctx, alice, space, '?max_depth=1'))), [space, b, a, sub, secret, invited, readable, knock, restricted]);

  // Pagination: pages of 3 cover the same walk, without repeats.
  const paged: string[] = [];
  let from: string | undefined;
  let pages = 0;
  do {
    const page = ok(await hierarchy(ctx, alice, space, `?limit=3${from ? `&from=${enc(from)}` : ''}`));
    assert.ok(page.rooms.length <= 3);
    paged.push(...ids(page));
    from = page.next_batch;
    pages++;
  } while (from && pages < 10);
  assert.equal(paged, ids(all));
  assert.is(pages, 4);
  const first = ok(await hierarchy(ctx, alice, space, '?limit=3'));
  assertError(await hierarchy(ctx, alice, space, `?limit=3&suggested_only=true&from=${enc(first.next_batch)}`), 400, 'M_INVALID_PARAM', 'suggested_only changed');
  assertError(await hierarchy(ctx, alice, space, `?limit=3&max_depth=1&from=${enc(first.next_batch)}`), 400, 'M_INVALID_PARAM', 'max_depth changed');
  assertError(await hierarchy(ctx, alice, space, '?from=garbage'), 400, 'M_INVALID_PARAM');
  assertError(await hierarchy(ctx, alice, space, '?limit=0'), 400, 'M_INVALID_PARAM');
  assertError(await hierarchy(ctx, alice, space, '?max_depth=-1'), 400, 'M_INVALID_PARAM');
  assertError(await hierarchy(ctx, alice, space, '?suggested_only=maybe'), 400, 'M_INVALID_PARAM');

  // A space bob cannot see is 403; so is an unknown room.
  assertError(await hierarchy(ctx, bob, secret), 403, 'M_FORBIDDEN');
  assertError(await hierarchy(ctx, bob, '!unknown:hearth.test'), 403, 'M_FORBIDDEN');
});

t('the walk is bounded by HEARTH_HIERARCHY_MAX_ROOMS and pages by HEARTH_HIERARCHY_MAX_PAGE', async () => {
  const s = await startTestServer({ HEARTH_HIERARCHY_MAX_ROOMS: '3', HEARTH_HIERARCHY_MAX_PAGE: '2' });
  try {
    const alice = await registerUser(s, 'alice');
    const space = ok(await s.request('POST', '/_matrix/client/v3/createRoom', { token: alice.access_token, body: { creation_content: { type: 'm.space' } } })).room_id;
    for (let i = 0; i < 4; i++) {
      const child = ok(await s.request('POST', '/_matrix/client/v3/createRoom', { token: alice.access_token, body: {} })).room_id;
      ok(await s.request('PUT', `/_matrix/client/v3/rooms/${enc(space)}/state/m.space.child/${enc(child)}`, { token: alice.access_token, body: { via } }));
    }
    const p1 = ok(await s.request('GET', `/_matrix/client/v1/rooms/${enc(space)}/hierarchy?limit=50`, { token: alice.access_token }));
    assert.is(p1.rooms.length, 2, 'page capped');
    const p2 = ok(await s.request('GET', `/_matrix/client/v1/rooms/${enc(space)}/hierarchy?from=${enc(p1.next_batch)}`, { token: alice.access_token }));
    assert.is(p2.rooms.length, 1, 'the walk stops after 3 rooms');
    assert.is(p2.next_batch, undefined);
  } finally {
    await s.close();
  }
});

t.run();
