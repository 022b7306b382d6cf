// A minimal Matrix 1:1 VoIP client for browser tests (client-server spec, "Voice over IP"):
// signalling with m.call.* room events through a real homeserver (sent with PUT /send, received
// with long-poll /sync), media over a WebRTC peer connection. Bundled with
// bundleForBrowser(..., { globalName }) and driven from Node with page.evaluate.
//
// Deliberately small: one call at a time, version "1" events, candidates batched once gathering
// completes (spec "ICE Candidate Batching" allows that), callee is the polite party.

export interface PeerOptions {
  /** Homeserver base URL, e.g. http://127.0.0.1:8008 */
  baseUrl: string;
  accessToken: string;
  userId: string;
  roomId: string;
  /** This client's party_id for its calls (opaque identifier grammar). */
  partyId: string;
}

export interface CallEvent {
  type: string;
  sender: string;
  event_id: string;
  content: CallContent;
}

/** The fields of m.call.* contents this client reads (the spec's shapes; not validated here). */
export interface CallContent {
  call_id?: string;
  party_id?: string;
  version?: unknown;
  offer?: RTCSessionDescriptionInit;
  answer?: RTCSessionDescriptionInit;
  description?: RTCSessionDescriptionInit;
  candidates?: RTCIceCandidateInit[];
  reason?: string;
  [field: string]: unknown;
}

interface SyncResponse {
  next_batch: string;
  rooms?: { join?: Record<string, { timeline?: { events?: CallEvent[] } }> };
}

/** One entry of an RTCStatsReport, with the fields read below. */
interface StatsEntry {
  id: string;
  type: string;
  kind?: string;
  bytesReceived?: number;
  candidateType?: string;
  selectedCandidatePairId?: string;
  localCandidateId?: string;
  remoteCandidateId?: string;
}

export interface CallOptions {
  /** Default: the credentials from GET /voip/turnServer. */
  iceServers?: RTCIceServer[];
  /** Default 'relay': media must go through the TURN server. */
  iceTransportPolicy?: RTCIceTransportPolicy;
}

export interface PathStats {
  /** candidateType of the selected pair's local and remote candidates ('host', 'srflx', 'relay'...). */
  local?: string;
  remote?: string;
  /** Sum of inbound-rtp bytesReceived, per kind. */
  inboundBytes: { audio: number; video: number };
  /** Number of inbound-rtp video streams that received bytes. */
  videoStreams: number;
  connectionState: RTCPeerConnectionState;
}

const LIFETIME_MS = 90_000; // the spec's minimal recommended invite lifetime
const CALL_PREFIX = 'm.call.';

export class CallPeer {
  /** Every m.call.* event from another party (our own echoes are dropped by party_id), in order. */
  readonly received: CallEvent[] = [];
  /** Types of the m.call.* events this client sent, in order. */
  readonly sent: string[] = [];
  /** Errors of the background sync loop and event handlers (a test asserts it stays empty). */
  readonly errors: string[] = [];
  pc: RTCPeerConnection | undefined;
  callId: string | undefined;
  hangupReason: string | undefined;

  private since: string | undefined;
  private running = true;
  private txn = 0;
  private remoteParty: string | undefined;
  private remoteReady = false;
  private waiters: { match: (e: CallEvent) => boolean; resolve: (e: CallEvent) => void }[] = [];
  private consumed = new Set<string>();
  private readonly abort = new AbortController();

  private constructor(private readonly o: PeerOptions) {}

  /** Logs in the page (nothing stored) and starts following the room from now on. */
  static async start(o: PeerOptions): Promise<CallPeer> {
    const peer = new CallPeer(o);
    const first = await peer.http<SyncResponse>('GET', `/sync?timeout=0&filter=${encodeURIComponent(peer.filter())}`);
    peer.since = first.next_batch;
    void peer.syncLoop();
    return peer;
  }

  stop(): void {
    this.running = false;
    this.abort.abort();
  }

  // ---- homeserver ----

  private filter(): string {
    // A high timeline limit: a burst of call events must not turn into a gappy (limited) timeline.
    return JSON.stringify({ room: { rooms: [this.o.roomId], timeline: { limit: 100 } }, presence: { types: [] }, account_data: { types: [] } });
  }

