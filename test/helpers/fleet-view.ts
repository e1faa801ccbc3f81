// GET /v1/fleet, asked again until a condition holds. Heartbeats (every 2 s)
// and probe observations reach an instance through NATS, and the instance
// applies them without a log line a test could wait on; this is the one
// place fleet tests ask again, every 200 ms for at most a minute.

import type { StartedServer } from './server.ts';

/**
 * `server`'s GET /v1/fleet once `ok` holds of it, or the last view when the
 * minute is up: the caller's assertions then say what never came.
 */
export async function fleetViewWhen<T>(server: StartedServer, ok: (view: T) => boolean, waitMs = 60_000): Promise<T> {
  const url = `http://127.0.0.1:${server.adminPort}/v1/fleet`;
  for (const deadline = Date.now() + waitMs; ;) {
    const view = await (await fetch(url)).json() as T;
    if (ok(view) || Date.now() > deadline) return view;
    await new Promise((r) => setTimeout(r, 200));
  }
}
