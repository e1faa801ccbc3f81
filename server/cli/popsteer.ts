// popsteer command line: thin wrappers that call the modules. Started through
// bin/popsteer.js, which checks the runtime first.

import { ConfigErrors } from '../config/errors.ts';
import { resolveSettings, settingsHelp } from '../config/settings.ts';
import { createLogger } from '../log/logger.ts';
import { startServer, type RunningServer } from '../main.ts';
import { readFileSync } from 'node:fs';
import { loadGeo } from '../geo-context.ts';
import { loadSnapshot } from '../policy/load.ts';
import { runAnycastCommand } from './anycast.ts';
import { DIFF_HELP, runDiffCommand } from './diff.ts';
import { DNSSEC_HELP, runDnssecCommand } from './dnssec.ts';
import { EXPLAIN_HELP, runExplainCommand } from './explain.ts';
import { FLEET_HELP, runFleetCommand } from './fleet.ts';
import { POP_HELP, runPopCommand } from './pop.ts';
import { REVISIONS_HELP, runRevisionsCommand } from './revisions.ts';

const USAGE = `popsteer — authoritative DNS that steers clients to the best healthy PoP

Usage:
  popsteer serve [options]          serve DNS (UDP+TCP) and the admin API
  popsteer validate [--config dir]  check the configuration; exit 0 when valid, 1 with the errors
  popsteer explain --name <n> [--client <cidr>] [--resolver ip] [--down ids] [--json]
                                    why a client gets its answer, step by step
  popsteer diff --from <dir> --to <dir> [--sample file]
                                    how answers move between two policy sets
  popsteer pop drain|undrain|force-down|force-up <id> --reason "…" [--expires 30m]
                                    override a PoP's health through the admin API
  popsteer fleet status [--admin host:port]
                                    the fleet's instances and overrides, as one instance sees them
  popsteer publish --config <dir> [--message m] [--canary lhr,fra] --fleet nats://…
                                    validate a policy set and publish it to every instance of the fleet
  popsteer history | rollback <rev> | promote <rev> --fleet nats://…
                                    the fleet's policy revisions; publish an old one again; lift a canary
  popsteer anycast [options]        announce/withdraw the anycast route with ExaBGP or BIRD 2 as fitness changes
  popsteer dnssec keygen|ds|rollover --config <dir> --zone <zone>
                                    make a zone's signing key; print its DS for the parent
  popsteer --version                popsteer's version and the Node.js runtime it runs on
  popsteer --help | <command> --help

Run from the repository root with no --config/--geo-data, popsteer uses
./policies and ./geo-data.

Exit status: 2 bad usage (an unknown command or option); each command's
--help gives the rest.`;

const SERVE_HELP = `Usage: popsteer serve [options]

Serves DNS on every --listen address (UDP and TCP) and the admin HTTP API.
Every option can also be set by an environment variable or in
<config dir>/popsteer.yaml; a flag beats the environment, which beats the file.

Options:
${settingsHelp()}

Signals: SIGHUP reloads the configuration; SIGTERM stops gracefully (a second
SIGTERM exits at once).

Exit status: 0 stopped by SIGTERM after the drain; 1 stopped by a failure while
serving (a DNS worker crashed: logged with its stack) or by a second SIGTERM;
2 a start-up mistake (a bad setting or file, an address already in use or
that cannot be bound), named on standard error.`;

const VALIDATE_HELP = `Usage: popsteer validate [--config dir] [dir]

Runs the same loader and compiler as "serve", without opening sockets.
Prints every error as file:line:column: CODE: what to change.
Exit status: 0 valid, 1 invalid, 2 bad usage.`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return command === undefined ? 2 : 0;
  }
  if (command === '--version' || command === '-V' || command === 'version') {
    process.stdout.write(`${versionText()}\n`);
    return 0;
  }
  const wantsHelp = rest.includes('--help') || rest.includes('-h');
  switch (command) {
    case 'serve': {
      if (wantsHelp) {
        process.stdout.write(`${SERVE_HELP}\n`);
        return 0;
      }
      return serve(rest);
    }
    case 'validate': {
      if (wantsHelp) {
        process.stdout.write(`${VALIDATE_HELP}\n`);
        return 0;
      }
      return validate(rest);
    }
    case 'explain':
      if (wantsHelp) {
        process.stdout.write(`${EXPLAIN_HELP}\n`);
        return 0;
      }
      return runExplainCommand(rest);
    case 'diff':
      if (wantsHelp) {
        process.stdout.write(`${DIFF_HELP}\n`);
        return 0;
      }
      return runDiffCommand(rest);
    case 'pop':
      if (wantsHelp) {
        process.stdout.write(`${POP_HELP}\n`);
        return 0;
      }
      return runPopCommand(rest);
    case 'fleet':
      if (wantsHelp) {
        process.stdout.write(`${FLEET_HELP}\n`);
        return 0;
      }
      return runFleetCommand(rest);
    case 'publish':
    case 'history':
    case 'rollback':
    case 'promote':
      return wantsHelp ? (process.stdout.write(`${REVISIONS_HELP}\n`), 0) : runRevisionsCommand(command, rest);
    case 'anycast':
      return runAnycastCommand(rest);
    case 'dnssec':
      return wantsHelp ? (process.stdout.write(`${DNSSEC_HELP}\n`), 0) : runDnssecCommand(rest);
    default:
      process.stderr.write(`popsteer: unknown command "${command}"\n\n${USAGE}\n`);
      return 2;
  }
}