  private async http<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(`${this.o.baseUrl}/_matrix/client/v3${path}`, {
      method,
      headers: { Authorization: `Bearer ${this.o.accessToken}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: this.abort.signal,
    });
    const json = (await res.json()) as T;
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  }

  /** ICE servers from GET /voip/turnServer, in RTCPeerConnection's format. */
  async turnServers(): Promise<RTCIceServer[]> {
    const t = await this.http<{ uris?: string[]; username?: string; password?: string }>('GET', '/voip/turnServer');
    if (!t.uris) return [];
    return [{ urls: t.uris, username: t.username, credential: t.password }];
  }

  private async send(type: string, content: Record<string, unknown>): Promise<void> {
    const path = `/rooms/${encodeURIComponent(this.o.roomId)}/send/${type}/${this.o.partyId}.${++this.txn}`;
    await this.http('PUT', path, { ...content, call_id: this.callId, party_id: this.o.partyId, version: '1' });
    this.sent.push(type);
  }

  private async syncLoop(): Promise<void> {
    while (this.running) {
      try {
        const body = await this.http<SyncResponse>('GET', `/sync?timeout=5000&since=${encodeURIComponent(this.since!)}&filter=${encodeURIComponent(this.filter())}`);
        this.since = body.next_batch;
        for (const e of body.rooms?.join?.[this.o.roomId]?.timeline?.events ?? []) {
          if (!e.type.startsWith(CALL_PREFIX) || e.content?.party_id === this.o.partyId) continue;
          // In order: an answer is applied before the candidates that follow it.
          await this.onEvent(e as CallEvent);
        }
      } catch (err) {
        if (!this.running) return;
        this.errors.push(`sync: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  private async onEvent(e: CallEvent): Promise<void> {
    this.received.push(e);
    for (const w of [...this.waiters]) {
      if (!this.consumed.has(e.event_id) && w.match(e)) {
        this.consumed.add(e.event_id);
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(e);
      }
    }
    try {
      if (e.content.call_id !== this.callId || e.content.party_id !== this.remoteParty) return;
      if (e.type === 'm.call.candidates' && this.remoteReady) await this.addCandidates(e);
      else if (e.type === 'm.call.negotiate') await this.onNegotiate(e);
      else if (e.type === 'm.call.hangup') this.end(String(e.content.reason ?? 'user_hangup'));
    } catch (err) {
      this.errors.push(`${e.type}: ${(err as Error).message}`);
    }
  }

  /** The first not-yet-taken event of one of `types` (for the current call unless `anyCall`). */
  waitFor(types: string | string[], anyCall = false): Promise<CallEvent> {
    const wanted = typeof types === 'string' ? [types] : types;
    const callId = this.callId; // fixed now: a later call must not satisfy this wait
    const match = (e: CallEvent) => wanted.includes(e.type) && (anyCall || e.content.call_id === callId);
    const have = this.received.find((e) => !this.consumed.has(e.event_id) && match(e));
    if (have) {
      this.consumed.add(have.event_id);
      return Promise.resolve(have);
    }
    return new Promise((resolve) => this.waiters.push({ match, resolve }));
  }

  // ---- WebRTC ----

  private async newPeerConnection(opts: CallOptions): Promise<RTCPeerConnection> {
    const pc = new RTCPeerConnection({
      iceServers: opts.iceServers ?? (await this.turnServers()),
      iceTransportPolicy: opts.iceTransportPolicy ?? 'relay',
    });
    const local: RTCIceCandidateInit[] = [];
    pc.addEventListener('icecandidate', (ev) => {
      if (ev.candidate) local.push(ev.candidate.toJSON());
    });
    // One m.call.candidates batch once gathering completes, with the end-of-candidates marker.
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState !== 'complete' || this.pc !== pc) return;
      const candidates = local.splice(0).map((c) => ({ candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex }));
      this.send('m.call.candidates', { candidates: [...candidates, { candidate: '' }] }).catch((err) => this.errors.push(`candidates: ${err.message}`));
    });
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
    for (const track of stream.getTracks()) pc.addTrack(track, stream);
    this.pc = pc;
    return pc;
  }

  private async addCandidates(e: CallEvent): Promise<void> {
    for (const c of e.content.candidates as RTCIceCandidateInit[]) {
      if (c.candidate) await this.pc!.addIceCandidate(c); // '' is end-of-candidates: nothing to add
    }
  }

  /** The remote description is set: apply the remote party's candidates received so far, then live. */
  private async remoteDescriptionSet(): Promise<void> {
    const earlier = this.received.filter((e) => e.type === 'm.call.candidates' && e.content.call_id === this.callId && e.content.party_id === this.remoteParty);
    this.remoteReady = true;
    for (const e of earlier) await this.addCandidates(e);
  }

  /** Caller: invite, wait for an answer, select it. Returns the answering party's id. */
  async call(callId: string, invitee: string, opts: CallOptions = {}): Promise<string> {
    this.resetCall(callId);
    const pc = await this.newPeerConnection(opts);
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    await this.send('m.call.invite', { lifetime: LIFETIME_MS, invitee, offer: { type: 'offer', sdp: offer.sdp } });
    const answer = await this.waitFor(['m.call.answer', 'm.call.reject']);
    this.remoteParty = answer.content.party_id;
    if (answer.type === 'm.call.reject') {
      this.end('rejected');
      return this.remoteParty!;
    }
    await pc.setRemoteDescription(answer.content.answer!);
    await this.send('m.call.select_answer', { selected_party_id: this.remoteParty });
    await this.remoteDescriptionSet();
    return this.remoteParty!;
  }

