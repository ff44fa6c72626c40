// Commit→visible lag. The core records when each seq committed (performance.now(), same process as
// every observer, so one clock); each observer (a region's read node, a polling replica, a Redis
// replica) reports the highest seq it can now show, and every seq newly covered gets
// lag = seenAt - commitAt recorded in that observer's histogram. Invariant: memory stays bounded —
// commit times below every observer's watermark are dropped.
import { histogram, recordMs, type Histogram } from './stats.js';

export class LagTracker {
  private readonly commitAt = new Map<number, number>();
  private readonly observers = new Map<string, { visible: number; hist: Histogram }>();
  private pruneFrom = 1;
  /** Commits after this seq are measured (earlier ones happened before the observers started). */
  constructor(private readonly fromSeq = 0) {}

  addObserver(name: string, visible = this.fromSeq): void {
    this.observers.set(name, { visible: Math.max(visible, this.fromSeq), hist: histogram() });
  }

  histogramOf(name: string): Histogram {
    return this.observers.get(name)!.hist;
  }

  visibleOf(name: string): number {
    return this.observers.get(name)!.visible;
  }

  committed(fromSeq: number, toSeq: number, atMs: number): void {
    for (let s = fromSeq; s <= toSeq; s++) if (s > this.fromSeq) this.commitAt.set(s, atMs);
  }

  seen(name: string, seq: number, atMs: number): void {
    const o = this.observers.get(name);
    if (!o || seq <= o.visible) return;
    for (let s = o.visible + 1; s <= seq; s++) {
      const at = this.commitAt.get(s);
      if (at !== undefined) recordMs(o.hist, atMs - at);
    }
    o.visible = seq;
    this.prune();
  }

  private prune(): void {
    let low = Infinity;
    for (const o of this.observers.values()) low = Math.min(low, o.visible);
    for (let s = this.pruneFrom; s <= low; s++) this.commitAt.delete(s);
    if (low !== Infinity) this.pruneFrom = Math.max(this.pruneFrom, low + 1);
  }

  get pending(): number {
    return this.commitAt.size;
  }
}
