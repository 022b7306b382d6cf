// One device in a call: its two WebRTC transports (send, recv), its producers (one per source)
// and its consumers of the others' producers. Every mediasoup object it creates is closed by
// close(), which runs when the client leaves, its socket dies, or the call ends.
import { randomUUID } from 'node:crypto';
import type { types } from 'mediasoup';
import type { Call } from './call.js';
import type { SfuConfig } from './config.js';
import { SfuError } from './signalling/errors.js';
import { SOURCE_KIND, type ParamsOf, type Source } from './signalling/messages.js';

export type Notify = (method: string, params: Record<string, unknown>) => void;

export interface ProducerAppData extends types.AppData {
  participantId: string;
  source: Source;
}

export interface TransportAppData extends types.AppData {
  direction: 'send' | 'recv';
}

export type ParticipantInfo = {
  participantId: string;
  userId: string;
  deviceId: string;
};

export interface ParticipantStats extends ParticipantInfo {
  transports: { transportId: string; direction: 'send' | 'recv'; iceState: string; dtlsState: string; protocol: string | null }[];
  producers: { producerId: string; kind: string; source: Source; paused: boolean; type: string }[];
  consumers: {
    consumerId: string;
    producerId: string;
    kind: string;
    source: string | undefined;
    paused: boolean;
    producerPaused: boolean;
    type: string;
    currentLayers: types.ConsumerLayers | null;
    preferredLayers: types.ConsumerLayers | null;
  }[];
}

export class Participant {
  readonly id = randomUUID();
  readonly transports = new Map<string, types.WebRtcTransport<TransportAppData>>();
  readonly producers = new Map<string, types.Producer<ProducerAppData>>();
  readonly consumers = new Map<string, types.Consumer>();
  closed = false;

  constructor(
    readonly call: Call,
    readonly userId: string,
    readonly deviceId: string,
    readonly rtpCapabilities: types.RtpCapabilities,
    readonly notify: Notify,
    private readonly config: SfuConfig,
  ) {}

  info(): ParticipantInfo {
    return { participantId: this.id, userId: this.userId, deviceId: this.deviceId };
  }

  async createTransport(p: ParamsOf<'createTransport'>): Promise<Record<string, unknown>> {
    for (const t of this.transports.values()) {
      if (t.appData.direction === p.direction) throw new SfuError('limit_exceeded', `a ${p.direction} transport already exists`);
    }
    const { config } = this;
    const transport = await this.call.router.createWebRtcTransport<TransportAppData>({
      listenIps: [{ ip: config.rtcListenIp, ...(config.announcedIp ? { announcedIp: config.announcedIp } : {}) }],
      enableUdp: config.enableUdp && !p.forceTcp,
      enableTcp: config.enableTcp || p.forceTcp === true,
      preferUdp: true,
      initialAvailableOutgoingBitrate: config.initialOutgoingBitrate,
      appData: { direction: p.direction },
    });
    if (this.closed) {
      transport.close();
      throw new SfuError('not_joined', 'left the call');
    }
    this.transports.set(transport.id, transport);
    transport.observer.once('close', () => this.transports.delete(transport.id));
    return {
      transportId: transport.id,
      iceParameters: transport.iceParameters,
      iceCandidates: transport.iceCandidates,
      dtlsParameters: transport.dtlsParameters,
    };
  }

  private transport(id: string, direction?: 'send' | 'recv'): types.WebRtcTransport<TransportAppData> {
    const t = this.transports.get(id);
    if (!t || (direction && t.appData.direction !== direction)) throw new SfuError('not_found', `no ${direction ?? ''} transport ${id}`.replace('  ', ' '));
    return t;
  }

  private recvTransport(): types.WebRtcTransport<TransportAppData> {
    for (const t of this.transports.values()) if (t.appData.direction === 'recv') return t;
    throw new SfuError('not_found', 'create a recv transport first');
  }

  async connectTransport(p: ParamsOf<'connectTransport'>): Promise<void> {
    await this.transport(p.transportId).connect({ dtlsParameters: p.dtlsParameters as types.DtlsParameters });
  }

  /** New ICE credentials; the client restarts ICE with them (network change). */
  async restartIce(p: ParamsOf<'restartIce'>): Promise<types.IceParameters> {
    return this.transport(p.transportId).restartIce();
  }

  async produce(p: ParamsOf<'produce'>): Promise<types.Producer<ProducerAppData>> {
    if (SOURCE_KIND[p.source] !== p.kind) throw new SfuError('bad_request', `source ${p.source} must be ${SOURCE_KIND[p.source]}`);
    for (const existing of this.producers.values()) {
      if (existing.appData.source === p.source) throw new SfuError('limit_exceeded', `already producing ${p.source}`);
    }
    if (this.producers.size >= this.config.limits.maxProducersPerParticipant) {
      throw new SfuError('limit_exceeded', `at most ${this.config.limits.maxProducersPerParticipant} producers`);
    }
    const producer = await this.transport(p.transportId, 'send').produce<ProducerAppData>({
      kind: p.kind,
      rtpParameters: p.rtpParameters as unknown as types.RtpParameters,
      paused: p.paused ?? false,
      appData: { participantId: this.id, source: p.source },
    });
    if (this.closed) {
      producer.close();
      throw new SfuError('not_joined', 'left the call');
    }
    this.producers.set(producer.id, producer);
    producer.observer.once('close', () => {
      this.producers.delete(producer.id);
      if (!this.closed) this.call.broadcast('producerClosed', { participantId: this.id, producerId: producer.id, source: p.source }, this);
    });
    return producer;
  }

