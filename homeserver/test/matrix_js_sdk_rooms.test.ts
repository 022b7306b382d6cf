// The real matrix-js-sdk (37.x) against a homeserver on a real port, rooms and sync: two syncing
// clients create a room, invite and join, then exchange 100 messages that each sees, in order, in
// its live timeline; a third user joins and pages back through the whole history to the room's
// creation, both through the SDK's timeline model and through raw /messages requests.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as sdk from 'matrix-js-sdk';
import { logger as sdkLogger } from 'matrix-js-sdk/lib/logger.js';
import { startTestServer, registerUser, type TestServer } from './support/harness.js';
import { beforeAll } from './support/hooks.js';
import { DEFAULT_OVERRIDE, DEFAULT_UNDERRIDE } from './support/push.js';

// The SDK logs sync progress and its own push-rule fix-ups; keep the output readable.
// Child loggers get their own level when first created: silence the one that reports state events
// the SDK processes before it stores a newly joined room (SDK-internal ordering, harmless).
for (const l of [sdkLogger, sdkLogger.getChild('[MatrixRTCSessionManager]')]) (l as unknown as { setLevel(level: 'silent'): void }).setLevel('silent');

const MESSAGES = 100;
const WAIT_MS = 20_000;

interface Ctx {
  s: TestServer;
  baseUrl: string;
  clients: sdk.MatrixClient[];
}
const t = suite<Ctx>('matrix-js-sdk 37: rooms, live sync and history');

/**
 * The SDK arms a timer for the local timeout of every request (its `timeoutSignal`: pollTimeout +
 * 80 s for each /sync) and never clears it, so a stopped client would hold the test process open for
 * almost two minutes. While this suite runs, timers of a minute or more do not keep the process
 * alive (they still fire); the test's own waits and the server's long-polls are shorter.
 */
const realSetTimeout = globalThis.setTimeout;
function unrefLongTimers(): void {
  globalThis.setTimeout = ((fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    const timer = realSetTimeout(fn, ms, ...args);
    if ((ms ?? 0) >= 60_000) timer.unref();
    return timer;
  }) as typeof setTimeout;
}

beforeAll(t, async (ctx) => {
  unrefLongTimers();
  ctx.clients = [];
  ctx.s = await startTestServer();
  ctx.baseUrl = await ctx.s.listen();
});
t.after(async (ctx) => {
  for (const c of ctx.clients ?? []) c.stopClient();
  await ctx.s?.close();
  globalThis.setTimeout = realSetTimeout;
});

/** A client for a freshly registered user (registered through the API), not yet started. */
async function newClient(ctx: Ctx, localpart: string): Promise<sdk.MatrixClient> {
  const u = await registerUser(ctx.s, localpart);
  const client = sdk.createClient({ baseUrl: ctx.baseUrl, accessToken: u.access_token, userId: u.user_id, deviceId: u.device_id });
  ctx.clients.push(client);
  return client;
}

/**
 * Resolves once `check()` holds. It is re-evaluated whenever the client emits one of `events`
 * (no polling), and fails with `what` after WAIT_MS.
 */
function waitUntil(client: sdk.MatrixClient, events: string[], check: () => boolean, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const emitter = client as unknown as { on(e: string, f: () => void): void; off(e: string, f: () => void): void };
    const done = (err?: Error) => {
      clearTimeout(timer);
      for (const e of events) emitter.off(e, listener);
      if (err) reject(err);
      else resolve();
    };
    const listener = () => {
      let ok: boolean;
      try {
        ok = check();
      } catch (err) {
        done(err as Error);
        return;
      }
      if (ok) done();
    };
    const timer = setTimeout(() => done(new Error(`timed out after ${WAIT_MS} ms waiting for ${what}`)), WAIT_MS);
    for (const e of events) emitter.on(e, listener);
    listener();
  });
}

/** Starts the client's sync loop and waits for its first sync to be processed. */
async function start(client: sdk.MatrixClient, initialSyncLimit = 50): Promise<void> {
  const errors: unknown[] = [];
  const onSync = (state: sdk.SyncState, _prev: sdk.SyncState | null, data?: { error?: unknown }) => {
    if (state === sdk.SyncState.Error) errors.push(data?.error);
  };
  client.on(sdk.ClientEvent.Sync, onSync);
  await client.startClient({ initialSyncLimit });
  try {
    await waitUntil(
      client,
      [sdk.ClientEvent.Sync],
      () => {
        if (errors.length) throw new Error(`the SDK's sync failed: ${String(errors[0])}`);
        return client.isInitialSyncComplete();
      },
      `${client.getUserId()}'s initial sync`,
    );
  } finally {
    client.off(sdk.ClientEvent.Sync, onSync);
  }
}

const membershipOf = (client: sdk.MatrixClient, roomId: string, userId: string) => client.getRoom(roomId)?.getMember(userId)?.membership;

