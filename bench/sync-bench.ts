// Hearth sync benchmark (not a test): send throughput, send-to-receive latency to N syncing clients
// (long-poll /sync, and WebSocket sync when the server has it), and server memory per idle client.
//
//   node --import tsx --conditions=source bench/sync-bench.ts [--clients 100,1000] [--messages 30]
//        [--throughput-messages 300] [--burst 200] [--max-seconds 900]
//
// It starts its own homeserver (homeserver/src/main.ts, as a child process on 127.0.0.1) on
// embedded PGlite, or on a scratch database of the PostgreSQL in HEARTH_DATABASE_URL, and stops it
// at the end. See bench/README.md for what each number means.
import os from 'node:os';
import { parseArgs } from 'node:util';
import { startHomeserver, type BenchServer, type MemorySample } from './support/homeserver.js';
import { BenchHttp } from './support/http.js';
import { openWsSync, probeWsSync, WS_SYNC_PATH, type Probe, type WsSyncConnection } from './support/ws-sync.js';
import { bytes, ms, rate, summarize, table, type Summary } from './support/stats.js';

// ---------------------------------------------------------------- options

const { values: argv } = parseArgs({
  options: {
    clients: { type: 'string', default: '100,1000' },
    messages: { type: 'string', default: '30' },
    'throughput-messages': { type: 'string', default: '300' },
    burst: { type: 'string', default: '200' },
    'max-seconds': { type: 'string', default: '900' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (argv.help) {
  console.log(`usage: node --import tsx --conditions=source bench/sync-bench.ts [options]
  --clients LIST             sync client counts to measure, comma-separated (default 100,1000)
  --messages M               messages for the latency measurement, one at a time (default 30)
  --throughput-messages T    messages per throughput mode (sequential, concurrency 8) (default 300)
  --burst B                  messages sent with concurrency 8 while all clients sync (default 200)
  --max-seconds S            the whole run stops after this long, printing what it has (default 900)
environment:
  HEARTH_DATABASE_URL        PostgreSQL admin URL: a scratch database is created there and dropped
                             afterwards (recommended; default: embedded PGlite in a temp dir)
  HEARTH_REDIS_URL           passed to the homeserver (cross-process wake-ups through Redis)
  HEARTH_DATABASE_POOL_SIZE  the homeserver's pool size (default here: 20)
  HEARTH_BENCH_SERVER_NODE_ARGS
                             extra Node flags for the homeserver process, e.g. '--cpu-prof --cpu-prof-dir=/tmp/prof'`);
  process.exit(0);
}

function positiveInt(name: string, v: string): number {
  if (!/^\d+$/.test(v) || Number(v) < 1) {
    console.error(`bench: --${name} must be a positive integer, got '${v}'`);
    process.exit(2);
  }
  return Number(v);
}
const SIZES = argv.clients!.split(',').map((s) => positiveInt('clients', s.trim()));
const LATENCY_MESSAGES = positiveInt('messages', argv.messages!);
const THROUGHPUT_MESSAGES = positiveInt('throughput-messages', argv['throughput-messages']!);
const BURST_MESSAGES = positiveInt('burst', argv.burst!);
const MAX_SECONDS = positiveInt('max-seconds', argv['max-seconds']!);
const CONCURRENCY = 8;
const POLL_TIMEOUT_MS = 30_000;
const PER_MESSAGE_WAIT_MS = 30_000;
const SEQ_KEY = 'hearth.bench.seq';

// ---------------------------------------------------------------- bounds

const startedAt = Date.now();
const deadline = startedAt + MAX_SECONDS * 1000;
class DeadlineExceeded extends Error {}
function timeLeft(): number {
  return deadline - Date.now();
}
function checkDeadline(what: string): void {
  if (timeLeft() <= 0) throw new DeadlineExceeded(`--max-seconds ${MAX_SECONDS} reached during ${what}`);
}

const sleep = (msec: number) => new Promise((r) => setTimeout(r, msec));
const now = () => performance.now();
const enc = encodeURIComponent;
const progress = (msg: string) => process.stderr.write(`[${((Date.now() - startedAt) / 1000).toFixed(1).padStart(6)} s] ${msg}\n`);

/** Runs `fn` over `items` with at most `n` at a time. */
async function pool<T, R>(items: T[], n: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!, i);
      }
    }),
  );
  return out;
}

