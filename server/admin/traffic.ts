// Traffic share per answering endpoint over the last minutes, for the status
// page: a timer reads the decision totals every few seconds and keeps the
// differences in a ring buffer. Nothing here touches the query path.

import type { DecisionCount } from '../engine/decision-counters.ts';

interface TrafficSeries {
  intervalSeconds: number;
  /** End of each interval, ms since the epoch, oldest first; the last one is the interval still running. */
  times: number[];
  /** Answers per endpoint id in each interval (same order as `times`). */
  endpoints: Record<string, number[]>;
}

export class TrafficHistory {
  private readonly intervalMs: number;
  private readonly capacity: number;
  private readonly readTotals: () => DecisionCount[];
  /** Ring of [time, per-endpoint deltas]; `next` is where the next sample goes. */
  private readonly ring: Array<{ at: number; deltas: Map<string, number> } | undefined>;
  private next = 0;
  private previous = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;

  constructor(readTotals: () => DecisionCount[], intervalMs: number, capacity: number) {
    this.readTotals = readTotals;
    this.intervalMs = intervalMs;
    this.capacity = capacity;
    this.ring = new Array(capacity);
    this.previous = this.totalsByEndpoint();
  }

  start(): void {
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private totalsByEndpoint(): Map<string, number> {
    const totals = new Map<string, number>();
    for (const d of this.readTotals()) totals.set(d.endpoint, (totals.get(d.endpoint) ?? 0) + d.count);
    return totals;
  }

  private deltasSincePrevious(totals: Map<string, number>): Map<string, number> {
    const deltas = new Map<string, number>();
    for (const [id, total] of totals) {
      const delta = total - (this.previous.get(id) ?? 0);
      if (delta > 0) deltas.set(id, delta);
    }
    return deltas;
  }

  sample(now = Date.now()): void {
    const totals = this.totalsByEndpoint();
    this.ring[this.next] = { at: now, deltas: this.deltasSincePrevious(totals) };
    this.next = (this.next + 1) % this.capacity;
    this.previous = totals;
  }

  /** The retained intervals plus the one still running (so fresh traffic shows at once). */
  series(now = Date.now()): TrafficSeries {
    const samples = [];
    for (let i = 0; i < this.capacity; i++) {
      const s = this.ring[(this.next + i) % this.capacity];
      if (s) samples.push(s);
    }
    samples.push({ at: now, deltas: this.deltasSincePrevious(this.totalsByEndpoint()) });
    const ids = new Set<string>();
    for (const s of samples) for (const id of s.deltas.keys()) ids.add(id);
    const endpoints: Record<string, number[]> = {};
    for (const id of [...ids].sort()) endpoints[id] = samples.map((s) => s.deltas.get(id) ?? 0);
    return { intervalSeconds: this.intervalMs / 1000, times: samples.map((s) => s.at), endpoints };
  }
}
