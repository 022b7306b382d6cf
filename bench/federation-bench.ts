// Federation benchmark (issue 5):
//
//   HEARTH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//     node --import tsx --conditions=source bench/federation-bench.ts [--members 10000] [--pdus 10000]
//
// Starts three real homeservers in this process with the federation test fixture
// (homeserver/test/support/federation.ts: HTTPS between them, a throwaway CA, one scratch database
// each, created at HEARTH_DATABASE_URL and dropped at the end). A room is created on A; then:
//   1. Ingestion: C's signing key crafts --members join events of users of C (a "fake origin"
//      whose events no C process knows about) and then --pdus messages from them, chained one
//      after the other, and C's federation client PUTs them to A's /send in transactions of 50.
//      A runs every check on receipt (format, signatures, content hash, auth against auth events,
//      against the state before, against current state). Reported: PDUs/s per phase and the
//      queries A ran per PDU (--query-stats K: the K statements with the most time, per phase).
//   2. Join: bob on B joins that room through A (make_join, send_join with the whole state and
//      auth chain, every event verified by B). Reported: the time of B's POST /join and its queries.
import { parseArgs } from 'node:util';
import { SqlEntityManager } from '@mikro-orm/knex';
import { registerUser, type TestServer } from '../homeserver/test/support/harness.js';
import { startFederationCluster, type FederationTestServer } from '../homeserver/test/support/federation.js';
import { benchAdminUrl, PduChain, sendTransactions, TXN_PDUS, type CraftedPdu } from './support/federation-chain.js';

