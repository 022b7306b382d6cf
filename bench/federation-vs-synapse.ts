// Hearth against Synapse, side by side, as federation receivers:
//
//   HEARTH_DATABASE_URL=postgres://postgres@127.0.0.1:55432/postgres \
//     node --import tsx --conditions=source bench/federation-vs-synapse.ts [--members 2000] [--pdus 1000]
//
// Three Hearth servers in this process (the federation test fixture: HTTPS, a throwaway CA,
// IP-literal server names so Synapse can resolve them, a scratch PostgreSQL database each) and a
// throwaway Synapse 1.163.2 child process (homeserver/test/support/synapse.ts; PostgreSQL by
// default, --synapse-db sqlite for its test set-up). A hosts a public room; C's key signs
// --members joins of C users and --history messages, delivered to A's /send. Then:
//   1. Join: bob on Hearth B joins through A (make_join/send_join, full state, every event
//      checked, answered when done); sam on Synapse joins through A (Synapse asks for a
//      partial-state join, omit_members, answers /join early and fetches the full state in the
//      background): the time of its /join and the time until GET /members answers with every
//      member (Synapse holds /members until the room's partial state is resolved).
//   2. Ingestion: the same --pdus messages, crafted and signed by C (chained after both joins),
//      go to B, then to Synapse, as sequential /send transactions of 50 from C. Measured from the
//      first /send to the moment the last PDU shows in a /sync long-poll of the server's user
//      (visible to clients), and per PDU from the start of its /send to the /sync answer carrying
//      it. The /send answer times are printed too: Synapse answers /send once PDUs are staged, not
//      processed, so the time the sender saw is not the ingestion time.
//   3. Memory and CPU: Synapse's RSS and CPU seconds (from /proc); Hearth B shares this Node
//      process with A, C and the load generator, so only the whole process is shown, labelled so.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { randomString } from '../homeserver/src/core/ids.js';
import { registerUser, type TestServer } from '../homeserver/test/support/harness.js';
import { startFederationCluster, type FederationCluster, type FederationTestServer } from '../homeserver/test/support/federation.js';
import { startSynapse, type SynapseDatabase, type SynapsePeer } from '../homeserver/test/support/synapse.js';
import { benchAdminUrl, PduChain, sendTransactions, TXN_PDUS, type CraftedPdu } from './support/federation-chain.js';
import { ms, rate, summarize } from './support/stats.js';

const { values: args } = parseArgs({
  options: {
    members: { type: 'string', default: '2000' },
    history: { type: 'string', default: '200' },
    pdus: { type: 'string', default: '1000' },
    'synapse-db': { type: 'string', default: 'postgres' },
    'timeout-s': { type: 'string', default: '900' },
    help: { type: 'boolean', default: false },
  },
});
const USAGE = 'usage: HEARTH_DATABASE_URL=postgres://… node --import tsx --conditions=source bench/federation-vs-synapse.ts [--members 2000] [--history 200] [--pdus 1000] [--synapse-db postgres|sqlite] [--timeout-s 900]';
if (args.help) {
  console.log(USAGE);
  process.exit(0);
}
const MEMBERS = Number(args.members);
const HISTORY = Number(args.history);
const PDUS = Number(args.pdus);
/** Each wait (a join, a resync, an ingestion phase) gives up after this long. */
const TIMEOUT_MS = Number(args['timeout-s']) * 1000;
const SYNAPSE_DB = args['synapse-db'];
if (![MEMBERS, HISTORY, PDUS, TIMEOUT_MS].every((n) => Number.isInteger(n) && n >= 0) || MEMBERS < 1 || PDUS < 1 || (SYNAPSE_DB !== 'postgres' && SYNAPSE_DB !== 'sqlite')) {
  console.error(USAGE);
  process.exit(2);
}
const admin = benchAdminUrl();

const enc = encodeURIComponent;
const ts = (s: FederationTestServer) => s as unknown as TestServer;
const log = (m: string) => console.error(`bench: ${m}`);
const sleep = (t: number) => new Promise((r) => setTimeout(r, t));

/** The fields of client-API answers the bench reads (/members, /sync). */
interface ClientAnswer {
  chunk: unknown[];
  next_batch: string;
  rooms?: { join?: Record<string, { timeline?: { events?: { event_id: string }[] } }> };
}

/** A client-API call over real HTTP (both servers alike); the parsed JSON or an error with the body. */
async function call(base: string, token: string, method: string, p: string, body?: unknown, signal?: AbortSignal): Promise<ClientAnswer> {
  const res = await fetch(`${base}/_matrix/client/v3${p}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${text.slice(0, 300)}`);
  return JSON.parse(text) as ClientAnswer;
}

