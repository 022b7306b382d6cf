// State snapshot writing policy (storage/state.ts writeSnapshot): deltas chain up to MAX_CHAIN
// links; a full chain is folded into one delta over its full snapshot while that delta stays
// small next to it, and written in full otherwise. Whatever the shape, every snapshot reads back
// as exactly the state it was written for, and no read walks more than MAX_CHAIN links.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { startTestServer, type TestServer } from './support/harness.js';
import { beforeAll } from './support/hooks.js';
import { loadSnapshot, writeSnapshot } from '../src/storage/state.js';
import { stateKey, type StateMap } from '../src/services/rooms/pdu.js';

const t = suite<{ s: TestServer }>('state snapshots: writing policy');
beforeAll(t, async (ctx) => {
  ctx.s = await startTestServer();
});
t.after(async (ctx) => {
  await ctx.s?.close();
});

const MAX_CHAIN = 32;
const member = (i: number) => stateKey('m.room.member', `@u${i}:x`);

/** The snapshot's links: [chain length of each, following prev_snapshot], and whether it ends at a full one. */
async function chainOf(s: TestServer, id: number): Promise<{ links: number; full: number }> {
  let links = 0;
  let cur: number | null = id;
  for (;;) {
    const rows: { prev_snapshot: string | null }[] = await s.hs.deps.db.query('select prev_snapshot from state_snapshots where snapshot_id = ?', [cur]);
    if (rows[0]!.prev_snapshot === null) return { links, full: cur! };
    cur = Number(rows[0]!.prev_snapshot);
    links++;
  }
}

t('a big state: full chains fold into a delta over the full snapshot; reads stay exact and short', async ({ s }) => {
  const db = s.hs.deps.db;
  const room = '!fold:x';
  const expected: StateMap = new Map();
  for (let i = 0; i < 600; i++) expected.set(member(i), `$m${i}`);
  let snap = await writeSnapshot(db, room, null, new Map(expected));
  const first = snap;
  const snaps: { id: number; state: StateMap }[] = [];
  // 100 state changes: new members and changed ones, and the topic now and then.
  for (let i = 0; i < 100; i++) {
    const k = i % 3 === 0 ? member(i) : member(1000 + i);
    const id = `$change${i}`;
    // The topic changes with every fifth delta: the nearest link's entry must win, in folds too.
    const delta: StateMap = new Map([[k, id]]);
    if (i % 5 === 0) delta.set(stateKey('m.room.topic', ''), `$topic${i}`);
    for (const [dk, dv] of delta) expected.set(dk, dv);
    snap = await writeSnapshot(db, room, snap, delta);
    snaps.push({ id: snap, state: new Map(expected) });
  }
  for (const x of snaps) {
    assert.equal(Object.fromEntries(await loadSnapshot(db, x.id)), Object.fromEntries(x.state), `snapshot ${x.id} reads back exactly`);
    const c = await chainOf(s, x.id);
    assert.ok(c.links < MAX_CHAIN, `snapshot ${x.id}: ${c.links} links`);
    assert.is(c.full, first, 'every snapshot still builds on the one full snapshot (the folds stay under a quarter of it)');
  }
  const full = await db.query<{ n: string }>('select count(*) as n from state_snapshots where room_id = ? and prev_snapshot is null', [room]);
  assert.is(Number(full[0]!.n), 1, 'no second full snapshot was written');
});

t('a small state: once the folded delta is large next to the full snapshot, a full one is written', async ({ s }) => {
  const db = s.hs.deps.db;
  const room = '!small:x';
  const expected: StateMap = new Map([[stateKey('m.room.create', ''), '$create']]);
  let snap = await writeSnapshot(db, room, null, new Map(expected));
  for (let i = 0; i < 3 * MAX_CHAIN; i++) {
    expected.set(member(i), `$j${i}`);
    snap = await writeSnapshot(db, room, snap, new Map([[member(i), `$j${i}`]]));
    assert.equal(Object.fromEntries(await loadSnapshot(db, snap)), Object.fromEntries(expected));
    assert.ok((await chainOf(s, snap)).links < MAX_CHAIN);
  }
  const full = await db.query<{ n: string }>('select count(*) as n from state_snapshots where room_id = ? and prev_snapshot is null', [room]);
  assert.ok(Number(full[0]!.n) > 1, 'full snapshots were written again');
});

t.run();
