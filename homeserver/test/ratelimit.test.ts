// Rate limits: the token-bucket arithmetic of both implementations (explicit clocks), the login
// and register limits over HTTP (429 M_LIMIT_EXCEEDED, retry_after_ms, Retry-After, recovery),
// and the Redis implementation shared by two homeserver processes on one database.
import { randomInt } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Redis } from 'ioredis';
import { MemoryRateLimiter, RedisRateLimiter, type RateLimiter } from '../src/bus/ratelimit.js';
import type { RateLimitRule } from '../src/core/config.js';
import { randomString } from '../src/core/ids.js';
import { startTestServer, registerUser, type Response, type TestServer } from './support/harness.js';

function testRedisUrl(): string {
  const url = process.env.HEARTH_TEST_REDIS_URL;
  if (!url) throw new Error('HEARTH_TEST_REDIS_URL is not set: run the tests with `scripts/test`');
  return url;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** A client address of our own, so buckets never collide with other tests or runs sharing the Redis. */
const freshIp = () => `10.${randomInt(256)}.${randomInt(256)}.${randomInt(1, 255)}`;

// ---------------------------------------------------------------------------------------------
// The same arithmetic table, run against both implementations with explicit `now` values.

type Make = () => Promise<{ limiter: RateLimiter; cleanup: () => Promise<void> }>;

function bucketMath(name: string, make: Make) {
  const t = suite<{ limiter: RateLimiter; cleanup: () => Promise<void> }>(`rate limiter arithmetic: ${name}`);
  t.before.each(async (ctx) => {
    const m = await make();
    ctx.limiter = m.limiter;
    ctx.cleanup = m.cleanup;
  });
  t.after.each(async (ctx) => {
    await ctx.cleanup();
  });

  const ONE_PER_S: RateLimitRule = { perSecond: 1, burst: 3 };
  const T0 = 1_700_000_000_000;

  t('a new key starts with a full burst, then refuses with the exact wait', async ({ limiter }) => {
    for (let i = 0; i < 3; i++) assert.equal(await limiter.take('k', ONE_PER_S, T0), { allowed: true, retryAfterMs: 0 }, `take ${i + 1}`);
    assert.equal(await limiter.take('k', ONE_PER_S, T0), { allowed: false, retryAfterMs: 1000 });
    // A refused take costs nothing: the wait does not grow.
    assert.equal(await limiter.take('k', ONE_PER_S, T0), { allowed: false, retryAfterMs: 1000 });
  });

  t('tokens refill at perSecond: half a token after 500 ms, a whole one after 1000 ms', async ({ limiter }) => {
    for (let i = 0; i < 3; i++) await limiter.take('k', ONE_PER_S, T0);
    assert.equal(await limiter.take('k', ONE_PER_S, T0 + 500), { allowed: false, retryAfterMs: 500 });
    assert.equal(await limiter.take('k', ONE_PER_S, T0 + 750), { allowed: false, retryAfterMs: 250 });
    assert.equal(await limiter.take('k', ONE_PER_S, T0 + 1000), { allowed: true, retryAfterMs: 0 });
    assert.equal(await limiter.take('k', ONE_PER_S, T0 + 1000), { allowed: false, retryAfterMs: 1000 });
    // 2.5 s later: 2.5 tokens, two takes, then 0.5 left.
    assert.ok((await limiter.take('k', ONE_PER_S, T0 + 3500)).allowed);
    assert.ok((await limiter.take('k', ONE_PER_S, T0 + 3500)).allowed);
    assert.equal(await limiter.take('k', ONE_PER_S, T0 + 3500), { allowed: false, retryAfterMs: 500 });
  });

  t('a long idle period refills only up to the burst', async ({ limiter }) => {
    for (let i = 0; i < 3; i++) await limiter.take('k', ONE_PER_S, T0);
    const later = T0 + 3_600_000; // an hour: 3600 tokens' worth, capped at 3
    for (let i = 0; i < 3; i++) assert.ok((await limiter.take('k', ONE_PER_S, later)).allowed, `take ${i + 1}`);
    assert.equal(await limiter.take('k', ONE_PER_S, later), { allowed: false, retryAfterMs: 1000 });
  });

  t('slow rules: 0.17/s (the login default) waits about 5.9 s for a token', async ({ limiter }) => {
    const rule: RateLimitRule = { perSecond: 0.17, burst: 1 };
    assert.ok((await limiter.take('slow', rule, T0)).allowed);
    assert.equal(await limiter.take('slow', rule, T0), { allowed: false, retryAfterMs: Math.ceil((1 / 0.17) * 1000) });
    assert.not.ok((await limiter.take('slow', rule, T0 + 5800)).allowed);
    assert.ok((await limiter.take('slow', rule, T0 + 5900)).allowed);
  });

  t('fast rules: 10/s refills a token every 100 ms', async ({ limiter }) => {
    const rule: RateLimitRule = { perSecond: 10, burst: 1 };
    assert.ok((await limiter.take('fast', rule, T0)).allowed);
    assert.equal(await limiter.take('fast', rule, T0 + 30), { allowed: false, retryAfterMs: 70 });
    assert.ok((await limiter.take('fast', rule, T0 + 100)).allowed);
  });

  t('keys are independent', async ({ limiter }) => {
    for (let i = 0; i < 3; i++) await limiter.take('a', ONE_PER_S, T0);
    assert.not.ok((await limiter.take('a', ONE_PER_S, T0)).allowed);
    assert.ok((await limiter.take('b', ONE_PER_S, T0)).allowed);
  });

  t('a clock that steps back neither drains nor refills the bucket', async ({ limiter }) => {
    assert.ok((await limiter.take('skew', ONE_PER_S, T0 + 10_000)).allowed); // 2 left
    // Another process (or an NTP step) reports an earlier time: no refill, no penalty.
    assert.ok((await limiter.take('skew', ONE_PER_S, T0)).allowed); // 1 left
    assert.ok((await limiter.take('skew', ONE_PER_S, T0 + 5_000)).allowed); // 0 left
    assert.equal(await limiter.take('skew', ONE_PER_S, T0 + 10_000), { allowed: false, retryAfterMs: 1000 });
    assert.ok((await limiter.take('skew', ONE_PER_S, T0 + 11_000)).allowed, 'refill counts from the latest time seen');
  });

  return t;
}

bucketMath('MemoryRateLimiter', async () => ({ limiter: new MemoryRateLimiter(), cleanup: async () => {} })).run();

bucketMath('RedisRateLimiter', async () => {
  const redis = new Redis(testRedisUrl(), { lazyConnect: true, maxRetriesPerRequest: 2 });
  await redis.connect();
  const prefix = `hearth:test:rl:${randomString(12)}:`;
  return {
    limiter: new RedisRateLimiter(redis, prefix),
    cleanup: async () => {
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length) await redis.del(...keys);
      await redis.quit();
    },
  };
}).run();