// ---------------------------------------------------------------- delivery tracking

interface Receiver {
  seen: Set<number>;
}

/** Who received which message when; latencies are from the start of the PUT to the arrival. */
class Tracker {
  readonly sentAt = new Map<number, number>();
  private readonly counts = new Map<number, number>();
  readonly completeAt = new Map<number, number>();
  private readonly waiters = new Map<number, () => void>();
  latencies: number[] = [];
  duplicates = 0;
  target = 0;

  receive(r: Receiver, seq: number, at: number): void {
    if (r.seen.has(seq)) {
      this.duplicates++;
      return;
    }
    r.seen.add(seq);
    const sent = this.sentAt.get(seq);
    if (sent !== undefined) this.latencies.push(at - sent);
    const c = (this.counts.get(seq) ?? 0) + 1;
    this.counts.set(seq, c);
    if (c === this.target) {
      this.completeAt.set(seq, at);
      this.waiters.get(seq)?.();
      this.waiters.delete(seq);
    }
  }

  /** Resets per-phase numbers; `target` is how many receivers each message must reach. */
  phase(target: number): void {
    this.target = target;
    this.latencies = [];
    this.duplicates = 0;
  }

  /** Resolves true once `seq` reached every receiver, false after `timeoutMs`. */
  waitAll(seq: number, timeoutMs: number): Promise<boolean> {
    if ((this.counts.get(seq) ?? 0) >= this.target) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters.delete(seq);
        resolve(false);
      }, Math.max(0, timeoutMs));
      this.waiters.set(seq, () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  delivered(seq: number): number {
    return this.counts.get(seq) ?? 0;
  }
}

// ---------------------------------------------------------------- users and clients

interface User {
  userId: string;
  token: string;
}

async function register(http: BenchHttp, username: string): Promise<User> {
  const password = 'bench password';
  const first = await http.request('POST', '/_matrix/client/v3/register', { body: { username, password } });
  if (first.status !== 401) throw new Error(`register ${username}: expected 401, got ${first.status} ${JSON.stringify(first.body)}`);
  const body = await http.ok('POST', '/_matrix/client/v3/register', {
    body: { username, password, initial_device_display_name: 'bench', auth: { type: 'm.login.dummy', session: first.body.session } },
  });
  return { userId: body.user_id, token: body.access_token };
}

/** One long-poll /sync loop for one user, until stopped. */
class SyncLoop implements Receiver {
  seen = new Set<number>();
  limited = 0;
  errors = 0;
  requests = 0;
  private stopped = false;
  private readonly abort = new AbortController();
  private running: Promise<void> | null = null;

  constructor(
    private readonly http: BenchHttp,
    readonly user: User,
    private readonly roomId: string,
    readonly filterId: string,
    public since: string,
    private readonly tracker: Tracker,
  ) {}