/** The live timeline's message events (local echoes included; a remote echo sets `status` to null). */
function liveMessages(client: sdk.MatrixClient, roomId: string): sdk.MatrixEvent[] {
  const room = client.getRoom(roomId);
  if (!room) return [];
  return room
    .getLiveTimeline()
    .getEvents()
    .filter((e) => e.getType() === 'm.room.message');
}

const TIMELINE_EVENTS = [sdk.RoomEvent.Timeline, sdk.RoomEvent.LocalEchoUpdated];

t('two users create, invite, join and exchange 100 messages; a third pages back through the full history', async (ctx) => {
  const alice = await newClient(ctx, 'alice');
  const bob = await newClient(ctx, 'bob');
  const carol = await newClient(ctx, 'carol');
  const [aliceId, bobId, carolId] = [alice.getUserId()!, bob.getUserId()!, carol.getUserId()!];
  await start(alice);
  await start(bob);

  // Alice creates a private room and invites Bob; Bob's client learns of the invite through /sync.
  const { room_id: roomId } = await alice.createRoom({ preset: sdk.Preset.PrivateChat, name: 'Hearth', topic: 'matrix-js-sdk' });
  await waitUntil(alice, [sdk.ClientEvent.Room, sdk.RoomEvent.Timeline], () => membershipOf(alice, roomId, aliceId) === 'join', 'alice in her room');
  assert.is(alice.getRoom(roomId)!.name, 'Hearth');
  await alice.invite(roomId, bobId);
  await waitUntil(bob, [sdk.ClientEvent.Room, sdk.RoomMemberEvent.Membership], () => bob.getRoom(roomId)?.getMyMembership() === 'invite', "bob's invite");
  const invitedRoom = bob.getRoom(roomId)!;
  assert.is(invitedRoom.getMember(bobId)?.events.member?.getSender(), aliceId, 'the invite names alice as the inviter');
  assert.is(invitedRoom.name, 'Hearth', 'the stripped state carries the room name');

  await bob.joinRoom(roomId);
  await waitUntil(bob, [sdk.RoomEvent.MyMembership, sdk.RoomEvent.Timeline], () => bob.getRoom(roomId)?.getMyMembership() === 'join', 'bob joined');
  await waitUntil(alice, [sdk.RoomMemberEvent.Membership, sdk.RoomEvent.Timeline], () => membershipOf(alice, roomId, bobId) === 'join', "alice sees bob's join");
  assert.is(bob.getRoom(roomId)!.getJoinedMemberCount(), 2);
  assert.is(bob.getRoom(roomId)!.currentState.getStateEvents('m.room.topic', '')?.getContent().topic, 'matrix-js-sdk');

  // A conversation: each message is sent once the previous one (from the other user) has arrived.
  const expected: string[] = [];
  const sentIds: string[] = [];
  for (let i = 0; i < MESSAGES; i++) {
    const [sender, receiver] = i % 2 === 0 ? [alice, bob] : [bob, alice];
    const body = `message ${i} from ${sender.getUserId()}`;
    const { event_id } = await sender.sendTextMessage(roomId, body);
    expected.push(body);
    sentIds.push(event_id);
    await waitUntil(
      receiver,
      [sdk.RoomEvent.Timeline],
      () => liveMessages(receiver, roomId).some((e) => e.getId() === event_id),
      `message ${i} at ${receiver.getUserId()}`,
    );
  }

  // Both live timelines hold all 100, in sending order, as remote echoes with the server's event ids.
  for (const client of [alice, bob]) {
    await waitUntil(
      client,
      TIMELINE_EVENTS,
      () => liveMessages(client, roomId).length === MESSAGES && liveMessages(client, roomId).every((e) => e.status === null),
      `all remote echoes at ${client.getUserId()}`,
    );
    const got = liveMessages(client, roomId);
    assert.equal(got.map((e) => e.getContent().body), expected, `${client.getUserId()} sees every message in order`);
    assert.equal(got.map((e) => e.getId()), sentIds, `${client.getUserId()} sees the server's event ids`);
    assert.equal(
      got.map((e) => e.getSender()),
      expected.map((_, i) => (i % 2 === 0 ? aliceId : bobId)),
    );
    // The live timeline was never reset by a gappy sync: it still starts at the room's creation
    // (bob's too: the sync that brought his join carried the whole, short, room history).
    assert.is(client.getRoom(roomId)!.getLiveTimeline().getEvents()[0]?.getType(), 'm.room.create');
  }

  // Carol is invited, joins with a fresh client (a short initial timeline), and pages back to the start.
  await start(carol, 10);
  await alice.invite(roomId, carolId);
  await waitUntil(carol, [sdk.ClientEvent.Room, sdk.RoomMemberEvent.Membership], () => carol.getRoom(roomId)?.getMyMembership() === 'invite', "carol's invite");
  await carol.joinRoom(roomId);
  await waitUntil(
    carol,
    [sdk.RoomEvent.MyMembership, sdk.RoomEvent.Timeline],
    () => carol.getRoom(roomId)?.getMyMembership() === 'join' && carol.getRoom(roomId)!.getLiveTimeline().getEvents().some((e) => e.getType() === 'm.room.member' && e.getStateKey() === carolId),
    'carol joined',
  );
  await waitUntil(alice, [sdk.RoomEvent.Timeline], () => membershipOf(alice, roomId, carolId) === 'join', "alice sees carol's join");

  const room = carol.getRoom(roomId)!;
  const live = room.getLiveTimeline();
  const beforePaging = live.getEvents().length;
  let pages = 0;
  for (let more = true; more; pages++) {
    more = await carol.paginateEventTimeline(live, { backwards: true, limit: 13 });
    assert.ok(pages < 50, 'pagination ends');
  }
  assert.is(live.getPaginationToken(sdk.EventTimeline.BACKWARDS), null, 'the SDK knows it reached the start');
  const history = live.getEvents();
  assert.ok(beforePaging <= 10, `carol's sync brought at most 10 events (got ${beforePaging})`);
  assert.ok(pages >= 8, `${pages} pages of 13 for 100+ events`);
  const ids = history.map((e) => e.getId());
  assert.is(new Set(ids).size, ids.length, 'no event twice');

  // The room's creation, as createRoom sends it (spec order: create, creator's join, power levels,
  // preset state, name, topic), then the invite and join of bob, the conversation, carol's arrival.
  const types = history.map((e) => e.getType());
  assert.equal(types.slice(0, 8), [
    'm.room.create',
    'm.room.member',
    'm.room.power_levels',
    'm.room.join_rules',
    'm.room.history_visibility',
    'm.room.guest_access',
    'm.room.name',
    'm.room.topic',
  ]);
  assert.is(history[0]!.getSender(), aliceId);
  assert.is(history[0]!.getContent().room_version ?? '1', '11');
  assert.equal(history[1]!.getContent().membership, 'join');
  const members = history.filter((e) => e.getType() === 'm.room.member').map((e) => `${e.getStateKey()}:${e.getContent().membership}`);
  assert.equal(members, [`${aliceId}:join`, `${bobId}:invite`, `${bobId}:join`, `${carolId}:invite`, `${carolId}:join`]);
  const msgs = history.filter((e) => e.getType() === 'm.room.message');
  assert.equal(msgs.map((e) => e.getContent().body), expected, 'carol has all 100 messages in order');
  assert.equal(msgs.map((e) => e.getId()), sentIds);
  assert.is(history.length, 8 + 2 + MESSAGES + 2, 'nothing else in the history');

  // Alice has been syncing since before the room existed: her live timeline is the same history.
  assert.equal(
    alice.getRoom(roomId)!.getLiveTimeline().getEvents().map((e) => e.getId()),
    ids,
    "carol's paged history equals alice's live timeline",
  );

  // The raw requests the SDK builds on: /messages backwards from the newest event, small pages.
  const raw: string[] = [];
  let from: string | null = null;
  for (let n = 0; n < 100; n++) {
    const page: Awaited<ReturnType<typeof carol.createMessagesRequest>> = await carol.createMessagesRequest(roomId, from, 7, sdk.Direction.Backward);
    raw.push(...page.chunk.map((e) => e.event_id));
    if (!page.end) break;
    from = page.end;
  }
  assert.equal(raw.reverse(), ids, '/messages backwards pages tile the history exactly');
});