async function until(check: () => Promise<boolean>, what: string, pauseMs = 100): Promise<void> {
  const deadline = Date.now() + TIMEOUT_MS;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(pauseMs);
  }
}

/**
 * A /sync long-poll loop for one user (lazy-loaded members, timeline of up to 100, this room
 * only) noting when each event id first arrives. A limited timeline may skip events; the newest
 * is always in it.
 */
function watchSync(base: string, token: string, roomId: string) {
  const seen = new Map<string, number>();
  const stop = new AbortController();
  const filter = enc(JSON.stringify({ room: { rooms: [roomId], timeline: { limit: 100 }, state: { lazy_load_members: true } }, presence: { types: [] } }));
  let failure: unknown;
  let ready!: () => void;
  /** Resolves once the initial sync is done (or the loop failed: see check()). */
  const started = new Promise<void>((r) => (ready = r));
  const loop = (async () => {
    let since = (await call(base, token, 'GET', `/sync?timeout=0&filter=${filter}`, undefined, stop.signal)).next_batch;
    ready();
    while (!stop.signal.aborted) {
      const s = await call(base, token, 'GET', `/sync?timeout=30000&since=${enc(since)}&filter=${filter}`, undefined, stop.signal);
      const now = performance.now();
      for (const e of s.rooms?.join?.[roomId]?.timeline?.events ?? []) if (!seen.has(e.event_id)) seen.set(e.event_id, now);
      since = s.next_batch;
    }
  })().catch((e: unknown) => {
    // Aborted by stop() (or the server went away on CTRL-C): not a failure of the run.
    if (!stop.signal.aborted) failure = e;
    ready();
  });
  return {
    seen,
    started,
    /** Throws what ended the loop, if it ended by itself. */
    check: () => {
      if (failure) throw failure instanceof Error ? failure : new Error(String(failure));
    },
    stop: async () => {
      stop.abort();
      await loop;
    },
  };
}

