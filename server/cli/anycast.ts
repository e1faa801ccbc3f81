// `popsteer anycast`: ties the anycast route to this instance's fitness
// (server/anycast). Thin: parse options, pick the routing daemon, run the
// loop, withdraw on SIGTERM.

import { pino } from 'pino';
import { RouteController } from '../anycast/controller.ts';
import { ANYCAST_HELP, AnycastUsageError, parseAnycastOptions, type AnycastOptions } from '../anycast/options.ts';
import { BirdSpeaker, ExaBgpSpeaker, type RouteSpeaker } from '../anycast/speakers.ts';

/** Runs until SIGTERM/SIGINT (or, in exabgp mode, until ExaBGP closes stdin); resolves with the exit status. */
export async function runAnycastCommand(args: string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`${ANYCAST_HELP}\n`);
    return 0;
  }
  let options: AnycastOptions;
  try {
    options = parseAnycastOptions(args);
  } catch (err) {
    if (!(err instanceof AnycastUsageError)) throw err;
    process.stderr.write(`popsteer anycast: ${err.message} (see --help)\n`);
    return 2;
  }
  // stdout may be the ExaBGP API channel: logs go to stderr in every mode.
  const log = pino({ level: options.logLevel, base: { instance: options.pop, component: 'anycast', pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ dest: 2, sync: true }));

  const speaker: RouteSpeaker = options.mode === 'exabgp'
    ? new ExaBgpSpeaker(options.prefixes, options.nextHop, process.stdout)
    : new BirdSpeaker({ protocol: options.birdProtocol, birdc: options.birdc, socket: options.birdSocket, timeoutMs: options.timeoutMs });
  const controller = new RouteController({
    prefixes: options.prefixes,
    targets: { admin: { ...options.admin, tls: options.adminTls }, dns: options.dns, timeoutMs: options.timeoutMs },
    intervalMs: options.intervalMs,
    holdDownMs: options.holdDownMs,
    reassertEveryMs: options.reassertMs,
    speaker,
    log,
  });

  return new Promise<number>((resolveExit) => {
    let finished = false;
    const finish = (code: number): void => {
      if (finished) return;
      finished = true;
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      process.stdin.destroy();
      resolveExit(code);
    };
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals): void => {
      signals++;
      if (signals > 1) return finish(1); // a second signal: leave at once
      log.info({ signal }, 'stopping: withdrawing first');
      void controller.stop(`anycast process received ${signal}`).then(() => {
        log.info('stopped');
        finish(0);
      });
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);

    if (options.mode === 'exabgp') {
      // ExaBGP acknowledges each command on our stdin ("done"/"error"); it
      // closing stdin means ExaBGP went away and the BGP session with it.
      process.stdout.on('error', (err) => log.error({ err: err.message }, 'cannot write to ExaBGP'));
      let pending = '';
      process.stdin.setEncoding('utf8');
      process.stdin.on('data', (chunk: string) => {
        pending += chunk;
        let newline;
        while ((newline = pending.indexOf('\n')) >= 0) {
          const line = pending.slice(0, newline).trim();
          pending = pending.slice(newline + 1);
          if (line === 'error') log.error('ExaBGP rejected a command');
          else if (line !== '' && line !== 'done') log.debug({ line }, 'from ExaBGP');
        }
      });
      process.stdin.on('end', () => {
        if (finished || signals > 0) return;
        log.warn('ExaBGP closed our stdin; exiting');
        void controller.stop('ExaBGP went away').then(() => finish(0));
      });
    }
    log.info({ mode: options.mode, prefixes: options.prefixes, admin: `${options.admin.host}:${options.admin.port}`, dns: `${options.dns.host}:${options.dns.port}`,
      intervalMs: options.intervalMs, holdDownMs: options.holdDownMs, speaker: speaker.name }, 'anycast route control started');
    controller.start();
  });
}