  /** Callee: answer the next invite (of any call id). Returns its call id. */
  async answerNextInvite(opts: CallOptions = {}): Promise<string> {
    const invite = await this.waitFor('m.call.invite', true);
    this.resetCall(invite.content.call_id!);
    this.remoteParty = invite.content.party_id;
    const pc = await this.newPeerConnection(opts);
    await pc.setRemoteDescription(invite.content.offer!);
    await this.remoteDescriptionSet();
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    await this.send('m.call.answer', { answer: { type: 'answer', sdp: answer.sdp } });
    return this.callId!;
  }

  /** Callee: reject the next invite (m.call.reject, sent instead of an answer). Returns its call id. */
  async rejectNextInvite(): Promise<string> {
    const invite = await this.waitFor('m.call.invite', true);
    const current = this.callId;
    this.callId = invite.content.call_id;
    await this.send('m.call.reject', {});
    const rejected = this.callId!;
    this.callId = current;
    return rejected;
  }

  /** Adds a second camera track and offers it with m.call.negotiate; resolves once answered. */
  async addVideoTrack(): Promise<void> {
    const pc = this.pc!;
    const stream = await navigator.mediaDevices.getUserMedia({ video: true });
    pc.addTrack(stream.getVideoTracks()[0]!, stream);
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    const answered = this.waitForNegotiateAnswer();
    await this.send('m.call.negotiate', { lifetime: LIFETIME_MS, description: { type: 'offer', sdp: offer.sdp } });
    await answered;
  }

  private negotiateAnswered: (() => void) | undefined;
  private waitForNegotiateAnswer(): Promise<void> {
    return new Promise((resolve) => (this.negotiateAnswered = resolve));
  }

  private async onNegotiate(e: CallEvent): Promise<void> {
    const pc = this.pc!;
    const description = e.content.description as RTCSessionDescriptionInit;
    if (description.type === 'offer') {
      await pc.setRemoteDescription(description);
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
      await this.send('m.call.negotiate', { lifetime: LIFETIME_MS, description: { type: 'answer', sdp: answer.sdp } });
    } else {
      await pc.setRemoteDescription(description);
      this.negotiateAnswered?.();
    }
  }

  async hangup(): Promise<void> {
    await this.send('m.call.hangup', { reason: 'user_hangup' });
    this.end('user_hangup');
  }

  private end(reason: string): void {
    this.hangupReason = reason;
    this.pc?.getSenders().forEach((s) => s.track?.stop());
    this.pc?.close();
  }

  private resetCall(callId: string): void {
    this.callId = callId;
    this.remoteParty = undefined;
    this.remoteReady = false;
    this.hangupReason = undefined;
  }

  /** The selected ICE path and media received so far. */
  async stats(): Promise<PathStats> {
    const pc = this.pc!;
    const report = await pc.getStats();
    const byId = new Map<string, StatsEntry>();
    report.forEach((s: StatsEntry) => byId.set(s.id, s));
    const out: PathStats = { inboundBytes: { audio: 0, video: 0 }, videoStreams: 0, connectionState: pc.connectionState };
    for (const s of byId.values()) {
      if (s.type === 'transport' && s.selectedCandidatePairId) {
        const pair = byId.get(s.selectedCandidatePairId);
        out.local = byId.get(pair?.localCandidateId ?? '')?.candidateType;
        out.remote = byId.get(pair?.remoteCandidateId ?? '')?.candidateType;
      }
      if (s.type === 'inbound-rtp' && (s.kind === 'audio' || s.kind === 'video')) {
        const bytes = s.bytesReceived ?? 0;
        out.inboundBytes[s.kind] += bytes;
        if (s.kind === 'video' && bytes > 0) out.videoStreams++;
      }
    }
    return out;
  }
}

/**
 * Gathers ICE candidates against the given servers without any call: the candidate types found
 * and the TURN errors reported (icecandidateerror). With wrong credentials there is no relay.
 */
export async function gatherCandidates(iceServers: RTCIceServer[]): Promise<{ types: string[]; errors: number[] }> {
  const pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: 'relay' });
  const types: string[] = [];
  const errors: number[] = [];
  pc.addEventListener('icecandidate', (ev) => {
    if (ev.candidate?.type) types.push(ev.candidate.type);
  });
  pc.addEventListener('icecandidateerror', (ev) => errors.push((ev as RTCPeerConnectionIceErrorEvent).errorCode));
  const done = new Promise<void>((resolve) => {
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') resolve();
    });
  });
  pc.createDataChannel('probe');
  await pc.setLocalDescription(await pc.createOffer());
  await done;
  pc.close();
  return { types, errors };
}
