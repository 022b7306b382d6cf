// A call: one mediasoup Router (on one worker) per Matrix room, its participants, and an active
// speaker observer over their microphones. The call closes when its last participant leaves or
// its worker dies.
import type { types } from 'mediasoup';
import type { SfuConfig } from './config.js';
import type { Logger } from './logger.js';
import { Participant, type Notify, type ParticipantStats, type ProducerAppData } from './participant.js';
import { SfuError } from './signalling/errors.js';
import type { WorkerPool } from './workers.js';

/** What the SFU routes: Opus audio and VP8 video (simulcast-capable). */
export const MEDIA_CODECS: types.RtpCodecCapability[] = [
  { kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 },
  { kind: 'video', mimeType: 'video/VP8', clockRate: 90000, parameters: { 'x-google-start-bitrate': 1000 } },
];

export type CallCloseReason = 'worker_died' | 'shutdown';

export interface JoinRequest {
  userId: string;
  deviceId: string;
  rtpCapabilities: types.RtpCapabilities;
  notify: Notify;
  /** Called if the call ends under the participant (worker died, shutdown, replaced by a newer join). */
  onEvicted: (reason: CallCloseReason | 'replaced') => void;
}

export interface CallStats {
  roomId: string;
  routerId: string;
  participants: ParticipantStats[];
}

export class Call {
  readonly participants = new Map<string, Participant>();
  private readonly evictions = new Map<string, JoinRequest['onEvicted']>();
  closed = false;

  private constructor(
    readonly roomId: string,
    readonly router: types.Router,
    private readonly speakers: types.ActiveSpeakerObserver,
    private readonly config: SfuConfig,
    private readonly logger: Logger,
    private readonly onClosed: (call: Call) => void,
  ) {}

  static async create(roomId: string, pool: WorkerPool, config: SfuConfig, logger: Logger, onClosed: (call: Call) => void): Promise<Call> {
    const router = await pool.createRouter(MEDIA_CODECS, { roomId });
    let speakers: types.ActiveSpeakerObserver;
    try {
      speakers = await router.createActiveSpeakerObserver({ interval: config.activeSpeakerIntervalMs });
    } catch (err) {
      router.close();
      throw err;
    }
    const call = new Call(roomId, router, speakers, config, logger.child({ roomId }), onClosed);
    router.on('workerclose', () => call.close('worker_died'));
    speakers.on('dominantspeaker', ({ producer }) => {
      const appData = producer.appData as ProducerAppData;
      call.broadcast('activeSpeaker', { participantId: appData.participantId, producerId: producer.id });
    });
    return call;
  }

  /** Admits a device; a second join of the same device replaces the first (a reconnecting client). */
  join(req: JoinRequest): Participant {
    if (this.closed) throw new SfuError('unavailable', 'the call is restarting; join again');
    const previous = [...this.participants.values()].find((p) => p.userId === req.userId && p.deviceId === req.deviceId);
    if (previous) this.evict(previous, 'replaced');
    if (this.participants.size >= this.config.limits.maxParticipantsPerCall) {
      throw new SfuError('call_full', `the call has reached its limit of ${this.config.limits.maxParticipantsPerCall} participants`);
    }
    const participant = new Participant(this, req.userId, req.deviceId, req.rtpCapabilities, req.notify, this.config);
    this.broadcast('participantJoined', participant.info());
    this.participants.set(participant.id, participant);
    this.evictions.set(participant.id, req.onEvicted);
    this.logger.info({ participantId: participant.id, userId: req.userId, deviceId: req.deviceId, size: this.participants.size }, 'participant joined');
    return participant;
  }

  /** The others in the call and what they produce, for a joining client. */
  roster(except: Participant): Record<string, unknown>[] {
    return [...this.participants.values()]
      .filter((p) => p !== except)
      .map((p) => ({
        ...p.info(),
        producers: [...p.producers.values()].map((pr) => ({
          producerId: pr.id,
          kind: pr.kind,
          source: pr.appData.source,
          paused: pr.paused,
        })),
      }));
  }

