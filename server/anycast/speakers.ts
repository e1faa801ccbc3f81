// The routing daemons popsteer talks to. A speaker turns "announce" and
// "withdraw" into what the daemon understands; it does not decide anything.
//
// - ExaBGP: popsteer runs as an ExaBGP `process`; each line written on stdout
//   is an API command (ExaBGP 4 text API).
// - BIRD 2: a static protocol holding the service prefixes is enabled or
//   disabled through birdc; BIRD's BGP protocols export it (or stop).

import { execFile } from 'node:child_process';
import type { Writable } from 'node:stream';
import type { RouteAction } from './route-state.ts';

export interface RouteSpeaker {
  /** What the log calls this speaker ("exabgp", "bird protocol anycast_routes"). */
  readonly name: string;
  /** Resolves true when the daemon changed state, false when it already was there. */
  apply(action: RouteAction): Promise<boolean>;
}

export class ExaBgpSpeaker implements RouteSpeaker {
  readonly name = 'exabgp';
  private readonly prefixes: string[];
  private readonly nextHop: string;
  private readonly out: Writable;

  constructor(prefixes: string[], nextHop: string, out: Writable) {
    this.prefixes = prefixes;
    this.nextHop = nextHop;
    this.out = out;
  }

  /** The API lines for an action, one per prefix. */
  commands(action: RouteAction): string[] {
    return this.prefixes.map((prefix) => `${action} route ${prefix} next-hop ${this.nextHop}`);
  }

  apply(action: RouteAction): Promise<boolean> {
    const text = `${this.commands(action).join('\n')}\n`;
    // Resolve once the bytes are handed to the pipe, so a SIGTERM withdraw is
    // written before the process exits.
    return new Promise((resolveWrite, reject) => {
      this.out.write(text, (err) => (err ? reject(err) : resolveWrite(true)));
    });
  }
}

interface BirdOptions {
  protocol: string;
  birdc: string;
  socket: string | null;
  timeoutMs: number;
}

export class BirdSpeaker implements RouteSpeaker {
  readonly name: string;
  private readonly options: BirdOptions;

  constructor(options: BirdOptions) {
    this.options = options;
    this.name = `bird protocol ${options.protocol}`;
  }

  /** birdc arguments for an action: enable/disable the static protocol. */
  birdcArgs(action: RouteAction): string[] {
    const socketArgs = this.options.socket ? ['-s', this.options.socket] : [];
    return [...socketArgs, action === 'announce' ? 'enable' : 'disable', this.options.protocol];
  }

  apply(action: RouteAction): Promise<boolean> {
    return new Promise((resolveRun, reject) => {
      execFile(this.options.birdc, this.birdcArgs(action), { timeout: this.options.timeoutMs }, (err, stdout, stderr) => {
        const output = `${stdout}${stderr}`.trim();
        if (err) return reject(new Error(`${this.options.birdc} ${this.birdcArgs(action).join(' ')}: ${err.message} ${output}`.trim()));
        // birdc exits 0 even when BIRD refuses a command; its reply codes say
        // more: "<protocol>: enabled|disabled|already enabled|already disabled".
        if (!/\b(enabled|disabled)\b/.test(output)) return reject(new Error(`birdc did not confirm: ${output}`));
        resolveRun(!/\balready (enabled|disabled)\b/.test(output));
      });
    });
  }
}