  start(): void {
    this.running = this.loop();
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      try {
        this.requests++;
        const res = await this.http.request(
          'GET',
          `/_matrix/client/v3/sync?since=${enc(this.since)}&timeout=${POLL_TIMEOUT_MS}&filter=${enc(this.filterId)}`,
          { token: this.user.token, signal: this.abort.signal, timeoutMs: POLL_TIMEOUT_MS + 30_000 },
        );
        const at = now();
        if (res.status !== 200) {
          this.errors++;
          await sleep(250);
          continue;
        }
        const room = res.body?.rooms?.join?.[this.roomId];
        if (room?.timeline?.limited) this.limited++;
        for (const ev of room?.timeline?.events ?? []) {
          const seq = ev?.content?.[SEQ_KEY];
          if (typeof seq === 'number') this.tracker.receive(this, seq, at);
        }
        this.since = res.body.next_batch;
      } catch (err) {
        if (this.stopped) break;
        this.errors++;
        if ((err as Error).name === 'RequestBudgetExceeded') break;
        await sleep(250);
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    await this.running;
  }
}

// ---------------------------------------------------------------- results

interface ThroughputRow {
  mode: string;
  n: number;
  seconds: number;
  ack: Summary;
}
interface LatencyRow {
  transport: string;
  clients: number;
  messages: number;
  latency: Summary;
  fanout: Summary;
  missing: number;
  duplicates: number;
  limited: number;
  errors: number;
  note?: string;
}
interface BurstRow {
  transport: string;
  clients: number;
  messages: number;
  sendSeconds: number;
  /** Until every client had every message, or until the bench stopped waiting (`complete` false). */
  deliverSeconds: number;
  complete: boolean;
  delivered: number;
  latency: Summary;
  /** Deliveries still outstanding when the bench stopped waiting. */
  undelivered: number;
  duplicates: number;
  limited: number;
}
interface MemoryRow {
  state: string;
  sample: MemorySample;
  perClient?: { rss: number; heap: number; n: number };
}
interface SetupRow {
  clients: number;
  registerSeconds: number;
  registered: number;
  joinSeconds: number;
  initialSyncSeconds: number;
}

const results = {
  setup: [] as SetupRow[],
  throughput: new Map<number, ThroughputRow[]>(),
  latency: [] as LatencyRow[],
  burst: [] as BurstRow[],
  memory: [] as MemoryRow[],
  notes: [] as string[],
};

function perClient(before: MemorySample, after: MemorySample, n: number) {
  return { rss: (after.rss - before.rss) / n, heap: (after.heapUsed - before.heapUsed) / n, n };
}

// ---------------------------------------------------------------- phases

async function throughput(http: BenchHttp, sender: User, roomId: string, nextSeq: () => number, tracker: Tracker): Promise<ThroughputRow[]> {
  const send = async (seq: number) => {
    const t0 = now();
    tracker.sentAt.set(seq, t0);
    await http.ok('PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/b${seq}`, {
      token: sender.token,
      body: { msgtype: 'm.text', body: `bench message ${seq}`, [SEQ_KEY]: seq },
    });
    return now() - t0;
  };
  const rows: ThroughputRow[] = [];
  for (const conc of [1, CONCURRENCY]) {
    checkDeadline('the throughput phase');
    const seqs = Array.from({ length: THROUGHPUT_MESSAGES }, nextSeq);
    const t0 = now();
    const acks = await pool(seqs, conc, (seq) => send(seq));
    rows.push({ mode: conc === 1 ? 'sequential' : `concurrency ${conc}`, n: seqs.length, seconds: (now() - t0) / 1000, ack: summarize(acks) });
  }
  return rows;
}