// The SDK fetches /pushrules/ before its first sync and stops syncing if that fails.
t('GET /pushrules/ answers the spec\'s server-default rule set', async (ctx) => {
  const u = await registerUser(ctx.s, 'dave');
  const res = await ctx.s.request('GET', '/_matrix/client/v3/pushrules/', { token: u.access_token });
  assert.is(res.status, 200, JSON.stringify(res.body));
  const g = res.body.global;
  assert.equal(g.override.map((r: any) => r.rule_id), DEFAULT_OVERRIDE);
  assert.equal(g.underride.map((r: any) => r.rule_id), DEFAULT_UNDERRIDE);
  assert.equal([g.content, g.room, g.sender], [[], [], []]);
  for (const r of [...g.override, ...g.underride]) assert.is(r.default, true);
  assert.equal(g.override.filter((r: any) => !r.enabled).map((r: any) => r.rule_id), ['.m.rule.master'], 'only the master rule is disabled');
  const invite = g.override.find((r: any) => r.rule_id === '.m.rule.invite_for_me');
  assert.equal(invite.conditions[2], { kind: 'event_match', key: 'state_key', pattern: u.user_id });
  const mention = g.override.find((r: any) => r.rule_id === '.m.rule.is_user_mention');
  assert.equal(mention.conditions, [{ kind: 'event_property_contains', key: 'content.m\\.mentions.user_ids', value: u.user_id }]);
  assert.equal(mention.actions, ['notify', { set_tweak: 'sound', value: 'default' }, { set_tweak: 'highlight' }]);
  const global = await ctx.s.request('GET', '/_matrix/client/v3/pushrules/global/', { token: u.access_token });
  assert.equal(global.body, g);
  assert.is((await ctx.s.request('GET', '/_matrix/client/v3/pushrules/')).status, 401);
});

t.run();
