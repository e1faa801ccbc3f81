// What the admin needs from the running server, and nothing more. main.ts's
// RunningServer satisfies this structurally, so the admin never imports the
// composition root: main.ts knows every module, the admin knows this page.

import type { Settings } from '../config/settings.ts';
import type { DnstapStats } from '../dnstap/index.ts';
import type { GeoDatabase } from '../geo/database.ts';
import type { GeoIndex, NearestOrders, PopCatalog } from '../geo/types.ts';
import type { Fleet } from '../fleet/fleet.ts';
import type { FleetLoad } from '../fleet/load.ts';
import type { RevisionReport } from '../fleet/revisions.ts';
import type { HealthService } from '../health/service.ts';
import type { DnsSnapshot } from '../snapshot/types.ts';
import type { CompiledPolicy } from '../steering/types.ts';
import type { ConnectionCaps } from '../transport/descriptors.ts';

/** The daemon settings the admin reads. */
export type AdminSettings = Pick<Settings,
  'adminTokenFile' | 'adminTimeoutMs' | 'adminHosts' | 'adminTlsCert' | 'adminTlsKey' | 'workers' | 'pop' | 'ecsTrust'>;

/** The outcome of a reload the admin asked for. */
interface AdminReloadOutcome {
  ok: boolean;
  errors: string[];
  hash: string;
  changed: boolean;
}

/** The running server, as the admin sees it. */
export interface AdminHost {
  settings: AdminSettings;
  startedAt: number;
  snapshot(): DnsSnapshot;
  /** Full compiled policies of the active set. */
  policies(): CompiledPolicy[];
  geo(): { context: { index: GeoIndex; orders: NearestOrders }; database: GeoDatabase; catalog: PopCatalog };
  health: Pick<HealthService, 'ready' | 'cutOff' | 'status' | 'metricsSnapshot' | 'setOverride' | 'pushExternal'>;
  /** The shared health table and per-PoP signals, as the DNS workers read them. */
  healthTable: SharedArrayBuffer;
  signals: SharedArrayBuffer;
  /** Per-worker query counters (engine/counters.ts) and decision counters of the active snapshot. */
  counters: SharedArrayBuffer;
  decisionCounters(): SharedArrayBuffer;
  reloads: { success: number; failure: number; lastError: string[] };
  reload(reason: string): Promise<AdminReloadOutcome>;
  /** Records a PoP's declared load; false for an unknown PoP. */
  setLoad(pop: string, load: number): boolean;
  fitness(): { fit: boolean; reasons: string[] };
  dnstap(): DnstapStats;
  connectionCaps: ConnectionCaps;
  tcpConnections(): number;
  /** The fleet link (server/fleet) when --fleet is set; overrides then go through it. */
  fleet: Pick<Fleet, 'status' | 'setOverride'> | null;
  /** Declared load shared by the fleet (server/fleet/load.ts) when --fleet is set; POST /v1/load then goes through it. */
  fleetLoad?: Pick<FleetLoad, 'declare' | 'status'> | null;
  /** The policy revision served here (server/fleet/revisions.ts); null without --fleet. */
  fleetRevision?(): RevisionReport | null;
  /** Seconds until the served DNSSEC signatures expire (negative once expired); null when no zone is signed. */
  dnssecExpirySeconds?(): number | null;
}
