// Browser side of the SFU tests: a minimal call client on mediasoup-client, bundled by esbuild and
// driven from Node with page.evaluate(() => window.sfuTest.…). It joins, produces the fake
// camera/microphone (or a tone, or a fake screen), consumes every other producer (created
// paused by the SFU, resumed once set up) and reports inbound RTP bytes per consumer.
import { Device } from 'mediasoup-client';
import type { types } from 'mediasoup-client';

type Source = 'microphone' | 'camera' | 'screen' | 'screenAudio';

interface Notification {
  method: string;
  params: any;
}

interface ConsumerInfo {
  consumer: types.Consumer;
  participantId: string;
  source: Source;
}

export interface InboundReport {
  consumerId: string;
  producerId: string;
  participantId: string;
  source: Source;
  kind: string;
  bytes: number;
  /** The track's readyState/muted as the page sees them. */
  muted: boolean;
  paused: boolean;
}

class SfuTestClient {
  private ws: WebSocket | null = null;
  private nextId = 1;
  private pending = new Map<number, { resolve: (r: any) => void; reject: (e: Error) => void }>();
  device: Device | null = null;
  private sendTransport: types.Transport | null = null;
  private recvTransport: types.Transport | null = null;
  readonly producers = new Map<Source, types.Producer>();
  readonly consumers = new Map<string, ConsumerInfo>();
  readonly notifications: Notification[] = [];
  participantId = '';
  private forceTcp = false;
  private autoConsume = true;
  private consuming: Promise<void> = Promise.resolve();

