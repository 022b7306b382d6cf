import type { Test } from 'uvu';

/**
 * `suite.before(fn)`, but a failure fails every test of the suite.
 *
 * uvu 0.5 runs `before` hooks inside a try whose `finally` returns, so an error thrown by a
 * `before` hook is swallowed: the suite reports "(0 / N)" and the process still exits 0. Here
 * the error is kept and rethrown from a `before.each` hook, which uvu does count as a failure.
 */
export function beforeAll<T>(t: Test<T>, fn: (ctx: T) => unknown | Promise<unknown>): void {
  let failure: unknown;
  t.before(async (ctx) => {
    try {
      await fn(ctx as T);
    } catch (err) {
      failure = err;
    }
  });
  t.before.each(() => {
    if (failure !== undefined) throw failure;
  });
}
