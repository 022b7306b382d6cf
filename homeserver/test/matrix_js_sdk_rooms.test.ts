// The real matrix-js-sdk (37.x) against a homeserver on a real port, rooms and sync: two syncing
// clients create a room, invite and join, then exchange 100 messages that each sees, in order, in
// its live timeline; a third user joins and pages back through the whole history to the room's
// creation, both through the SDK's timeline model and through raw /messages requests.
import * as assert from 'uvu/assert';
import * as sdk from 'matrix-js-sdk';
import { registerUser } from './support/harness.js';
import { DEFAULT_OVERRIDE, DEFAULT_UNDERRIDE } from './support/push.js';
import { clientFor, quietSdk, sdkSuite, startSynced, waitUntil, type SdkCtx } from './support/sdk.js';

// The SDK logs sync progress and its own push-rule fix-ups; keep the output readable (quietSdk also
// silences the child logger that reports state events the SDK processes before it stores a newly
// joined room: SDK-internal ordering, harmless).
quietSdk();

const MESSAGES = 100;

const t = sdkSuite('matrix-js-sdk 37: rooms, live sync and history');

/** A client for a freshly registered user (registered through the API), not yet started. */
async function newClient(ctx: SdkCtx, localpart: string): Promise<sdk.MatrixClient> {
  const client = clientFor(ctx.baseUrl, await registerUser(ctx.s, localpart));
  ctx.clients.push(client);
  return client;
}

/** Starts the client's sync loop and waits for its first sync to be processed. */
const start = (client: sdk.MatrixClient, initialSyncLimit = 50) => startSynced(client, { initialSyncLimit });

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
