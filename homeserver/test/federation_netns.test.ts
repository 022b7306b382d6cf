/**
 * Federation between separate hosts: two real Hearth processes (homeserver/src/main.ts), each in its
 * own network namespace with its own address, hostname, embedded database (PGlite) and data dir,
 * talking HTTPS over a virtual bridge (support/netns.ts). Names resolve as on the internet: no port
 * in the server name, so the resolver tries .well-known (refused), SRV (no DNS server: refused) and
 * then the A record from the namespace's hosts file, port 8448. The partition is a real one: hs-b's
 * link goes down while both processes keep running. Needs root and iproute2; skipped otherwise.
 */
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { registerUser, type TestServer } from './support/harness.js';
import { createTestCa, eventually, type TestCa, pagedTimeline } from './support/federation.js';
import { beforeAll } from './support/hooks.js';
import { api, enc, ok, send, type User } from './support/rooms.js';
import { createVirtualNetwork, ip, netnsSkipReason, type VirtualNetwork } from './support/netns.js';
import { FEDERATION_PORT, startHearth, type HearthProcess } from './support/netns_hearth.js';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const ENV = {
  // Short back-off, so the queues retry soon after the link is back.
  HEARTH_FEDERATION_RETRY_BASE_MS: '200',
  HEARTH_FEDERATION_RETRY_MAX_MS: '1000',
  // A peer behind a downed link never answers (SYNs go nowhere): give up on a request after this.
  HEARTH_FEDERATION_REQUEST_TIMEOUT_MS: '10000',
  // Small, so catching up after the partition needs get_missing_events for most of the gap.
  HEARTH_FEDERATION_CATCHUP_EVENTS_PER_ROOM: '5',
  HEARTH_FEDERATION_MISSING_EVENTS_LIMIT: '100',
};

const skip = netnsSkipReason();
if (skip) console.log(`SKIP federation_netns.test.ts: ${skip}`);

type Ctx = { net: VirtualNetwork; ca: TestCa; a: HearthProcess; b: HearthProcess; alice: User; bob: User; roomId: string };
const t = suite<Ctx>('federation: servers on separate hosts (network namespaces)');
const it = skip ? t.skip : t;
const ts = (p: HearthProcess) => p as unknown as TestServer;

beforeAll(t, async (ctx) => {
  if (skip) return;
  ctx.net = createVirtualNetwork(['hs-a', 'hs-b']);
  ctx.ca = await createTestCa();
  const start = async (label: string) => {
    const cert = await ctx.ca.issue({ dns: [ctx.net.host(label).hostname] });
    return startHearth(ctx.net, label, { repoRoot: REPO_ROOT, caFile: ctx.ca.caFile, cert, env: ENV });
  };
  [ctx.a, ctx.b] = await Promise.all([start('hs-a'), start('hs-b')]);
  ctx.alice = await registerUser(ts(ctx.a), 'alice');
  ctx.bob = await registerUser(ts(ctx.b), 'bob');
});
t.after(async (ctx) => {
  if (skip) return;
  await Promise.all([ctx.a?.stop(), ctx.b?.stop()]);
  // HEARTH_NETNS_LOGS=<dir>: keep both servers' output (the temp dir goes with the network).
  const logDir = process.env.HEARTH_NETNS_LOGS;
  if (logDir) for (const s of [ctx.a, ctx.b]) if (s) fs.writeFileSync(path.join(logDir, `${s.label}.log`), s.output());
  ctx.net?.teardown();
  ctx.ca?.remove();
});

