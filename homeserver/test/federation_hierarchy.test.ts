import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { registerUser } from './support/harness.js';
import { inviteAndJoin, startFederationCluster, type FederationCluster, type FederationTestServer, asTestServer as ts } from './support/federation.js';
import { beforeAll } from './support/hooks.js';
import { api, enc, ok, putState, type User } from './support/rooms.js';
import { FederationError } from '../src/services/federation/client.js';

/**
 * Space hierarchy over federation: a space on A with a public, a restricted (to the space) and a
 * private child. bob on B, in none of them, asks his own server: B asks A's `/hierarchy` (once,
 * then from its cache) and lists what bob may see. Once bob joins the space, the restricted child
 * shows too, each child being asked of A at most once per cache period, within B's request limit
 * (HEARTH_FEDERATION_HIERARCHY_MAX_REQUESTS=2 here).
 */
type Ctx = { cluster: FederationCluster; a: FederationTestServer; b: FederationTestServer; alice: User; bob: User; space: string; pub: string; restricted: string; priv: string };
const t = suite<Ctx>('federation: space hierarchy');

beforeAll(t, async (ctx) => {
  ctx.cluster = await startFederationCluster(['hs-a', 'hs-b'], { env: (label): Record<string, string> => (label === 'hs-b' ? { HEARTH_FEDERATION_HIERARCHY_MAX_REQUESTS: '2' } : {}) });
  ctx.a = ctx.cluster.get('hs-a');
  ctx.b = ctx.cluster.get('hs-b');
  ctx.alice = await registerUser(ts(ctx.a), 'alice');
  ctx.bob = await registerUser(ts(ctx.b), 'bob');
  const { a, alice } = ctx;
  const create = async (body: Record<string, unknown>) => ok(await api(ts(a), alice, 'POST', '/createRoom', body)).room_id as string;
  ctx.space = await create({ preset: 'public_chat', name: 'The Space', creation_content: { type: 'm.space' } });
  ctx.pub = await create({ preset: 'public_chat', name: 'Public child', topic: 'open to all' });
  ctx.restricted = await create({
    preset: 'private_chat',
    name: 'Space members only',
    initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'restricted', allow: [{ type: 'm.room_membership', room_id: ctx.space }] } }],
  });
  ctx.priv = await create({ preset: 'private_chat', name: 'Private child' });
  // Order: private first, then public, then restricted.
  const via = [a.serverName];
  await putState(ts(a), alice, ctx.space, 'm.space.child', ctx.priv, { via, order: 'a' });
  await putState(ts(a), alice, ctx.space, 'm.space.child', ctx.pub, { via, order: 'b', suggested: true });
  await putState(ts(a), alice, ctx.space, 'm.space.child', ctx.restricted, { via, order: 'c' });
});
t.after(async (ctx) => {
  await ctx.cluster?.close();
});

const hierarchyAsks = (s: FederationTestServer) => s.federationRequests.filter((r) => r.url.startsWith('/_matrix/federation/v1/hierarchy/')).length;
const ids = (body: any) => (body.rooms as any[]).map((r) => r.room_id);

t('A serves /hierarchy to B by what B could peek or join', async (ctx) => {
  const { a, b, space, pub, restricted, priv } = ctx;
  const client = b.hs.deps.services.federation.client;
  const res = await client.request({ destination: a.serverName, method: 'GET', path: `/_matrix/federation/v1/hierarchy/${enc(space)}` });
  assert.is((res.room as any).room_id, space);
  assert.is((res.room as any).room_type, 'm.space');
  assert.equal(((res.room as any).children_state as any[]).map((c) => c.state_key), [priv, pub, restricted], 'children_state in order');
  assert.equal((res.children as any[]).map((c) => c.room_id), [pub], 'only the public child: B has nobody in the space');
  assert.is((res.children as any[])[0].name, 'Public child');
  assert.equal([...(res.inaccessible_children as string[])].sort(), [priv, restricted].sort());
  const suggested = await client.request({ destination: a.serverName, method: 'GET', path: `/_matrix/federation/v1/hierarchy/${enc(space)}`, query: { suggested_only: 'true' } });
  assert.equal(((suggested.room as any).children_state as any[]).map((c) => c.state_key), [pub], 'suggested_only: the suggested child only');
  // A private room B has no user in: 404, as the spec says.
  try {
    await client.request({ destination: a.serverName, method: 'GET', path: `/_matrix/federation/v1/hierarchy/${enc(priv)}` });
    assert.unreachable('expected 404');
  } catch (err) {
    assert.ok(err instanceof FederationError);
    assert.is(err.status, 404);
    assert.is(err.errcode, 'M_NOT_FOUND');
  }
});

t('bob (in none of the rooms) asks B: B fetches the space from A once and lists the rooms bob may see', async (ctx) => {
  const { a, b, bob, space, pub } = ctx;
  a.federationRequests.length = 0;
  ok(await ts(b).request('GET', `/_matrix/client/v1/rooms/${enc(space)}/hierarchy`, { token: bob.access_token }));
  const res = ok(await ts(b).request('GET', `/_matrix/client/v1/rooms/${enc(space)}/hierarchy`, { token: bob.access_token }));
  assert.equal(ids(res), [space, pub], 'the space and its public child');
  assert.is(res.rooms[0].name, 'The Space');
  assert.is(res.rooms[0].children_state.length, 3, 'the space lists all its children');
  assert.is(res.rooms[1].name, 'Public child');
  assert.is(res.rooms[1].topic, 'open to all');
  assert.is(res.rooms[1].allowed_room_ids, undefined);
  assert.is(hierarchyAsks(a), 1, 'one request to A: the public child came with the space\'s answer; the second call came from the cache');

  const suggested = ok(await ts(b).request('GET', `/_matrix/client/v1/rooms/${enc(space)}/hierarchy?suggested_only=true`, { token: bob.access_token }));
  assert.equal(ids(suggested), [space, pub]);
  assert.equal(suggested.rooms[0].children_state.map((c: any) => c.state_key), [pub], 'only the suggested child');
  assert.is(hierarchyAsks(a), 2, 'suggested_only is asked (and cached) separately');
});

t('bob joins the space: the restricted child becomes visible; requests per call are limited and answers cached', async (ctx) => {
  const { a, b, alice, bob, space, pub, restricted } = ctx;
  await inviteAndJoin(a, alice, b, bob, space, { invite: false });
  a.federationRequests.length = 0;
  // B is in the space now; each child is asked of A. The limit (2) stops the walk before the restricted child.
  const first = ok(await ts(b).request('GET', `/_matrix/client/v1/rooms/${enc(space)}/hierarchy`, { token: bob.access_token }));
  assert.equal(ids(first), [space, pub], 'private child refused by A, public child fetched, then the limit');
  assert.is(hierarchyAsks(a), 2);
  // Next call: the private child's 404 and the public child come from the cache; one request left for the restricted child.
  const second = ok(await ts(b).request('GET', `/_matrix/client/v1/rooms/${enc(space)}/hierarchy`, { token: bob.access_token }));
  assert.equal(ids(second), [space, pub, restricted], 'restricted to the space, which bob is in');
  assert.is(second.rooms[2].join_rule, 'restricted');
  assert.is(hierarchyAsks(a), 3);
});

t.run();
