import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';

const KEY_LEN = 32;

function scrypt(password: string, salt: Buffer, opts: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scryptCb(password.normalize('NFKC'), salt, KEY_LEN, opts, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

/**
 * scrypt password hashes (OWASP: N=2^17, r=8, p=1), self-describing so the
 * cost can be raised later: `$scrypt$N=131072,r=8,p=1$<salt b64>$<hash b64>`.
 * Runs in libuv's thread pool, off the event loop.
 */
export class PasswordHasher {
  constructor(private readonly cost: number) {}

  async hash(password: string): Promise<string> {
    const salt = randomBytes(16);
    const opts = { N: this.cost, r: 8, p: 1, maxmem: 256 * this.cost * 8 };
    const key = await scrypt(password, salt, opts);
    return `$scrypt$N=${this.cost},r=8,p=1$${salt.toString('base64')}$${key.toString('base64')}`;
  }

  async verify(password: string, stored: string | null): Promise<boolean> {
    if (!stored) return false;
    const m = /^\$scrypt\$N=(\d+),r=(\d+),p=(\d+)\$([^$]+)\$([^$]+)$/.exec(stored);
    if (!m) return false;
    const N = Number(m[1]);
    const r = Number(m[2]);
    const p = Number(m[3]);
    const expected = Buffer.from(m[5]!, 'base64');
    const key = await scrypt(password, Buffer.from(m[4]!, 'base64'), { N, r, p, maxmem: 256 * N * r });
    return key.length === expected.length && timingSafeEqual(key, expected);
  }
}
