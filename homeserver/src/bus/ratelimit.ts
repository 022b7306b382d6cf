import type { Redis } from 'ioredis';
import type { RateLimitRule } from '../core/config.js';

export interface RateDecision {
  allowed: boolean;
  /** When not allowed: how long until one more action is allowed. */
  retryAfterMs: number;
}

/** Token buckets keyed by e.g. `login:ip:1.2.3.4`; shared between processes when Redis backs it. */
export interface RateLimiter {
  take(key: string, rule: RateLimitRule, now?: number): Promise<RateDecision>;
}

interface Bucket {
  tokens: number;
  ts: number;
}

function refill(b: Bucket | undefined, rule: RateLimitRule, now: number): Bucket {
  if (!b) return { tokens: rule.burst, ts: now };
  // A clock that steps back neither refills nor drains: count from the latest time seen (as the Redis script does).
  if (now <= b.ts) return b;
  const tokens = Math.min(rule.burst, b.tokens + ((now - b.ts) / 1000) * rule.perSecond);
  return { tokens, ts: now };
}

function decide(b: Bucket, rule: RateLimitRule): RateDecision {
  if (b.tokens >= 1) return { allowed: true, retryAfterMs: 0 };
  return { allowed: false, retryAfterMs: Math.ceil(((1 - b.tokens) / rule.perSecond) * 1000) };
}

export class MemoryRateLimiter implements RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly maxKeys = 100_000) {}

  async take(key: string, rule: RateLimitRule, now = Date.now()): Promise<RateDecision> {
    const b = refill(this.buckets.get(key), rule, now);
    const decision = decide(b, rule);
    if (decision.allowed) b.tokens -= 1;
    // Re-insert so Map order is least-recently-used first; drop the oldest past the cap.
    this.buckets.delete(key);
    this.buckets.set(key, b);
    if (this.buckets.size > this.maxKeys) {
      const oldest = this.buckets.keys().next().value;
      if (oldest !== undefined) this.buckets.delete(oldest);
    }
    return decision;
  }
}

// Atomic token bucket: KEYS[1] hash {tokens, ts}; ARGV rate/s, burst, now ms, ttl ms.
const TAKE_SCRIPT = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1])
local ts = tonumber(b[2])
if tokens == nil then tokens = burst; ts = now end
if now > ts then tokens = math.min(burst, tokens + (now - ts) / 1000 * rate) end
local allowed = 0
if tokens >= 1 then tokens = tokens - 1; allowed = 1 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(math.max(now, ts)))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {allowed, tostring(tokens)}
`;

export class RedisRateLimiter implements RateLimiter {
  constructor(
    private readonly redis: Redis,
    private readonly prefix = 'hearth:rl:',
  ) {}

  async take(key: string, rule: RateLimitRule, now = Date.now()): Promise<RateDecision> {
    const ttlMs = Math.ceil((rule.burst / rule.perSecond) * 1000) + 1000;
    const [allowed, tokens] = (await this.redis.eval(
      TAKE_SCRIPT,
      1,
      this.prefix + key,
      rule.perSecond,
      rule.burst,
      now,
      ttlMs,
    )) as [number, string];
    if (allowed === 1) return { allowed: true, retryAfterMs: 0 };
    return { allowed: false, retryAfterMs: Math.ceil(((1 - Number(tokens)) / rule.perSecond) * 1000) };
  }
}