const { values: args } = parseArgs({
  options: {
    members: { type: 'string', default: '10000' },
    pdus: { type: 'string', default: '10000' },
    'query-stats': { type: 'string', default: '0' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  console.log('usage: HEARTH_DATABASE_URL=postgres://… node --import tsx --conditions=source bench/federation-bench.ts [--members M] [--pdus N] [--query-stats K]');
  process.exit(0);
}
const MEMBERS = Number(args.members);
const PDUS = Number(args.pdus);
if (!Number.isInteger(MEMBERS) || MEMBERS < 1 || !Number.isInteger(PDUS) || PDUS < 0) {
  console.error('bench: --members must be ≥ 1 and --pdus ≥ 0 (integers)');
  process.exit(2);
}
benchAdminUrl(); // the fixtures create their databases there

const TOP_QUERIES = Number(args['query-stats']);

/**
 * Query counting: every statement any of the three servers runs goes through MikroORM's
 * `SqlEntityManager.execute` (storage/db.ts); counted per database URL, and with --query-stats
 * per statement text (count and time) to show which queries a phase is made of.
 */
interface QueryStat { n: number; ms: number }
const queryCounts = new Map<string, number>();
const queryStats = new Map<string, Map<string, QueryStat>>();
{
  const proto = SqlEntityManager.prototype as unknown as { execute: (this: { config: { get(k: string): unknown } }, q: unknown, ...rest: unknown[]) => Promise<unknown> };
  const original = proto.execute;
  proto.execute = async function (q, ...rest) {
    const url = String(this.config.get('clientUrl'));
    queryCounts.set(url, (queryCounts.get(url) ?? 0) + 1);
    if (TOP_QUERIES <= 0 || typeof q !== 'string') return original.call(this, q, ...rest);
    const t0 = performance.now();
    try {
      return await original.call(this, q, ...rest);
    } finally {
      let perDb = queryStats.get(url);
      if (!perDb) queryStats.set(url, (perDb = new Map()));
      const key = q.replace(/\s+/g, ' ').replace(/(\(\?(, \?)*\)(, )?)+/g, '(?…)').slice(0, 160);
      const st = perDb.get(key) ?? { n: 0, ms: 0 };
      st.n++;
      st.ms += performance.now() - t0;
      perDb.set(key, st);
    }
  };
}
/** Queries run on `s`'s database so far. */
const queriesOf = (s: FederationTestServer) => queryCounts.get(s.databaseUrl) ?? 0;
/** Prints the `TOP_QUERIES` statements with the most time on `s`'s database since the last call. */
const printTopQueries = (label: string, s: FederationTestServer) => {
  if (TOP_QUERIES <= 0) return;
  const perDb = queryStats.get(s.databaseUrl) ?? new Map<string, QueryStat>();
  const top = [...perDb.entries()].sort((x, y) => y[1].ms - x[1].ms).slice(0, TOP_QUERIES);
  console.log(`  top statements (${label}): count, total ms, statement`);
  for (const [q, st] of top) console.log(`  ${String(st.n).padStart(7)} ${st.ms.toFixed(0).padStart(8)}  ${q}`);
  perDb.clear();
};

const enc = encodeURIComponent;
const ts = (s: FederationTestServer) => s as unknown as TestServer;

const cluster = await startFederationCluster(['hs-a', 'hs-b', 'hs-c'], {
  env: () => ({ HEARTH_DATABASE_POOL_SIZE: '20', HEARTH_FEDERATION_REQUEST_TIMEOUT_MS: '600000' }),
});
// CTRL-C (or a kill) still drops the three scratch databases.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`bench: ${signal}, dropping the scratch databases`);
    void cluster.close().finally(() => process.exit(130));
  });
}
try {
  const [a, b, c] = ['hs-a', 'hs-b', 'hs-c'].map((l) => cluster.get(l)) as [FederationTestServer, FederationTestServer, FederationTestServer];
  const alice = await registerUser(ts(a), 'alice');
  const bob = await registerUser(ts(b), 'bob');
  const created = await a.request('POST', '/_matrix/client/v3/createRoom', { token: alice.access_token, body: { preset: 'public_chat' } });
  if (created.status !== 200) throw new Error(`createRoom: ${created.status} ${JSON.stringify(created.body)}`);
  const roomId = created.body.room_id as string;
  // The chain starts on A's view of the room; C's key signs it.
  const chain = await PduChain.on(a, roomId, c);
  const version = chain.version;
  const cUser = (i: number) => `@m${i}:${c.serverName}`;

  /** PUTs the PDUs to A in transactions of 50, one after the other; PDUs/s and refusals. */
  const ingest = async (label: string, make: (i: number) => CraftedPdu, n: number) => {
    const all = Array.from({ length: n }, (_, i) => make(i));
    const q0 = queriesOf(a);
    printTopQueries('setup', a);
    const t0 = performance.now();
    const { refused } = await sendTransactions(c, a.serverName, all);
    const s = (performance.now() - t0) / 1000;
    console.log(`${label}: ${n} PDUs in ${s.toFixed(1)} s = ${(n / s).toFixed(0)} PDUs/s (transactions of ${TXN_PDUS}, sequential; ${refused} refused); ${((queriesOf(a) - q0) / n).toFixed(1)} queries per PDU on A`);
    printTopQueries(label, a);
    return refused;
  };

  console.log(`federation bench: room version ${version}, ${MEMBERS} members, ${PDUS} messages`);
  let refused = await ingest('ingest joins', (i) => chain.join(cUser(i)), MEMBERS);
  refused += await ingest('ingest messages', (i) => chain.message(cUser(i % MEMBERS), `message ${i}`), PDUS);
  const members = (await a.hs.deps.db.query<{ n: string }>("select count(*) as n from current_state where room_id = ? and type = 'm.room.member' and membership = 'join'", [roomId]))[0]!.n;
  console.log(`A: ${members} joined members`);

  queryStats.get(a.databaseUrl)?.clear();
  queryStats.get(b.databaseUrl)?.clear();
  const [qa0, qb0] = [queriesOf(a), queriesOf(b)];
  const t0 = performance.now();
  const joined = await b.request('POST', `/_matrix/client/v3/join/${enc(roomId)}?server_name=${enc(a.serverName)}`, { token: bob.access_token, body: {} });
  const joinS = (performance.now() - t0) / 1000;
  if (joined.status !== 200) throw new Error(`join: ${joined.status} ${JSON.stringify(joined.body)}`);
  const onB = (await b.hs.deps.db.query<{ n: string }>("select count(*) as n from current_state where room_id = ? and type = 'm.room.member' and membership = 'join'", [roomId]))[0]!.n;
  console.log(`B joins the room on A (${members} members, ${MEMBERS + PDUS} events): ${joinS.toFixed(1)} s; B then holds ${onB} joined members; queries: ${queriesOf(a) - qa0} on A, ${queriesOf(b) - qb0} on B`);
  printTopQueries('join, resident A', a);
  printTopQueries('join, joining B', b);
  if (refused > 0) process.exitCode = 1;
} finally {
  await cluster.close();
}
