// The pool of mediasoup workers: one process per core (configurable). A worker that dies is
// replaced; the calls whose routers lived on it are told through `onWorkerDied` so they can close
// and let their clients rejoin (a router cannot move to another worker).
import { EventEmitter } from 'node:events';
import * as mediasoup from 'mediasoup';
import type { types } from 'mediasoup';
import type { Logger } from './logger.js';

export interface WorkerPoolOptions {
  count: number;
  rtcMinPort: number;
  rtcMaxPort: number;
  /** mediasoup's own log level inside the worker processes. */
  workerLogLevel?: types.WorkerLogLevel;
  /** First delay before retrying a failed replacement; doubles up to 30 s. */
  respawnDelayMs?: number;
}

export interface WorkerStats {
  pid: number;
  routers: number;
}

interface Slot {
  worker: types.Worker;
  routers: number;
}

export interface WorkerPoolEvents {
  /** A worker died; every router on it is gone. */
  died: [worker: types.Worker, error: Error];
  /** A replacement worker joined the pool. */
  replaced: [worker: types.Worker];
}

export class WorkerPool extends EventEmitter<WorkerPoolEvents> {
  private readonly slots: Slot[] = [];
  private closed = false;
  private next = 0;
  private readonly respawns = new Set<NodeJS.Timeout>();

  private constructor(
    private readonly opts: WorkerPoolOptions,
    private readonly logger: Logger,
  ) {
    super();
  }

  static async create(opts: WorkerPoolOptions, logger: Logger): Promise<WorkerPool> {
    const pool = new WorkerPool(opts, logger);
    try {
      for (let i = 0; i < opts.count; i++) await pool.spawn();
    } catch (err) {
      pool.close();
      throw err;
    }
    return pool;
  }

  private async spawn(): Promise<types.Worker> {
    const worker = await mediasoup.createWorker({
      logLevel: this.opts.workerLogLevel ?? 'warn',
      rtcMinPort: this.opts.rtcMinPort,
      rtcMaxPort: this.opts.rtcMaxPort,
    });
    if (this.closed) {
      worker.close();
      throw new Error('worker pool closed');
    }
    const slot: Slot = { worker, routers: 0 };
    this.slots.push(slot);
    worker.on('died', (error) => this.onDied(slot, error));
    this.logger.info({ pid: worker.pid }, 'mediasoup worker started');
    return worker;
  }

  private onDied(slot: Slot, error: Error): void {
    const i = this.slots.indexOf(slot);
    if (i >= 0) this.slots.splice(i, 1);
    this.logger.error({ pid: slot.worker.pid, err: error.message }, 'mediasoup worker died; replacing it');
    this.emit('died', slot.worker, error);
    this.respawn(this.opts.respawnDelayMs ?? 0);
  }

  private respawn(delayMs: number): void {
    if (this.closed) return;
    const timer = setTimeout(() => {
      this.respawns.delete(timer);
      this.spawn().then(
        (worker) => this.emit('replaced', worker),
        (err: unknown) => {
          if (this.closed) return;
          const next = Math.min(Math.max(delayMs * 2, 500), 30_000);
          this.logger.error({ err: (err as Error).message, retryInMs: next }, 'could not start a replacement mediasoup worker');
          this.respawn(next);
        },
      );
    }, delayMs);
    this.respawns.add(timer);
  }

  /**
   * Creates a router on the least loaded live worker (fewest routers; ties go round-robin) and
   * keeps the count until the router closes.
   */
  async createRouter(mediaCodecs: types.RtpCodecCapability[], appData: types.AppData = {}): Promise<types.Router> {
    if (this.closed) throw new Error('worker pool closed');
    if (this.slots.length === 0) throw new Error('no mediasoup worker available');
    const start = this.next++ % this.slots.length;
    let best = this.slots[start]!;
    for (let k = 1; k < this.slots.length; k++) {
      const slot = this.slots[(start + k) % this.slots.length]!;
      if (slot.routers < best.routers) best = slot;
    }
    const slot = best;
    const router = await slot.worker.createRouter({ mediaCodecs, appData });
    slot.routers++;
    router.observer.once('close', () => {
      slot.routers--;
    });
    return router;
  }

  /** Live workers (for stats, the benchmark and tests). */
  workers(): types.Worker[] {
    return this.slots.map((s) => s.worker);
  }

  stats(): WorkerStats[] {
    return this.slots.map((s) => ({ pid: s.worker.pid, routers: s.routers }));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.respawns) clearTimeout(t);
    this.respawns.clear();
    for (const s of this.slots.splice(0)) s.worker.close();
  }
}