async function runSize(
  server: BenchServer,
  http: BenchHttp,
  sender: User,
  users: User[],
  n: number,
  wsProbe: Probe,
  seqGen: () => number,
  registration: { count: number; seconds: number },
): Promise<void> {
  const tracker = new Tracker();
  const clients = users.slice(0, n);
  const setup: SetupRow = { clients: n, registerSeconds: registration.seconds, registered: registration.count, joinSeconds: 0, initialSyncSeconds: 0 };
  results.setup.push(setup);

  // A public room with the sender and n members.
  const { room_id: roomId } = await http.ok('POST', '/_matrix/client/v3/createRoom', {
    token: sender.token,
    body: { preset: 'public_chat', name: `bench ${n}` },
  });
  progress(`N=${n}: joining ${n} users to ${roomId}`);
  let t0 = now();
  await pool(clients, CONCURRENCY, async (u, i) => {
    checkDeadline('joins');
    await http.ok('POST', `/_matrix/client/v3/join/${enc(roomId)}`, { token: u.token, body: {} });
    if ((i + 1) % 250 === 0) progress(`N=${n}: ${i + 1} joined`);
  });
  setup.joinSeconds = (now() - t0) / 1000;

  // Throughput of the write path alone (nobody syncs yet), in this room.
  progress(`N=${n}: send throughput (${THROUGHPUT_MESSAGES} sequential, ${THROUGHPUT_MESSAGES} with concurrency ${CONCURRENCY})`);
  results.throughput.set(n, await throughput(http, sender, roomId, seqGen, tracker));

  // Each client: a stored filter (as real clients do), then an initial sync for its `since`.
  progress(`N=${n}: filters and initial syncs`);
  const filter = { room: { rooms: [roomId], timeline: { limit: 50 }, state: { lazy_load_members: true } }, presence: { types: [] }, account_data: { types: [] } };
  t0 = now();
  const loops = await pool(clients, 16, async (u) => {
    checkDeadline('initial syncs');
    const { filter_id } = await http.ok('POST', `/_matrix/client/v3/user/${enc(u.userId)}/filter`, { token: u.token, body: filter });
    const initial = await http.ok('GET', `/_matrix/client/v3/sync?filter=${enc(filter_id)}&timeout=0`, { token: u.token });
    return new SyncLoop(http, u, roomId, filter_id, initial.next_batch, tracker);
  });
  setup.initialSyncSeconds = (now() - t0) / 1000;

  const memIdle = await server.memory();
  results.memory.push({ state: `N=${n}: before opening long-polls`, sample: memIdle });
  for (const l of loops) l.start();
  // Let every loop park its first long-poll on the server.
  await sleep(1000 + n);
  const memParked = await server.memory();
  results.memory.push({ state: `N=${n}: ${n} long-polls parked`, sample: memParked, perClient: perClient(memIdle, memParked, n) });

  const sendOne = async (seq: number) => {
    tracker.sentAt.set(seq, now());
    await http.ok('PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/b${seq}`, {
      token: sender.token,
      body: { msgtype: 'm.text', body: `bench message ${seq}`, [SEQ_KEY]: seq },
    });
  };

  // Latency: one message at a time, the next once every client has the previous one.
  const latencyPhase = async (transport: string, receivers: Receiver[], extra: () => Pick<LatencyRow, 'limited' | 'errors'>) => {
    progress(`N=${n}: ${transport} latency, ${LATENCY_MESSAGES} messages one at a time`);
    tracker.phase(receivers.length);
    const seqs: number[] = [];
    const fanout: number[] = [];
    let note: string | undefined;
    for (let i = 0; i < LATENCY_MESSAGES; i++) {
      if (timeLeft() <= 0) {
        note = `stopped after ${i} messages (--max-seconds)`;
        break;
      }
      if (i > 0 && i % 10 === 0) progress(`N=${n}: ${transport}: ${i} of ${LATENCY_MESSAGES} messages delivered to all clients`);
      const seq = seqGen();
      seqs.push(seq);
      await sendOne(seq);
      const all = await tracker.waitAll(seq, Math.min(PER_MESSAGE_WAIT_MS, timeLeft()));
      if (all) fanout.push(tracker.completeAt.get(seq)! - tracker.sentAt.get(seq)!);
      else {
        note = `message ${i} reached ${tracker.delivered(seq)} of ${receivers.length} clients within ${PER_MESSAGE_WAIT_MS / 1000} s; stopped`;
        break;
      }
    }
    const missing = seqs.reduce((acc, s) => acc + receivers.filter((r) => !r.seen.has(s)).length, 0);
    results.latency.push({
      transport,
      clients: receivers.length,
      messages: seqs.length,
      latency: summarize(tracker.latencies),
      fanout: summarize(fanout),
      missing,
      duplicates: tracker.duplicates,
      ...extra(),
      note,
    });
  };

  const loopExtra = () => ({ limited: loops.reduce((a, l) => a + l.limited, 0), errors: loops.reduce((a, l) => a + l.errors, 0) });
  await latencyPhase('long-poll', loops, loopExtra);

  // Sustained: a burst with concurrency 8 while every client syncs; delivery = all clients have all.
  const burstPhase = async (transport: string, receivers: Receiver[], limited: () => number) => {
    if (timeLeft() <= 0) return;
    progress(`N=${n}: ${transport}: burst of ${BURST_MESSAGES} messages with concurrency ${CONCURRENCY} while ${receivers.length} clients sync`);
    tracker.phase(receivers.length);
    const limitedBefore = limited();
    const seqs: number[] = [];
    const b0 = now();
    // Stops issuing sends at the deadline; what was sent is still waited for (within the bounds).
    await pool(Array.from({ length: BURST_MESSAGES }), CONCURRENCY, async () => {
      if (timeLeft() <= 0) return;
      const seq = seqGen();
      seqs.push(seq);
      await sendOne(seq);
    });
    const sendSeconds = (now() - b0) / 1000;
    const waitUntil = Date.now() + Math.min(120_000, Math.max(0, timeLeft()));
    let complete = true;
    for (const seq of seqs) {
      if (!(await tracker.waitAll(seq, waitUntil - Date.now()))) {
        complete = false;
        break;
      }
    }
    const lastAt = Math.max(...seqs.map((s) => tracker.completeAt.get(s) ?? now()));
    const undelivered = seqs.reduce((acc, s) => acc + receivers.filter((r) => !r.seen.has(s)).length, 0);
    results.burst.push({
      transport,
      clients: receivers.length,
      messages: seqs.length,
      sendSeconds,
      deliverSeconds: (lastAt - b0) / 1000,
      complete,
      delivered: seqs.length * receivers.length - undelivered,
      latency: summarize(tracker.latencies),
      undelivered,
      duplicates: tracker.duplicates,
      limited: limited() - limitedBefore,
    });
  };
  await burstPhase('long-poll', loops, () => loops.reduce((a, l) => a + l.limited, 0));

  progress(`N=${n}: stopping ${n} long-poll loops`);
  await Promise.all(loops.map((l) => l.stop()));

  // WebSocket sync: memory per idle socket, then the same latency measurement over the sockets.
  if (!wsProbe.available) {
    results.notes.push(`WebSocket sync (N=${n}): not measured: ${WS_SYNC_PATH}: ${wsProbe.reason}.`);
    return;
  }
  checkDeadline('the WebSocket phase');
  await sleep(500);
  const memBeforeWs = await server.memory();
  results.memory.push({ state: `N=${n}: long-polls closed, before WebSockets`, sample: memBeforeWs });
  progress(`N=${n}: opening ${n} WebSocket sync connections`);
  const wsReceivers: (Receiver & { conn: WsSyncConnection })[] = [];
  await pool(loops, 32, async (l) => {
    const r = { seen: new Set<number>() } as Receiver & { conn: WsSyncConnection };
    // Each device resumes from its last long-poll position: nothing old is sent again.
    r.conn = openWsSync(server.baseUrl, l.user.token, {
      filterId: l.filterId,
      since: l.since,
      onSync: (response, at) => {
        for (const ev of response?.rooms?.join?.[roomId]?.timeline?.events ?? []) {
          const seq = ev?.content?.[SEQ_KEY];
          if (typeof seq === 'number') tracker.receive(r, seq, at);
        }
      },
    });
    wsReceivers.push(r);
    await r.conn.ready;
  });
  await sleep(1000);
  const open = wsReceivers.filter((r) => r.conn.socket.readyState === r.conn.socket.OPEN);
  const ready = await Promise.all(open.map((r) => r.conn.ready));
  const memWs = await server.memory();
  results.memory.push({
    state: `N=${n}: ${open.length} idle WebSockets (authenticated)`,
    sample: memWs,
    perClient: open.length ? perClient(memBeforeWs, memWs, open.length) : undefined,
  });
  const closedEarly = wsReceivers.filter((r) => r.conn.closed);
  if (closedEarly.length) {
    const first = closedEarly[0]!.conn;
    results.notes.push(
      `WebSocket sync (N=${n}): ${closedEarly.length} of ${wsReceivers.length} sockets closed by the server ` +
        `(first: ${first.closed!.code} ${first.closed!.reason}${first.error ? `, ${first.error.errcode}` : ''}).`,
    );
  }
  const wsErrors = () => wsReceivers.filter((r) => r.conn.closed).length - closedEarly.length;
  if (open.length > 0 && ready.every(Boolean)) {
    await latencyPhase('WebSocket', open, () => ({ limited: 0, errors: wsErrors() }));
    await burstPhase('WebSocket', open, () => 0);
  } else {
    results.notes.push(
      `WebSocket latency (N=${n}): not measured: ${ready.filter(Boolean).length} of ${open.length} open sockets were answered with a ready frame ` +
        `(see bench/support/ws-sync.ts for the protocol the bench speaks).`,
    );
  }
  for (const r of wsReceivers) r.conn.close();
  await sleep(1000);
  results.memory.push({ state: `N=${n}: WebSockets closed`, sample: await server.memory() });
}

