/**
 * Durability of federation through crashes: "an acknowledged message is never lost or duplicated,
 * through restarts and kill -9". Two real Hearth processes (homeserver/src/main.ts), each in its own
 * network namespace on its own embedded database (support/netns.ts, support/netns_hearth.ts); a
 * crash is a SIGKILL of the process mid-flight (no shutdown hook runs, leases stay taken, requests
 * are cut), a restart starts it again on the same data dir.
 *   1. the sender (hs-a) is killed while a client sends 200 messages to it;
 *   2. the receiver (hs-b) is killed while hs-a sends it a burst;
 *   3. hs-b is killed while bob's join (make_join/send_join through hs-a) is in flight.
 * Each scenario runs HEARTH_CRASH_ROUNDS times (default 2) to catch ordering luck. Needs root and
 * iproute2; skipped otherwise.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { registerUser, type TestServer } from './support/harness.js';
import { createTestCa, eventually, type TestCa } from './support/federation.js';
import { beforeAll } from './support/hooks.js';
import { api, enc, ok, send, type User } from './support/rooms.js';
import { createVirtualNetwork, netnsSkipReason, type VirtualNetwork } from './support/netns.js';
import { kill9, startHearth, type HearthProcess } from './support/netns_hearth.js';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const ROUNDS = Number(process.env.HEARTH_CRASH_ROUNDS ?? 2);
const ENV = {
  // Short back-off, so the queues retry soon after the peer is back.
  HEARTH_FEDERATION_RETRY_BASE_MS: '200',
  HEARTH_FEDERATION_RETRY_MAX_MS: '1000',
  HEARTH_FEDERATION_REQUEST_TIMEOUT_MS: '10000',
  // Small, so catching up after the receiver's crash needs several get_missing_events requests (of the
  // default 20 events each) for the gap.
  HEARTH_FEDERATION_CATCHUP_EVENTS_PER_ROOM: '5',
  // No presence EDUs: after a restart only the queue's own resumption can wake it.
  HEARTH_PRESENCE_ENABLED: 'false',
};

const skip = netnsSkipReason();
if (skip) console.log(`SKIP federation_crash.test.ts: ${skip}`);

type Ctx = { net: VirtualNetwork; ca: TestCa; certs: Record<string, { certFile: string; keyFile: string }>; a: HearthProcess; b: HearthProcess; alice: User; bob: User; roomId: string };
const t = suite<Ctx>('federation: acknowledged messages survive kill -9 of either server');
const it = skip ? t.skip : t;
const ts = (p: HearthProcess) => p as unknown as TestServer;

/** Every process started (a crashed one's output is kept for HEARTH_NETNS_LOGS). */
const incarnations: HearthProcess[] = [];
const start = async (ctx: Ctx, label: string) => {
  const p = await startHearth(ctx.net, label, { repoRoot: REPO_ROOT, caFile: ctx.ca.caFile, cert: ctx.certs[label]!, env: ENV });
  incarnations.push(p);
  return p;
};

beforeAll(t, async (ctx) => {
  if (skip) return;
  ctx.net = createVirtualNetwork(['hs-a', 'hs-b']);
  ctx.ca = await createTestCa();
  ctx.certs = {};
  for (const label of ['hs-a', 'hs-b']) ctx.certs[label] = await ctx.ca.issue({ dns: [ctx.net.host(label).hostname] });
  [ctx.a, ctx.b] = await Promise.all([start(ctx, 'hs-a'), start(ctx, 'hs-b')]);
  ctx.alice = await registerUser(ts(ctx.a), 'alice');
  ctx.bob = await registerUser(ts(ctx.b), 'bob');
});
t.after(async (ctx) => {
  if (skip) return;
  await Promise.all([ctx.a?.stop(), ctx.b?.stop()]);
  // HEARTH_NETNS_LOGS=<dir>: keep both servers' output (the temp dir goes with the network).
  const logDir = process.env.HEARTH_NETNS_LOGS;
  if (logDir) incarnations.forEach((s, i) => fs.writeFileSync(path.join(logDir, `crash-${i}-${s.label}.log`), s.output()));
  ctx.net?.teardown();
  ctx.ca?.remove();
});

/** SIGKILL then start again on the same data dir; the context points at the new process. */
async function crashAndRestart(ctx: Ctx, which: 'a' | 'b'): Promise<void> {
  const p = ctx[which];
  await kill9(p);
  assert.is(p.child.signalCode, 'SIGKILL', `${p.label} died of the SIGKILL`);
  ctx[which] = await start(ctx, p.label);
}

