// A real client asking the same questions again and again while a test
// breaks something around the server: every reply is checked by the caller's
// rule, every timeout and wrong answer is counted. Used by the fault tests
// and the soak.

import type dnsPacket from 'dns-packet';
import { TestDnsClient, type Decoded } from '../helpers/dns-client.ts';

export interface LoopQuestion {
  name: string;
  type?: dnsPacket.RecordType;
  /** ECS client subnet, e.g. "81.2.69.0/24". */
  subnet?: string;
  /** Returns what is wrong with the reply, or null when it is acceptable. */
  check(reply: Decoded): string | null;
}

export interface LoopStats {
  sent: number;
  answered: number;
  timeouts: number;
  wrong: number;
  /** The first few problems, for assertion messages. */
  problems: string[];
  /** Replies by a caller-chosen label (see `label`), e.g. which PoP answered. */
  labels: Record<string, number>;
}

export interface LoopOptions {
  port: number;
  questions: LoopQuestion[];
  /** Pause between two rounds over the questions. */
  everyMs?: number;
  timeoutMs?: number;
  /** Safety bound: the loop stops by itself after this long. */
  maxMs?: number;
  /** Names a reply for the `labels` tally (e.g. the answering PoP). */
  label?(question: LoopQuestion, reply: Decoded): string;
}

const MAX_PROBLEMS = 10;

export class QueryLoop {
  readonly stats: LoopStats = { sent: 0, answered: 0, timeouts: 0, wrong: 0, problems: [], labels: {} };
  private readonly client: TestDnsClient;
  private readonly options: LoopOptions;
  private stopping = false;
  private readonly done: Promise<void>;
  private roundListeners: Array<() => void> = [];

  private constructor(options: LoopOptions) {
    this.options = options;
    this.client = new TestDnsClient(options.port);
    this.done = this.run();
  }

  static start(options: LoopOptions): QueryLoop {
    return new QueryLoop(options);
  }

  /** Resolves after `count` more complete rounds (a way to wait on progress, not on time). */
  rounds(count: number): Promise<void> {
    return new Promise((resolve) => {
      let left = count;
      const listener = (): void => {
        if (--left > 0) return;
        this.roundListeners = this.roundListeners.filter((l) => l !== listener);
        resolve();
      };
      this.roundListeners.push(listener);
    });
  }

  async stop(): Promise<LoopStats> {
    this.stopping = true;
    await this.done;
    this.client.close();
    for (const listener of this.roundListeners.splice(0)) listener();
    return this.stats;
  }

  private note(problem: string): void {
    if (this.stats.problems.length < MAX_PROBLEMS) this.stats.problems.push(problem);
  }

  private async run(): Promise<void> {
    const { questions, everyMs = 20, timeoutMs = 1500, maxMs = 120_000 } = this.options;
    const started = performance.now();
    while (!this.stopping && performance.now() - started < maxMs) {
      await Promise.all(questions.map(async (question) => {
        this.stats.sent++;
        let reply: Decoded;
        try {
          reply = await this.client.query(question.name, question.type ?? 'A', { subnet: question.subnet, timeoutMs });
        } catch (err) {
          this.stats.timeouts++;
          this.note(`${question.name} ${question.subnet ?? ''}: ${(err as Error).message}`);
          return;
        }
        this.stats.answered++;
        const problem = question.check(reply);
        if (problem !== null) {
          this.stats.wrong++;
          this.note(`${question.name} ${question.subnet ?? ''}: ${problem}`);
        }
        if (this.options.label) {
          const label = this.options.label(question, reply);
          this.stats.labels[label] = (this.stats.labels[label] ?? 0) + 1;
        }
      }));
      for (const listener of [...this.roundListeners]) listener();
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  }
}

/** A check: NOERROR with at least one A/AAAA/CNAME answer. */
export function answered(reply: Decoded): string | null {
  if (reply.rcode !== 'NOERROR') return `rcode ${reply.rcode}`;
  if (!(reply.answers ?? []).some((a) => a.type === 'A' || a.type === 'AAAA' || a.type === 'CNAME')) return 'no answer';
  return null;
}

/** Runs `during` with a loop going from `settleRounds` rounds before it to `settleRounds` after; returns the loop's stats. */
export async function withQueryLoop(options: LoopOptions, during: (loop: QueryLoop) => Promise<void>, settleRounds = 3): Promise<LoopStats> {
  const loop = QueryLoop.start(options);
  try {
    await loop.rounds(settleRounds);
    await during(loop);
    await loop.rounds(settleRounds);
  } finally {
    await loop.stop();
  }
  return loop.stats;
}