const extra = suite('rate limiter: implementation details');

extra('MemoryRateLimiter forgets the least recently used key past its cap', async () => {
  const limiter = new MemoryRateLimiter(2);
  const rule: RateLimitRule = { perSecond: 1, burst: 1 };
  const now = 1_000_000;
  await limiter.take('a', rule, now);
  await limiter.take('b', rule, now);
  assert.not.ok((await limiter.take('a', rule, now)).allowed, 'a is empty (and now the most recently used)');
  await limiter.take('c', rule, now); // evicts b, the least recently used
  assert.not.ok((await limiter.take('a', rule, now)).allowed, 'a was kept');
  assert.ok((await limiter.take('b', rule, now)).allowed, 'b was forgotten: a full bucket again');
});

extra('RedisRateLimiter keys expire once a full bucket would have refilled', async () => {
  const redis = new Redis(testRedisUrl(), { lazyConnect: true, maxRetriesPerRequest: 2 });
  await redis.connect();
  const prefix = `hearth:test:rl:${randomString(12)}:`;
  try {
    const limiter = new RedisRateLimiter(redis, prefix);
    await limiter.take('ttl', { perSecond: 2, burst: 4 }, Date.now());
    const ttl = await redis.pttl(`${prefix}ttl`);
    // burst / perSecond = 2 s to refill, plus a second of slack.
    assert.ok(ttl > 2000 && ttl <= 3000, `pttl ${ttl}`);
  } finally {
    await redis.del(`${prefix}ttl`);
    await redis.quit();
  }
});