type Msg = { event_id: string; type: string; sender: string; body?: string };

/** Every event of the room that `u` can page through on `s` with /messages (from `from`, else the end), oldest first. */
async function timeline(s: HearthProcess, u: User, roomId: string, from = ''): Promise<Msg[]> {
  const out: Msg[] = [];
  for (let i = 0; i < 200; i++) {
    const page = ok(await api(ts(s), u, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=100${from ? `&from=${enc(from)}` : ''}`), `/messages on ${s.label}`);
    for (const e of page.chunk as { event_id: string; type: string; sender: string; content: { body?: string } }[]) out.push({ event_id: e.event_id, type: e.type, sender: e.sender, body: e.content?.body });
    if (!page.end || page.chunk.length === 0) break;
    from = page.end;
  }
  return out.reverse();
}

/** The messages of one burst (bodies `<tag>-<n>`), in timeline order. */
const ofBurst = (events: Msg[], tag: string) => events.filter((e) => e.type === 'm.room.message' && e.body?.startsWith(`${tag}-`));

const dupes = (xs: string[]) => [...new Set(xs.filter((x, i) => xs.indexOf(x) !== i))];

/** `eventually`, with both servers' last log lines in the failure. */
async function until(ctx: Ctx, check: () => Promise<boolean>, what: string | (() => string), attempts = 300): Promise<void> {
  try {
    await eventually(check, typeof what === 'string' ? what : 'see below', attempts, 200);
  } catch (err) {
    throw new Error(`never happened: ${typeof what === 'string' ? what : what()}\n--- hs-a ---\n${ctx.a.tail(15)}\n--- hs-b ---\n${ctx.b.tail(15)}`, { cause: err });
  }
}

/** PUT /send with the txn id `<tag>-<n>` and body `<tag>-<n>`: the event id, or why there is no answer. */
async function putMessage(s: HearthProcess, u: User, roomId: string, tag: string, n: number): Promise<{ eventId?: string; failure?: string }> {
  try {
    const res = await api(ts(s), u, 'PUT', `/rooms/${enc(roomId)}/send/m.room.message/${enc(`${tag}-${n}`)}`, { msgtype: 'm.text', body: `${tag}-${n}` });
    if (res.status === 200 && typeof res.body?.event_id === 'string') return { eventId: res.body.event_id };
    return { failure: `${res.status} ${JSON.stringify(res.body)}` };
  } catch (err) {
    return { failure: (err as Error).message };
  }
}

/**
 * Sends messages `from`..`to-1` of a burst as fast as it can (a few in parallel), recording each
 * acknowledged event id in `acked`; `afterAck(count)` runs after each acknowledgement. Stops at the
 * first send without an answer (returns those unanswered).
 */
async function burst(s: HearthProcess, u: User, roomId: string, tag: string, range: [number, number], acked: Map<number, string>, afterAck?: (count: number) => void): Promise<number[]> {
  let next = range[0];
  let stopped = false;
  const unanswered: number[] = [];
  const worker = async () => {
    while (!stopped && next < range[1]) {
      const n = next++;
      const r = await putMessage(s, u, roomId, tag, n);
      if (r.eventId) {
        acked.set(n, r.eventId);
        afterAck?.(acked.size);
      } else {
        unanswered.push(n);
        stopped = true;
      }
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  return unanswered.sort((x, y) => x - y);
}

/** Both sides hold the whole burst: every acknowledged message exactly once, in one order. */
async function checkBurst(ctx: Ctx, tag: string, acked: Map<number, string>, total: number): Promise<void> {
  const { a, b, alice, bob, roomId } = ctx;
  const onA = ofBurst(await timeline(a, alice, roomId), tag);
  assert.equal(dupes(onA.map((e) => e.event_id)), [], `no event twice on hs-a (${tag})`);
  assert.equal(dupes(onA.map((e) => e.body!)), [], `no message body twice on hs-a (${tag})`);
  assert.is(onA.length, total, `hs-a holds all ${total} messages of ${tag}`);
  for (const e of onA) assert.is(e.event_id, acked.get(Number(e.body!.slice(tag.length + 1))), `${e.body} on hs-a is the acknowledged event`);

  let onB: Msg[] = [];
  await until(ctx, async () => {
    onB = ofBurst(await timeline(b, bob, roomId), tag);
    return onB.length >= total;
  }, () => `all ${total} messages of ${tag} reach hs-b (it has ${onB.length})`);
  assert.equal(dupes(onB.map((e) => e.event_id)), [], `no event twice on hs-b (${tag})`);
  const order = (es: Msg[]) => es.map((e) => e.body!.slice(tag.length + 1)).join(' ');
  const same = JSON.stringify(onB.map((e) => e.event_id)) === JSON.stringify(onA.map((e) => e.event_id));
  assert.ok(same, `hs-b holds ${tag} in hs-a's order${same ? '' : `:\nhs-a: ${order(onA)}\nhs-b: ${order(onB)}`}`);
  // The room as a whole is in one order on both sides too.
  const whole = async (s: HearthProcess, u: User) => (await timeline(s, u, roomId)).map((e) => e.event_id);
  const [wa, wb] = [await whole(a, alice), await whole(b, bob)];
  assert.equal(dupes(wb), [], 'no event twice in hs-b\'s timeline');
  assert.equal(wb.filter((id) => wa.includes(id)), wa.filter((id) => wb.includes(id)), 'the events both hold are in the same order');
}

it('setup: alice on hs-a and bob on hs-b share a room (invite, join over federation)', async (ctx) => {
  const { a, b, alice, bob } = ctx;
  ctx.roomId = ok(await api(ts(a), alice, 'POST', '/createRoom', { name: 'Crash room', preset: 'private_chat' }), 'createRoom').room_id;
  ok(await api(ts(a), alice, 'POST', `/rooms/${enc(ctx.roomId)}/invite`, { user_id: bob.user_id }), 'invite bob');
  await until(ctx, async () => ok(await api(ts(b), bob, 'GET', '/sync?timeout=0')).rooms?.invite?.[ctx.roomId] !== undefined, 'the invite reaches hs-b');
  ok(await api(ts(b), bob, 'POST', `/join/${enc(ctx.roomId)}?server_name=${enc(a.serverName)}`, {}), 'bob joins through hs-a');
  const hello = await send(ts(a), alice, ctx.roomId, 'hello');
  await until(ctx, async () => (await api(ts(b), bob, 'GET', `/rooms/${enc(ctx.roomId)}/event/${enc(hello)}`)).status === 200, 'hello reaches hs-b');
});

for (let round = 0; round < ROUNDS; round++) {
  it(`sender crash (round ${round + 1}): hs-a is SIGKILLed while alice sends 200 messages; every acknowledged one is on both sides once, in order`, async (ctx) => {
    const tag = `s1r${round}`;
    const total = 200;
    const acked = new Map<number, string>();
    // Somewhere in the middle, differently each round.
    const killAt = 40 + Math.floor(Math.random() * 120);
    let killing: Promise<void> | undefined;
    const a = ctx.a;
    const unanswered = await burst(a, ctx.alice, ctx.roomId, tag, [0, total], acked, (count) => {
      if (count === killAt) killing ??= kill9(a);
    });
    assert.ok(killing, `hs-a was killed after ${killAt} acknowledgements`);
    await killing;
    assert.is(a.child.signalCode, 'SIGKILL');
    const ackedBefore = new Map(acked);
    const onBAtKill = new Set(ofBurst(await timeline(ctx.b, ctx.bob, ctx.roomId), tag).map((e) => e.event_id));
    const backlog = [...ackedBefore.values()].filter((id) => !onBAtKill.has(id)).length;
    ctx.a = await start(ctx, 'hs-a');

    // Before alice does anything (a request of hers may queue a presence EDU, waking the queue;
    // a new message would let hs-b fetch the gap by itself): the restarted hs-a resumes its queue
    // on its own and hs-b gets every message acknowledged before the crash.
    await until(ctx, async () => {
      const onB = new Set(ofBurst(await timeline(ctx.b, ctx.bob, ctx.roomId), tag).map((e) => e.event_id));
      return [...ackedBefore.values()].every((id) => onB.has(id));
    }, `hs-b gets the ${ackedBefore.size} messages acknowledged before the crash (${backlog} of them were not on hs-b at the crash)`);
    // A retried txn id gets the event it got before the crash (the dedup table is durable).
    for (const n of [...ackedBefore.keys()].sort((x, y) => x - y).filter((_, i, all) => i === 0 || i === all.length - 1 || i % 17 === 0)) {
      const r = await putMessage(ctx.a, ctx.alice, ctx.roomId, tag, n);
      assert.is(r.eventId, ackedBefore.get(n), `retrying ${tag}-${n} after the restart returns its first event id (${r.failure ?? ''})`);
    }
    // Sends that got no answer: retried with the same txn id, they exist once (either from the
    // first attempt or from the retry).
    for (const n of unanswered) {
      const r = await putMessage(ctx.a, ctx.alice, ctx.roomId, tag, n);
      assert.ok(r.eventId, `retrying unanswered ${tag}-${n}: ${r.failure ?? ''}`);
      acked.set(n, r.eventId!);
    }
    // The messages never tried, after the restart.
    const attempted = new Set([...acked.keys()]);
    for (let n = 0; n < total; n++) {
      if (attempted.has(n)) continue;
      const r = await putMessage(ctx.a, ctx.alice, ctx.roomId, tag, n);
      assert.ok(r.eventId, `${tag}-${n} after the restart: ${r.failure ?? ''}`);
      acked.set(n, r.eventId!);
    }
    assert.is(acked.size, total);
    await checkBurst(ctx, tag, acked, total);
  });
}

for (let round = 0; round < ROUNDS; round++) {
  it(`receiver crash (round ${round + 1}): hs-b is SIGKILLed during a burst from hs-a; hs-b ends with every event once, in order, in a fresh /sync`, async (ctx) => {
    const tag = `s2r${round}`;
    const total = 120;
    const acked = new Map<number, string>();
    const killAt = 20 + Math.floor(Math.random() * 60);
    let killing: Promise<void> | undefined;
    const b = ctx.b;
    const unanswered = await burst(ctx.a, ctx.alice, ctx.roomId, tag, [0, total], acked, (count) => {
      if (count === killAt) killing ??= kill9(b);
    });
    assert.equal(unanswered, [], 'hs-a answered every send');
    assert.ok(killing);
    await killing;
    assert.is(b.child.signalCode, 'SIGKILL');
    // hs-b stays down until hs-a has failed to deliver after the burst's end: the burst's tail then
    // exists only in hs-a's queue (nothing newer will come to point hs-b at it).
    const attemptsNow = failedAttempts(ctx.a);
    try {
      await until(ctx, async () => failedAttempts(ctx.a) > attemptsNow, 'hs-a tries to reach the dead hs-b and fails');
    } finally {
      ctx.b = await start(ctx, 'hs-b');
    }
    await checkBurst(ctx, tag, acked, total);

    // A fresh /sync of bob: the room is joined, its timeline ends with the burst's last message,
    // and paging back from its prev_batch finds the whole burst in order (nothing stuck as an outlier).
    const onA = ofBurst(await timeline(ctx.a, ctx.alice, ctx.roomId), tag).map((e) => e.event_id);
    const synced = ok(await api(ts(ctx.b), ctx.bob, 'GET', '/sync?timeout=0'), 'fresh /sync on hs-b').rooms?.join?.[ctx.roomId];
    assert.ok(synced, 'the room is in bob\'s joined rooms after the restart');
    const events = (synced.timeline.events as { event_id: string }[]).map((e) => e.event_id);
    assert.ok(events.includes(onA[onA.length - 1]!), 'the last message of the burst is in the /sync timeline');
    const before = synced.timeline.prev_batch ? await timeline(ctx.b, ctx.bob, ctx.roomId, synced.timeline.prev_batch) : [];
    const all = [...before.map((e) => e.event_id), ...events];
    assert.equal(dupes(all), [], 'no event twice in /sync + /messages');
    assert.equal(all.filter((id) => onA.includes(id)), onA, 'the whole burst, in order, from /sync back through /messages');
  });
}

/** How many transactions to hs-b `s` has logged as failed (backing off, or dropped). */
const failedAttempts = (s: HearthProcess) => s.logs().filter((l) => String(l.msg).startsWith('federation transaction ') && l.destination === 'hs-b.hearth.test').length;

/** When to kill hs-b during bob's join, per round. */
const JOIN_KILL_POINTS = ['make_join answered', 'send_join answered', 'join request sent'] as const;

for (let round = 0; round < Math.max(ROUNDS, JOIN_KILL_POINTS.length); round++) {
  const point = JOIN_KILL_POINTS[round % JOIN_KILL_POINTS.length]!;
  it(`kill during a join (${point}): bob ends joined with the full state on both sides, or not joined and a retried join works`, async (ctx) => {
    const { alice, bob } = ctx;
    // A room with some history and state.
    const roomId = ok(await api(ts(ctx.a), alice, 'POST', '/createRoom', { name: `Join crash ${round}`, topic: 'history', preset: 'private_chat' }), 'createRoom').room_id as string;
    for (let i = 0; i < 10; i++) await send(ts(ctx.a), alice, roomId, `history ${i}`);
    ok(await api(ts(ctx.a), alice, 'POST', `/rooms/${enc(roomId)}/invite`, { user_id: bob.user_id }), 'invite bob');
    await until(ctx, async () => ok(await api(ts(ctx.b), bob, 'GET', '/sync?timeout=0')).rooms?.invite?.[roomId] !== undefined, 'the invite reaches hs-b');

    const b = ctx.b;
    // The SIGKILL goes out from the handler of hs-a's output chunk that logs the request as answered
    // (not from a polling loop, which would come too late: the whole join takes a few milliseconds).
    const answered = point === 'make_join answered' ? '/make_join/' : '/send_join/';
    const killed = new Promise<void>((resolve) => {
      const onData = (chunk: Buffer) => {
        const hit = chunk.toString('utf8').split('\n').some((l) => l.includes('"msg":"request"') && l.includes(answered) && l.includes(enc(roomId)));
        if (!hit) return;
        ctx.a.child.stdout!.off('data', onData);
        b.child.kill('SIGKILL');
        resolve();
      };
      if (point !== 'join request sent') ctx.a.child.stdout!.on('data', onData);
      else setTimeout(() => (b.child.kill('SIGKILL'), resolve()), Math.floor(Math.random() * 150));
    });
    const joining = api(ts(b), bob, 'POST', `/join/${enc(roomId)}?server_name=${enc(ctx.a.serverName)}`, {}).then(
      (r) => r.status,
      () => 'no answer' as const,
    );
    // (A join that somehow completes without the request showing up is killed right after.)
    await Promise.race([killed, joining]);
    await crashAndRestart(ctx, 'b');
    const firstAnswer = await joining;

    const joinedOnB = async () => ok(await api(ts(ctx.b), bob, 'GET', '/sync?timeout=0')).rooms?.join?.[roomId] !== undefined;
    if (!(await joinedOnB())) {
      // Not joined on hs-b: the join can be retried and succeeds.
      assert.is.not(firstAnswer, 200, 'a join answered 200 is joined after the restart');
      ok(await api(ts(ctx.b), bob, 'POST', `/join/${enc(roomId)}?server_name=${enc(ctx.a.serverName)}`, {}), 'the retried join');
      assert.ok(await joinedOnB(), 'joined on hs-b after the retry');
    }
    // Joined on hs-b with the full state.
    const state = ok(await api(ts(ctx.b), bob, 'GET', `/rooms/${enc(roomId)}/state`), 'state on hs-b') as { type: string; state_key: string; content: any }[];
    const get = (type: string, key = '') => state.find((e) => e.type === type && e.state_key === key)?.content;
    assert.ok(get('m.room.create'), 'create event');
    assert.ok(get('m.room.power_levels'), 'power levels');
    assert.is(get('m.room.join_rules')?.join_rule, 'invite');
    assert.is(get('m.room.name')?.name, `Join crash ${round}`);
    assert.is(get('m.room.topic')?.topic, 'history');
    assert.is(get('m.room.member', alice.user_id)?.membership, 'join');
    assert.is(get('m.room.member', bob.user_id)?.membership, 'join');
    // hs-a agrees, and messages flow both ways.
    await until(ctx, async () => bob.user_id in (ok(await api(ts(ctx.a), alice, 'GET', `/rooms/${enc(roomId)}/joined_members`)).joined ?? {}), 'hs-a has bob joined');
    const fromA = await send(ts(ctx.a), alice, roomId, 'after the crash, from hs-a');
    await until(ctx, async () => (await timeline(ctx.b, bob, roomId)).some((e) => e.event_id === fromA), 'hs-a → hs-b after the crashed join');
    const fromB = await send(ts(ctx.b), bob, roomId, 'after the crash, from hs-b');
    await until(ctx, async () => (await timeline(ctx.a, alice, roomId)).some((e) => e.event_id === fromB), 'hs-b → hs-a after the crashed join');
    const onB = (await timeline(ctx.b, bob, roomId)).map((e) => e.event_id);
    assert.equal(dupes(onB), [], 'no event twice on hs-b');
  });
}

t.run();
