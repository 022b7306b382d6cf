// A small checker for client JSON: each Check returns the typed value or throws SfuError
// `bad_request` naming the path. Unknown object keys are ignored (newer clients may send more).
import { SfuError } from './errors.js';

export type Check<T> = (v: unknown, path: string) => T;

const fail = (path: string, what: string): never => {
  throw new SfuError('bad_request', `${path} ${what}`);
};

export const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

export function str(opts: { max?: number; min?: number; pattern?: RegExp } = {}): Check<string> {
  const { max = 1024, min = 1, pattern } = opts;
  return (v, path) => {
    if (typeof v !== 'string') return fail(path, 'must be a string');
    if (v.length < min || v.length > max) return fail(path, `must be ${min} to ${max} characters`);
    if (pattern && !pattern.test(v)) return fail(path, 'is malformed');
    return v;
  };
}

export function int(min: number, max: number): Check<number> {
  return (v, path) => {
    if (typeof v !== 'number' || !Number.isInteger(v)) return fail(path, 'must be an integer');
    if (v < min || v > max) return fail(path, `must be between ${min} and ${max}`);
    return v;
  };
}

export const bool: Check<boolean> = (v, path) => (typeof v === 'boolean' ? v : fail(path, 'must be true or false'));

export function oneOf<const T extends readonly string[]>(values: T): Check<T[number]> {
  return (v, path) =>
    typeof v === 'string' && (values as readonly string[]).includes(v) ? (v as T[number]) : fail(path, `must be one of ${values.join(', ')}`);
}

export function array<T>(item: Check<T>, maxItems: number, minItems = 0): Check<T[]> {
  return (v, path) => {
    if (!Array.isArray(v)) return fail(path, 'must be an array');
    if (v.length < minItems || v.length > maxItems) return fail(path, `must have ${minItems} to ${maxItems} items`);
    return v.map((x, i) => item(x, `${path}[${i}]`));
  };
}

/** Any JSON object, checked only for being one; mediasoup validates the inside (RTP parameters). */
export const anyObject: Check<Record<string, unknown>> = (v, path) => (isPlainObject(v) ? v : fail(path, 'must be an object'));

type Shape = Record<string, Check<unknown>>;
type Out<S extends Shape, O extends keyof S> = { [K in Exclude<keyof S, O>]: ReturnType<S[K]> } & {
  [K in O]?: ReturnType<S[K]>;
};

/** An object with the given required keys, plus optional ones (absent or null means not given). */
export function obj<S extends Shape, O extends Shape = Record<never, never>>(required: S, optional?: O): Check<Out<S & O, keyof O>> {
  return (v, path) => {
    if (!isPlainObject(v)) return fail(path, 'must be an object');
    const out: Record<string, unknown> = {};
    for (const [k, check] of Object.entries(required)) {
      if (!Object.hasOwn(v, k) || v[k] === undefined || v[k] === null) return fail(`${path}.${k}`, 'is required');
      out[k] = check(v[k], `${path}.${k}`);
    }
    for (const [k, check] of Object.entries(optional ?? {})) {
      if (Object.hasOwn(v, k) && v[k] !== undefined && v[k] !== null) out[k] = check(v[k], `${path}.${k}`);
    }
    return out as Out<S & O, keyof O>;
  };
}
