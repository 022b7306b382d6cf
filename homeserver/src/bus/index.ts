import { Redis } from 'ioredis';
import { MemoryRateLimiter, RedisRateLimiter, type RateLimiter } from './ratelimit.js';

export type { RateLimiter } from './ratelimit.js';

/**
 * State shared between homeserver processes: Redis when configured, else
 * in-process implementations of the same interfaces.
 */
export interface Bus {
  rateLimiter: RateLimiter;
  /** 'memory' or 'redis': which implementation backs the bus. */
  kind: 'memory' | 'redis';
  /** Resolves when the backing store answers (health checks). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export async function createBus(redisUrl: string | undefined): Promise<Bus> {
  if (!redisUrl) {
    return { rateLimiter: new MemoryRateLimiter(), kind: 'memory', ping: async () => {}, close: async () => {} };
  }
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 2 });
  await redis.connect();
  return {
    rateLimiter: new RedisRateLimiter(redis),
    kind: 'redis',
    ping: async () => {
      await redis.ping();
    },
    close: async () => {
      await redis.quit();
    },
  };
}
