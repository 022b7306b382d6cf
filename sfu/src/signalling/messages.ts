// The signalling envelope and every request's params (protocol-spec/sfu-signalling.md).
//   client -> SFU  request       { "id": 1, "method": "join", "params": { ... } }
//   SFU -> client  response      { "id": 1, "result": { ... } }  or  { "id": 1, "error": { "code", "message" } }
//   SFU -> client  notification  { "method": "producerAdded", "params": { ... } }   (no id)
import { SfuError } from './errors.js';
import { anyObject, array, bool, int, isPlainObject, obj, oneOf, str, type Check } from './validate.js';

export type RequestId = number | string;

export interface Request {
  id: RequestId;
  method: string;
  params: unknown;
}

/** Thrown for a message whose id could be read, so the error can still be matched to it. */
export class RequestError extends Error {
  constructor(
    readonly id: RequestId | null,
    override readonly cause: SfuError,
  ) {
    super(cause.message);
  }
}

const ID_MAX = 64;

/** Parses one text frame into a request; throws RequestError (with the id when one was readable). */
export function parseRequest(text: string): Request {
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch {
    throw new RequestError(null, new SfuError('bad_request', 'message is not JSON'));
  }
  if (!isPlainObject(msg)) throw new RequestError(null, new SfuError('bad_request', 'message must be a JSON object'));
  const { id, method, params } = msg;
  const idOk =
    (typeof id === 'number' && Number.isSafeInteger(id) && id >= 0) || (typeof id === 'string' && id.length > 0 && id.length <= ID_MAX);
  if (!idOk) throw new RequestError(null, new SfuError('bad_request', `id must be a non-negative integer or a string of 1 to ${ID_MAX} characters`));
  const rid = id as RequestId;
  if (typeof method !== 'string' || method.length === 0 || method.length > 64) {
    throw new RequestError(rid, new SfuError('bad_request', 'method must be a string'));
  }
  if (params !== undefined && !isPlainObject(params)) throw new RequestError(rid, new SfuError('bad_request', 'params must be an object'));
  return { id: rid, method, params: params ?? {} };
}

// ---- params ----

/** mediasoup object ids (UUIDs), opaque to clients. */
const objectId = str({ max: 64, pattern: /^[A-Za-z0-9-]+$/ });
const layer = int(0, 9);

export const SOURCES = ['microphone', 'camera', 'screen', 'screenAudio'] as const;
export type Source = (typeof SOURCES)[number];
/** The kind each source must have. */
export const SOURCE_KIND: Record<Source, 'audio' | 'video'> = {
  microphone: 'audio',
  camera: 'video',
  screen: 'video',
  screenAudio: 'audio',
};

const rtpCapabilities = obj({ codecs: array(anyObject, 64) }, { headerExtensions: array(anyObject, 64) });
const dtlsParameters = obj(
  { fingerprints: array(obj({ algorithm: str({ max: 32 }), value: str({ max: 256 }) }), 8, 1) },
  { role: oneOf(['auto', 'client', 'server'] as const) },
);

export const PARAMS = {
  getRouterRtpCapabilities: obj({}),
  join: obj({ token: str({ max: 8192 }), roomId: str({ max: 255, pattern: /^!/ }), rtpCapabilities }),
  leave: obj({}),
  createTransport: obj({ direction: oneOf(['send', 'recv'] as const) }, { forceTcp: bool }),
  connectTransport: obj({ transportId: objectId, dtlsParameters }),
  restartIce: obj({ transportId: objectId }),
  produce: obj(
    { transportId: objectId, kind: oneOf(['audio', 'video'] as const), source: oneOf(SOURCES), rtpParameters: anyObject },
    { paused: bool },
  ),
  closeProducer: obj({ producerId: objectId }),
  pauseProducer: obj({ producerId: objectId }),
  resumeProducer: obj({ producerId: objectId }),
  consume: obj({ producerId: objectId }, { preferredLayers: obj({ spatialLayer: layer }, { temporalLayer: layer }) }),
  resumeConsumer: obj({ consumerId: objectId }),
  pauseConsumer: obj({ consumerId: objectId }),
  closeConsumer: obj({ consumerId: objectId }),
  setConsumerPreferredLayers: obj({ consumerId: objectId, spatialLayer: layer }, { temporalLayer: layer }),
} satisfies Record<string, Check<unknown>>;

export type Method = keyof typeof PARAMS;
export type ParamsOf<M extends Method> = ReturnType<(typeof PARAMS)[M]>;

export function isMethod(m: string): m is Method {
  return Object.hasOwn(PARAMS, m);
}

/** Checks a request's params for its method; throws SfuError. */
export function checkParams<M extends Method>(method: M, params: unknown): ParamsOf<M> {
  return PARAMS[method](params, 'params') as ParamsOf<M>;
}