/** How many of `ids` `token`'s user can page back to with /messages (newest first, 100 a page). */
async function visibleOf(base: string, token: string, roomId: string, ids: string[]): Promise<number> {
  const want = new Set(ids);
  let found = 0;
  let from = '';
  for (let page = 0; page < Math.ceil((ids.length + HISTORY) / 100) + 5 && found < want.size; page++) {
    const res = (await call(base, token, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=100${from ? `&from=${enc(from)}` : ''}`)) as ClientAnswer & { end?: string };
    for (const e of res.chunk as { event_id: string }[]) if (want.has(e.event_id)) found++;
    if (!res.end || res.chunk.length === 0) break;
    from = res.end;
  }
  return found;
}

/** The process (Linux /proc) whose command line has `arg`: Synapse's, found by its config file (it writes no pid file in the foreground). */
function pidWithArgument(arg: string): number | undefined {
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').includes(arg)) return Number(d);
    } catch {
      /* gone meanwhile */
    }
  }
  return undefined;
}

/** utime + stime of a process in seconds (Linux /proc), or NaN. */
function cpuSeconds(pid: number | undefined): number {
  if (!pid) return NaN;
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // clock ticks; USER_HZ is 100 on Linux
  } catch {
    return NaN;
  }
}
function rssBytes(pid: number | undefined): number {
  if (!pid) return NaN;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}
const mib = (b: number) => (Number.isFinite(b) ? `${(b / 1024 / 1024).toFixed(0)} MiB` : 'n/a');

/** Events Synapse dropped from its inbound staging queue (its log's "Pruning N events in room … from federation queue"). */
function pruned(dir: string): number {
  const logText = fs.existsSync(path.join(dir, 'homeserver.log')) ? fs.readFileSync(path.join(dir, 'homeserver.log'), 'utf8') : '';
  return [...logText.matchAll(/Pruning (\d+) events in room .* from federation queue/g)].reduce((n, m) => n + Number(m[1]), 0);
}

/** A scratch PostgreSQL database for Synapse: UTF-8 with C collation, as Synapse requires. */
async function synapseDatabase(): Promise<{ config: SynapseDatabase; drop: () => Promise<void> }> {
  const name = `hearth_bench_synapse_${randomString(8).toLowerCase()}`;
  const withAdmin = async (sql: string) => {
    const c = new pg.Client({ connectionString: admin });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  await withAdmin(`create database ${name} encoding 'UTF8' lc_collate 'C' lc_ctype 'C' template template0`);
  const u = new URL(admin!);
  const config: SynapseDatabase = {
    name: 'psycopg2',
    args: {
      user: decodeURIComponent(u.username || 'postgres'),
      ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
      host: u.hostname,
      port: Number(u.port || 5432),
      database: name,
      cp_min: 5,
      cp_max: 10,
    },
  };
  return { config, drop: () => withAdmin(`drop database if exists ${name} with (force)`) };
}

// ------------------------------------------------------------------------------------------------
// Set-up, with clean-up on every exit path (CTRL-C included).

let cluster: FederationCluster | undefined;
let synapse: SynapsePeer | undefined;
let dropSynapseDb: (() => Promise<void>) | undefined;
let cleaning: Promise<void> | undefined;
const cleanUp = () =>
  (cleaning ??= (async () => {
    await synapse?.stop().catch((e: unknown) => log(`stopping Synapse: ${String(e)}`));
    await dropSynapseDb?.().catch((e: unknown) => log(`dropping Synapse's database: ${String(e)}`));
    await cluster?.close().catch((e: unknown) => log(`closing the Hearth servers: ${String(e)}`));
  })());
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping Synapse and dropping the scratch databases`);
    void cleanUp().finally(() => process.exit(130));
  });
}

interface Ingestion {
  seconds: number;
  sendSeconds: number;
  refused: number;
  latency: ReturnType<typeof summarize>;
  cpuS: number;
  /** Stream PDUs found by paging /messages afterwards. */
  visible: number;
  /** /get_missing_events and /state_ids (or /state) requests A answered during the phase. */
  missing: number;
  stateIds: number;
  /** /backfill requests A answered while the stream was paged through with /messages afterwards. */
  backfills: number;
  /** PDUs Synapse dropped from its inbound queue during the phase (0 for Hearth). */
  pruned: number;
}

try {
  // IP-literal names: Synapse resolves peers through the system resolver, which knows no *.localhost here.
  cluster = await startFederationCluster(['hs-a', 'hs-b', 'hs-c'], {
    hostname: () => '127.0.0.1',
    env: () => ({ HEARTH_DATABASE_POOL_SIZE: '20', HEARTH_FEDERATION_REQUEST_TIMEOUT_MS: '600000' }),
  });
  const [a, b, c] = ['hs-a', 'hs-b', 'hs-c'].map((l) => cluster!.get(l)) as [FederationTestServer, FederationTestServer, FederationTestServer];
  let synapseDbLabel = 'SQLite';
  let database: SynapseDatabase | undefined;
  if (SYNAPSE_DB === 'postgres') {
    const d = await synapseDatabase();
    dropSynapseDb = d.drop;
    database = d.config;
    synapseDbLabel = 'PostgreSQL';
  }
  synapse = await startSynapse(cluster, { database });
  const sy = synapse;
  const synapsePid = pidWithArgument(path.join(sy.dir, 'homeserver.yaml'));
  if (!synapsePid) log('Synapse\'s process id not found: no CPU/RSS figures for it');
  const bUrl = await b.listen();

  const alice = await registerUser(ts(a), 'alice');
  const bob = await registerUser(ts(b), 'bob');
  const samReg = await sy.request('POST', '/_matrix/client/v3/register', { body: { username: 'sam', password: 'bench-password-1', auth: { type: 'm.login.dummy' } } });
  if (samReg.status !== 200) throw new Error(`register on Synapse: ${samReg.status} ${JSON.stringify(samReg.body)}`);
  const sam = samReg.body as { user_id: string; access_token: string };

  const created = await a.request('POST', '/_matrix/client/v3/createRoom', { token: alice.access_token, body: { preset: 'public_chat' } });
  if (created.status !== 200) throw new Error(`createRoom: ${created.status} ${JSON.stringify(created.body)}`);
  const roomId = created.body.room_id as string;
  const chain = await PduChain.on(a, roomId, c);
  const cUser = (i: number) => `@m${i}:${c.serverName}`;
  log(`room ${roomId} (version ${chain.version}) on A; Synapse ${sy.serverName} on ${synapseDbLabel}; building ${MEMBERS} members and ${HISTORY} messages`);
  const t0 = performance.now();
  const room = [
    ...Array.from({ length: MEMBERS }, (_, i) => chain.join(cUser(i))),
    ...Array.from({ length: HISTORY }, (_, i) => chain.message(cUser(i % MEMBERS), `history ${i}`)),
  ];
  const built = await sendTransactions(c, a.serverName, room);
  if (built.refused > 0) throw new Error(`A refused ${built.refused} of the room's PDUs`);
  log(`room built in ${((performance.now() - t0) / 1000).toFixed(0)} s`);

  // 1. Joins.
  log('Hearth B joins');
  let t = performance.now();
  const bJoin = await b.request('POST', `/_matrix/client/v3/join/${enc(roomId)}?server_name=${enc(a.serverName)}`, { token: bob.access_token, body: {} });
  const bJoinS = (performance.now() - t) / 1000;
  if (bJoin.status !== 200) throw new Error(`B's join: ${bJoin.status} ${JSON.stringify(bJoin.body)}`);
  t = performance.now();
  const bMembers = (await call(bUrl, bob.access_token, 'GET', `/rooms/${enc(roomId)}/members?membership=join`)).chunk.length;
  const bMembersS = (performance.now() - t) / 1000;

  log('Synapse joins');
  t = performance.now();
  await call(sy.clientUrl, sam.access_token, 'POST', `/join/${enc(roomId)}?server_name=${enc(a.serverName)}`, {});
  const syJoinS = (performance.now() - t) / 1000;
  // Synapse's /members waits for the room's full state: its answer marks the end of the resync.
  let syMembers = 0;
  await until(async () => {
    syMembers = (await call(sy.clientUrl, sam.access_token, 'GET', `/rooms/${enc(roomId)}/members?membership=join`)).chunk.length;
    return syMembers >= MEMBERS + 2;
  }, "Synapse's full member list");
  const syResolvedS = (performance.now() - t) / 1000;
  log(`joins: B ${bJoinS.toFixed(1)} s; Synapse /join ${syJoinS.toFixed(1)} s, full state after ${syResolvedS.toFixed(1)} s`);

  // Both receivers hold both joins before the stream starts (A's sender tells B about Synapse's join).
  await until(async () => (await call(bUrl, bob.access_token, 'GET', `/rooms/${enc(roomId)}/members?membership=join`)).chunk.length >= MEMBERS + 3, "B's view of Synapse's join");

  // 2. Ingestion, per mode: B first, then Synapse, never both at once (two shared cores).
  //    burst: each transaction goes as soon as the previous one is answered (a federation sender's pace);
  //    paced: the next transaction goes once the previous one's last PDU is in the receiver's /sync.
  const nodeCpu = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  };
  const ingest = async (label: string, stream: CraftedPdu[], paced: boolean, destination: string, base: string, token: string, cpu: () => number): Promise<Ingestion> => {
    const lastId = stream.at(-1)!.id;
    const watch = watchSync(base, token, roomId);
    await watch.started;
    watch.check();
    const inSync = (id: string) => until(async () => {
      watch.check();
      return watch.seen.has(id);
    }, `${label}: ${id} in /sync`, 20);
    const sentAt = new Map<string, number>();
    a.federationRequests.length = 0;
    const pruned0 = pruned(sy.dir);
    const cpu0 = cpu();
    const start = performance.now();
    const { refused } = await sendTransactions(a, destination, stream, (batch, at) => {
      for (const x of batch) sentAt.set(x.id, at);
    }, paced ? (batch) => inSync(batch.at(-1)!.id) : undefined);
    const sendSeconds = (performance.now() - start) / 1000;
    await inSync(lastId);
    const seconds = (watch.seen.get(lastId)! - start) / 1000;
    const cpuS = cpu() - cpu0;
    await watch.stop();
    const latency = summarize([...watch.seen].flatMap(([id, at]) => (sentAt.has(id) ? [at - sentAt.get(id)!] : [])));
    const asked = (what: string) => a.federationRequests.filter((r) => r.url.startsWith(`/_matrix/federation/v1/${what}/`)).length;
    const missing = asked('get_missing_events');
    const stateIds = asked('state_ids') + asked('state');
    a.federationRequests.length = 0;
    const visible = await visibleOf(base, token, roomId, stream.map((x) => x.id));
    // Paging back may make a receiver fetch what it skipped (/backfill from A).
    const backfills = asked('backfill');
    log(`${label}: last PDU in /sync after ${seconds.toFixed(1)} s (last /send answered after ${sendSeconds.toFixed(1)} s); ${visible} of ${PDUS} in /messages`);
    return { seconds, sendSeconds, refused, latency, cpuS, visible, missing, stateIds, backfills, pruned: pruned(sy.dir) - pruned0 };
  };
  const results: { mode: string; onB: Ingestion; onSy: Ingestion }[] = [];
  for (const mode of ['burst', 'paced']) {
    // A new stream per mode, chained on A's latest event. A stores it first and then forwards it: a
    // receiver missing a prev event asks the transaction's origin (/get_missing_events), and only A
    // can answer (C's process never saw these events).
    await chain.rebase(a);
    const stream = Array.from({ length: PDUS }, (_, i) => chain.message(cUser(i % MEMBERS), `${mode} ${i}`));
    const onA = await sendTransactions(c, a.serverName, stream);
    if (onA.refused > 0) throw new Error(`A refused ${onA.refused} of the stream's PDUs`);
    const paced = mode === 'paced';
    const onB = await ingest(`${mode}, Hearth B`, stream, paced, b.serverName, bUrl, bob.access_token, nodeCpu);
    const onSy = await ingest(`${mode}, Synapse`, stream, paced, sy.serverName, sy.clientUrl, sam.access_token, () => cpuSeconds(synapsePid));
    results.push({ mode, onB, onSy });
  }

  // 3. Report.
  const pad = (cells: string[], widths: number[]) => cells.map((x, i) => (i === 0 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!))).join('  ');
  const w = [48, 24, 24];
  const row = (label: string, h: string, s: string) => console.log(pad([label, h, s], w));
  console.log(`\nHearth vs Synapse 1.163.2 as federation receivers, ${new Date().toISOString().slice(0, 10)}`);
  console.log(`room version ${chain.version}, ${MEMBERS} members (+ alice, bob, sam), ${HISTORY} history messages, ${PDUS} streamed PDUs per mode in /send transactions of ${TXN_PDUS}`);
  console.log(`Hearth: PostgreSQL (pool 20), in the bench's Node process; Synapse: ${synapseDbLabel}${database ? ' (cp_max 10)' : ''}, own process\n`);
  row('', 'Hearth B', 'Synapse');
  row('-'.repeat(w[0]!), '-'.repeat(w[1]!), '-'.repeat(w[2]!));
  row('join: /join answered', `${bJoinS.toFixed(1)} s (full state)`, `${syJoinS.toFixed(1)} s (partial)`);
  row('join: full member list (GET /members)', `${(bJoinS + bMembersS).toFixed(1)} s (${bMembers})`, `${syResolvedS.toFixed(1)} s (${syMembers})`);
  for (const { mode, onB, onSy } of results) {
    const r = (label: string, f: (x: Ingestion) => string) => row(`${mode}: ${label}`, f(onB), f(onSy));
    r('PDUs/s, first /send → last PDU in /sync', (x) => rate(PDUS / x.seconds));
    r('last PDU in /sync after', (x) => `${x.seconds.toFixed(1)} s`);
    r('last /send answered after', (x) => `${x.sendSeconds.toFixed(1)} s`);
    r('refused in /send answers', (x) => String(x.refused));
    r('/get_missing_events, /state_ids asked of A', (x) => `${x.missing}, ${x.stateIds}`);
    r('stream PDUs in /messages afterwards', (x) => `${x.visible} of ${PDUS}`);
    r('/backfill asked of A while paging back', (x) => String(x.backfills));
    row(`${mode}: PDUs pruned from the inbound queue`, 'n/a', String(onSy.pruned));
    r('latency /send start → /sync: PDUs seen', (x) => `${x.latency.n} of ${PDUS}`);
    for (const p of ['p50', 'p95', 'p99'] as const) r(`latency ${p}`, (x) => ms(x.latency[p]));
    r('CPU seconds during the phase', (x) => (x === onB ? `${x.cpuS.toFixed(1)} (Node process)` : `${x.cpuS.toFixed(1)} (Synapse)`));
  }
  row('RSS at the end', `${mib(process.memoryUsage().rss)} (A+B+C+bench)`, mib(rssBytes(synapsePid)));
  console.log('\nNeither CPU figure includes PostgreSQL\'s backends. Hearth B is not a process of its own: its CPU and RSS');
  console.log('cannot be separated from A (which sends the stream), C and the bench.');
  if (results.some(({ onB, onSy }) => onB.refused + onSy.refused > 0 || onB.visible < PDUS || onSy.visible < PDUS)) process.exitCode = 1;
} catch (e) {
  // After CTRL-C, requests fail because the servers are going away: not worth a report.
  if (!cleaning) {
    console.error(e);
    if (synapse) console.error(`Synapse log tail:\n${synapse.logTail(30)}`);
  }
  process.exitCode = 1;
} finally {
  await cleanUp();
}
