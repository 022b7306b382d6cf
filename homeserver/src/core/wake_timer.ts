/**
 * One timer that fires at the earliest time it was asked for: `at(ts)` only ever moves it earlier.
 * For background work that is woken by events and otherwise sleeps until a known deadline (typing
 * expiry, federation back-off). The timer never keeps the process alive.
 */
export class WakeTimer {
  private timer?: NodeJS.Timeout;
  private timerAt = Infinity;
  private stopped = false;

  constructor(private readonly fire: () => void) {}

  /** Fires at `ts` (a Date.now() time) unless it already fires earlier. */
  at(ts: number): void {
    if (this.stopped || ts >= this.timerAt) return;
    clearTimeout(this.timer);
    this.timerAt = ts;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerAt = Infinity;
      this.fire();
    }, Math.max(0, ts - Date.now()));
    this.timer.unref();
  }

  /** Cancels it for good. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}
