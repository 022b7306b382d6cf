// Hearth push benchmark (not a test): what push rule evaluation costs per event in a room with N
// members. Rules run for every local member inside the event's write transaction
// (homeserver/src/services/push/evaluator.ts), so their cost is paid by every send.
//
//   HEARTH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//     node --import tsx --conditions=source bench/push-bench.ts [--members 1,100,1000] [--messages 200]
//
// In-process: it bootstraps the homeserver (no HTTP) on a scratch database created at
// HEARTH_DATABASE_URL (dropped at the end), grows one room to each member count and prints:
// - evaluations/s: the append hook alone (member list, rules, evaluation, action rows), run in a
//   transaction that is rolled back, per member evaluated;
// - write latency: TimelineService.send of a plain message (auth, signing, storage, relations,
//   search, push evaluation and its rows: everything but HTTP), sequential, p50/p95/mean.
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { loadConfig } from '../homeserver/src/core/config.js';
import { createLogger } from '../homeserver/src/core/logger.js';
import { bootstrap } from '../homeserver/src/server.js';
import type { RoomEvent } from '../homeserver/src/services/rooms/pdu.js';

const { values: argv } = parseArgs({
  options: {
    members: { type: 'string', default: '1,100,1000' },
    messages: { type: 'string', default: '200' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (argv.help) {
  console.log(`usage: HEARTH_DATABASE_URL=postgres://… node --import tsx --conditions=source bench/push-bench.ts [options]
  --members LIST   member counts besides the sender, ascending, comma-separated (default 1,100,1000)
  --messages M     messages per measurement (default 200)`);
  process.exit(0);
}
const SIZES = argv.members!.split(',').map(Number);
const MESSAGES = Number(argv.messages);
if (SIZES.some((n) => !Number.isInteger(n) || n < 1) || !Number.isInteger(MESSAGES) || MESSAGES < 1) {
  console.error('bench: --members and --messages take positive integers');
  process.exit(2);
}
const admin = process.env.HEARTH_DATABASE_URL;
if (!admin) {
  console.error('bench: set HEARTH_DATABASE_URL to a PostgreSQL admin URL (a scratch database is created there)');
  process.exit(2);
}

const dbName = `hearth_bench_${randomBytes(5).toString('hex')}`;
async function adminQuery(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: admin });
  await c.connect();
  await c.query(sql);
  await c.end();
}
const summarize = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  return { p50: at(0.5), p95: at(0.95), mean: s.reduce((a, b) => a + b, 0) / s.length };
};
const ms = (x: number) => `${x.toFixed(2)} ms`;

await adminQuery(`create database ${dbName}`);
const url = new URL(admin);
url.pathname = `/${dbName}`;
const config = loadConfig({
  HEARTH_SERVER_NAME: 'bench.test',
  HEARTH_DATABASE_URL: url.toString(),
  HEARTH_DATA_DIR: '/tmp/hearth-push-bench-unused',
  HEARTH_LOG_LEVEL: 'warn',
  HEARTH_SCRYPT_COST: '1024',
  HEARTH_PRESENCE_ENABLED: 'false',
});
const hs = await bootstrap(config, createLogger(config.logLevel));
const { services, db } = hs.deps;
try {
  const sender = await services.accounts.createAccount({ localpart: 'sender', password: null });
  const { roomId } = await services.rooms.creator.create(sender, { preset: 'public_chat', name: 'Push bench' });
  let members = 0;
  const rows: string[][] = [];
  for (const size of SIZES) {
    for (; members < size; members++) {
      const u = await services.accounts.createAccount({ localpart: `m${members}`, password: null });
      await services.rooms.membership.join(u, roomId);
    }
    // Warm-up: compiles and caches every member's rules.
    await services.rooms.timeline.send(roomId, { type: 'm.room.message', sender, content: { msgtype: 'm.text', body: 'warm-up' } });

    // The hook alone, rolled back.
    const version = await services.rooms.timeline.write((w) => w.roomVersion(roomId));
    let hookMs = 0;
    await db
      .transaction(async (tx) => {
        const t0 = performance.now();
        for (let i = 0; i < MESSAGES; i++) {
          const event = {
            event_id: `$bench${i}`,
            room_id: roomId,
            sender,
            type: 'm.room.message',
            content: { msgtype: 'm.text', body: `hello ${i}` },
            origin_server_ts: Date.now(),
          } as unknown as RoomEvent;
          await services.push.evaluator.onEvent(tx, event, 1_000_000_000 + i, version);
        }
        hookMs = performance.now() - t0;
        throw new Error('rollback');
      })
      .catch((err: unknown) => {
        if (!(err instanceof Error) || err.message !== 'rollback') throw err;
      });

    // Whole writes.
    const lat: number[] = [];
    for (let i = 0; i < MESSAGES; i++) {
      const t0 = performance.now();
      await services.rooms.timeline.send(roomId, { type: 'm.room.message', sender, content: { msgtype: 'm.text', body: `message ${i}` } });
      lat.push(performance.now() - t0);
    }
    const w = summarize(lat);
    rows.push([
      String(size),
      ms(hookMs / MESSAGES),
      `${Math.round((MESSAGES * size) / (hookMs / 1000)).toLocaleString('en')}`,
      ms(w.p50),
      ms(w.p95),
      ms(w.mean),
    ]);
  }
  const head = ['members', 'hook/event', 'evaluations/s', 'write p50', 'write p95', 'write mean'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => c.padStart(widths[i]!)).join('  ');
  console.log(`push bench: ${MESSAGES} messages per size, PostgreSQL scratch database ${dbName}`);
  console.log(line(head));
  for (const r of rows) console.log(line(r));
} finally {
  await hs.close();
  await adminQuery(`drop database if exists ${dbName} with (force)`);
}