  async connect(url: string): Promise<void> {
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error('websocket failed'));
    });
    ws.onmessage = (ev) => this.onMessage(JSON.parse(String(ev.data)));
    ws.onclose = () => {
      for (const p of this.pending.values()) p.reject(new Error('socket closed'));
      this.pending.clear();
    };
    this.ws = ws;
  }

  private onMessage(msg: any): void {
    if (msg.id !== undefined && msg.id !== null) {
      const p = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      if (!p) return;
      if (msg.error) p.reject(new Error(`${msg.error.code}: ${msg.error.message}`));
      else p.resolve(msg.result);
      return;
    }
    if (typeof msg.method !== 'string') return;
    this.notifications.push({ method: msg.method, params: msg.params });
    if (msg.method === 'producerAdded' && this.autoConsume) this.queueConsume(msg.params.producerId);
    if (msg.method === 'consumerClosed') {
      this.consumers.get(msg.params.consumerId)?.consumer.close();
      this.consumers.delete(msg.params.consumerId);
    }
    if (msg.method === 'callClosed') this.dropMedia();
  }

  request(method: string, params: Record<string, unknown> = {}): Promise<any> {
    const ws = this.ws;
    if (!ws) return Promise.reject(new Error('not connected'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      ws.send(JSON.stringify({ id, method, params }));
    });
  }

  /** Joins the call, sets up both transports and consumes what the others already produce. */
  async join(token: string, roomId: string, opts: { forceTcp?: boolean; autoConsume?: boolean } = {}): Promise<string> {
    this.forceTcp = opts.forceTcp ?? false;
    this.autoConsume = opts.autoConsume ?? true;
    if (!this.device) {
      const { routerRtpCapabilities } = await this.request('getRouterRtpCapabilities');
      this.device = new Device();
      await this.device.load({ routerRtpCapabilities });
    }
    const joined = await this.request('join', { token, roomId, rtpCapabilities: this.device.rtpCapabilities });
    this.participantId = joined.participantId;
    this.sendTransport = await this.makeTransport('send');
    this.recvTransport = await this.makeTransport('recv');
    if (this.autoConsume) {
      for (const p of joined.participants) for (const pr of p.producers) this.queueConsume(pr.producerId);
    }
    await this.consuming;
    return joined.participantId;
  }

  private async makeTransport(direction: 'send' | 'recv'): Promise<types.Transport> {
    const device = this.device!;
    const t = await this.request('createTransport', { direction, forceTcp: this.forceTcp });
    const opts = { id: t.transportId, iceParameters: t.iceParameters, iceCandidates: t.iceCandidates, dtlsParameters: t.dtlsParameters };
    const transport = direction === 'send' ? device.createSendTransport(opts) : device.createRecvTransport(opts);
    transport.on('connect', ({ dtlsParameters }, callback, errback) => {
      this.request('connectTransport', { transportId: transport.id, dtlsParameters }).then(() => callback(), errback);
    });
    if (direction === 'send') {
      transport.on('produce', ({ kind, rtpParameters, appData }, callback, errback) => {
        this.request('produce', { transportId: transport.id, kind, rtpParameters, source: appData.source })
          .then(({ producerId }) => callback({ id: producerId }), errback);
      });
    }
    return transport;
  }

  private queueConsume(producerId: string): void {
    this.consuming = this.consuming
      .then(async () => {
        await this.consume(producerId);
      })
      .catch((err: unknown) => {
        console.error('consume failed', String(err));
      });
  }

  /** Consumes one producer: the SFU creates the consumer paused; it is resumed once set up here. */
  async consume(producerId: string, preferredLayers?: { spatialLayer: number; temporalLayer?: number }): Promise<string> {
    const c = await this.request('consume', { producerId, ...(preferredLayers ? { preferredLayers } : {}) });
    const consumer = await this.recvTransport!.consume({ id: c.consumerId, producerId: c.producerId, kind: c.kind, rtpParameters: c.rtpParameters });
    this.consumers.set(consumer.id, { consumer, participantId: c.participantId, source: c.source });
    await this.request('resumeConsumer', { consumerId: consumer.id });
    return consumer.id;
  }

  async produce(source: Source, track: MediaStreamTrack, opts: { simulcast?: boolean } = {}): Promise<string> {
    const producer = await this.sendTransport!.produce({
      track,
      appData: { source },
      ...(opts.simulcast
        ? {
            encodings: [
              { scaleResolutionDownBy: 4, maxBitrate: 150_000 },
              { scaleResolutionDownBy: 2, maxBitrate: 400_000 },
              { scaleResolutionDownBy: 1, maxBitrate: 1_200_000 },
            ],
            codec: this.device!.rtpCapabilities.codecs!.find((c) => c.mimeType.toLowerCase() === 'video/vp8'),
          }
        : {}),
    });
    this.producers.set(source, producer);
    return producer.id;
  }

  async startMicrophone(): Promise<string> {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    return this.produce('microphone', stream.getAudioTracks()[0]!);
  }

  /** A steady 440 Hz tone as the microphone (a voice the active speaker observer hears). */
  async startTone(): Promise<string> {
    const ctx = new AudioContext();
    await ctx.resume();
    const osc = ctx.createOscillator();
    osc.frequency.value = 440;
    const gain = ctx.createGain();
    gain.gain.value = 0.8;
    const dest = ctx.createMediaStreamDestination();
    osc.connect(gain).connect(dest);
    osc.start();
    return this.produce('microphone', dest.stream.getAudioTracks()[0]!);
  }

  async startCamera(simulcast = false): Promise<string> {
    const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 } });
    return this.produce('camera', stream.getVideoTracks()[0]!, { simulcast });
  }

  async startScreen(): Promise<string> {
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: true });
    return this.produce('screen', stream.getVideoTracks()[0]!);
  }

  /** Mute / camera off: pause locally and tell the SFU (the others get producerPaused). */
  async pause(source: Source): Promise<void> {
    const p = this.producers.get(source)!;
    p.pause();
    await this.request('pauseProducer', { producerId: p.id });
  }

  async resume(source: Source): Promise<void> {
    const p = this.producers.get(source)!;
    p.resume();
    await this.request('resumeProducer', { producerId: p.id });
  }

  async stop(source: Source): Promise<void> {
    const p = this.producers.get(source)!;
    p.close();
    this.producers.delete(source);
    await this.request('closeProducer', { producerId: p.id });
  }

  async setPreferredLayers(consumerId: string, spatialLayer: number, temporalLayer?: number): Promise<void> {
    await this.request('setConsumerPreferredLayers', { consumerId, spatialLayer, ...(temporalLayer !== undefined ? { temporalLayer } : {}) });
  }

  /** ICE restart on both transports (what a client does after a network change). */
  async restartIce(): Promise<void> {
    for (const t of [this.sendTransport, this.recvTransport]) {
      if (!t) continue;
      const { iceParameters } = await this.request('restartIce', { transportId: t.id });
      await t.restartIce({ iceParameters });
    }
  }

  async inbound(): Promise<InboundReport[]> {
    const out: InboundReport[] = [];
    for (const [id, info] of this.consumers) {
      let bytes = 0;
      const stats = await info.consumer.getStats();
      stats.forEach((s) => {
        if (s.type === 'inbound-rtp') bytes += s.bytesReceived ?? 0;
      });
      out.push({
        consumerId: id,
        producerId: info.consumer.producerId,
        participantId: info.participantId,
        source: info.source,
        kind: info.consumer.kind,
        bytes,
        muted: info.consumer.track.muted,
        paused: info.consumer.paused,
      });
    }
    return out;
  }

  transportStates(): string[] {
    return [this.sendTransport?.connectionState ?? 'none', this.recvTransport?.connectionState ?? 'none'];
  }

  /** After callClosed (or before a rejoin): local media objects go; the socket stays. */
  dropMedia(): void {
    for (const p of this.producers.values()) p.close();
    this.producers.clear();
    for (const c of this.consumers.values()) c.consumer.close();
    this.consumers.clear();
    this.sendTransport?.close();
    this.recvTransport?.close();
    this.sendTransport = null;
    this.recvTransport = null;
  }

  async leave(): Promise<void> {
    await this.request('leave');
    this.dropMedia();
  }

  close(): void {
    this.dropMedia();
    this.ws?.close();
  }
}

(globalThis as unknown as { sfuTest: SfuTestClient }).sfuTest = new SfuTestClient();