extra.run();

// ---------------------------------------------------------------------------------------------
// Over HTTP.

const PW = 'limited password';

function assertLimited(res: Response, maxWaitMs: number): number {
  assert.is(res.status, 429, JSON.stringify(res.body));
  assert.is(res.body.errcode, 'M_LIMIT_EXCEEDED');
  assert.type(res.body.error, 'string');
  const wait = res.body.retry_after_ms;
  assert.ok(Number.isInteger(wait) && wait > 0 && wait <= maxWaitMs, `retry_after_ms ${wait} in (0, ${maxWaitMs}]`);
  assert.is(res.headers['retry-after'], String(Math.max(1, Math.ceil(wait / 1000))), 'Retry-After in whole seconds');
  return wait;
}

const loginFrom = (s: TestServer, ip: string, user: string, password: string) =>
  s.request('POST', '/_matrix/client/v3/login', {
    body: { type: 'm.login.password', identifier: { type: 'm.id.user', user }, password },
    remoteAddress: ip,
  });

const http = suite('rate limits over HTTP (in-memory bus)');

// 1/2: a burst of two, then a token a second, so recovery takes under a second and the third
// request is refused unless the first three took over a second (they take milliseconds).
http('login: the burst passes, the next is 429 with retry_after_ms, and it recovers after the wait', async () => {
  const s = await startTestServer({ HEARTH_RATELIMIT_LOGIN: '1/2' });
  try {
    await registerUser(s, 'lim');
    const ip = freshIp();
    assert.is((await loginFrom(s, ip, 'lim', 'correct horse battery')).status, 200);
    assert.is((await loginFrom(s, ip, 'lim', 'correct horse battery')).status, 200);
    const wait = assertLimited(await loginFrom(s, ip, 'lim', 'correct horse battery'), 1000);
    // Another client address has its own bucket.
    assert.is((await loginFrom(s, freshIp(), 'lim', 'correct horse battery')).status, 200);
    // The wait the server named is enough.
    await sleep(wait + 30);
    assert.is((await loginFrom(s, ip, 'lim', 'correct horse battery')).status, 200, 'recovered');
    assertLimited(await loginFrom(s, ip, 'lim', 'correct horse battery'), 1000);
  } finally {
    await s.close();
  }
});

http('login: failed guesses are limited per account even from many addresses; the owner can still log in', async () => {
  const s = await startTestServer({ HEARTH_RATELIMIT_LOGIN: '0.5/2' });
  try {
    await registerUser(s, 'target', PW);
    assert.is((await loginFrom(s, freshIp(), 'target', 'guess one')).status, 403);
    assert.is((await loginFrom(s, freshIp(), 'target', 'guess two')).status, 403);
    assertLimited(await loginFrom(s, freshIp(), 'target', 'guess three'), 2000);
    assertLimited(await loginFrom(s, freshIp(), '@TARGET:hearth.test', 'guess four'), 2000);
    assert.is((await loginFrom(s, freshIp(), 'target', PW)).status, 200, 'the right password is not locked out');
  } finally {
    await s.close();
  }
});

http('register: /register and /register/available share a limit', async () => {
  const s = await startTestServer({ HEARTH_RATELIMIT_REGISTER: '1/2' });
  try {
    const ip = freshIp();
    const first = await s.request('POST', '/_matrix/client/v3/register', { body: { username: 'reg1', password: PW }, remoteAddress: ip });
    assert.is(first.status, 401, 'UIA starts');
    assert.is((await s.request('GET', '/_matrix/client/v3/register/available?username=reg1', { remoteAddress: ip })).status, 200);
    const wait = assertLimited(
      await s.request('POST', '/_matrix/client/v3/register', {
        body: { username: 'reg1', password: PW, auth: { type: 'm.login.dummy', session: first.body.session } },
        remoteAddress: ip,
      }),
      1000,
    );
    assertLimited(await s.request('GET', '/_matrix/client/v3/register/available?username=reg1', { remoteAddress: ip }), 1000);
    await sleep(wait + 30);
    const done = await s.request('POST', '/_matrix/client/v3/register', {
      body: { username: 'reg1', password: PW, auth: { type: 'm.login.dummy', session: first.body.session } },
      remoteAddress: ip,
    });
    assert.is(done.status, 200, 'the same UIA session completes after the wait');
  } finally {
    await s.close();
  }
});