// ---------------------------------------------------------------- report

function printReport(server: BenchServer | null, wsProbe: Probe | null): void {
  const out: string[] = [];
  const cpus = os.cpus();
  out.push('');
  out.push('Hearth sync benchmark');
  out.push(`  node ${process.version}, ${cpus.length} x ${cpus[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM`);
  if (server) out.push(`  homeserver: pid ${server.pid} at ${server.baseUrl}; database: ${server.database}`);
  out.push(
    `  options: clients ${SIZES.join(', ')}; latency messages ${LATENCY_MESSAGES}; throughput messages ${THROUGHPUT_MESSAGES} per mode; burst ${BURST_MESSAGES}; ` +
      `WebSocket sync: ${wsProbe ? (wsProbe.available ? 'present' : `absent (${wsProbe.reason})`) : 'not probed'}`,
  );

  if (results.setup.length) {
    out.push('', 'Setup (timings of the preparation, for orientation)');
    out.push(
      table([
        ['clients', 'registered', 'register s', 'joins s', 'joins/s', 'filters+initial syncs s'],
        ...results.setup.map((s) => [
          String(s.clients),
          String(s.registered),
          s.registerSeconds.toFixed(1),
          s.joinSeconds.toFixed(1),
          rate(s.clients / s.joinSeconds),
          s.initialSyncSeconds.toFixed(1),
        ]),
      ]),
    );
  }

  if (results.throughput.size) {
    out.push('', 'Send throughput: PUT /send acknowledged (committed) per second, one sender, no syncing clients');
    const rows = [['room members', 'mode', 'messages', 'msgs/s', 'ack p50', 'ack p99', 'ack max']];
    for (const [n, list] of results.throughput) {
      for (const r of list) rows.push([String(n + 1), r.mode, String(r.n), rate(r.n / r.seconds), ms(r.ack.p50), ms(r.ack.p99), ms(r.ack.max)]);
    }
    out.push(table(rows));
  }

  if (results.latency.length) {
    out.push('', `Send-to-receive latency: one message at a time, from the start of the PUT to its arrival at each client`);
    out.push(
      table([
        ['transport', 'clients', 'msgs', 'deliveries', 'p50', 'p95', 'p99', 'max', 'all-clients p50', 'all-clients p99', 'missing', 'dup', 'limited', 'errors'],
        ...results.latency.map((r) => [
          r.transport,
          String(r.clients),
          String(r.messages),
          String(r.latency.n),
          ms(r.latency.p50),
          ms(r.latency.p95),
          ms(r.latency.p99),
          ms(r.latency.max),
          ms(r.fanout.p50),
          ms(r.fanout.p99),
          String(r.missing),
          String(r.duplicates),
          String(r.limited),
          String(r.errors),
        ]),
      ]),
    );
    for (const r of results.latency) if (r.note) out.push(`  note (${r.transport}, ${r.clients} clients): ${r.note}`);
  }

  if (results.burst.length) {
    out.push('', `Sustained: ${BURST_MESSAGES} messages sent with concurrency ${CONCURRENCY} while every client syncs`);
    out.push(
      table([
        ['transport', 'clients', 'msgs', 'sent msgs/s', 'all delivered after', 'deliveries/s', 'latency p50', 'p95', 'p99', 'undelivered', 'dup', 'limited'],
        ...results.burst.map((b) => [
          b.transport,
          String(b.clients),
          String(b.messages),
          rate(b.messages / b.sendSeconds),
          b.complete ? `${b.deliverSeconds.toFixed(2)} s` : `> ${b.deliverSeconds.toFixed(0)} s (gave up)`,
          rate(b.delivered / b.deliverSeconds),
          ms(b.latency.p50),
          ms(b.latency.p95),
          ms(b.latency.p99),
          String(b.undelivered),
          String(b.duplicates),
          String(b.limited),
        ]),
      ]),
    );
  }

  if (results.memory.length) {
    out.push('', 'Homeserver process memory (after a full GC in the server)');
    out.push(
      table([
        ['state', 'RSS', 'heap used', 'Δ RSS / client', 'Δ heap / client'],
        ...results.memory.map((m) => [
          m.state,
          bytes(m.sample.rss),
          bytes(m.sample.heapUsed),
          // RSS also moves with the allocator returning memory after a busy phase: a drop is noise, not a saving.
          m.perClient ? (m.perClient.rss >= 0 ? bytes(m.perClient.rss) : '< 0 (noise)') : '',
          m.perClient ? bytes(m.perClient.heap) : '',
        ]),
      ]),
    );
  }
  for (const note of results.notes) out.push(`  ${note}`);
  out.push('');
  console.log(out.join('\n'));
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  let server: BenchServer | null = null;
  let http: BenchHttp | null = null;
  let wsProbe: Probe | null = null;
  let exitCode = 0;
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    progress('interrupted: stopping the homeserver');
    void (async () => {
      http?.close();
      await server?.stop();
      process.exit(130);
    })();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // A last resort if something hangs past the deadline: stop the server and leave.
  const hardStop = setTimeout(() => {
    progress('hard deadline: giving up');
    void server?.stop().finally(() => process.exit(1));
  }, (MAX_SECONDS + 60) * 1000);
  hardStop.unref();

  try {
    progress('starting the homeserver');
    server = await startHomeserver({
      databaseUrl: process.env.HEARTH_DATABASE_URL,
      redisUrl: process.env.HEARTH_REDIS_URL,
      poolSize: Number(process.env.HEARTH_DATABASE_POOL_SIZE ?? 20),
      nodeArgs: (process.env.HEARTH_BENCH_SERVER_NODE_ARGS ?? '').split(/\s+/).filter(Boolean),
    });
    progress(`homeserver up at ${server.baseUrl} (${server.database})`);
    const maxN = Math.max(...SIZES);
    // Every request the run may make, with room to spare: setup, sends, and at most one long-poll
    // per client per message (plus one per poll timeout) during the measured phases.
    const perMessage = LATENCY_MESSAGES + BURST_MESSAGES;
    const budget = SIZES.reduce((acc, n) => acc + 8 * n + 2 * THROUGHPUT_MESSAGES + 2 * perMessage + n * (perMessage + 40), 1000 + 2 * maxN);
    http = new BenchHttp(server.baseUrl, budget, maxN + 64);
    wsProbe = await probeWsSync(server.baseUrl);
    progress(`WebSocket sync: ${wsProbe.available ? 'present' : `absent (${wsProbe.reason})`}`);
    results.memory.push({ state: 'after start-up', sample: await server.memory() });

    const sender = await register(http, 'bench-sender');
    const users: User[] = [];
    let seq = 0;
    const seqGen = () => ++seq;
    for (const n of SIZES) {
      checkDeadline('registration');
      const t0 = now();
      const missing = Array.from({ length: Math.max(0, n - users.length) }, (_, i) => users.length + i);
      if (missing.length) progress(`registering ${missing.length} users`);
      users.push(...(await pool(missing, 16, (i) => register(http!, `bench${i}`))));
      await runSize(server, http, sender, users, n, wsProbe, seqGen, { count: missing.length, seconds: (now() - t0) / 1000 });
    }
  } catch (err) {
    exitCode = 1;
    if (err instanceof DeadlineExceeded) results.notes.push(`Stopped early: ${err.message}.`);
    else results.notes.push(`Stopped by an error: ${(err as Error).stack ?? String(err)}`);
  } finally {
    if (http) results.notes.push(`HTTP requests made: ${http.requests}.`);
    printReport(server, wsProbe);
    http?.close();
    await server?.stop();
  }
  return exitCode;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
