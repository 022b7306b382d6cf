// What each request does (protocol-spec/sfu-signalling.md). Params arrive already checked.
import type { types } from 'mediasoup';
import type { TokenVerifier } from '../auth.js';
import type { CallCloseReason, CallRegistry } from '../call.js';
import type { Logger } from '../logger.js';
import type { Notify, Participant } from '../participant.js';
import { SfuError } from './errors.js';
import type { Method, ParamsOf } from './messages.js';

/** What a handler sees of the socket it serves. */
export interface SessionState {
  participant: Participant | null;
  notify: Notify;
  /** The call ended under this session (worker died, replaced); it may join again. */
  onEvicted(reason: CallCloseReason | 'replaced'): void;
}

export interface HandlerDeps {
  calls: CallRegistry;
  verifier: TokenVerifier;
  routerRtpCapabilities: () => types.RtpCapabilities;
  logger: Logger;
}

type Result = Record<string, unknown>;
type Handler<M extends Method> = (deps: HandlerDeps, s: SessionState, p: ParamsOf<M>) => Promise<Result>;

function joined(s: SessionState): Participant {
  if (!s.participant || s.participant.closed) throw new SfuError('not_joined', 'join a call first');
  return s.participant;
}

export const HANDLERS: { [M in Method]: Handler<M> } = {
  async getRouterRtpCapabilities(deps) {
    return { routerRtpCapabilities: deps.routerRtpCapabilities() };
  },

  async join(deps, s, p) {
    if (s.participant && !s.participant.closed) throw new SfuError('already_joined', 'leave first');
    const grant = await deps.verifier.verify(p.token);
    if (grant.roomId !== p.roomId) throw new SfuError('forbidden', 'the call token is for another room');
    // A call closing (its last participant just left) between lookup and join: take the next one.
    for (let attempt = 0; ; attempt++) {
      const call = await deps.calls.getOrCreate(p.roomId);
      if (call.closed && attempt < 3) continue;
      let participant: Participant;
      try {
        participant = call.join({
          userId: grant.userId,
          deviceId: grant.deviceId,
          rtpCapabilities: p.rtpCapabilities as unknown as types.RtpCapabilities,
          notify: s.notify,
          onEvicted: (reason) => s.onEvicted(reason),
        });
      } catch (err) {
        if (call.participants.size === 0) call.close('shutdown');
        throw err;
      }
      s.participant = participant;
      return {
        participantId: participant.id,
        userId: grant.userId,
        deviceId: grant.deviceId,
        participants: call.roster(participant),
      };
    }
  },

  async leave(_deps, s) {
    const participant = joined(s);
    s.participant = null;
    participant.call.leave(participant);
    return {};
  },

  async createTransport(_deps, s, p) {
    return joined(s).createTransport(p);
  },

  async connectTransport(_deps, s, p) {
    await joined(s).connectTransport(p);
    return {};
  },

  async restartIce(_deps, s, p) {
    return { iceParameters: await joined(s).restartIce(p) };
  },

  async produce(_deps, s, p) {
    const participant = joined(s);
    const producer = await participant.produce(p);
    await participant.call.addProducer(participant, producer);
    return { producerId: producer.id };
  },

  async closeProducer(_deps, s, p) {
    joined(s).producer(p.producerId).close();
    return {};
  },

  async pauseProducer(_deps, s, p) {
    await joined(s).setProducerPaused(p.producerId, true);
    return {};
  },

  async resumeProducer(_deps, s, p) {
    await joined(s).setProducerPaused(p.producerId, false);
    return {};
  },

  async consume(_deps, s, p) {
    return joined(s).consume(p);
  },

  async resumeConsumer(_deps, s, p) {
    await joined(s).consumer(p.consumerId).resume();
    return {};
  },

  async pauseConsumer(_deps, s, p) {
    await joined(s).consumer(p.consumerId).pause();
    return {};
  },

  async closeConsumer(_deps, s, p) {
    joined(s).consumer(p.consumerId).close();
    return {};
  },

  async setConsumerPreferredLayers(_deps, s, p) {
    const consumer = joined(s).consumer(p.consumerId);
    if (consumer.type !== 'simulcast' && consumer.type !== 'svc') throw new SfuError('bad_request', 'the consumer has no layers');
    await consumer.setPreferredLayers({
      spatialLayer: p.spatialLayer,
      ...(p.temporalLayer !== undefined ? { temporalLayer: p.temporalLayer } : {}),
    });
    return {};
  },
};
