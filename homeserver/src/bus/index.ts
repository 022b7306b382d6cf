import { Redis } from 'ioredis';
import { Notifier } from './notifier.js';
import { MemoryRateLimiter, RedisRateLimiter, type RateLimiter } from './ratelimit.js';

export type { RateLimiter } from './ratelimit.js';

/**
 * State shared between homeserver processes: Redis when configured, else
 * in-process implementations of the same interfaces.
 */
export interface Bus {
  rateLimiter: RateLimiter;
  notifier: Notifier;
  /** 'memory' or 'redis': which implementation backs the bus. */
  kind: 'memory' | 'redis';
  /** Resolves when the backing store answers (health checks). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export async function createBus(redisUrl: string | undefined): Promise<Bus> {
  if (!redisUrl) {
    return {
      rateLimiter: new MemoryRateLimiter(),
      notifier: new Notifier(),
      kind: 'memory',
      ping: async () => {},
      close: async () => {},
    };
  }
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 2 });
  await redis.connect();
  const subscriber = redis.duplicate();
  const notifier = new Notifier();
  await notifier.attachRedis(redis, subscriber);
  return {
    rateLimiter: new RedisRateLimiter(redis),
    notifier,
    kind: 'redis',
    ping: async () => {
      await redis.ping();
    },
    close: async () => {
      await notifier.close();
      subscriber.disconnect();
      await redis.quit();
    },
  };
}
