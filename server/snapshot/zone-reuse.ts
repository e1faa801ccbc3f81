// Posting a new snapshot without copying the names and zones the receiver
// already holds. A one-policy reload at 300 PoPs / 1,000 policies recompiles
// the zones too, but they come out the same: 10,000 steered names whose
// policy positions did not move. Structured cloning that name table at each
// of the three posts (build thread → main → each DNS worker) was most of the
// reload; when the zones' inputs are unchanged the sender posts a reference
// (the zones key) and the receiver keeps the table it serves.
//
// The unit is the whole name table with its zones, not one zone: the hash
// table's chains run across zones, so a table is posted whole or not at all.
// Sound because messages between two threads arrive in order: the snapshot
// a receiver serves when a message arrives is the one posted before it.

import type { DnsSnapshot, NameTable } from './types.ts';

interface ReusedNames {
  reuseZones: string;
}

const referenceOf = (names: NameTable): string | null => {
  const ref = names as unknown as Partial<ReusedNames>;
  return typeof ref.reuseZones === 'string' ? ref.reuseZones : null;
};

/** `snapshot` with its names and zones replaced by a reference when the receiver holds the same ones (`heldKey`: the zones key of what it holds). */
export function zonesToPost(snapshot: DnsSnapshot, heldKey: string | null | undefined): DnsSnapshot {
  const key = snapshot.zonesKey;
  if (key === undefined || key !== heldKey) return snapshot;
  const names = { reuseZones: key } satisfies ReusedNames as unknown as NameTable;
  return Object.freeze({ ...snapshot, names, zones: [] });
}

/** A posted snapshot with a names reference replaced by the receiver's own table and zones from `serving`; throws when it holds other ones. */
export function zonesReceived(posted: DnsSnapshot, serving: Pick<DnsSnapshot, 'names' | 'zones' | 'zonesKey'> | null): DnsSnapshot {
  const key = referenceOf(posted.names);
  if (key === null) return posted;
  if (!serving || serving.zonesKey !== key) throw new Error(`snapshot refers to zones ${key}, which this thread does not hold`);
  return Object.freeze({ ...posted, names: serving.names, zones: serving.zones });
}
