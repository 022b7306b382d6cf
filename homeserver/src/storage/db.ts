import fs from 'node:fs';
import path from 'node:path';
import { MikroORM, type EntityManager } from '@mikro-orm/postgresql';
import type { Logger } from '../core/logger.js';
import { MatrixError } from '../core/errors.js';
import { MIGRATIONS } from './migrations/index.js';
import { isProcessAlive } from '../core/process.js';

/** What storage modules run queries on: the pool, or one open transaction. Placeholders are `?`. */
export interface Sql {
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
}

export interface DatabaseOptions {
  /** A postgres:// URL; when absent an embedded PGlite database lives under `dataDir`. */
  url?: string;
  dataDir: string;
  poolSize: number;
  logger: Logger;
}

function wrap(em: EntityManager): Sql {
  return {
    query: <T>(sql: string, params: unknown[] = []) => {
      rejectNul(params);
      return em.execute(sql, params as never[], 'all') as Promise<T[]>;
    },
  };
}

const hasNul = (v: unknown) => typeof v === 'string' && v.includes('\u0000');

/**
 * PostgreSQL text cannot hold U+0000 (the wire protocol even fails on it, and PGlite's socket with it),
 * and such a string can only come from a client: answer 400 instead of letting the query fail as a 500.
 */
function rejectNul(params: unknown[]): void {
  for (const p of params) {
    if (hasNul(p) || (Array.isArray(p) && p.some(hasNul))) {
      throw new MatrixError(400, 'M_INVALID_PARAM', 'Strings may not contain NUL (U+0000) characters');
    }
  }
}

/**
 * The homeserver's database: MikroORM's PostgreSQL driver over either a real
 * PostgreSQL or embedded PGlite reached through its wire-protocol socket, so
 * both speak the same SQL dialect.
 */
export class Database implements Sql {
  private constructor(
    private readonly orm: MikroORM,
    private readonly onClose: () => Promise<void>,
  ) {}

  static async open(opts: DatabaseOptions): Promise<Database> {
    let url = opts.url;
    let poolSize = opts.poolSize;
    let onClose = async () => {};
    if (!url) {
      const embedded = await startEmbedded(opts.dataDir, opts.logger);
      url = embedded.url;
      // PGlite is one connection: a pool of one keeps transactions from interleaving.
      poolSize = 1;
      onClose = embedded.close;
    }
    const orm = await MikroORM.init({
      clientUrl: url,
      entities: [],
      discovery: { warnWhenNoEntities: false },
      pool: { min: 0, max: poolSize },
      debug: false,
      allowGlobalContext: false,
    });
    const db = new Database(orm, async () => {
      await orm.close(true);
      await onClose();
    });
    try {
      await db.migrate(opts.logger);
    } catch (err) {
      await db.close();
      throw err;
    }
    return db;
  }

  query<T = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<T[]> {
    return wrap(this.orm.em.fork()).query<T>(sql, params);
  }

  /** Runs `fn` in one transaction; it commits when `fn` resolves and rolls back when it throws. */
  transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T> {
    return this.orm.em.fork().transactional((em) => fn(wrap(em as EntityManager)));
  }

  async close(): Promise<void> {
    await this.onClose();
  }

  /** Applies pending migrations under an advisory lock, so processes starting together don't race. */
  private async migrate(logger: Logger): Promise<void> {
    await this.transaction(async (tx) => {
      await tx.query('select pg_advisory_xact_lock(?)', [0x4865617274]);
      await tx.query(
        'create table if not exists schema_migrations (version integer primary key, name text not null, applied_ts bigint not null)',
      );
      const rows = await tx.query<{ version: number }>('select version from schema_migrations');
      const applied = new Set(rows.map((r) => Number(r.version)));
      for (const m of MIGRATIONS) {
        if (applied.has(m.version)) continue;
        logger.info({ version: m.version, name: m.name }, 'applying migration');
        for (const statement of m.up) await tx.query(statement);
        await tx.query('insert into schema_migrations (version, name, applied_ts) values (?, ?, ?)', [
          m.version,
          m.name,
          Date.now(),
        ]);
      }
    });
  }
}

async function startEmbedded(dataDir: string, logger: Logger): Promise<{ url: string; close: () => Promise<void> }> {
  const { PGlite } = await import('@electric-sql/pglite');
  const { PGLiteSocketServer } = await import('@electric-sql/pglite-socket');
  const dir = path.join(dataDir, 'pglite');
  fs.mkdirSync(dir, { recursive: true });
  const releaseLock = acquirePidLock(dataDir);
  try {
    const pg = await PGlite.create(dir);
    const server = new PGLiteSocketServer({ db: pg, host: '127.0.0.1', port: 0 });
    await server.start();
    const address = (server as unknown as { server: { address(): { port: number } } }).server.address();
    logger.info({ dir }, 'embedded database (PGlite) started');
    return {
      url: `postgres://postgres@127.0.0.1:${address.port}/postgres`,
      close: async () => {
        await server.stop();
        await pg.close();
        releaseLock();
      },
    };
  } catch (err) {
    releaseLock();
    throw err;
  }
}

/** PGlite must only ever be opened by one process: a pid file in the data dir guards it. */
function acquirePidLock(dataDir: string): () => void {
  const file = path.join(dataDir, 'homeserver.pid');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, String(process.pid), { flag: 'wx' });
      return () => fs.rmSync(file, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(fs.readFileSync(file, 'utf8').trim());
      if (pid && pid !== process.pid && isProcessAlive(pid)) {
        throw new Error(
          `the embedded database in ${dataDir} is in use by process ${pid} (lock file ${file}); stop it first (or set HEARTH_DATABASE_URL)`,
          { cause: err },
        );
      }
      fs.rmSync(file, { force: true }); // stale: its process is gone
    }
  }
  throw new Error(`could not lock ${file}`);
}