http('control: without Redis, two processes keep separate buckets', async () => {
  const a = await startTestServer({ HEARTH_RATELIMIT_LOGIN: '1/2' }, { keepDatabase: true });
  const b = await startTestServer({ HEARTH_RATELIMIT_LOGIN: '1/2' }, { databaseUrl: a.databaseUrl });
  try {
    await registerUser(a, 'mem');
    const ip = freshIp();
    assert.is((await loginFrom(a, ip, 'mem', 'correct horse battery')).status, 200);
    assert.is((await loginFrom(a, ip, 'mem', 'correct horse battery')).status, 200);
    assert.is((await loginFrom(a, ip, 'mem', 'correct horse battery')).status, 429);
    assert.is((await loginFrom(b, ip, 'mem', 'correct horse battery')).status, 200, 'b knows nothing of a\'s bucket');
  } finally {
    await b.close();
    await a.stop();
    await dropDatabaseOf(a);
  }
});

http.run();

const shared = suite('rate limits shared through Redis by two homeservers');

shared('the second instance is refused after the first used the burst, and both recover', async () => {
  const env = { HEARTH_RATELIMIT_LOGIN: '1/2', HEARTH_RATELIMIT_REGISTER: '1/1', HEARTH_REDIS_URL: testRedisUrl() };
  const a = await startTestServer(env, { keepDatabase: true });
  const b = await startTestServer(env, { databaseUrl: a.databaseUrl });
  try {
    assert.is(a.hs.deps.bus.kind, 'redis');
    assert.is(b.hs.deps.bus.kind, 'redis');
    const first = await a.request('POST', '/_matrix/client/v3/register', { body: { username: 'shared', password: PW }, remoteAddress: freshIp() });
    const reg = await b.request('POST', '/_matrix/client/v3/register', {
      body: { username: 'shared', password: PW, auth: { type: 'm.login.dummy', session: first.body.session } },
      remoteAddress: freshIp(),
    });
    assert.is(reg.status, 200, 'one database: a UIA session begun on a completes on b');

    const ip = freshIp();
    assert.is((await loginFrom(a, ip, 'shared', PW)).status, 200);
    assert.is((await loginFrom(a, ip, 'shared', PW)).status, 200);
    const wait = assertLimited(await loginFrom(b, ip, 'shared', PW), 1000);
    assertLimited(await loginFrom(a, ip, 'shared', PW), 1000);
    await sleep(wait + 30);
    assert.is((await loginFrom(b, ip, 'shared', PW)).status, 200, 'b recovered');
    assertLimited(await loginFrom(a, ip, 'shared', PW), 1000);

    // The register limit too: one on a uses the 1-burst, b refuses.
    const regIp = freshIp();
    assert.is((await a.request('GET', '/_matrix/client/v3/register/available?username=nobody1', { remoteAddress: regIp })).status, 200);
    assertLimited(await b.request('GET', '/_matrix/client/v3/register/available?username=nobody1', { remoteAddress: regIp }), 1000);
  } finally {
    await b.close();
    await a.stop();
    await dropDatabaseOf(a);
  }
});

shared.run();

/** Drops the database a `keepDatabase` server was given (after both servers on it stopped). */
async function dropDatabaseOf(s: TestServer): Promise<void> {
  const pg = (await import('pg')).default;
  const name = new URL(s.databaseUrl).pathname.slice(1);
  const c = new pg.Client({ connectionString: process.env.HEARTH_TEST_DATABASE_URL });
  await c.connect();
  try {
    await c.query(`drop database if exists ${name} with (force)`);
  } finally {
    await c.end();
  }
}
