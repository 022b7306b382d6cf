import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { registerUser, type TestServer } from './support/harness.js';
import { createRoom, type User } from './support/rooms.js';
import { craftRemoteMember, startExtraProcess, startFederationCluster, type FederationCluster, type FederationTestServer } from './support/federation.js';
import { beforeAll } from './support/hooks.js';
import { RoomHosts } from '../src/services/federation/sender/room_hosts.js';
import type { Homeserver } from '../src/server.js';

/**
 * The federation sender's room hosts (services/federation/sender/room_hosts.ts) follow membership
 * changes incrementally, counting members per server: a server is in a room from its first
 * member's join until its last member's departure, whichever process (of two on one database)
 * made the change. Two caches (one per process) are checked against each other and against a
 * cache loaded from scratch.
 */
type Ctx = { cluster: FederationCluster; a: FederationTestServer; second: Homeserver; alice: User };
const t = suite<Ctx>('federation sender: room hosts follow membership changes incrementally');

beforeAll(t, async (ctx) => {
  ctx.cluster = await startFederationCluster(['hs-a']);
  ctx.a = ctx.cluster.get('hs-a');
  ctx.alice = await registerUser(ctx.a as unknown as TestServer, 'alice');
  ctx.second = await startExtraProcess(ctx.cluster, ctx.a);
});
t.after(async (ctx) => {
  await ctx.second?.close();
  await ctx.cluster?.close();
});

const position = async (a: FederationTestServer) => Number((await a.hs.deps.db.query<{ pos: string }>('select max(stream_ordering) as pos from membership_changes'))[0]!.pos);

t('a server is in from its first join to its last departure, also when another process made the change', async (ctx) => {
  const { a, second, alice } = ctx;
  const roomId = await createRoom(a as unknown as TestServer, alice);
  const viaSecond = { ...a, hs: second } as FederationTestServer; // craftRemoteMember writes through the second process's pool
  const remote = 'remote.example';
  const [x1, x2] = [`@x1:${remote}`, `@x2:${remote}`];
  const one = new RoomHosts(a.hs.deps.db, a.serverName);
  const two = new RoomHosts(second.deps.db, a.serverName);
  await Promise.all([one.refresh(), two.refresh()]);
  const check = async (present: boolean, what: string) => {
    for (const [name, hosts] of [['process 1', one], ['process 2', two], ['loaded afresh', new RoomHosts(a.hs.deps.db, a.serverName)]] as const) {
      await hosts.refresh();
      assert.equal(hosts.current(roomId), present ? [remote] : [], `${name}: ${what}`);
    }
  };
  await check(false, 'no member of the remote server yet');

  await craftRemoteMember(a, roomId, x1);
  const joinedAt = await position(a);
  await check(true, "x1's join (process 1) brings the server in");
  assert.ok(one.includes(roomId, remote, joinedAt + 1) && !one.includes(roomId, remote, joinedAt), 'it gets the events after its first join');
  await craftRemoteMember(viaSecond, roomId, x2);
  await check(true, "x2's join (process 2)");
  await craftRemoteMember(viaSecond, roomId, x1); // join → join (a displayname change): not one more member
  await check(true, "x1's profile change");

  await craftRemoteMember(viaSecond, roomId, x1, 'leave');
  await check(true, "x1 left (process 2) but x2 is still joined");
  await craftRemoteMember(a, roomId, x2, 'ban');
  const bannedAt = await position(a);
  await check(false, "x2's ban (process 1): the last member is gone");
  for (const hosts of [one, two]) {
    assert.ok(hosts.includes(roomId, remote, bannedAt), 'the ban still reaches the banned server');
    assert.ok(!hosts.includes(roomId, remote, bannedAt + 1), 'nothing after it');
    assert.ok(hosts.includes(roomId, remote, joinedAt + 1), 'the window it was in stays');
  }

  await craftRemoteMember(viaSecond, roomId, x1);
  await check(true, "x1's join again (process 2): back in");
  await craftRemoteMember(a, roomId, x1, 'leave');
  await check(false, 'and out again');
});

t.run();
