import { badJson, missingParam } from './errors.js';

/** Narrow helpers that turn a parsed JSON body into typed values or a Matrix 400. */
export type JsonObject = Record<string, unknown>;

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function requireString(body: JsonObject, key: string, maxLength = 4096): string {
  const v = body[key];
  if (v === undefined || v === null) throw missingParam(key);
  if (typeof v !== 'string') throw badJson(`'${key}' must be a string`);
  if (v.length > maxLength) throw badJson(`'${key}' is too long`);
  return v;
}

export function optionalString(body: JsonObject, key: string, maxLength = 4096): string | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw badJson(`'${key}' must be a string`);
  if (v.length > maxLength) throw badJson(`'${key}' is too long`);
  return v;
}

export function optionalBoolean(body: JsonObject, key: string): boolean | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw badJson(`'${key}' must be a boolean`);
  return v;
}

export function optionalInteger(body: JsonObject, key: string): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw badJson(`'${key}' must be an integer`);
  return v;
}

export function optionalObject(body: JsonObject, key: string): JsonObject | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) throw badJson(`'${key}' must be an object`);
  return v;
}

export function optionalStringArray(body: JsonObject, key: string, maxItems = 1000): string[] | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.length > maxItems || !v.every((x) => typeof x === 'string')) {
    throw badJson(`'${key}' must be an array of strings`);
  }
  return v as string[];
}