/** GET /_matrix/key/v2/server over HTTPS at `address`:8448 (certificate checked for `servername`). */
function serverKeys(address: string, servername: string, ca: TestCa): Promise<{ serverName?: string; error?: string }> {
  return new Promise((resolve) => {
    const req = https.get({ host: address, port: FEDERATION_PORT, path: '/_matrix/key/v2/server', servername, ca: fs.readFileSync(ca.caFile), timeout: 5000, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString('utf8')));
      res.on('end', () => {
        try {
          resolve({ serverName: (JSON.parse(body) as { server_name?: string }).server_name });
        } catch {
          resolve({ error: `not JSON: ${body.slice(0, 100)}` });
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
  });
}

/** Run with node -e inside a namespace: what getaddrinfo and an SRV query answer for argv[1]. */
const DNS_PROBE = `
const dns = require('node:dns/promises');
const host = process.argv[1];
Promise.all([
  dns.lookup(host, { all: true }).then((r) => r.map((a) => a.address), (e) => e.code),
  dns.resolveSrv('_matrix-fed._tcp.' + host).then((r) => r, (e) => e.code),
]).then(([lookup, srv]) => console.log(JSON.stringify({ lookup, srv })));
`;


const holds = async (s: HearthProcess, u: User, roomId: string, eventId: string) => (await api(ts(s), u, 'GET', `/rooms/${enc(roomId)}/event/${enc(eventId)}`)).status === 200;

/** `eventually`, with both servers' last log lines in the failure. */
async function until(ctx: Ctx, check: () => Promise<boolean>, what: string, attempts = 300): Promise<void> {
  try {
    await eventually(check, what, attempts, 200);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n--- hs-a ---\n${ctx.a.tail(15)}\n--- hs-b ---\n${ctx.b.tail(15)}`, { cause: err });
  }
}

/** Both timelines side by side (type, sender, body, depth), for a failure message. */
async function explain(ctx: Ctx, onA: string[], onB: string[]): Promise<string> {
  const describe = async (s: HearthProcess, u: User, id: string) => {
    const res = await api(ts(s), u, 'GET', `/rooms/${enc(ctx.roomId)}/event/${enc(id)}`);
    if (res.status !== 200) return `${id.slice(0, 8)} (not on ${s.label}: ${res.status})`;
    const e = res.body;
    return `${id.slice(0, 8)} ${e.type} ${e.sender} ${e.content?.body ?? e.content?.membership ?? ''}`;
  };
  const lines = ['hs-a:'];
  for (const id of onA) lines.push(`  ${await describe(ctx.a, ctx.alice, id)}`);
  lines.push('hs-b:');
  for (const id of onB) lines.push(`  ${await describe(ctx.b, ctx.bob, id)}`);
  for (const id of onA.filter((x) => !onB.includes(x))) lines.push(`missing on hs-b: ${await describe(ctx.b, ctx.bob, id)}`);
  return lines.join('\n');
}

/** Whether `s` logged a failed transaction to `destination` (its queue backing off). */
const backedOff = (s: HearthProcess, destination: string) => s.logs().some((l) => l.msg === 'federation transaction failed; backing off' && l.destination === destination);

it('the servers are separate hosts: own namespace, address and embedded database each', async ({ net, ca, a, b }) => {
  const nsOf = (pid: number | undefined) => fs.readlinkSync(`/proc/${pid}/ns/net`);
  assert.is.not(nsOf(a.child.pid), nsOf(b.child.pid), 'different network namespaces');
  assert.is.not(nsOf(a.child.pid), nsOf(process.pid), 'not the test process\'s namespace');
  assert.is.not(nsOf(b.child.pid), nsOf(process.pid));
  // A's federation port answers at A's address on the bridge, as hs-a …
  assert.equal(await serverKeys(a.host.fedIp, a.serverName, ca), { serverName: 'hs-a.hearth.test' });
  assert.equal(await serverKeys(b.host.fedIp, b.serverName, ca), { serverName: 'hs-b.hearth.test' });
  // … but not on the root namespace's loopback (nothing there, or at least not hs-a).
  const local = await serverKeys('127.0.0.1', a.serverName, ca);
  assert.is.not(local.serverName, 'hs-a.hearth.test', `127.0.0.1:${FEDERATION_PORT} must not be hs-a: ${JSON.stringify(local)}`);
  // Inside hs-a's namespace the system resolver finds hs-b in the hosts file, and SRV queries fail at
  // once (no DNS server there), so the federation resolver falls through to the A record.
  const probe = net.spawn('hs-a', process.execPath, ['-e', DNS_PROBE, b.serverName], { cwd: REPO_ROOT, env: { PATH: process.env.PATH ?? '' } });
  let probed = '';
  probe.stdout!.on('data', (c: Buffer) => (probed += c.toString('utf8')));
  await new Promise((r) => probe.once('exit', r));
  assert.equal(JSON.parse(probed), { lookup: [b.host.fedIp], srv: 'ECONNREFUSED' }, probed);
  for (const s of [a, b]) {
    const started = s.logs().find((l) => l.msg === 'homeserver started');
    assert.is(started?.database, 'embedded', `${s.label} runs on its embedded database`);
    assert.ok(fs.existsSync(path.join(net.dir, `data-${s.label}`, 'pglite')), `${s.label}'s database lives in its own data dir`);
    assert.equal(ok(await s.request('GET', '/health')), { status: 'ok', checks: { database: 'ok' } });
  }
});

it('alice on hs-a invites bob on hs-b; bob joins; messages flow both ways', async (ctx) => {
  const { a, b, alice, bob } = ctx;
  ctx.roomId = ok(await api(ts(a), alice, 'POST', '/createRoom', { name: 'Across the bridge', preset: 'private_chat' }), 'createRoom').room_id;
  const roomId = ctx.roomId;
  ok(await api(ts(a), alice, 'POST', `/rooms/${enc(roomId)}/invite`, { user_id: bob.user_id }), 'invite bob over federation');
  await until(ctx, async () => ok(await api(ts(b), bob, 'GET', '/sync?timeout=0')).rooms?.invite?.[roomId] !== undefined, 'the invite reaches hs-b');
  ok(await api(ts(b), bob, 'POST', `/join/${enc(roomId)}?server_name=${enc(a.serverName)}`, {}), 'bob joins through hs-a');

  const fromA = await send(ts(a), alice, roomId, 'hello from hs-a');
  await until(ctx, async () => {
    const timelineOnB = ok(await api(ts(b), bob, 'GET', '/sync?timeout=0')).rooms?.join?.[roomId]?.timeline?.events ?? [];
    return timelineOnB.some((e: { event_id: string }) => e.event_id === fromA);
  }, 'alice\'s message in bob\'s /sync on hs-b');
  const fromB = await send(ts(b), bob, roomId, 'hello from hs-b');
  await until(ctx, async () => {
    const page = ok(await api(ts(a), alice, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=10`));
    return page.chunk.some((e: { event_id: string; content: { body?: string } }) => e.event_id === fromB && e.content.body === 'hello from hs-b');
  }, 'bob\'s message in alice\'s /messages on hs-a');
  const members = ok(await api(ts(a), alice, 'GET', `/rooms/${enc(roomId)}/joined_members`)).joined;
  assert.equal(Object.keys(members).sort(), [alice.user_id, bob.user_id].sort());
});

it('a partition: hs-b\'s link is down while alice sends 20 messages and bob one; after restore both hold every event in the same order', async (ctx) => {
  const { net, a, b, alice, bob, roomId } = ctx;
  net.cut('hs-b');
  let restored = false;
  try {
    const duringB = await send(ts(b), bob, roomId, 'bob, during the partition');
    const sent: string[] = [];
    for (let i = 1; i <= 20; i++) sent.push(await send(ts(a), alice, roomId, `alice, during the partition ${i}`));
    // Both queues have tried and failed: the link is really down in both directions.
    await until(ctx, async () => backedOff(a, b.serverName) && backedOff(b, a.serverName), 'both servers fail to reach each other and back off', 600);
    assert.not.ok(await holds(b, bob, roomId, sent[0]!), 'nothing of the partition reached hs-b');
    assert.not.ok(await holds(a, alice, roomId, duringB), 'bob\'s message did not reach hs-a');

    net.restore('hs-b');
    restored = true;
    await until(ctx, async () => holds(b, bob, roomId, sent[sent.length - 1]!), 'alice\'s last message reaches hs-b after the restore', 600);
    await until(ctx, async () => holds(a, alice, roomId, duringB), 'bob\'s message reaches hs-a (hs-b\'s queue retried)', 600);
    for (const id of sent) assert.ok(await holds(b, bob, roomId, id), `hs-b holds ${id}`);

    // hs-b filled the gap with get_missing_events (catch-up resent only the newest 5).
    assert.ok(a.logs().some((l) => l.msg === 'request' && String(l.url).startsWith('/_matrix/federation/v1/get_missing_events/')), 'hs-b asked hs-a for the missing events');

    const onA = await pagedTimeline(ts(a), alice, roomId);
    const onB = await pagedTimeline(ts(b), bob, roomId);
    assert.ok(onA.includes(duringB) && onB.includes(duringB));
    // bob's message is concurrent with alice's 20 (each server places it where it arrived); everything else is in one order.
    const without = (ids: string[]) => ids.filter((id) => id !== duringB);
    const same = JSON.stringify(without(onB)) === JSON.stringify(without(onA));
    assert.ok(same, `the same events in the same order on both servers${same ? '' : `:\n${await explain(ctx, onA, onB)}`}`);
    assert.equal(onA.filter((id) => sent.includes(id)), sent, 'alice\'s messages in the order she sent them');
  } finally {
    if (!restored) net.restore('hs-b');
  }
});

it('after the partition, messages flow both ways again and the timelines end alike', async (ctx) => {
  const { a, b, alice, bob, roomId } = ctx;
  const fromB = await send(ts(b), bob, roomId, 'back');
  await until(ctx, async () => holds(a, alice, roomId, fromB), 'hs-b → hs-a after the partition');
  const fromA = await send(ts(a), alice, roomId, 'welcome back');
  await until(ctx, async () => holds(b, bob, roomId, fromA), 'hs-a → hs-b after the partition');
  const [onA, onB] = [await pagedTimeline(ts(a), alice, roomId), await pagedTimeline(ts(b), bob, roomId)];
  assert.equal(onA.slice(-2), [fromB, fromA]);
  assert.equal(onB.slice(-2), [fromB, fromA]);
  const same = JSON.stringify([...onA].sort()) === JSON.stringify([...onB].sort());
  assert.ok(same, `the same events on both servers${same ? '' : `:\n${await explain(ctx, onA, onB)}`}`);
});

it('both processes stop cleanly and teardown leaves no namespace, link or file behind', async ({ net, a, b }) => {
  assert.equal(await a.stop(), { code: 0, signal: null }, a.tail());
  assert.equal(await b.stop(), { code: 0, signal: null }, b.tail());
  net.teardown();
  const namespaces = ip('netns', 'list');
  const links = ip('-o', 'link', 'show');
  for (const h of Object.values(net.hosts)) {
    assert.not.match(namespaces, h.ns);
    assert.not.ok(fs.existsSync(`/etc/netns/${h.ns}`), `/etc/netns/${h.ns} removed`);
  }
  assert.not.match(links, new RegExp(`hn[bfpcq]${net.id}`), 'no link of this network is left');
  assert.not.match(ip('-4', '-o', 'addr', 'show'), ` ${net.subnet}.`, 'its addresses are gone');
  assert.not.ok(fs.existsSync(net.dir), 'its temp dir (data dirs, logs) is gone');
});

t.run();