  producer(id: string): types.Producer<ProducerAppData> {
    const producer = this.producers.get(id);
    if (!producer) throw new SfuError('not_found', `no producer ${id}`);
    return producer;
  }

  /** Mute / camera off: the others' consumers of it pause, and they are told. */
  async setProducerPaused(id: string, paused: boolean): Promise<void> {
    const producer = this.producer(id);
    if (producer.paused === paused) return;
    if (paused) await producer.pause();
    else await producer.resume();
    this.call.broadcast(paused ? 'producerPaused' : 'producerResumed', { participantId: this.id, producerId: id, source: producer.appData.source }, this);
  }

  /** A consumer of another participant's producer, created paused (resumeConsumer starts it). */
  async consume(p: ParamsOf<'consume'>): Promise<Record<string, unknown>> {
    const producer = this.call.findProducer(p.producerId);
    if (!producer) throw new SfuError('not_found', `no producer ${p.producerId} in this call`);
    if (producer.appData.participantId === this.id) throw new SfuError('bad_request', 'cannot consume your own producer');
    if (this.consumers.size >= this.config.limits.maxConsumersPerParticipant) {
      throw new SfuError('limit_exceeded', `at most ${this.config.limits.maxConsumersPerParticipant} consumers`);
    }
    for (const c of this.consumers.values()) {
      if (c.producerId === producer.id) throw new SfuError('limit_exceeded', `already consuming ${producer.id}`);
    }
    if (!this.call.router.canConsume({ producerId: producer.id, rtpCapabilities: this.rtpCapabilities })) {
      throw new SfuError('cannot_consume', 'your RTP capabilities cannot receive this producer');
    }
    const consumer = await this.recvTransport().consume({
      producerId: producer.id,
      rtpCapabilities: this.rtpCapabilities,
      paused: true,
      ...(p.preferredLayers ? { preferredLayers: p.preferredLayers } : {}),
      appData: { participantId: producer.appData.participantId, source: producer.appData.source },
    });
    if (this.closed) {
      consumer.close();
      throw new SfuError('not_joined', 'left the call');
    }
    this.consumers.set(consumer.id, consumer);
    consumer.observer.once('close', () => this.consumers.delete(consumer.id));
    consumer.on('producerclose', () => {
      this.consumers.delete(consumer.id);
      this.notify('consumerClosed', { consumerId: consumer.id, producerId: producer.id });
    });
    consumer.on('layerschange', (layers) => {
      this.notify('consumerLayersChanged', { consumerId: consumer.id, spatialLayer: layers?.spatialLayer ?? null, temporalLayer: layers?.temporalLayer ?? null });
    });
    return {
      consumerId: consumer.id,
      producerId: producer.id,
      participantId: producer.appData.participantId,
      source: producer.appData.source,
      kind: consumer.kind,
      type: consumer.type,
      rtpParameters: consumer.rtpParameters,
      producerPaused: consumer.producerPaused,
    };
  }

  consumer(id: string): types.Consumer {
    const consumer = this.consumers.get(id);
    if (!consumer) throw new SfuError('not_found', `no consumer ${id}`);
    return consumer;
  }

  /** Closes every transport (and with them the producers and consumers). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const t of [...this.transports.values()]) t.close();
    this.transports.clear();
    this.producers.clear();
    this.consumers.clear();
  }

  /** Server-side view for stats/tests: what this participant holds. */
  stats(): ParticipantStats {
    return {
      ...this.info(),
      transports: [...this.transports.values()].map((t) => ({
        transportId: t.id,
        direction: t.appData.direction,
        iceState: t.iceState,
        dtlsState: t.dtlsState,
        protocol: t.iceSelectedTuple?.protocol ?? null,
      })),
      producers: [...this.producers.values()].map((pr) => ({
        producerId: pr.id,
        kind: pr.kind,
        source: pr.appData.source,
        paused: pr.paused,
        type: pr.type,
      })),
      consumers: [...this.consumers.values()].map((c) => ({
        consumerId: c.id,
        producerId: c.producerId,
        kind: c.kind,
        source: (c.appData as { source?: string }).source,
        paused: c.paused,
        producerPaused: c.producerPaused,
        type: c.type,
        currentLayers: c.currentLayers ?? null,
        preferredLayers: c.preferredLayers ?? null,
      })),
    };
  }
}