/** "popsteer 0.1.0 (Node.js v24.21.0, linux x64)": what an operator pastes into a bug report. */
function versionText(): string {
  const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return `popsteer ${version} (Node.js ${process.version}, ${process.platform} ${process.arch})`;
}

async function serve(args: string[]): Promise<number> {
  let settings;
  try {
    ({ settings } = resolveSettings(args, process.env, process.cwd()));
  } catch (err) {
    return reportConfigErrors(err);
  }
  const log = createLogger(settings.logLevel, settings.pop);
  // Signals are handled from the first moment: a SIGTERM during start-up stops
  // the server as soon as it exists, or the process as soon as start-up has
  // failed; a second one exits at once. Every path ends in process.exit, so
  // nothing left running (a thread, a timer) can keep a stopped server alive.
  let server: RunningServer | null = null;
  let stopRequested = false;
  let terms = 0;
  const stop = (): void => {
    terms++;
    if (terms > 1) process.exit(1);
    stopRequested = true;
    if (server) void server.shutdown().then(() => process.exit(process.exitCode ?? 0));
    else log.info('stop requested during start-up: stopping once the server is up');
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('SIGHUP', () => { void server?.reload('SIGHUP'); });
  try {
    server = await startServer(settings, log);
  } catch (err) {
    if (err instanceof ConfigErrors) {
      for (const e of err.errors) log.fatal({ code: e.code, file: e.file, line: e.line, column: e.column, pointer: e.pointer }, e.format());
      process.exit(reportConfigErrors(err));
    }
    log.fatal({ err: (err as Error).message, stack: (err as Error).stack }, 'cannot start');
    process.stderr.write(`popsteer: cannot start: ${(err as Error).message}\n`);
    process.exit(1);
  }
  if (stopRequested) {
    const running = server;
    void running.shutdown().then(() => process.exit(process.exitCode ?? 0));
  }
  return -1; // keep running
}

function validate(args: string[]): number {
  let settings;
  let positionals: string[];
  try {
    ({ settings, positionals } = resolveSettings(args, process.env, process.cwd()));
    // `validate DIR` is `validate --config DIR`: DIR's popsteer.yaml (geo_data …) applies too.
    if (positionals[0]) ({ settings } = resolveSettings([...args, '--config', positionals[0]], process.env, process.cwd()));
  } catch (err) {
    const code = reportConfigErrors(err);
    // The help's promise: 2 for bad usage (the command line), 1 for an invalid configuration (popsteer.yaml, environment).
    const usage = (err as ConfigErrors).errors.some((e) => e.code === 'POPSTEER_ERR_USAGE' || e.file === 'command line' || e.file.startsWith('--'));
    return usage ? code : 1;
  }
  const configDir = settings.configDir;
  let geo;
  try {
    geo = loadGeo(settings);
  } catch (err) {
    if (!(err instanceof ConfigErrors)) throw err;
    for (const e of err.errors) process.stdout.write(`${e.format()}\n`);
    process.stdout.write(`invalid: ${err.errors.length} error(s) in the geo data\n`);
    return 1;
  }
  const result = loadSnapshot(configDir, geo.context, settings.pop, { hashRecord: settings.hashRecord, validityDays: settings.dnssecValidityDays });
  if (!result.snapshot) {
    for (const e of result.errors) process.stdout.write(`${e.format()}\n`);
    process.stdout.write(`invalid: ${result.errors.length} error(s) in ${configDir}\n`);
    return 1;
  }
  process.stdout.write(`valid: ${result.files.length} file(s); zones: ${result.snapshot.zones.map((z) => z.apexText).join(' ')}; `
    + `policies: ${result.policies.map((p) => p.name).join(' ') || 'none'}; hash ${result.snapshot.hash}\n`);
  return 0;
}

function reportConfigErrors(err: unknown): number {
  if (err instanceof ConfigErrors) {
    for (const e of err.errors) process.stderr.write(`popsteer: ${e.format()}\n`);
    return 2;
  }
  throw err;
}

main(process.argv.slice(2)).then((code) => {
  if (code >= 0) process.exitCode = code;
}, (err: Error) => {
  process.stderr.write(`popsteer: ${err.stack ?? err.message}\n`);
  process.exitCode = 1;
});