  /** Registers a new producer: the others are told, microphones feed the active speaker observer. */
  async addProducer(owner: Participant, producer: types.Producer<ProducerAppData>): Promise<void> {
    if (producer.appData.source === 'microphone') {
      await this.speakers.addProducer({ producerId: producer.id }).catch((err: unknown) => {
        this.logger.warn({ err: (err as Error).message }, 'active speaker observer refused a producer');
      });
    }
    this.broadcast(
      'producerAdded',
      { participantId: owner.id, producerId: producer.id, kind: producer.kind, source: producer.appData.source, paused: producer.paused },
      owner,
    );
  }

  findProducer(producerId: string): types.Producer<ProducerAppData> | undefined {
    for (const p of this.participants.values()) {
      const producer = p.producers.get(producerId);
      if (producer) return producer;
    }
    return undefined;
  }

  broadcast(method: string, params: Record<string, unknown>, except?: Participant): void {
    for (const p of this.participants.values()) if (p !== except) p.notify(method, params);
  }

  /** A participant leaves (request, socket closed): its media is released and the others told. */
  leave(participant: Participant): void {
    if (!this.participants.delete(participant.id)) return;
    this.evictions.delete(participant.id);
    participant.close();
    this.logger.info({ participantId: participant.id, size: this.participants.size }, 'participant left');
    this.broadcast('participantLeft', { participantId: participant.id });
    if (this.participants.size === 0) this.close('shutdown');
  }

  private evict(participant: Participant, reason: CallCloseReason | 'replaced'): void {
    const onEvicted = this.evictions.get(participant.id);
    this.leave(participant);
    onEvicted?.(reason);
  }

  close(reason: CallCloseReason): void {
    if (this.closed) return;
    this.closed = true;
    if (reason === 'worker_died') this.logger.warn('call closed: its mediasoup worker died');
    const everyone = [...this.participants.values()];
    this.participants.clear();
    for (const p of everyone) {
      p.close();
      const onEvicted = this.evictions.get(p.id);
      this.evictions.delete(p.id);
      onEvicted?.(reason);
    }
    if (!this.router.closed) this.router.close();
    this.onClosed(this);
  }

  stats(): CallStats {
    return {
      roomId: this.roomId,
      routerId: this.router.id,
      participants: [...this.participants.values()].map((p) => p.stats()),
    };
  }
}

/** The calls of this SFU by room id; concurrent first joins share one Router. */
export class CallRegistry {
  private readonly calls = new Map<string, Call>();
  private readonly pending = new Map<string, Promise<Call>>();

  constructor(
    private readonly pool: WorkerPool,
    private readonly config: SfuConfig,
    private readonly logger: Logger,
  ) {}

  async getOrCreate(roomId: string): Promise<Call> {
    const existing = this.calls.get(roomId);
    if (existing && !existing.closed) return existing;
    let pending = this.pending.get(roomId);
    if (!pending) {
      pending = Call.create(roomId, this.pool, this.config, this.logger, (c) => {
        if (this.calls.get(c.roomId) === c) this.calls.delete(c.roomId);
      })
        .then((call) => {
          this.calls.set(roomId, call);
          return call;
        })
        .finally(() => this.pending.delete(roomId));
      this.pending.set(roomId, pending);
    }
    try {
      return await pending;
    } catch (err) {
      this.logger.error({ roomId, err: (err as Error).message }, 'could not create a router for the call');
      throw new SfuError('unavailable', 'no media server available; try again');
    }
  }

  get(roomId: string): Call | undefined {
    return this.calls.get(roomId);
  }

  all(): Call[] {
    return [...this.calls.values()];
  }

  closeAll(): void {
    for (const c of [...this.calls.values()]) c.close('shutdown');
  }
}
